"""Tell anyio, once per run, that a workflow's event loop is asyncio, instead of letting it find out on every call.

pydantic-ai starts its tasks through anyio, and anyio asks `sniffio.current_async_library()` which library runs the
event loop each time (hundreds of times per agent run). Unless a context variable says so, sniffio finds out by
executing `from asyncio import current_task`, an import statement; inside Temporal's workflow sandbox every import
statement goes through the sandbox's import hook, which made this question about a tenth of the CPU of the workflow
code of an agent run (profiled with `benchmarks/profile_temporal.py`). The answer cannot change within a workflow
(Temporal runs workflow code on its own asyncio event loop), so it is given once, through the context variable
sniffio provides for that purpose, and the tasks the run starts inherit it.
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager

try:
    import sniffio
except ImportError:  # pragma: no cover - anyio without sniffio asks asyncio directly, with no import statement
    sniffio = None


@contextmanager
def asyncio_named_for_anyio() -> Generator[None]:
    """Within the block, `sniffio.current_async_library()` answers `'asyncio'` from its context variable."""
    if sniffio is None:  # pragma: no cover
        yield
        return
    token = sniffio.current_async_library_cvar.set('asyncio')
    try:
        yield
    finally:
        sniffio.current_async_library_cvar.reset(token)
