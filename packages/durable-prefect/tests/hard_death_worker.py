"""Starts the test server, prints its PID, then waits to be killed (SIGKILL: no cleanup can run)."""

from __future__ import annotations

import time

from prefect.server.api.server import SubprocessASGIServer

from durable_prefect.testing import prefect_test_server

if __name__ == '__main__':
    with prefect_test_server() as home:
        server = SubprocessASGIServer._instances[None]  # pyright: ignore[reportPrivateUsage]
        assert server.server_process is not None
        print(server.server_process.pid, home, flush=True)
        time.sleep(300)
