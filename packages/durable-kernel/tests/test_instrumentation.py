"""Whether a run may be instrumented, told before it starts (`run_may_be_instrumented`).

Temporal adds its replay-safe tracing only to such runs: a run it misses would emit its spans again on a replay, so
every way pydantic-ai instruments a run must count, and an agent with none must not.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.trace import NoOpTracer, ProxyTracer
from pydantic_ai import Agent
from pydantic_ai.capabilities import AbstractCapability, Instrumentation
from pydantic_ai.models.instrumented import InstrumentationSettings, InstrumentedModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.tools import RunContext
from pydantic_ai.usage import RunUsage

from durable_kernel import FOR_RUN_SEES_RUN_INSTRUMENTATION, run_may_be_instrumented


@pytest.fixture(autouse=True)
def no_global_instrumentation() -> Iterator[None]:
    Agent.instrument_all(False)
    yield
    Agent.instrument_all(False)


def test_an_agent_with_no_instrumentation_is_not_instrumented() -> None:
    agent = Agent(TestModel(), name='plain')
    assert not run_may_be_instrumented(agent)
    assert not run_may_be_instrumented(agent, [])


def test_the_agents_instrument_setting_and_the_global_default_count() -> None:
    agent = Agent(TestModel(), name='a')
    agent.instrument = True
    assert run_may_be_instrumented(agent)
    agent.instrument = InstrumentationSettings()
    assert run_may_be_instrumented(agent)

    Agent.instrument_all()
    plain = Agent(TestModel(), name='b')
    assert run_may_be_instrumented(plain)
    # The agent's own `False` wins over the global default, as in pydantic-ai.
    agent.instrument = False
    assert not run_may_be_instrumented(agent)


def test_an_instrumented_model_counts() -> None:
    agent = Agent(InstrumentedModel(TestModel()), name='a')
    assert run_may_be_instrumented(agent)


def test_an_instrumentation_capability_of_the_agent_an_override_or_the_run_counts() -> None:
    assert run_may_be_instrumented(Agent(TestModel(), name='a', capabilities=[Instrumentation()]))

    agent = Agent(TestModel(), name='b')
    assert run_may_be_instrumented(agent, [Instrumentation()])
    # `override(capabilities=...)` came with a 2.x release (before it, only a run's `spec=` overrides them).
    if 'capabilities' in inspect.signature(Agent.override).parameters:
        override: Any = agent.override
        with override(capabilities=[Instrumentation()]):
            assert run_may_be_instrumented(agent)
    assert not run_may_be_instrumented(agent)


def test_what_is_known_only_in_the_run_counts() -> None:
    def capability_function(ctx: Any) -> AbstractCapability[Any]:  # pragma: no cover - never called here
        return Instrumentation()

    agent = Agent(TestModel(), name='a')
    assert run_may_be_instrumented(agent, [capability_function])
    assert run_may_be_instrumented(Agent(TestModel(), name='b', capabilities=[capability_function]))
    assert run_may_be_instrumented(agent, run_spec={'capabilities': []})


def test_a_for_run_context_tells_where_pydantic_ai_shows_it_the_runs_instrumentation() -> None:
    agent = Agent(TestModel(), name='a')
    ctx: RunContext[None] = RunContext(deps=None, model=TestModel(), usage=RunUsage(), tracer=NoOpTracer())
    # Where `for_run` is not shown the run's own `Instrumentation`, the run cannot be told uninstrumented.
    assert run_may_be_instrumented(agent, ctx=ctx) is not FOR_RUN_SEES_RUN_INSTRUMENTATION
    traced: RunContext[None] = RunContext(deps=None, model=TestModel(), usage=RunUsage(), tracer=ProxyTracer('test'))
    assert run_may_be_instrumented(agent, ctx=traced)
