"""The scenarios on the reference integration (`pydantic_ai.durable_exec.temporal`), to record and replay histories.

Only compatibility tests and the recorder may import the reference. `ours_app` is the same with `durable_temporal`.
"""

from __future__ import annotations

import warnings
from typing import Any

from pydantic_ai.durable_exec.temporal import (
    PydanticAIPlugin,
    TemporalAgent,
)
from temporalio import workflow

from histories.scenarios import (
    PROMPT,
    SWAP_WORKFLOW_NAME,
    WORKFLOW_NAME,
    build_agents,
    deps_for,
    describe,
    run_scenario,
    wrapper_options,
)

__all__ = ('AGENTS', 'CompatScenarioWorkflow', 'CompatSwapWorkflow', 'PydanticAIPlugin')

with warnings.catch_warnings():
    # pydantic-ai 2.x deprecates its `TemporalAgent` (for its `TemporalDurability` capability) but keeps it, and
    # workflows it started must still continue on ours and back: the reference is the subject here, not our code.
    warnings.filterwarnings('ignore', message='`TemporalAgent` is deprecated', category=UserWarning)
    AGENTS: dict[str, TemporalAgent[Any, Any]] = {
        scenario: TemporalAgent(agent, **wrapper_options(scenario)) for scenario, agent in build_agents().items()
    }


@workflow.defn(name=WORKFLOW_NAME)
class CompatScenarioWorkflow:
    """Runs one scenario's agent once."""

    __pydantic_ai_agents__ = list(AGENTS.values())

    @workflow.run
    async def run(self, scenario: str) -> str:
        return await run_scenario(AGENTS[scenario], scenario)


@workflow.defn(name=SWAP_WORKFLOW_NAME)
class CompatSwapWorkflow:
    """Runs the `tools` agent, waits for `resume`, then continues the conversation: a worker swap goes in between."""

    # No `__pydantic_ai_agents__`: `CompatScenarioWorkflow` lists the agent already, and the reference plugin fails
    # on an agent listed by two workflows (its defect 9).

    def __init__(self) -> None:
        self.first_output: str | None = None
        self.resumed = False

    @workflow.run
    async def run(self) -> list[str]:
        agent = AGENTS['tools']
        first = await agent.run(PROMPT, deps=deps_for('tools'))
        self.first_output = describe(first.output)
        await workflow.wait_condition(lambda: self.resumed)
        second = await agent.run('And tomorrow?', deps=deps_for('tools'), message_history=first.all_messages())
        return [self.first_output, describe(second.output)]

    @workflow.signal
    def resume(self) -> None:
        """Let the second run start."""
        self.resumed = True

    @workflow.query
    def first(self) -> str | None:
        """The first run's output, once it finished."""
        return self.first_output
