"""Durable pydantic-ai agents on Temporal.

Wrap an agent in [`TemporalAgent`][durable_temporal.TemporalAgent] and call `await agent.run(...)` inside a workflow:
the agent loop runs in workflow code and every model request and tool I/O runs as an activity, so a worker crash
resumes the run without repeating completed work. Register the agent's activities with
[`AgentPlugin`][durable_temporal.AgentPlugin] or a workflow's `__pydantic_ai_agents__`, and configure clients and
workers with [`PydanticAIPlugin`][durable_temporal.PydanticAIPlugin].
"""

from __future__ import annotations

# The anyio backends are imported lazily on first use; import them now so that does not happen inside the workflow
# sandbox (where the import would be re-done per workflow run and may be restricted).
import anyio._backends._asyncio  # pyright: ignore[reportUnusedImport]  # noqa: F401

from durable_kernel import DepsResolver, DurableAgentRunEvents, EventStreamTopic, TemporalOperationNamer, UnitRetryEvent

# Registers the exit hook that keeps Temporal's Rust threads from aborting the process at exit: see the module.
from . import _exit_barrier  # pyright: ignore[reportUnusedImport]  # noqa: F401
from ._agent import TemporalAgent
from ._claim_check import ClaimCheckCodec, ClaimCheckStore, FileClaimCheckStore
from ._config import LocalActivities, LocalActivity
from ._continue_as_new import AgentHandover, ContinueAsNewAfter, ContinueAsNewHandler, continue_as_new_due, hand_over
from ._durability import TemporalDurability
from ._external_events import fail_external_event, resolve_external_event
from ._live_events import AgentEventStream, WorkflowStreamTopic, stream_agent_events, workflow_stream_event_handler
from ._logfire import LogfirePlugin
from ._model import TemporalProviderFactory
from ._payload_converter import PydanticAIPayloadConverter
from ._plugin import AgentPlugin, PydanticAIPlugin
from ._run_context import TemporalRunContext
from ._toolset import TemporalWrapperToolset, temporalize_toolset
from ._workflow import PydanticAIWorkflow

__all__ = (
    'AgentEventStream',
    'AgentHandover',
    'AgentPlugin',
    'ClaimCheckCodec',
    'ClaimCheckStore',
    'ContinueAsNewAfter',
    'ContinueAsNewHandler',
    'DepsResolver',
    'DurableAgentRunEvents',
    'EventStreamTopic',
    'FileClaimCheckStore',
    'LocalActivities',
    'LocalActivity',
    'LogfirePlugin',
    'PydanticAIPayloadConverter',
    'PydanticAIPlugin',
    'PydanticAIWorkflow',
    'TemporalAgent',
    'TemporalDurability',
    'TemporalProviderFactory',
    'TemporalRunContext',
    'TemporalWrapperToolset',
    'UnitRetryEvent',
    'WorkflowStreamTopic',
    'continue_as_new_due',
    'fail_external_event',
    'hand_over',
    'resolve_external_event',
    'stream_agent_events',
    'temporalize_toolset',
    'workflow_stream_event_handler',
    'TemporalOperationNamer',
)
