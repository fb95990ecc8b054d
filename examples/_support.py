"""What every example shares: the `--model` flag (a real provider if you have its key, else the example's fake)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import traceback
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from pydantic_ai.models import Model, infer_model


def example_args(
    description: str,
    argv: list[str] | None = None,
    *,
    once: bool = False,
    flags: dict[str, str] | None = None,
    options: dict[str, str] | None = None,
) -> argparse.Namespace:
    """Parse an example's command line: `--model provider:name`, `--once` for long-running workers, and `flags`.

    Args:
        description: The `--help` text (the example's docstring).
        argv: The arguments (default: `sys.argv[1:]`).
        once: Whether the example is a worker that can process one run and exit.
        flags: Extra boolean flags, `{'--deny': 'help text'}`.
        options: Extra string options (default `None`), `{'--address': 'help text'}`.
    """
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag, help_text in (flags or {}).items():
        parser.add_argument(flag, action='store_true', help=help_text)
    for option, help_text in (options or {}).items():
        parser.add_argument(option, default=None, help=help_text)
    parser.add_argument(
        '--model',
        default=None,
        help="a real model, e.g. openai:gpt-4o (needs its API key); default: the example's scripted fake model",
    )
    if once:
        parser.add_argument('--once', action='store_true', help='process one run, then exit (used by the tests)')
    return parser.parse_args(argv)


def choose_model(name: str | None, fake: Model) -> Model:
    """The real model named by `--model` when it can be set up (its API key is set), else the fake one."""
    if not name:
        return fake
    try:
        return infer_model(name)
    except Exception as error:
        print(f'Cannot use {name!r} ({error}); using the fake model instead.', file=sys.stderr)
        return fake


def real_model_name(name: str | None) -> str | None:
    """`name` if that provider can be set up here (its API key is set), else `None` (the example's fake model).

    For engines that resolve a model name inside the durable unit (Temporal), so only the name travels.
    """
    if not name:
        return None
    try:
        infer_model(name)
    except Exception as error:
        print(f'Cannot use {name!r} ({error}); using the fake model instead.', file=sys.stderr)
        return None
    return name


def run_example(main: Callable[[], Coroutine[Any, Any, None]], *, hard_exit: bool = False) -> NoReturn:
    """Run an example's async `main` and exit (code 1 and a traceback if it raised).

    Args:
        main: The example's `main` coroutine function.
        hard_exit: Leave with `os._exit` once `main` has shut everything down, skipping interpreter finalization,
            where the Temporal SDK's native threads can abort the process (a known SDK issue with short-lived
            workers). Not for Prefect: its temporary server is stopped at interpreter exit.
    """
    code = 0
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        code = 130
    except Exception:
        traceback.print_exc()
        code = 1
    if hard_exit:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
