"""Durable pydantic-ai agents on DBOS (SQLite or PostgreSQL).

Wrap an agent in [`DBOSAgent`][durable_dbos.DBOSAgent] before `DBOS.launch()`: its runs become DBOS workflows and its
model requests, tool calls and MCP communication become DBOS steps, so a crashed process resumes where it stopped. Or
attach [`DBOSDurability`][durable_dbos.DBOSDurability] to an agent (`capabilities=[...]`) and run it in your own
`@DBOS.workflow()`.
"""

from durable_kernel import DBOSOperationNamer, DepsResolver, DurableAgentRunEvents, EventStreamTopic, UnitRetryEvent

from ._agent import DBOSAgent
from ._child_workflows import ChildWorkflowConfig
from ._config import DBOSParallelExecutionMode, StepConfig
from ._durability import DBOSDurability
from ._external_events import fail_external_event, resolve_external_event
from ._live_events import stream_agent_events
from ._mcp import DBOSMCPServer
from ._model import DBOSModel

__all__ = (
    'ChildWorkflowConfig',
    'DBOSAgent',
    'DBOSDurability',
    'DepsResolver',
    'DurableAgentRunEvents',
    'EventStreamTopic',
    'UnitRetryEvent',
    'DBOSMCPServer',
    'DBOSModel',
    'DBOSParallelExecutionMode',
    'StepConfig',
    'fail_external_event',
    'resolve_external_event',
    'stream_agent_events',
    'DBOSOperationNamer',
)
