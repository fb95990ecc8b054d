from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic_ai.agent import AbstractAgent

__all__ = ('PydanticAIWorkflow',)


class PydanticAIWorkflow:
    """Base class for Temporal workflows that run pydantic-ai agents.

    List the workflow's agents in `__pydantic_ai_agents__` and a worker (or client) configured with
    [`PydanticAIPlugin`][durable_temporal.PydanticAIPlugin] registers their activities, so the worker needs no
    `activities=` for them:

    ```python
    @workflow.defn
    class SupportWorkflow(PydanticAIWorkflow):
        __pydantic_ai_agents__ = [support_agent]

        @workflow.run
        async def run(self, prompt: str) -> str:
            return (await support_agent.run(prompt)).output
    ```

    An agent may be a [`TemporalAgent`][durable_temporal.TemporalAgent] or an agent with the
    [`TemporalDurability`][durable_temporal.TemporalDurability] capability. An agent may be listed by several workflows and also registered with
    [`AgentPlugin`][durable_temporal.AgentPlugin]: its activities are registered once.
    """

    __pydantic_ai_agents__: ClassVar[Sequence[AbstractAgent[Any, Any]]] = ()
