"""Durable pydantic-ai agents on DBOS (SQLite or PostgreSQL).

Wrap an agent in [`DBOSAgent`][durable_dbos.DBOSAgent] before `DBOS.launch()`: its runs become DBOS workflows and its
model requests, tool calls and MCP communication become DBOS steps, so a crashed process resumes where it stopped.
"""

from durable_kernel import DepsResolver

from ._agent import DBOSAgent
from ._config import DBOSParallelExecutionMode, StepConfig
from ._mcp import DBOSMCPServer
from ._model import DBOSModel

__all__ = ('DBOSAgent', 'DepsResolver', 'DBOSMCPServer', 'DBOSModel', 'DBOSParallelExecutionMode', 'StepConfig')
