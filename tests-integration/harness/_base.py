"""The contract every engine harness fulfils, and the plain (non-durable) run it is compared with."""

from __future__ import annotations

from typing import Any, Protocol, cast

from ._outcome import RunOutcome, outcome_from_result
from .scenarios import RunInput, Scenario, handler_for

__all__ = ('EngineHarness', 'read_live', 'run_plain')


class EngineHarness(Protocol):
    """Runs a scenario's agent durably on one engine.

    A harness wraps every scenario agent in its engine's durable agent when it starts (DBOS needs them before
    `DBOS.launch()`, a Temporal worker registers their activities), then runs them on the real engine.
    """

    engine: str
    """`temporal`, `dbos` or `prefect`."""

    async def run(self, scenario: Scenario, run_input: RunInput) -> RunOutcome:
        """Run the durable wrapper of `scenario.agent` with `run_input` on the engine and return its outcome."""
        ...

    async def stream_out(self, scenario: Scenario, run_input: RunInput) -> tuple[RunOutcome, list[Any]]:
        """Run the stream-out wrapper of `scenario.agent` and read its events live, from outside the run.

        Returns the run's outcome and what the consumer (the engine's `stream_agent_events`) received before the
        terminal `AgentRunResultEvent`, whose output must be the run's.
        """
        ...

    async def storage_holds(self, text: str) -> bool:
        """Whether `text` is anywhere in what the engine stored (history, system database, result storage)."""
        ...


async def run_plain(scenario: Scenario, run_input: RunInput) -> RunOutcome:
    """Run the scenario's plain agent in this process (the reference every durable run is compared with)."""
    handler = handler_for(scenario)  # the durable wrappers get the same handler at construction
    result = await scenario.agent.run(
        run_input.prompt, event_stream_handler=handler, **run_input.run_kwargs(scenario.deps_resolver)
    )
    return outcome_from_result(result)


async def read_live(events: Any) -> tuple[list[Any], Any]:
    """Everything a `stream_agent_events` consumer receives: the events before the terminal one, and its output."""
    from pydantic_ai.run import AgentRunResult, AgentRunResultEvent

    received: list[Any] = []
    async with events:
        async for event in events:
            received.append(event)
    assert received, 'the consumer received nothing'
    terminal = received[-1]
    assert isinstance(terminal, AgentRunResultEvent), f'the stream ended without a result: {terminal!r}'
    result: AgentRunResult[Any] = cast('AgentRunResultEvent[Any]', terminal).result
    return received[:-1], result.output
