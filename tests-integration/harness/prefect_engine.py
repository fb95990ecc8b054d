"""The Prefect harness: every scenario agent wrapped in a `PrefectAgent`, and its twin with `PrefectDurability` run
inside a flow of the harness; runs are flows on a private server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from durable_prefect import PrefectAgent, PrefectDurability

from ._base import read_live
from ._outcome import RunOutcome, outcome_from_result
from ._storage import files_hold, sqlite_holds
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

__all__ = ('PrefectHarness',)


class PrefectHarness:
    """Runs scenarios as Prefect flows (the server is started by the caller, e.g. `prefect_test_server`)."""

    engine = 'prefect'

    def __init__(self) -> None:
        self._agents: dict[str, PrefectAgent[Deps, Any]] = {
            name: PrefectAgent(
                scenario.agent, event_stream_handler=handler_for(scenario), deps_resolver=scenario.deps_resolver
            )
            for name, scenario in ALL_SCENARIOS.items()
        }
        self._agents |= {
            name: PrefectAgent(
                scenario.agent, event_stream_handler=handler_for(scenario), event_stream_topic=STREAM_OUT_TOPIC
            )
            for name, scenario in STREAM_OUT_SCENARIOS.items()
        }
        self._capability_flows = {name: _capability_flow(scenario) for name, scenario in ALL_SCENARIOS.items()}

    async def run(self, scenario: Scenario, run_input: RunInput, form: Form = 'wrapper') -> RunOutcome:
        """Run the scenario's `PrefectAgent` (its `run` starts the `{name} Run` flow), or the harness's flow that
        runs the agent's twin with `PrefectDurability`."""
        if form == 'capability':
            return await self._capability_flows[scenario.name](run_input)
        result = await self._agents[scenario.name].run(run_input.prompt, **run_input.run_kwargs(scenario.deps_resolver))
        return outcome_from_result(result)

    async def stream_out(
        self, scenario: Scenario, run_input: RunInput, reconnect_after: int | None = None
    ) -> tuple[RunOutcome, list[Any]]:
        """Run the agent in a flow of ours (its events go to that flow run's artifacts) and read them meanwhile."""
        import asyncio
        from datetime import timedelta

        from prefect import flow
        from prefect.context import FlowRunContext

        agent = self._agents[scenario.name]
        flow_run_ids: asyncio.Queue[Any] = asyncio.Queue()

        @flow(name=f'stream out {scenario.name}')
        async def caller() -> Any:
            context = FlowRunContext.get()
            assert context is not None
            assert context.flow_run is not None
            flow_run_ids.put_nowait(context.flow_run.id)
            return await agent.run(run_input.prompt, **run_input.run_kwargs())

        run = asyncio.create_task(caller())
        flow_run_id = await asyncio.wait_for(flow_run_ids.get(), 120)
        received, output = await read_live(
            lambda offset: agent.stream_agent_events(
                flow_run_id, from_offset=offset, polling_interval=timedelta(milliseconds=50)
            ),
            reconnect_after,
        )
        outcome = outcome_from_result(await run)
        assert output == outcome.output
        return outcome, received

    async def storage_holds(self, text: str) -> bool:
        """Whether `text` is in Prefect's database (files and cells) or any file under `PREFECT_HOME` (results)."""
        from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL, PREFECT_HOME

        needle = text.encode()
        if files_hold(PREFECT_HOME.value().rglob('*'), needle):
            return True
        return sqlite_holds(Path(PREFECT_API_DATABASE_CONNECTION_URL.value().split(':///', 1)[-1]), needle)


def _capability_flow(scenario: Scenario) -> Callable[[RunInput], Awaitable[RunOutcome]]:
    """A flow that runs the twin of `scenario.agent` with `PrefectDurability`, as a user of that form writes it.

    The flow's parameter is `run_input` (with a resolver, the deps' reference); the flow resolves the deps itself.
    """
    from prefect import flow

    agent = capability_twin(scenario.agent, PrefectDurability[Deps](event_stream_handler=handler_for(scenario)))

    # The parameter is passed as is: Prefect would otherwise validate (and copy) it against the annotation.
    @flow(name=f'conformance {scenario.name} capability', validate_parameters=False)
    async def run(run_input: RunInput) -> RunOutcome:
        result = await agent.run(run_input.prompt, **run_input.run_kwargs(scenario.deps_resolver))
        return outcome_from_result(result)

    return run
