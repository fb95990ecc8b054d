"""The agent and workflows of `test_compat_versioning.py`, in a module pytest does not rewrite.

The workflow sandbox imports a workflow's module again for every workflow instance; a test module goes through
pytest's assertion rewriting each time, and CPython 3.11 fails (`SystemError: AST constructor recursion depth
mismatch`) when that parse runs in a workflow thread while another thread parses too.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from pydantic_ai import Agent, FunctionToolset, RunContext
from pydantic_ai.models.test import TestModel
from pydantic_ai.toolsets import AbstractToolset
from temporalio import workflow

from durable_temporal import TemporalAgent
from histories.scenarios import handle_events

__all__ = ('OurWorkflow', 'ReferenceWorkflow', 'TwoRunsWorkflow', 'our_agent', 'reference_agent')

WORKFLOW_NAME = 'VersioningWorkflow'
TWO_RUNS_WORKFLOW_NAME = 'VersioningTwoRunsWorkflow'


async def rainy(city: str) -> str:
    """The weather in `city`."""
    return f'rainy in {city}'


async def clock() -> str:
    """The time."""
    return '12:00'


def _agent() -> Agent[None, str]:
    """Every patched behaviour at once: parallel tool calls, an event handler, a `per_run_step=False` toolset."""
    agent = Agent(TestModel(), name='versioning_all', tools=[rainy, clock])

    @agent.toolset(id='once', per_run_step=False)
    def once(ctx: RunContext[None]) -> AbstractToolset[None]:
        async def lookup(key: str) -> str:
            return f'value of {key}'

        return FunctionToolset([lookup])

    return agent


def _reference_agent() -> Any:
    """The agent on the reference `TemporalAgent`; `None` where the reference does not import (pydantic-ai 2.33 with
    temporalio >= 1.34), whose tests then skip while those of ours run."""
    try:
        reference: Any = importlib.import_module('pydantic_ai.durable_exec.temporal')
    except Exception:
        return None
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='`TemporalAgent` is deprecated', category=UserWarning)
        return reference.TemporalAgent(_agent(), event_stream_handler=handle_events)


our_agent = TemporalAgent(_agent(), event_stream_handler=handle_events)
reference_agent: Any = _reference_agent()


@workflow.defn(name=WORKFLOW_NAME)
class OurWorkflow:
    __pydantic_ai_agents__ = [our_agent]

    @workflow.run
    async def run(self, prompt: str) -> str:
        return (await our_agent.run(prompt)).output


@workflow.defn(name=WORKFLOW_NAME)
class ReferenceWorkflow:
    __pydantic_ai_agents__ = [] if reference_agent is None else [reference_agent]

    @workflow.run
    async def run(self, prompt: str) -> str:
        return (await reference_agent.run(prompt)).output


@workflow.defn(name=TWO_RUNS_WORKFLOW_NAME)
class TwoRunsWorkflow:
    """Runs the agent, waits for `resume`, runs it again: a worker with other switches takes over in between."""

    __pydantic_ai_agents__ = [our_agent]

    def __init__(self) -> None:
        self.first_done = False
        self.resumed = False

    @workflow.run
    async def run(self) -> list[str]:
        first = await our_agent.run('first')
        self.first_done = True
        await workflow.wait_condition(lambda: self.resumed)
        second = await our_agent.run('second')
        return [first.output, second.output]

    @workflow.signal
    def resume(self) -> None:
        self.resumed = True

    @workflow.query
    def first_finished(self) -> bool:
        return self.first_done
