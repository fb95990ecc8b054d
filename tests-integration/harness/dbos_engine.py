"""The DBOS harness: every scenario agent wrapped in a `DBOSAgent` before `DBOS.launch()`, runs as DBOS workflows."""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from durable_dbos import DBOSAgent
from durable_dbos.testing import dbos_session

from ._outcome import RunOutcome, outcome_from_result
from ._storage import sqlite_holds
from .scenarios import ALL_SCENARIOS, Deps, RunInput, Scenario, handler_for

__all__ = ('DBOSHarness',)


class DBOSHarness:
    """Runs scenarios on DBOS in this process (SQLite or PostgreSQL system database)."""

    engine = 'dbos'

    def __init__(self, agents: dict[str, DBOSAgent[Deps, Any]], system_database_url: str) -> None:
        self._agents = agents
        self._system_database_url = system_database_url

    @classmethod
    @contextmanager
    def start(cls, system_database_url: str) -> Generator[DBOSHarness]:
        """Configure DBOS, wrap every scenario agent, launch; destroy DBOS on exit."""
        with dbos_session(system_database_url, app_name='durable-conformance') as launch:
            agents = {
                name: DBOSAgent(
                    scenario.agent, event_stream_handler=handler_for(scenario), deps_resolver=scenario.deps_resolver
                )
                for name, scenario in ALL_SCENARIOS.items()
            }
            launch()
            yield cls(agents, system_database_url)

    async def run(self, scenario: Scenario, run_input: RunInput) -> RunOutcome:
        """Run the scenario's `DBOSAgent` (its `run` starts the `{name}.run` workflow)."""
        result = await self._agents[scenario.name].run(run_input.prompt, **run_input.run_kwargs(scenario.deps_resolver))
        return outcome_from_result(result)

    async def storage_holds(self, text: str) -> bool:
        """Whether `text` is in the SQLite system database (its files, or any cell, base64 cells decoded)."""
        assert self._system_database_url.startswith('sqlite:///'), 'the conformance suite runs DBOS on SQLite'
        return sqlite_holds(Path(self._system_database_url.removeprefix('sqlite:///')), text.encode())
