"""What each engine recorded of the crash agent's durable units, read from the engine's own store.

The random-kill suite (`harness/kill_run.py`) does not infer from the side channel which calls were recorded: it asks
the engine, after the run, which units it holds as completed and when, then looks in the side channel for a call of
that unit that *started* after that moment (a re-execution of recorded work).

- DBOS: the rows of `operation_outputs` for the workflow (`completed_at_epoch_ms`, the pickled output).
- Temporal: the workflow history (`ActivityTaskCompleted` events, their time and result payload; the attempt number
  of `ActivityTaskStarted`).
- Prefect: the task runs of the agent's subflow and their state history (a `Completed` state, not a `Cached` one,
  is an execution; its persisted result names the unit; see `prefect_units` for a unit only ever `Cached`).

Which call a unit was is read from its recorded output: the first model response calls tools `call-a` and `call-b`,
the second `call-c`, the third is the final text; the tools return 14, 21 and 35.
"""

from __future__ import annotations

import base64
import json
import pickle
import re
from dataclasses import dataclass
from typing import Any

__all__ = ('UnitRecord', 'dbos_records', 'label_of_output', 'prefect_records', 'prefect_units', 'temporal_records')

TOOL_RESULTS = {14: 'call-a', 21: 'call-b', 35: 'call-c'}
_TOOL_CALL_ID = re.compile(r"""tool_call_id['"]?\s*[:=]\s*['"](call-[abc])['"]""")
_RESULT = re.compile(r"""\bresult['"]?\s*[:=]\s*(\d+)\b""")


@dataclass(frozen=True)
class UnitRecord:
    """One durable unit the engine holds as completed."""

    run: str
    """The run's tag (see `crash_prompt`)."""
    label: str | None
    """The call it recorded (`model-1` ... `call-c`), None if its output matches none."""
    completed_at: float
    """Wall-clock time of the record (`time.time()` scale; the engines run on this machine)."""
    attempts: int = 1
    """Executions the engine counted for it (Temporal's activity attempt; 1 elsewhere)."""
    source: str = ''
    """Where it was read (for failure messages)."""


def label_of_output(text: str) -> str | None:
    """The crash agent's call whose recorded output is `text` (a repr or JSON of a model response or tool return)."""
    if 'done after 3 requests' in text:
        return 'model-3'
    tool_calls = set(_TOOL_CALL_ID.findall(text))
    if tool_calls == {'call-a', 'call-b'}:
        return 'model-1'
    if tool_calls == {'call-c'}:
        return 'model-2'
    if not tool_calls and (match := _RESULT.search(text)):
        return TOOL_RESULTS.get(int(match.group(1)))
    return None


def dbos_records(database_url: str, workflows: dict[str, str]) -> list[UnitRecord]:
    """The `operation_outputs` rows of `workflows` (run tag -> workflow id) with a completion time."""
    import sqlalchemy as sa

    table = 'operation_outputs' if database_url.startswith('sqlite') else 'dbos.operation_outputs'
    engine = sa.create_engine(database_url)
    runs = {workflow_id: run for run, workflow_id in workflows.items()}
    query = sa.text(
        f'SELECT workflow_uuid, function_id, function_name, output, completed_at_epoch_ms FROM {table} '
        'WHERE workflow_uuid IN :ids ORDER BY workflow_uuid, function_id'
    ).bindparams(sa.bindparam('ids', expanding=True))
    try:
        with engine.connect() as connection:
            rows = connection.execute(query, {'ids': list(runs)}).all()
    finally:
        engine.dispose()
    records: list[UnitRecord] = []
    for workflow_id, function_id, function_name, output, completed_at in rows:
        if completed_at is None or output is None:
            continue
        # DBOS pickles step outputs (base64); the test process has every class they refer to.
        text = repr(pickle.loads(base64.b64decode(output)))
        source = f'operation_outputs {workflow_id} #{function_id} {function_name}'
        # DBOS stores whole milliseconds: the unit completed at most 1 ms after `completed_at`. Taking the start of that
        # millisecond made a call that started in it (an instant fake model: called 0.1 ms into the millisecond its
        # step was recorded in, 0.4 ms before the record) look as if it started after its own record.
        completed = (completed_at + 1) / 1000
        records.append(UnitRecord(runs[workflow_id], label_of_output(text), completed, source=source))
    return records


async def temporal_records(handles: dict[str, Any]) -> list[UnitRecord]:
    """The completed activities in the histories of `handles` (run tag -> workflow handle)."""
    from temporalio.api.enums.v1 import EventType

    records: list[UnitRecord] = []
    for run, handle in handles.items():
        history = await handle.fetch_history()
        attempts: dict[int, int] = {}
        names: dict[int, str] = {}
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                names[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                attributes = event.activity_task_started_event_attributes
                attempts[attributes.scheduled_event_id] = attributes.attempt
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                attributes = event.activity_task_completed_event_attributes
                scheduled = attributes.scheduled_event_id
                text = ' '.join(payload.data.decode() for payload in attributes.result.payloads)
                records.append(
                    UnitRecord(
                        run,
                        label_of_output(text),
                        event.event_time.seconds + event.event_time.nanos / 1e9,
                        attempts.get(scheduled, 1),
                        f'{handle.id} event {event.event_id} {names.get(scheduled, "?")}',
                    )
                )
    return records


def prefect_units(executed: list[UnitRecord], cached: list[UnitRecord]) -> list[UnitRecord]:
    """One run's units from its `Completed` states (each an execution) and, for a unit without one, its earliest
    `Cached` state.

    A worker killed after a task persisted its result but before it set the `Completed` state leaves no `Completed`
    state: the next attempt finds the result and is `Cached`. That unit ran once; its record is then known no earlier
    than the cache hit (a start after it is still a re-execution).
    """
    labels = {record.label for record in executed}
    earliest: dict[str | None, UnitRecord] = {}
    for record in sorted(cached, key=lambda record: record.completed_at):
        if record.label not in labels:
            earliest.setdefault(record.label, record)
    return [*executed, *earliest.values()]


async def prefect_records(flow_runs: dict[str, Any]) -> list[UnitRecord]:
    """The executions (`Completed` states, not cache hits) of the task runs under `flow_runs` (tag -> flow run id)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId
    from prefect.states import get_state_result

    records: list[UnitRecord] = []
    async with get_client() as client:
        for run, flow_run_id in flow_runs.items():
            subflows = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id]))
            )
            # The agent's own flow is the subflow; the parent's one task run stands for the subflow (its result is
            # the run's output, no unit of ours).
            ids = [subflow.id for subflow in subflows]
            if not ids:
                continue
            task_runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
            executed: list[UnitRecord] = []
            cached: list[UnitRecord] = []
            for task_run in task_runs:
                for state in await client.read_task_run_states(task_run.id):
                    if state.name not in ('Completed', 'Cached'):
                        continue
                    value = await get_state_result(state)
                    text = json.dumps(value, default=repr) if isinstance(value, dict) else repr(value)
                    record = UnitRecord(
                        run, label_of_output(text), state.timestamp.timestamp(), source=f'task run {task_run.name}'
                    )
                    (executed if state.name == 'Completed' else cached).append(record)
            records += prefect_units(executed, cached)
    return records
