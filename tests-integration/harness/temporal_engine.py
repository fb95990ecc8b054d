"""The Temporal harness: one workflow per scenario and form, running the scenario's `TemporalAgent` (the wrapper
form) or its twin with `TemporalDurability` attached (the capability form).

This module is imported by the workflow sandbox (it holds the workflow classes), so everything it builds at import
time is deterministic and free of I/O.
"""

from __future__ import annotations

import importlib.util
import types
import uuid
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from pydantic_ai.messages import ModelMessage
from pydantic_ai.usage import RunUsage
from pydantic_core import to_jsonable_python
from temporalio import workflow
from temporalio.api.history.v1 import History
from temporalio.client import Client, WorkflowFailureError
from temporalio.converter import DataConverter
from temporalio.exceptions import ApplicationError
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from durable_kernel import DepsResolver
from durable_temporal import AgentEventStream, PydanticAIWorkflow, TemporalAgent, TemporalDurability
from durable_temporal.testing import agent_worker, dev_server

from ._base import read_live
from ._outcome import DurableRunFailed, RunOutcome
from .scenarios import (
    ALL_SCENARIOS,
    STREAM_OUT_SCENARIOS,
    STREAM_OUT_TOPIC,
    Deps,
    Form,
    RunInput,
    Scenario,
    capability_twin,
    handler_for,
)

__all__ = (
    'CAPABILITY_AGENTS',
    'CAPABILITY_WORKFLOWS',
    'TEMPORAL_AGENTS',
    'WORKFLOWS',
    'TemporalHarness',
    'WorkflowReply',
    'harness_passthrough_runner',
    'workflow_class_name',
)


def harness_passthrough_runner() -> SandboxedWorkflowRunner:
    """The default sandbox, with this test package passed through.

    Without it every workflow task re-imports the scenarios (eleven agents and their schemas) inside the sandbox,
    which costs seconds per workflow on a busy CI machine; determinism does not depend on that re-import.
    """
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules('harness'))


@dataclass
class WorkflowReply:
    """What a scenario workflow returns: the parts of the `AgentRunResult` that the scenarios compare."""

    output: Any
    output_type: str
    messages: list[ModelMessage]
    usage: RunUsage


TEMPORAL_AGENTS: dict[str, TemporalAgent[Deps, Any]] = {
    name: TemporalAgent(
        scenario.agent, event_stream_handler=handler_for(scenario), deps_resolver=scenario.deps_resolver
    )
    for name, scenario in ALL_SCENARIOS.items()
}


def workflow_class_name(scenario_name: str) -> str:
    """`plain_text` -> `PlainTextWorkflow`."""
    return ''.join(word.capitalize() for word in scenario_name.split('_')) + 'Workflow'


CAPABILITY_AGENTS: dict[str, Any] = {
    name: capability_twin(
        scenario.agent,
        TemporalDurability[Deps](event_stream_handler=handler_for(scenario), deps_resolver=scenario.deps_resolver),
    )
    for name, scenario in ALL_SCENARIOS.items()
}
"""The capability form of every scenario: its agent built again with `TemporalDurability` (`{name}_capability`)."""


class _ScenarioRun(PydanticAIWorkflow):
    """Holds the run method that every scenario workflow gets a copy of."""

    __scenario_deps_resolver__: DepsResolver[Deps, Deps] | None = None

    async def run(self, run_input: RunInput) -> WorkflowReply:
        # A `TemporalAgent` (the wrapper form) or an `Agent` with `TemporalDurability` (the capability form).
        agent = cast('TemporalAgent[Deps, Any]', self.__pydantic_ai_agents__[0])
        # With a resolver the workflow input holds the reference; the workflow resolves it for `run()`.
        result = await agent.run(run_input.prompt, **run_input.run_kwargs(self.__scenario_deps_resolver__))
        return WorkflowReply(
            output=to_jsonable_python(result.output),
            output_type=type(result.output).__name__,
            messages=result.all_messages(),
            usage=result.usage,
        )


