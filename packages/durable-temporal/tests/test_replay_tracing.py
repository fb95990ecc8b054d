"""pydantic-ai's spans are emitted once per run, not again each time a worker replays the workflow (defect 10).

And nothing shared is changed for it (issue 18): no pydantic-ai class global, no user settings, tracer or capability.
A plain agent in the same process traces with the user's own tracer before and after durable runs.

Only a run that may emit spans is given `ReplaySafeTelemetry` (an uninstrumented one would only pay for it), and
whether it is given changes no command of the workflow: a history recorded either way replays the other way.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import pytest
from core_helpers import WORKFLOW_TIMEOUT, activity_names
from pydantic_ai import Agent
from pydantic_ai.capabilities import Instrumentation, WrapperCapability
from pydantic_ai.models.instrumented import InstrumentationSettings
from pydantic_ai.models.test import TestModel
from temporalio import workflow
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from durable_kernel import FOR_RUN_SEES_RUN_INSTRUMENTATION, PYDANTIC_AI_2
from durable_temporal import AgentPlugin, PydanticAIPlugin, TemporalAgent, TemporalDurability
from durable_temporal.testing import agent_worker

with workflow.unsafe.imports_passed_through():
    # One exporter (and one settings object) for the worker and the workflow sandbox, which would otherwise import its
    # own copy.
    from tracing_support import EXPORTER, PROBE, PROVIDER, SETTINGS

pytestmark = pytest.mark.anyio


async def weather(city: str) -> str:
    """The weather in a city."""
    return f'sunny in {city}'


def _agent(name: str, *, capability: bool, durable: bool = False) -> Agent[None, str]:
    """An agent instrumented with the shared `SETTINGS`: by an `Instrumentation` capability, or by `agent.instrument`."""
    capabilities: list[Any] = [Instrumentation(SETTINGS)] if capability else []
    if durable:
        capabilities.append(TemporalDurability())
    agent = Agent(TestModel(), name=name, tools=[weather], capabilities=capabilities)
    if not capability:
        agent.instrument = SETTINGS
    return agent


traced_agent = Agent(
    TestModel(), name='traced', capabilities=[Instrumentation(InstrumentationSettings(tracer_provider=PROVIDER))]
)


@traced_agent.tool_plain
async def weather_tool(city: str) -> str:
    return f'sunny in {city}'


wrapped_with_capability = _agent('wrapper_capability', capability=True)
durable_with_capability = _agent('durability_capability', capability=True, durable=True)
AGENTS: dict[str, Any] = {
    # The wrapper form, instrumented by a capability with its own settings, and by the shared settings both ways.
    'traced': TemporalAgent(traced_agent),
    'wrapper_capability': TemporalAgent(wrapped_with_capability),
    'wrapper_instrument': TemporalAgent(_agent('wrapper_instrument', capability=False)),
    # The capability form, both ways.
    'durability_capability': durable_with_capability,
    'durability_instrument': _agent('durability_instrument', capability=False, durable=True),
}

plain_agent = _agent('plain', capability=False)

wrapped_durability = Agent(
    TestModel(),
    name='wrapped_durability',
    tools=[weather],
    capabilities=[Instrumentation(SETTINGS), WrapperCapability(wrapped=TemporalDurability())],
)
"""`TemporalDurability` under a `WrapperCapability` (as pydantic-ai 2.33's own suite builds one), in an instrumented
agent: durable, but without `ReplaySafeTelemetry`, which pydantic-ai would refuse inside the wrapper (two ordering
tiers, 'outermost' and 'innermost', under one wrapper)."""


@workflow.defn
class WrappedDurabilityWorkflow:
    @workflow.run
    async def run(self) -> str:
        return (await wrapped_durability.run('weather?')).output


async def test_a_durability_under_a_wrapper_capability_builds_and_runs_its_units(
    client: Client, task_queue: str
) -> None:
    async with agent_worker(
        client, workflows=[WrappedDurabilityWorkflow], plugins=[AgentPlugin(wrapped_durability)], task_queue=task_queue
    ):
        handle = await client.start_workflow(
            WrappedDurabilityWorkflow.run,
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        assert await handle.result() == '{"weather":"sunny in a"}'
    names = await activity_names(client, handle)
    assert names == [
        'agent__wrapped_durability__model_request',
        'agent__wrapped_durability__toolset__<agent>__call_tool',
        'agent__wrapped_durability__model_request',
    ]


"""Never durable: run in the test process, outside any workflow."""

UNINSTRUMENTED: dict[str, Any] = {
    # Instrumented only while `Agent.instrument_all(...)` is in force; the probe records each run's capabilities.
    'uninstrumented_wrapper': TemporalAgent(
        Agent(TestModel(), name='uninstrumented_wrapper', tools=[weather], capabilities=[PROBE])
    ),
    'uninstrumented_durability': Agent(
        TestModel(), name='uninstrumented_durability', tools=[weather], capabilities=[PROBE, TemporalDurability()]
    ),
}
ALL_AGENTS: dict[str, Any] = {**AGENTS, **UNINSTRUMENTED}


@workflow.defn
class TracedWorkflow:
    @workflow.run
    async def run(self, key: str) -> str:
        return (await ALL_AGENTS[key].run('weather?')).output


@workflow.defn
class RunInstrumentedWorkflow:
    @workflow.run
    async def run(self, key: str) -> str:
        return (await ALL_AGENTS[key].run('weather?', capabilities=[Instrumentation(SETTINGS)])).output


def _plugins() -> list[Any]:
    return [AgentPlugin(agent) for agent in ALL_AGENTS.values()]


def _span_names(name: str) -> dict[str, int]:
    """The spans of one run: the agent run, its two model requests and its tool call (2.x names them per GenAI)."""
    if PYDANTIC_AI_2:
        return {f'invoke_agent {name}': 1, 'chat test': 2, 'execute_tool weather' + ('_tool' * (name == 'traced')): 1}
    return {'agent run': 1, 'chat test': 2, 'running tool': 1}


async def _run(client: Client, task_queue: str, key: str) -> WorkflowHistory:
    """Run the workflow for agent `key` on a worker; its history."""
    async with agent_worker(client, workflows=[TracedWorkflow], plugins=_plugins(), task_queue=task_queue):
        handle = await client.start_workflow(
            TracedWorkflow.run, key, id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
        )
        await handle.result()
    return await handle.fetch_history()


async def _replay(history: WorkflowHistory) -> None:
    """Replay a history: without a non-determinism error."""
    replayer = Replayer(workflows=[TracedWorkflow], plugins=[PydanticAIPlugin(), *_plugins()])
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None


async def _run_and_replay(client: Client, task_queue: str, key: str) -> WorkflowHistory:
    """Run the workflow for agent `key`: its spans are emitted once; then replay it: none is emitted again."""
    EXPORTER.clear()
    history = await _run(client, task_queue, key)
    assert Counter(span.name for span in EXPORTER.get_finished_spans()) == _span_names(key)

    EXPORTER.clear()
    await _replay(history)
    assert EXPORTER.get_finished_spans() == ()
    return history


@pytest.mark.parametrize('key', list(AGENTS))
async def test_a_replay_emits_no_span_again(client: Client, task_queue: str, key: str) -> None:
    await _run_and_replay(client, task_queue, key)


async def _plain_spans() -> dict[str, int]:
    EXPORTER.clear()
    await plain_agent.run('weather?')
    spans = EXPORTER.get_finished_spans()
    EXPORTER.clear()
    return dict(Counter(span.name for span in spans))


async def test_a_plain_agent_in_the_same_process_is_unaffected(client: Client, task_queue: str) -> None:
    instrument_default = Agent._instrument_default  # pyright: ignore[reportPrivateUsage]
    tracer = SETTINGS.tracer
    attributes = dict(vars(SETTINGS))
    with_capability = [wrapped_with_capability, durable_with_capability]
    capabilities = [_leaves(agent) for agent in with_capability]
    assert await _plain_spans() == _span_names('plain')

    for key in AGENTS:
        await _run_and_replay(client, task_queue, key)

    # Nothing shared was changed: pydantic-ai's class default, the user's settings (same tracer object, same
    # attributes), the agents' capabilities.
    assert Agent._instrument_default is instrument_default  # pyright: ignore[reportPrivateUsage]
    assert SETTINGS.tracer is tracer
    assert vars(SETTINGS) == attributes
    assert plain_agent.instrument is SETTINGS
    for agent, leaves in zip(with_capability, capabilities, strict=True):
        assert [id(leaf) for leaf in _leaves(agent)] == [id(leaf) for leaf in leaves]
        [instrumentation] = [leaf for leaf in leaves if isinstance(leaf, Instrumentation)]
        assert instrumentation.settings is SETTINGS
    # And the plain agent still traces with the user's own tracer: the same spans, through the same provider.
    assert await _plain_spans() == _span_names('plain')


def _leaves(agent: Agent[None, str]) -> list[Any]:
    """The capabilities of an agent's capability tree (the tree is `_root_capability` on 1.107)."""
    leaves: list[Any] = []
    root = agent.root_capability if PYDANTIC_AI_2 else agent._root_capability  # pyright: ignore[reportPrivateUsage]
    root.apply(leaves.append)
    return leaves


def _replay_safe_telemetry_seen() -> set[bool]:
    """Whether the runs the probe saw since it was cleared had `ReplaySafeTelemetry`: `{True}`, `{False}`, or both."""
    return {'ReplaySafeTelemetry' in names for names in PROBE.seen}


@pytest.mark.parametrize('key', list(UNINSTRUMENTED))
async def test_only_an_instrumented_run_gets_replay_safe_telemetry(client: Client, task_queue: str, key: str) -> None:
    # Where pydantic-ai does not show a capability's `for_run` the run's own `capabilities=`, the capability form
    # cannot tell a run uninstrumented: it gives every run in workflow code the capability (the wrapper form sees them).
    given_anyway = key == 'uninstrumented_durability' and not FOR_RUN_SEES_RUN_INSTRUMENTATION
    # Uninstrumented: no span, and (but for that case) no `ReplaySafeTelemetry` among the run's capabilities.
    EXPORTER.clear()
    PROBE.seen.clear()
    uninstrumented = await _run(client, task_queue, key)
    assert EXPORTER.get_finished_spans() == ()
    assert _replay_safe_telemetry_seen() == {given_anyway}

    # Instrumented by `Agent.instrument_all(...)` (the global default, as `logfire.instrument_pydantic_ai()` sets
    # it): the capability is there, the spans are emitted once, and a replay emits none again.
    PROBE.seen.clear()
    Agent.instrument_all(SETTINGS)
    try:
        instrumented = await _run_and_replay(client, task_queue, key)
        assert _replay_safe_telemetry_seen() == {True}
        # A history recorded without the capability replays with it: the capability issues no command.
        await _replay(uninstrumented)
        assert EXPORTER.get_finished_spans() == ()
    finally:
        Agent.instrument_all(False)
    # And a history recorded with it replays without it.
    PROBE.seen.clear()
    await _replay(instrumented)
    assert _replay_safe_telemetry_seen() == {given_anyway}
    assert EXPORTER.get_finished_spans() == ()


@pytest.mark.parametrize('key', list(UNINSTRUMENTED))
async def test_a_run_instrumented_by_its_own_capabilities_gets_replay_safe_telemetry(
    client: Client, task_queue: str, key: str
) -> None:
    # An `Instrumentation` among the run's `capabilities=`: its spans are emitted once, and none again on a replay.
    PROBE.seen.clear()
    EXPORTER.clear()
    async with agent_worker(client, workflows=[RunInstrumentedWorkflow], plugins=_plugins(), task_queue=task_queue):
        handle = await client.start_workflow(
            RunInstrumentedWorkflow.run,
            key,
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        await handle.result()
    assert Counter(span.name for span in EXPORTER.get_finished_spans()) == _span_names(key)
    assert _replay_safe_telemetry_seen() == {True}
    EXPORTER.clear()
    replayer = Replayer(workflows=[RunInstrumentedWorkflow], plugins=[PydanticAIPlugin(), *_plugins()])
    result = await replayer.replay_workflow(await handle.fetch_history(), raise_on_replay_failure=False)
    assert result.replay_failure is None
    assert EXPORTER.get_finished_spans() == ()
