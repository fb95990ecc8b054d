"""Kill the worker process with SIGKILL at seeded random points; a new worker must finish the run.

The run must end with the output of an uninterrupted run, and no model request or tool call that the engine had
recorded before the kill may run again: counted through the side channel at fixed event points (see
`harness/crash_agent.py`), and from the engine's own records for kills at random moments, several runs per worker,
sometimes a second kill during recovery (see `harness/kill_run.py`; `just crash --kills 100` is the long version).
"""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
from harness._params import engine_params
from harness.crash_agent import EXPECTED_OUTPUT, PHASES, Call
from harness.crash_run import TOTAL_EVENTS, CrashEngine, CrashResult, crash_engine, crash_many, kill_points
from harness.engine_records import UnitRecord, label_of_output, prefect_units
from harness.kill_engines import kill_engine
from harness.kill_run import KillEngine, KillMoment, KillPlan, KillRound, Spans, analyse, kill_rounds

pytestmark = pytest.mark.anyio

SEED = 20261125
RUNS_PER_ENGINE = 10
RANDOM_KILLS_PER_ENGINE = 5

ENGINE_VARIANTS = [
    *engine_params(),
    pytest.param('dbos-postgres', id='dbos-postgres', marks=[pytest.mark.xdist_group('dbos'), pytest.mark.postgres]),
]


def _crash_runner(variant: str, request: pytest.FixtureRequest) -> AbstractAsyncContextManager[CrashEngine]:
    if variant == 'temporal':
        return crash_engine('temporal', temporal_client=request.getfixturevalue('temporal_harness').client)
    if variant == 'prefect':
        return crash_engine('prefect', prefect_home=request.getfixturevalue('prefect_home'))
    if variant == 'dbos-postgres':
        from durable_dbos.testing import postgres_url

        server_url: str = request.getfixturevalue('postgres_server_url')

        def fresh_database(workdir: Path) -> str:
            return postgres_url(server_url, f'crash_{uuid.uuid4().hex[:12]}')

        return crash_engine('dbos', dbos_database_url=fresh_database)
    return crash_engine('dbos')


def _kill_runner(variant: str, request: pytest.FixtureRequest) -> AbstractAsyncContextManager[KillEngine]:
    if variant == 'temporal':
        return kill_engine('temporal', temporal_client=request.getfixturevalue('temporal_harness').client)
    if variant == 'prefect':
        return kill_engine('prefect', prefect_home=request.getfixturevalue('prefect_home'))
    if variant == 'dbos-postgres':
        from durable_dbos.testing import postgres_url

        server_url: str = request.getfixturevalue('postgres_server_url')
        return kill_engine(
            'dbos', dbos_database_url=lambda _: postgres_url(server_url, f'kill_{uuid.uuid4().hex[:12]}')
        )
    return kill_engine('dbos')


@pytest.fixture
def kill_runner(engine: str, request: pytest.FixtureRequest) -> AbstractAsyncContextManager[KillEngine]:
    """Resolves the engine's session fixtures here, synchronously (as `crash_runner`)."""
    return _kill_runner(engine, request)


@pytest.fixture
def crash_runner(engine: str, request: pytest.FixtureRequest) -> AbstractAsyncContextManager[CrashEngine]:
    """Resolves the engine's session fixtures here, synchronously: an async fixture cannot request them."""
    return _crash_runner(engine, request)


def _describe(results: list[CrashResult]) -> str:
    return '\n'.join(
        f'kill at {r.kill_at}: killed={r.killed} output={r.output!r} repeated={r.repeated} error={r.error}'
        for r in results
    )


@pytest.mark.parametrize('engine', ENGINE_VARIANTS)
async def test_killed_worker_resumes_without_repeating_recorded_calls(
    crash_runner: AbstractAsyncContextManager[CrashEngine], tmp_path: Path, engine: str
) -> None:
    points = kill_points(SEED, RUNS_PER_ENGINE)
    assert len(set(points)) == RUNS_PER_ENGINE
    assert max(points) <= TOTAL_EVENTS
    async with crash_runner as runner:
        results = await crash_many(runner, points, tmp_path)
    failed = [result for result in results if not result.ok]
    assert not failed, _describe(failed)
    # The kills landed after recorded work, so the check above had something to check.
    assert any(result.committed for result in results)


@pytest.mark.parametrize('engine', ENGINE_VARIANTS)
async def test_random_kills_re_execute_no_unit_the_engine_recorded(
    kill_runner: AbstractAsyncContextManager[KillEngine], tmp_path: Path
) -> None:
    async with kill_runner as runner:
        rounds, _ = await kill_rounds(runner, tmp_path, seed=SEED, kills=RANDOM_KILLS_PER_ENGINE, progress=print)
    failed = [kill_round for kill_round in rounds if not kill_round.ok]
    assert not failed, '\n'.join(kill_round.describe() for kill_round in failed)
    assert sum(kill_round.kills for kill_round in rounds) >= RANDOM_KILLS_PER_ENGINE
    # Some kills came after the engine had recorded units, so the check above had something to check.
    assert sum(kill_round.recorded_before_kill for kill_round in rounds) > 0