def _scenario_workflow(name: str, agent: Any, deps_resolver: DepsResolver[Deps, Deps] | None) -> type:
    # Temporal refuses local classes (the sandbox re-imports this module and looks the class up by name), so each
    # class gets a module-level name, its own copy of the run method, and is published as a module attribute below.
    class_name = workflow_class_name(name)
    template = _ScenarioRun.run
    run = types.FunctionType(
        template.__code__, template.__globals__, 'run', template.__defaults__, template.__closure__
    )
    run.__qualname__ = f'{class_name}.run'
    run.__annotations__ = dict(template.__annotations__)
    namespace: dict[str, Any] = {
        '__module__': __name__,
        '__qualname__': class_name,
        '__pydantic_ai_agents__': (agent,),
        '__scenario_deps_resolver__': deps_resolver,
        'run': workflow.run(run),
    }
    cls = type(class_name, (PydanticAIWorkflow,), namespace)
    return workflow.defn(name=f'conformance_{name}')(cls)


WORKFLOWS: dict[str, type] = {
    name: _scenario_workflow(name, agent, agent.deps_resolver) for name, agent in TEMPORAL_AGENTS.items()
}
CAPABILITY_WORKFLOWS: dict[str, type] = {
    name: _scenario_workflow(f'{name}_capability', agent, ALL_SCENARIOS[name].deps_resolver)
    for name, agent in CAPABILITY_AGENTS.items()
}
globals().update({cls.__name__: cls for cls in (*WORKFLOWS.values(), *CAPABILITY_WORKFLOWS.values())})

HAS_WORKFLOW_STREAMS = importlib.util.find_spec('temporalio.contrib.workflow_streams') is not None
"""Whether this temporalio has Workflow Streams (1.27.0 and later), which live events need."""

STREAM_OUT_AGENTS: dict[str, TemporalAgent[Deps, Any]] = {
    name: TemporalAgent(scenario.agent, event_stream_handler=handler_for(scenario), event_stream_topic=STREAM_OUT_TOPIC)
    for name, scenario in (STREAM_OUT_SCENARIOS.items() if HAS_WORKFLOW_STREAMS else ())
}


async def _stream_out_run(
    agent: TemporalAgent[Deps, Any], events: AgentEventStream, run_input: RunInput
) -> WorkflowReply:
    async with events:  # leaving waits (bounded) until a consumer has read the terminal event
        result = await agent.run(run_input.prompt, **run_input.run_kwargs())
    return WorkflowReply(
        output=to_jsonable_python(result.output),
        output_type=type(result.output).__name__,
        messages=result.all_messages(),
        usage=result.usage,
    )


@workflow.defn(name='conformance_stream_out_streamed')
class StreamOutStreamedWorkflow(PydanticAIWorkflow):
    """Hosts the stream its agent publishes to (`AgentEventStream`), as a user's workflow does."""

    __pydantic_ai_agents__ = [agent for name, agent in STREAM_OUT_AGENTS.items() if name == 'stream_out_streamed']

    @workflow.init
    def __init__(self, run_input: RunInput) -> None:
        self.events = AgentEventStream()

    @workflow.run
    async def run(self, run_input: RunInput) -> WorkflowReply:
        return await _stream_out_run(STREAM_OUT_AGENTS['stream_out_streamed'], self.events, run_input)


@workflow.defn(name='conformance_stream_out_parallel')
class StreamOutParallelWorkflow(PydanticAIWorkflow):
    """As `StreamOutStreamedWorkflow`, for the parallel tool calls."""

    __pydantic_ai_agents__ = [agent for name, agent in STREAM_OUT_AGENTS.items() if name == 'stream_out_parallel']

    @workflow.init
    def __init__(self, run_input: RunInput) -> None:
        self.events = AgentEventStream()

    @workflow.run
    async def run(self, run_input: RunInput) -> WorkflowReply:
        return await _stream_out_run(STREAM_OUT_AGENTS['stream_out_parallel'], self.events, run_input)


