"""The Prefect harness: every scenario agent wrapped in a `PrefectAgent`; runs are flows on a private server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from durable_prefect import PrefectAgent

from ._outcome import RunOutcome, outcome_from_result
from ._storage import files_hold, sqlite_holds
from .scenarios import ALL_SCENARIOS, Deps, RunInput, Scenario, handler_for

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

    async def run(self, scenario: Scenario, run_input: RunInput) -> RunOutcome:
        """Run the scenario's `PrefectAgent` (its `run` starts the `{name} Run` flow)."""
        result = await self._agents[scenario.name].run(run_input.prompt, **run_input.run_kwargs(scenario.deps_resolver))
        return outcome_from_result(result)

    async def storage_holds(self, text: str) -> bool:
        """Whether `text` is in Prefect's database (files and cells) or any file under `PREFECT_HOME` (results)."""
        from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL, PREFECT_HOME

        needle = text.encode()
        if files_hold(PREFECT_HOME.value().rglob('*'), needle):
            return True
        return sqlite_holds(Path(PREFECT_API_DATABASE_CONNECTION_URL.value().split(':///', 1)[-1]), needle)
