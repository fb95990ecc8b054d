"""`python -m examples.web_chat`: start the web chat (see the package docstring)."""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
from pathlib import Path

import uvicorn

from examples.web_chat import __doc__ as DOC
from examples.web_chat._app import WorkerSupervisor, create_app
from examples.web_chat._engines import ENGINES, EngineNotAvailable, make_engine


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--engine',
        choices=ENGINES,
        default='dbos',
        help='the durable engine (default: dbos; temporal starts a Temporal dev server, prefect a Prefect server)',
    )
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=8000, help='0 picks a free port')
    parser.add_argument('--model', default=None, help='a real model, e.g. openai:gpt-4o (needs its API key)')
    parser.add_argument('--token-delay', type=float, default=0.15, help="the fake model's seconds per token")
    parser.add_argument('--restart-delay', type=float, default=2.0, help='seconds before a dead worker is replaced')
    parser.add_argument('--workdir', default=None, help="where the engine's files go (default: a temporary directory)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start the worker and the web server; stop both on Ctrl-C or SIGTERM."""
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix='web-chat-') as tmp:
        workdir = Path(args.workdir) if args.workdir else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            engine = make_engine(args.engine, workdir, model=args.model, token_delay=args.token_delay)
        except EngineNotAvailable as error:
            print(error, file=sys.stderr)
            return 2
        supervisor = WorkerSupervisor(engine.worker_argv(), restart_delay=args.restart_delay)
        # Bound here, so that `--port 0` gives a port to print; the URL is printed once the worker is up.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
        host, port = sock.getsockname()[:2]
        url = f'http://{host}:{port}/'

        def ready() -> None:
            print(f'Web chat ({args.engine}) on {url}  (Ctrl-C to stop)', flush=True)

        app = create_app(engine, supervisor, on_ready=ready)
        config = uvicorn.Config(app, log_level='warning', timeout_graceful_shutdown=3)
        uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == '__main__':
    sys.exit(main())
