"""The contract every engine harness fulfils, and the plain (non-durable) run it is compared with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, cast

from ._outcome import RunOutcome, outcome_from_result
from .scenarios import Form, RunInput, Scenario, handler_for

__all__ = ('EngineHarness', 'read_live', 'run_plain')


class EngineHarness(Protocol):
    """Runs a scenario's agent durably on one engine.

    A harness wraps every scenario agent in its engine's durable agent when it starts (DBOS needs them before
    `DBOS.launch()`, a Temporal worker registers their activities), then runs them on the real engine.
    """

    engine: str
    """`temporal`, `dbos` or `prefect`."""

    async def run(self, scenario: Scenario, run_input: RunInput, form: Form = 'wrapper') -> RunOutcome:
        """Run `scenario.agent` durably with `run_input` on the engine and return its outcome.

        `form='wrapper'` runs the engine's wrapper (`TemporalAgent`, `DBOSAgent`, `PrefectAgent`) as the wrapper's own
        entry point starts it; `form='capability'` runs the agent's twin with the engine's capability attached
        (`TemporalDurability`, ...) inside a workflow or flow of the harness, as a user of that form writes it.
        """
        ...

    async def stream_out(
        self, scenario: Scenario, run_input: RunInput, reconnect_after: int | None = None
    ) -> tuple[RunOutcome, list[Any]]:
        """Run the stream-out wrapper of `scenario.agent` and read its events live, from outside the run.

        Returns the run's outcome and what the consumer (the engine's `stream_agent_events`) received before the
        terminal `AgentRunResultEvent`, whose output must be the run's. With `reconnect_after`, the consumer stops
        after that many events and a new one continues from the last offset (`read_live`).
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


async def read_live(open_events: Callable[[int], Any], reconnect_after: int | None = None) -> tuple[list[Any], Any]:
    """Everything a `stream_agent_events` consumer receives: the events before the terminal one, and its output.

    `open_events(from_offset)` opens the engine's consumer. With `reconnect_after`, the consumer stops after that many
    events (as a page that reloads) and a new one continues from `offset + 1`.
    """
    from pydantic_ai.run import AgentRunResult, AgentRunResultEvent

    received: list[Any] = []
    from_offset = 0
    while True:
        events = open_events(from_offset)
        stopped = False
        async with events:
            async for event in events:
                received.append(event)
                if reconnect_after is not None and len(received) == reconnect_after:
                    stopped = True
                    break
        if not stopped:
            break
        from_offset = events.offset + 1
        reconnect_after = None
    assert received, 'the consumer received nothing'
    terminal = received[-1]
    assert isinstance(terminal, AgentRunResultEvent), f'the stream ended without a result: {terminal!r}'
    result: AgentRunResult[Any] = cast('AgentRunResultEvent[Any]', terminal).result
    return received[:-1], result.output