def _round(calls: list[Call], records: list[UnitRecord]) -> KillRound:
    plan = KillPlan(0, KillMoment(0.5, from_spawn=False), None)
    kill_round = KillRound('dbos', plan, Spans(1.0, 1.0), runs=['r'], kill_times=[100.0])
    kill_round.outputs = {'r': EXPECTED_OUTPUT}
    kill_round.records = records
    return analyse(kill_round, calls)


def _starts(*labels_and_times: tuple[str, float]) -> list[Call]:
    return [Call(1, 'start', label, 'r', moment) for label, moment in labels_and_times]


def test_analysis_counts_a_start_after_the_record_as_re_execution() -> None:
    """The table's zero means something: a unit started after its record is caught, an earlier retry is not."""
    records = [UnitRecord('r', label, completed_at=5.0 + index) for index, label in enumerate(PHASES)]
    clean = _round(_starts(*((label, 4.0 + index) for index, label in enumerate(PHASES))), records)
    assert clean.ok
    assert not clean.repeated
    assert clean.recorded_before_kill == len(PHASES)
    # call-b ran in the killed worker (started at 4.0, not recorded before it died) and again after recovery.
    in_flight = _round(
        [*_starts(('call-b', 4.0)), *_starts(*((label, 4.5 + index) for index, label in enumerate(PHASES)))], records
    )
    assert in_flight.ok
    assert in_flight.repeated == ['r/call-b']
    # model-2 (recorded at 8.0) started again at 20.0: a re-execution.
    again = _round(
        [*_starts(*((label, 4.0 + index) for index, label in enumerate(PHASES))), *_starts(('model-2', 20.0))], records
    )
    assert not again.ok
    assert again.re_executed == ['r/model-2']
    # Records naming only five of the six calls: the reading is wrong, which fails the round too.
    assert not _round(_starts(), records[:-1]).ok


def test_recorded_outputs_name_their_calls() -> None:
    """Model responses and tool returns as the engines store them (a repr, or JSON) name the call they were."""
    assert (
        label_of_output(
            "ModelResponse(parts=[ToolCallPart(tool_call_id='call-a'), ToolCallPart(tool_call_id='call-b')])"
        )
        == 'model-1'
    )
    assert label_of_output('{"parts": [{"tool_name": "crunch", "tool_call_id": "call-c"}]}') == 'model-2'
    assert label_of_output("TextPart(content='done after 3 requests, tool results call-a=14')") == 'model-3'
    assert label_of_output('{"result": 21, "kind": "tool_return"}') == 'call-b'
    assert label_of_output("ToolReturned(result=35, kind='tool_return')") == 'call-c'
    assert label_of_output('{"result": 99}') is None


def test_a_prefect_unit_only_cached_counts_once() -> None:
    """A task killed after persisting its result, before its `Completed` state, is recorded by its first cache hit."""
    executed = [UnitRecord('r', 'model-1', 5.0), UnitRecord('r', 'call-a', 6.0)]
    cached = [UnitRecord('r', 'model-1', 9.0), UnitRecord('r', 'model-3', 12.0), UnitRecord('r', 'model-3', 11.0)]
    units = prefect_units(executed, cached)
    assert sorted((unit.label, unit.completed_at) for unit in units) == [
        ('call-a', 6.0),
        ('model-1', 5.0),
        ('model-3', 11.0),
    ]


def test_a_prefect_record_lost_with_a_killed_worker_is_counted_apart() -> None:
    """A unit that finished in a worker a SIGKILL ended may have no record on Prefect (its state event was not sent);
    anywhere else, and on other engines, a missing record still fails the round."""
    records = [UnitRecord('r', label, completed_at=5.0 + index) for index, label in enumerate(PHASES)][:-1]
    calls = [
        *(Call(1, kind, label, 'r', 4.0 + index) for index, label in enumerate(PHASES) for kind in ('start', 'done')),
    ]
    plan = KillPlan(0, KillMoment(0.5, from_spawn=False), None)

    def analysed(engine: str, killed_pids: list[int]) -> KillRound:
        kill_round = KillRound(engine, plan, Spans(1.0, 1.0), runs=['r'], killed_pids=killed_pids)
        kill_round.outputs = {'r': EXPECTED_OUTPUT}
        kill_round.records = records
        return analyse(kill_round, calls)

    lost = analysed('prefect', [1])
    assert lost.ok
    assert lost.records_lost == ['r/model-3']
    assert not analysed('prefect', []).ok
    assert not analysed('dbos', [1]).ok
