"""Helpers shared by the core tests (agent, model, toolsets, MCP, refusals, crash): reading workflow histories."""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from durable_kernel import PYDANTIC_AI_VERSION


@dataclass
class ScheduledActivity:
    """One activity scheduled in a workflow history."""

    name: str
    summary: str | None


async def scheduled_activities(client: Client, handle: WorkflowHandle[Any, Any]) -> list[ScheduledActivity]:
    """The activities a workflow scheduled, in order, with their summaries."""
    history = await handle.fetch_history()
    found: list[ScheduledActivity] = []
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        summary: str | None = None
        if event.HasField('user_metadata') and event.user_metadata.HasField('summary'):
            summary = client.data_converter.payload_converter.from_payload(event.user_metadata.summary, str)
        found.append(ScheduledActivity(event.activity_task_scheduled_event_attributes.activity_type.name, summary))
    return found


async def activity_names(client: Client, handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The names of the activities a workflow scheduled, in order."""
    return [a.name for a in await scheduled_activities(client, handle)]


WORKFLOW_TIMEOUT = timedelta(seconds=120)
"""Execution timeout of test workflows: a workflow task failing in a loop fails the test instead of hanging it.

The server caps activity timeouts at this value, so configs under test stay below it."""


@functools.cache
def reference_import_error() -> str | None:
    """Why pydantic-ai's own Temporal integration (`pydantic_ai.durable_exec.temporal`) does not import here, or `None`.

    pydantic-ai 2.33's does not import with temporalio >= 1.34 (pydantic cannot build a schema for temporalio's
    `EventGroup`): tests that run the reference are skipped for that reason, told by the import itself.
    """
    try:
        importlib.import_module('pydantic_ai.durable_exec.temporal')
    except Exception as error:  # not only ImportError: the schema error is raised while the module is imported
        first_line = (str(error).splitlines() or [''])[0]
        return f"pydantic-ai's own Temporal integration does not import here: {type(error).__name__}: {first_line}"
    return None


def skip_without_reference() -> None:
    """In a test that runs pydantic-ai's own Temporal integration: skip it where that does not import.

    Called in the test, not as a `skipif` mark: a mark would import the reference in every module that imports these
    helpers, and again in each workflow sandbox.
    """
    error = reference_import_error()
    if error is not None:
        pytest.skip(error)


def import_reference_app() -> Any:
    """`histories.reference_app` (the scenarios on the reference), or `None` where the reference does not import."""
    if reference_import_error() is not None:
        return None
    return importlib.import_module('histories.reference_app')


TOOL_ACTIVITY_BEFORE_HANDLER_EVENT: bool = (2, 0, 0) <= PYDANTIC_AI_VERSION < (2, 68, 0)
"""pydantic-ai 2.33 schedules a streamed run's tool-call activity before the event-handler activity of its
`function_tool_call` event (1.107 and 2.68+ hand the event over first): ours' committed `stream` history, recorded on
1.107, does not replay there (docs/migration.md, "Upgrading pydantic-ai under running work")."""
