"""Helpers shared by the core tests (agent, model, toolsets, MCP, refusals, crash): reading workflow histories."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle


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
