"""What the scenarios are made of: the deps, the inputs of one run (they cross the engine boundary), a scenario."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, UserContent
from pydantic_ai.tools import DeferredToolResults
from pydantic_ai.usage import UsageLimits

from durable_kernel import DepsResolver

__all__ = ('Deps', 'RunInput', 'Scenario')


class Deps(BaseModel):
    """Dependencies every scenario agent takes (a pydantic model, so it crosses every engine's boundary)."""

    user: str = 'ada'
    multiplier: int = 3


@dataclass
class RunInput:
    """One call of `agent.run(...)`: the inputs that cross the engine boundary."""

    prompt: str | list[UserContent] | None = None
    deps: Deps = field(default_factory=Deps)
    message_history: list[ModelMessage] | None = None
    deferred_tool_results: DeferredToolResults | None = None
    model_settings: dict[str, Any] | None = None
    usage_limits: UsageLimits | None = None

    def run_kwargs(self, deps_resolver: DepsResolver[Any, Deps] | None = None) -> dict[str, Any]:
        """The keyword arguments of `agent.run` (everything but the prompt).

        With `deps_resolver`, `deps` is a reference and the run is given the live deps it resolves to (as users do:
        they hold a reference, the engine stores it, the agent's code sees the live deps).
        """
        return {
            'deps': self.deps if deps_resolver is None else deps_resolver.resolve(self.deps),
            'message_history': self.message_history,
            'deferred_tool_results': self.deferred_tool_results,
            'model_settings': self.model_settings,
            'usage_limits': self.usage_limits,
        }


@dataclass(frozen=True)
class Scenario:
    """An agent and the runs to make with it; `follow_up` builds a second run from the first one's messages."""

    name: str
    agent: Agent[Deps, Any]
    first: RunInput
    follow_up: Callable[[list[ModelMessage]], RunInput] | None = None
    records_events: bool = False
    deps_resolver: DepsResolver[Any, Any] | None = None
    """Given to the durable wrappers (`deps_resolver=`); `RunInput.deps` are then the reference."""