STREAM_OUT_WORKFLOWS: dict[str, type] = (
    {'stream_out_streamed': StreamOutStreamedWorkflow, 'stream_out_parallel': StreamOutParallelWorkflow}
    if HAS_WORKFLOW_STREAMS
    else {}
)


class TemporalHarness:
    """Runs each scenario as a workflow on a Temporal server, with an in-process worker for all of them."""

    engine = 'temporal'

    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue
        self._workflow_ids: list[str] = []

    @classmethod
    @asynccontextmanager
    async def start(cls) -> AsyncGenerator[TemporalHarness]:
        """Start a dev server and a worker for every scenario workflow; stop both on exit."""
        async with (
            dev_server() as env,
            agent_worker(
                env.client,
                workflows=[*WORKFLOWS.values(), *CAPABILITY_WORKFLOWS.values(), *STREAM_OUT_WORKFLOWS.values()],
                workflow_runner=harness_passthrough_runner(),
            ) as worker,
        ):
            yield cls(env.client, worker.task_queue)

    async def run(self, scenario: Scenario, run_input: RunInput, form: Form = 'wrapper') -> RunOutcome:
        """Execute the scenario's workflow of that form and wait for its reply.

        Raises:
            DurableRunFailed: The workflow failed; carries the type and message of the agent loop's error.
        """
        workflow_name = scenario.name if form == 'wrapper' else f'{scenario.name}_capability'
        workflow_id = f'conformance-{workflow_name}-{uuid.uuid4().hex}'
        self._workflow_ids.append(workflow_id)
        try:
            reply: WorkflowReply = await self.client.execute_workflow(
                f'conformance_{workflow_name}',
                run_input,
                id=workflow_id,
                task_queue=self.task_queue,
                result_type=WorkflowReply,
                # A workflow that retries a failing task forever must fail the test, not hang it.
                execution_timeout=timedelta(minutes=2),
            )
        except WorkflowFailureError as failure:
            cause = failure.cause
            if isinstance(cause, ApplicationError):
                raise DurableRunFailed(cause.type or 'ApplicationError', cause.message) from failure
            raise
        return RunOutcome(reply.output, reply.output_type, reply.messages, reply.usage)

    async def stream_out(
        self, scenario: Scenario, run_input: RunInput, reconnect_after: int | None = None
    ) -> tuple[RunOutcome, list[Any]]:
        """Start the scenario's stream-out workflow and read its Workflow Stream while it runs."""
        if not HAS_WORKFLOW_STREAMS:
            import pytest

            pytest.skip('temporalio < 1.27.0 has no Workflow Streams, which live events on Temporal need')
        workflow_id = f'conformance-{scenario.name}-{uuid.uuid4().hex}'
        handle = await self.client.start_workflow(
            f'conformance_{scenario.name}',
            run_input,
            id=workflow_id,
            task_queue=self.task_queue,
            result_type=WorkflowReply,
            execution_timeout=timedelta(minutes=2),
        )
        agent = STREAM_OUT_AGENTS[scenario.name]
        received, output = await read_live(
            lambda offset: agent.stream_agent_events(
                self.client, handle, from_offset=offset, poll_cooldown=timedelta(milliseconds=50)
            ),
            reconnect_after,
        )
        reply: WorkflowReply = await handle.result()
        assert output == reply.output
        return RunOutcome(reply.output, reply.output_type, reply.messages, reply.usage), received

    async def storage_holds(self, text: str) -> bool:
        """Whether `text` is in the history of a workflow this harness ran: its raw bytes or its payloads decoded
        with Temporal's default data converter."""
        needle = text.encode()
        for workflow_id in self._workflow_ids:
            history = await self.client.get_workflow_handle(workflow_id).fetch_history()
            if needle in History(events=history.events).SerializeToString():
                return True
            for event in history.events:
                if not event.HasField('activity_task_scheduled_event_attributes'):
                    continue
                payloads = event.activity_task_scheduled_event_attributes.input.payloads
                if text in repr(await DataConverter.default.decode(payloads)):
                    return True
        return False
