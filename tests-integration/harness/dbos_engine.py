"""The DBOS harness: every scenario agent wrapped in a `DBOSAgent`, and its twin with `DBOSDurability` run inside a
DBOS workflow of the harness, all registered before `DBOS.launch()`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from durable_dbos import DBOSAgent, DBOSDurability
from durable_dbos.testing import dbos_session

from ._base import read_live
from ._outcome import RunOutcome, outcome_from_result
from ._storage import sqlite_holds
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

__all__ = ('DBOSHarness',)


class DBOSHarness:
    """Runs scenarios on DBOS in this process (SQLite or PostgreSQL system database)."""

    engine = 'dbos'

    def __init__(
        self,
        agents: dict[str, DBOSAgent[Deps, Any]],
        capability_workflows: dict[str, Callable[[RunInput], Awaitable[RunOutcome]]],
        system_database_url: str,
    ) -> None:
        self._agents = agents
        self._capability_workflows = capability_workflows
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
            agents |= {
                name: DBOSAgent(
                    scenario.agent, event_stream_handler=handler_for(scenario), event_stream_topic=STREAM_OUT_TOPIC
                )
                for name, scenario in STREAM_OUT_SCENARIOS.items()
            }
            capability_workflows = {name: _capability_workflow(scenario) for name, scenario in ALL_SCENARIOS.items()}
            launch()
            yield cls(agents, capability_workflows, system_database_url)

    async def run(self, scenario: Scenario, run_input: RunInput, form: Form = 'wrapper') -> RunOutcome:
        """Run the scenario's `DBOSAgent` (its `run` starts the `{name}.run` workflow), or the harness's workflow
        that runs the agent's twin with `DBOSDurability`."""
        if form == 'capability':
            return await self._capability_workflows[scenario.name](run_input)
        result = await self._agents[scenario.name].run(run_input.prompt, **run_input.run_kwargs(scenario.deps_resolver))
        return outcome_from_result(result)

    async def stream_out(
        self, scenario: Scenario, run_input: RunInput, reconnect_after: int | None = None
    ) -> tuple[RunOutcome, list[Any]]:
        """Start the `{name}.run` workflow under a known id and read its stream (the system database) meanwhile."""
        import asyncio
        import uuid

        from dbos import DBOS, SetWorkflowID

        agent = self._agents[scenario.name]
        workflow_id = f'stream-out-{uuid.uuid4()}'
        with SetWorkflowID(workflow_id):
            run = asyncio.create_task(agent.run(run_input.prompt, **run_input.run_kwargs()))
        while await DBOS.get_workflow_status_async(workflow_id) is None:  # the consumer reads an existing workflow
            await asyncio.sleep(0.01)
        received, output = await read_live(
            lambda offset: agent.stream_agent_events(
                workflow_id, from_offset=offset, polling_interval=timedelta(milliseconds=20)
            ),
            reconnect_after,
        )
        outcome = outcome_from_result(await run)
        assert output == outcome.output
        return outcome, received

    async def storage_holds(self, text: str) -> bool:
        """Whether `text` is in the SQLite system database (its files, or any cell, base64 cells decoded)."""
        assert self._system_database_url.startswith('sqlite:///'), 'the conformance suite runs DBOS on SQLite'
        return sqlite_holds(Path(self._system_database_url.removeprefix('sqlite:///')), text.encode())


def _capability_workflow(scenario: Scenario) -> Callable[[RunInput], Awaitable[RunOutcome]]:
    """A DBOS workflow that runs the twin of `scenario.agent` with `DBOSDurability`, as a user of that form writes it.

    The workflow records `run_input` (with a resolver, the deps' reference) and resolves the deps itself.
    """
    from dbos import DBOS

    agent = capability_twin(scenario.agent, DBOSDurability[Deps](event_stream_handler=handler_for(scenario)))
    DBOSDurability.from_agent(agent)  # bound before launch (pydantic-ai 1.107 binds no capability at `Agent(...)`)

    @DBOS.workflow(name=f'conformance_{scenario.name}_capability')
    async def run(run_input: RunInput) -> RunOutcome:
        result = await agent.run(run_input.prompt, **run_input.run_kwargs(scenario.deps_resolver))
        return outcome_from_result(result)

    return run
