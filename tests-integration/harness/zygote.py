"""A pre-warmed process that forks crash workers, so that each worker starts in milliseconds instead of seconds.

`python -m harness.zygote <engine>` imports everything a worker of that engine needs (no threads are started by
these imports), then reads one JSON command per line on stdin: `{"args": [...], "env": {...}, "output": path,
"status": path}`. For each, it forks a child that runs `harness.crash_worker` with those arguments and environment
(stdout and stderr to `output`), and answers `{"pid": <child pid>}` on stdout. When a child ends, the zygote writes
its wait status to `status` (`-<signal>` if killed, else the exit code), as `subprocess.Popen.returncode` would.
The zygote exits when stdin closes, killing any worker still running.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
from typing import Any

from . import crash_worker

WARM_IMPORTS: dict[str, tuple[str, ...]] = {
    'temporal': (
        'temporalio.client',
        'temporalio.worker',
        'durable_temporal',
        'harness.temporal_crash',
        'harness.temporal_engine',
    ),
    'dbos': ('dbos', 'durable_dbos', 'durable_dbos.testing'),
    'prefect': (
        'prefect',
        'prefect.client.orchestration',
        'prefect.flow_engine',
        'prefect.states',
        'durable_prefect',
        'harness.prefect_crash',
    ),
}

_status_files: dict[int, str] = {}


def _reap(signum: int, frame: Any) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        path = _status_files.pop(pid, None)
        if path is not None:
            with open(path, 'w', encoding='utf-8') as file:
                file.write(str(code))


def _child(command: dict[str, Any]) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.environ.update(command['env'])
    for key in command.get('unset', []):
        os.environ.pop(key, None)
    fd = os.open(command['output'], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.argv = ['harness.crash_worker', *command['args']]
    crash_worker.main()  # exits with os._exit


def main() -> None:
    """Warm up for the engine named in argv, then fork workers on request."""
    for module in WARM_IMPORTS[sys.argv[1]]:
        importlib.import_module(module)
    signal.signal(signal.SIGCHLD, _reap)
    print(json.dumps({'ready': True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        # Block SIGCHLD around fork so the status file is registered before the child can be reaped.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        pid = os.fork()
        if pid == 0:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
            _child(command)
            os._exit(1)
        _status_files[pid] = command['status']
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        print(json.dumps({'pid': pid}), flush=True)
    # stdin closed: the test is done (or died). Stop any worker still running, by PID, so none is orphaned.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    for pid in list(_status_files):
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    os._exit(0)


if __name__ == '__main__':
    main()
