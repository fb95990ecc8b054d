"""The web server: the chat page, a JSON endpoint to send a message, Server-Sent Events for a turn's live events, and
the worker process it supervises (start, kill with SIGKILL, start again).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from pydantic_ai.messages import (
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
)
from pydantic_ai.run import AgentRunResultEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from durable_kernel import UnitRetryEvent
from examples.web_chat._engines import ChatEngine, python

ROOT = Path(__file__).resolve().parents[2]
STATIC = Path(__file__).resolve().parent / 'static'


@dataclass
class WorkerSupervisor:
    """Runs the engine's worker as a child process; starts a new one `restart_delay` seconds after it died.

    The page's kill button sends SIGKILL by PID, exactly like `kill -9 <pid>` in a terminal: no cleanup runs in the
    worker, the engine sees a dead worker. The supervisor notices the exit either way and starts a fresh worker,
    which resumes the unfinished run.
    """

    argv: list[str]
    restart_delay: float = 2.0
    process: subprocess.Popen[bytes] | None = None
    kills: int = 0
    starts: int = 0
    restarting_at: float | None = None
    _stopping: bool = False
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    def _spawn(self) -> None:
        # Own process group: a Ctrl-C in the server's terminal reaches the server, which stops the worker itself.
        self.process = subprocess.Popen([python(), *self.argv], cwd=ROOT, start_new_session=True)
        self.starts += 1
        self.restarting_at = None

    async def start(self) -> None:
        """Start the first worker and the watch loop."""
        self._spawn()
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while not self._stopping:
            await asyncio.sleep(0.2)
            if self.process is not None and self.process.poll() is not None and self.restarting_at is None:
                self.restarting_at = time.monotonic() + self.restart_delay
            if self.restarting_at is not None and time.monotonic() >= self.restarting_at and not self._stopping:
                self._spawn()

    def kill(self) -> int | None:
        """SIGKILL the worker by PID; return the PID (None if no worker was alive)."""
        process = self.process
        if process is None or process.poll() is not None:
            return None
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        self.kills += 1
        return process.pid

    def status(self) -> dict[str, Any]:
        """What the page shows: the PID, whether it is alive, how many workers were started and killed."""
        alive = self.process is not None and self.process.poll() is None
        restart_in = None if self.restarting_at is None else max(0.0, self.restarting_at - time.monotonic())
        return {
            'pid': self.process.pid if self.process else None,
            'alive': alive,
            'starts': self.starts,
            'kills': self.kills,
            'restart_in': restart_in,
        }

    async def stop(self) -> None:
        """Stop the watch loop, then the worker (SIGTERM, SIGKILL after 10 s)."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                await asyncio.to_thread(process.wait, 10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def page_message(event: Any) -> dict[str, Any] | None:
    """What the page is told about one live event (None: nothing to show)."""
    if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
        return {'type': 'text', 'text': event.part.content}
    if isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
        return {'type': 'text', 'text': event.delta.content_delta}
    if isinstance(event, FunctionToolCallEvent):
        return {'type': 'tool_call', 'tool': event.part.tool_name, 'args': event.part.args_as_json_str()}
    if isinstance(event, FunctionToolResultEvent):
        return {'type': 'tool_result', 'tool': event.part.tool_name, 'content': str(event.part.content)}
    if isinstance(event, UnitRetryEvent):
        return {'type': 'retry', 'unit': event.unit, 'attempt': event.attempt}
    if isinstance(event, AgentRunResultEvent):
        result = cast('AgentRunResultEvent[Any]', event)
        return {'type': 'result', 'output': str(result.result.output)}
    return None


def _sse(data: dict[str, Any], *, event_id: int | None = None, event: str | None = None) -> str:
    lines = [f'id: {event_id}'] if event_id is not None else []
    if event is not None:
        lines.append(f'event: {event}')
    lines.append(f'data: {json.dumps(data)}')
    return '\n'.join(lines) + '\n\n'


def create_app(
    engine: ChatEngine, supervisor: WorkerSupervisor, *, on_ready: Callable[[], None] | None = None
) -> Starlette:
    """The Starlette app: `/`, `POST /api/chat`, `GET /api/runs/{id}/events` (SSE), `/api/worker`, `/api/worker/kill`.

    Args:
        engine: The engine adapter.
        supervisor: The worker process's supervisor (started and stopped with the app).
        on_ready: Called once the worker is up and the engine can be used.
    """
    conversations: dict[str, str] = {}  # conversation id -> its last turn's run id (the next turn's history)

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / 'index.html')

    async def chat(request: Request) -> Response:
        body = await request.json()
        message = str(body.get('message', '')).strip()
        conversation = str(body.get('conversation', 'default'))
        if not message:
            return JSONResponse({'error': 'empty message'}, status_code=400)
        previous = conversations.get(conversation)
        history = await engine.turn_messages(previous) if previous else []
        run_id = await engine.start_turn(message, history)
        conversations[conversation] = run_id
        return JSONResponse({'run_id': run_id, 'engine': engine.name})

    async def events(request: Request) -> Response:
        run_id = request.path_params['run_id']
        # EventSource sends the id of the last event it received when it reconnects: continue right after it.
        last = request.headers.get('last-event-id') or request.query_params.get('last_event_id')
        from_offset = int(last) + 1 if last else 0

        async def stream() -> AsyncIterator[str]:
            yield _sse({'type': 'connected', 'from_offset': from_offset}, event='status')
            async with engine.stream_events(run_id, from_offset) as live:
                async for event in live:
                    message = page_message(event)
                    if message is not None:
                        yield _sse(message, event_id=live.offset)
            # Without this the browser's EventSource would reconnect forever; the page closes it on `end`.
            yield _sse({'type': 'end', 'ok': live.result is not None}, event='end')

        headers = {'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no'}
        return StreamingResponse(stream(), media_type='text/event-stream', headers=headers)

    async def worker(request: Request) -> Response:
        return JSONResponse({'engine': engine.name, **supervisor.status()})

    async def kill(request: Request) -> Response:
        pid = supervisor.kill()
        return JSONResponse({'killed': pid, **supervisor.status()})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncGenerator[None]:
        # In the lifespan, not around `uvicorn.run`: uvicorn re-raises a SIGTERM after its shutdown, so code after it
        # never runs; the lifespan's exit does.
        with engine.infrastructure():
            await supervisor.start()
            try:
                await engine.open()
                if on_ready is not None:
                    on_ready()
                yield
            finally:
                await engine.close()
                await supervisor.stop()

    return Starlette(
        routes=[
            Route('/', index),
            Route('/api/chat', chat, methods=['POST']),
            Route('/api/runs/{run_id}/events', events),
            Route('/api/worker', worker),
            Route('/api/worker/kill', kill, methods=['POST']),
        ],
        lifespan=lifespan,
    )
