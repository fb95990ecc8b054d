"""The Temporal worker the web server starts, and that its kill button (or `kill -9 <pid>`) ends.

    python -m examples.web_chat._temporal_worker --address 127.0.0.1:7233 [--model ...] [--token-delay 0.15]

The web server starts one `web_chat.turn` workflow per chat turn on the `web-chat` task queue (the Temporal dev
server the app started holds it); this process polls the queue and runs the workflows and their activities. The
workflow hosts an `AgentEventStream` and the agent carries `TemporalDurability(event_stream_topic=...)`, so the
streamed model request publishes its tokens to the workflow's stream while it runs. The model activity heartbeats
(`heartbeat_timeout`): when this worker is killed mid-answer, Temporal retries the request on the next worker within
two seconds, and the retried attempt announces itself with a `UnitRetryEvent`. The tool call the run had completed
is in the workflow's history and is not made again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from datetime import timedelta
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessagesTypeAdapter
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from durable_temporal import AgentEventStream, AgentPlugin, PydanticAIPlugin, TemporalDurability
from examples.web_chat._agent import TOPIC, build_agent

TASK_QUEUE = 'web-chat'
WORKFLOW = 'web_chat.turn'
LINGER = timedelta(seconds=60)
"""How long a turn's workflow keeps its stream readable after the answer: a Workflow Stream is read from the running
workflow, and a page that reloads (its EventSource reconnects with `Last-Event-ID`) should still find the turn."""

_agent: list[Agent[None, str]] = []
"""The agent this worker runs (built by `main` from the command line; the workflow module is passed through the
sandbox, so the workflow sees the same list)."""


def durability() -> TemporalDurability[None]:
    """The agent's capability: live events, and a model activity that heartbeats while it streams."""
    return TemporalDurability(
        event_stream_topic=TOPIC,
        model_activity_config={'heartbeat_timeout': timedelta(seconds=2)},
        # A tool call lost with a killed worker is retried after this timeout (the tool answers in milliseconds).
        activity_config={'start_to_close_timeout': timedelta(seconds=60)},
    )


@workflow.defn(name=WORKFLOW)
class ChatTurn:
    """One chat turn: the agent's run publishes its events to the stream this workflow hosts."""

    @workflow.init
    def __init__(self, prompt: str, history: list[Any]) -> None:
        self.events = AgentEventStream()
        self.messages: list[Any] | None = None

    @workflow.query
    def turn_messages(self) -> list[Any] | None:
        """The turn's messages (JSON) once its agent run finished, else None."""
        return self.messages

    @workflow.run
    async def run(self, prompt: str, history: list[Any]) -> dict[str, Any]:
        agent = _agent[0]
        result = await agent.run(prompt, message_history=ModelMessagesTypeAdapter.validate_python(history))
        self.messages = ModelMessagesTypeAdapter.dump_python(result.all_messages(), mode='json')
        # Still readable for a while (see LINGER); then release the readers and finish.
        await workflow.sleep(LINGER)
        await self.events.close()
        return {'output': result.output, 'messages': self.messages}


async def serve(address: str) -> None:
    """Poll the task queue until SIGTERM/SIGINT (or SIGKILL), or until orphaned."""
    agent = _agent[0]
    client = await Client.connect(address, plugins=[PydanticAIPlugin()])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[ChatTurn],
        plugins=[AgentPlugin(agent)],
        # This module holds the agent the workflow runs: passed through, not re-imported inside the sandbox.
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules('examples')
        ),
    )
    async with worker:
        print(f'worker ready (pid {os.getpid()})', flush=True)
        parent = os.getppid()
        while not stop.is_set() and os.getppid() == parent:  # orphaned: the web server died without stopping us
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1)


def main(argv: list[str] | None = None) -> None:
    """Build the agent from the command line and serve."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--address', required=True)
    parser.add_argument('--model', default=None)
    parser.add_argument('--token-delay', type=float, default=0.15)
    args = parser.parse_args(argv)
    _agent.append(build_agent(args.model, args.token_delay, [durability()]))
    asyncio.run(serve(args.address))


if __name__ == '__main__':
    # Run the module under its own name, not `__main__`: the sandbox finds the workflow (and the passed-through
    # agent) by the module name the class was defined in.
    from examples.web_chat import _temporal_worker

    _temporal_worker.main()
    sys.exit(0)
