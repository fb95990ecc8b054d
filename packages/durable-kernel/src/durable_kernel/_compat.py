"""The one place that knows which pydantic-ai line is installed (1.107.x or 2.x) and how the two differ.

Every engine package asks this module instead of writing its own `try/except ImportError`: a scattered fallback once
hid that pydantic-ai 2.x had removed `MCPServer`, and the MCP toolsets of a 2.x user then ran in workflow code,
outside any durable unit, without an error. A new pydantic-ai release should break this file, not ten.

Private pydantic-ai APIs we still use, and why. Each is imported here and nowhere else (the engine packages take the
re-exports from `durable_kernel`), or, for attributes, named in the module that reads them:

| private API | used for | lines |
| --- | --- | --- |
| `pydantic_ai._utils.UNSET` / `Unset` / `is_set` | `override()`'s "not given" sentinel, the same object as the agent's | 1.107, 2.x |
| `StreamedActivityResult` (`.response`, `.events`; read by attribute) | a streamed request's record made by pydantic-ai's own durability before 2.60, read when ours resumes its workflow or flow (`recorded_stream_response`) | 2.33-2.59 |
| `pydantic_ai._utils.run_until_complete` / `get_event_loop` | `run_sync` on the loop pydantic-ai itself would use | 1.107, 2.x |
| `pydantic_ai._instructions.AgentInstructions` | the `instructions=` type of the entry points | 1.107, 2.x |
| `pydantic_ai._run_context.get_current_run_context` | the run context (deps, metadata) in a Prefect model request's key; the run context of a Temporal model request, sent to its activity | 1.107, 2.x |
| `pydantic_ai._utils.check_no_nested_sync_run` | `run_sync` refused inside a sync tool (it would deadlock the run), as the plain agent's | 2.x |
| `WrapperAgent._resolve_realtime_session` / `_open_realtime_session` | overridden by the wrappers to refuse realtime sessions in a durable run | 2.x |
| `pydantic_ai._utils.disable_threads` | sync callbacks inline in Temporal workflow code (the sandbox forbids threads) | 1.107, 2.x |
| `pydantic_ai.toolsets._dynamic.DynamicToolset` | recognising `@agent.toolset` toolsets, which have no public class | 1.107, 2.x |
| `ModelRequestParameters._telemetry_mcp_url_ids` | carrying the MCP ids telemetry masks into a model unit | 2.x |
| `pydantic_ai.messages._RecordsContentFiles` | a tool result that crossed a boundary keeps its file items, and only those, as files (base class of `ToolReturned`; a plain base where a release lacks it) | 1.107, 2.x |
| `AbstractCapability._validate_override_capabilities` | overridden by `DurabilityCapability` to refuse an `override(capabilities=...)` list without it (the hook pydantic-ai calls) | 2.78+ |
| `Agent._root_capability` | finding a durability capability on an agent (1.107 has no public `root_capability`) | 1.107 |
| `Agent._instrument_default` (read, never set) | whether `Agent.instrument_all(...)` instruments an agent's runs (Temporal adds its replay-safe tracing only to instrumented runs) | 1.107, 2.x |
| `Agent._override_root_capability` (read) | the capabilities an `override(capabilities=...)` in force gives a run (an `Instrumentation` among them instruments it) | 1.107, 2.x |
| `RunContext` fields starting with `_` | given their defaults in a rebuilt run context (pydantic-ai reads them) | 2.x |
| `RunContext._cancellation` (`RunCancellation.has_token`) | whether a run was given a `cancellation_token` (DBOS refuses one inside a workflow, where it does not survive recovery) | 2.x |
| `StreamedResponse._parts_manager` | replaying a recorded response's parts as events in workflow code (`completed_streamed_response(replay_parts=True)`) | 1.107 |
| `pydantic_ai._run_context.get_current_request_attempt` | the attempt at the request step a model unit streams, for its events' `origin` | 2.78+ |
| the source text of 1.107's `durable_exec/prefect/_function_toolset.py` and `_mcp_server.py` task functions (read as files, never imported; `durable_prefect/_reference_results.py`) | Prefect: the reference's own cache key of a tool call (it hashes that source), to reuse what the reference recorded when its flow run is re-run on ours | 1.107 |
| `ModelRequestNode._prepare_attempt` (presence only) | whether a count of tokens ahead of a request happens inside the request hooks and run context (`COUNTS_TOKENS_BEFORE_REQUEST_HOOKS`) | 1.107, 2.x |
| `__pydantic_ai_durable_operation__` (the marker `durable_operation` sets: `.name`, `.function`, `.base_hook`), `AbstractCapability._durable_operations_need_id` | collecting a capability's durable operations (`durable_kernel._capability_operations`) | 2.68+ |
| `AbstractCapability._prepare_run_context`, `RunContext._durable_operations` / `_run_capabilities_by_id` | installing the run's dispatchers of durable operations, which the decorator reads (the hook pydantic-ai calls before `wrap_run`) | 2.68+ |
| `pydantic_ai.external_events._OperationAsk` (`.dispatch`) | an `ask` that is a capability's durable operation (`HandleDeferredToolCalls(id=...)`'s handler): Temporal runs it as the operation's activity, as 2.78 does | 2.78+ |
| `AbstractCapability._prepare_workspace`, `pydantic_ai.workspaces.WrapperWorkspace` | overridden by `DurabilityCapability` and `RefuseWorkspaceInContainerCode` to wrap the run's selected workspace so that workflow or flow code's calls are refused (`durable_kernel._workspaces`; the hook pydantic-ai calls on selection) | 2.68+ |
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import importlib
import importlib.metadata
import importlib.util
import inspect
import re
from collections.abc import Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from pydantic_ai import _instructions, _run_context, _utils, exceptions, models
from pydantic_ai import messages as _messages
from pydantic_ai._run_context import get_current_run_context, set_current_run_context
from pydantic_ai.agent import AbstractAgent, Agent, WrapperAgent
from pydantic_ai.capabilities import AbstractCapability, CombinedCapability
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.tools import RunContext, ToolDefinition
from pydantic_ai.toolsets import AbstractToolset, ToolsetTool
from pydantic_ai.toolsets._dynamic import DynamicToolset

__all__ = (
    'set_current_run_context',
    'is_mcp_toolset',
    'mcp_toolset_class_names',
    'mcp_toolset_classes',
    'UNSET',
    'AgentInstructions',
    'DynamicToolset',
    'Unset',
    'disable_threads',
    'get_current_run_context',
    'get_event_loop',
    'is_set',
    'RecordsContentFiles',
    'DERIVED_FIELDS_2',
    'ACTIVE_CAPABILITIES_SNAPSHOT',
    'CAPABILITY_STATE_FIELD',
    'field_default',
    'translate_run_context_fields',
    'PYDANTIC_AI_2',
    'PYDANTIC_AI_VERSION',
    'RUN_KEYWORDS_2',
    'entry_point_parameters',
    'completed_streamed_response',
    'wrapper_streamed_response',
    'recorded_stream_response',
    'fastmcp_toolset_class',
    'mcp_server_classes',
    'mcp_tool_for_tool_def',
    'mcp_tool_for_tool_def_sync',
    'unknown_mcp_toolset_class',
    'prepare_messages',
    'prepare_messages_in_unit',
    'request_telemetry_ids',
    'restore_request_telemetry_ids',
    'cancel_suspended_response',
    'record_response_model_id',
    'PERMANENT_MODEL_ERROR_CATEGORIES',
    'RETRYABLE_MODEL_ERROR_CATEGORIES',
    'model_error_headers',
    'model_error_retry_after',
    'agent_root_capability',
    'agent_instrument_default',
    'FOR_RUN_SEES_RUN_INSTRUMENTATION',
    'agent_override_capability',
    'check_no_nested_sync_run',
    'REALTIME_SESSION_HOOKS',
    'is_reference_durability',
    'request_model_selection',
    'request_context_with_model',
    'resolve_model_id_by_capabilities',
    'guard_unit_run_context',
    'run_has_cancellation_token',
    'refusing_message_queue',
    'HAS_RESPONSE_ORIGIN',
    'COUNTS_TOKENS_BEFORE_REQUEST_HOOKS',
    'STREAM_STEP_COUNTED_BEFORE_MODEL_OPENS',
    'stream_step_uncounted',
    'ARGS_VALIDATOR_UNITS',
    'current_request_attempt',
    'response_origin',
    'with_response_origin',
    'HAS_DURABLE_OPERATIONS',
    'DurableOperationMarker',
    'durable_operation_marker',
    'durable_operations_need_id',
    'run_durable_operations',
    'run_capabilities_by_id',
)


def _installed_version() -> tuple[int, int, int]:
    # `pydantic-ai` (the full distribution) depends on `pydantic-ai-slim` at the same version, so the slim one is always
    # there; its metadata is the truth even when `pydantic_ai.__version__` is missing in an editable install.
    numbers = [int(part) for part in re.findall(r'\d+', importlib.metadata.version('pydantic-ai-slim'))[:3]]
    numbers += [0] * (3 - len(numbers))
    return numbers[0], numbers[1], numbers[2]


PYDANTIC_AI_VERSION: tuple[int, int, int] = _installed_version()
"""The installed `pydantic-ai-slim` version as `(major, minor, patch)`."""

PYDANTIC_AI_2: bool = PYDANTIC_AI_VERSION >= (2, 0, 0)
"""Whether the installed pydantic-ai is of the 2.x line (else 1.107.x)."""

FIRST_SUPPORTED_2X: tuple[int, int, int] = (2, 33, 0)
"""The first pydantic-ai 2.x release our packages support (and test: `just test-matrix pai2-first`)."""

if PYDANTIC_AI_2 and PYDANTIC_AI_VERSION < FIRST_SUPPORTED_2X:
    # Earlier 2.x releases differ in run-context fields, run keywords and error classes that the engines rely on; a
    # clear refusal at import beats a durable run that fails (or records something else) halfway.
    raise ImportError(
        f'durable packages support pydantic-ai-slim 1.107.10+ on the 1.x line and 2.33.0+ on the 2.x line; '
        f'{".".join(map(str, PYDANTIC_AI_VERSION))} is installed: upgrade it (`pip install -U pydantic-ai-slim`).'
    )

# Told by what came with it: the pydantic-ai change that moved a tool's `args_validator` into a durable unit of its own
# also gave agents `_get_validation_context` (the unit rebuilds the run's validation context with it). 2.33 has
# neither; 2.68 and 2.78 have both.
ARGS_VALIDATOR_UNITS: bool = hasattr(AbstractAgent, '_get_validation_context')
"""Whether the installed pydantic-ai's durable integrations run a tool's `args_validator` in a unit of its own
(`validate_args`): engines then do the same where the reference does, with the same unit names."""

RUN_KEYWORDS_2: tuple[str, ...] = ('conversation', 'run_id', 'cancellation_token', 'timeout', 'workspace', 'compact')
"""Keyword arguments of the run entry points that pydantic-ai 2.x added (`compact` in 2.78): engines carry each into
the durable run or refuse it with a `UserError`, never drop it."""


# Told by the field itself, not by the line: 2.x releases before the rename (2.33) still have `capability_loaded`.
CAPABILITY_STATE_FIELD: str = (
    'capability_active'
    if 'capability_active' in {f.name for f in dataclasses.fields(RunContext)}
    else 'capability_loaded'
)
"""The `RunContext` field that tells whether the current capability is in effect: 2.x renamed it (and deprecated the
old name, which then warns on every read)."""

_OTHER_CAPABILITY_STATE_FIELD = (
    'capability_loaded' if CAPABILITY_STATE_FIELD == 'capability_active' else 'capability_active'
)


# Told by the property itself: 2.33 (like 1.107) has `available_capability_ids`; later 2.x releases renamed it
# `active_capability_ids` and kept the old name as a deprecated alias that warns on every read.
ACTIVE_CAPABILITIES_SNAPSHOT: str = (
    'active_capability_ids' if hasattr(RunContext, 'active_capability_ids') else 'available_capability_ids'
)
"""The name under which a run context's set of active capability ids crosses a durable boundary (the installed
line's property, and the key pydantic-ai's own Temporal integration of that line sends)."""

_OTHER_ACTIVE_CAPABILITIES_SNAPSHOT = (
    'available_capability_ids' if ACTIVE_CAPABILITIES_SNAPSHOT == 'active_capability_ids' else 'active_capability_ids'
)

_RENAMED_ON_THE_OTHER_LINE: tuple[tuple[str, str], ...] = (
    (_OTHER_CAPABILITY_STATE_FIELD, CAPABILITY_STATE_FIELD),
    (_OTHER_ACTIVE_CAPABILITIES_SNAPSHOT, ACTIVE_CAPABILITIES_SNAPSHOT),
)


def translate_run_context_fields(values: dict[str, Any]) -> dict[str, Any]:
    """Serialized run-context fields with the other line's names renamed to the installed line's.

    A run recorded on 1.107 (`capability_loaded`) and resumed on 2.x (`capability_active`), or back, keeps the value;
    likewise the active-capabilities snapshot (`available_capability_ids` on 1.107 and 2.33, `active_capability_ids`
    later).
    """
    if not any(old in values for old, _ in _RENAMED_ON_THE_OTHER_LINE):
        return values
    translated = dict(values)
    for old, new in _RENAMED_ON_THE_OTHER_LINE:
        if old in translated:
            translated.setdefault(new, translated.pop(old))
            translated.pop(old, None)
    return translated


def field_default(field: dataclasses.Field[Any]) -> Any:
    """The value a dataclass field takes when it is not given (`None` if it has no default)."""
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


DERIVED_FIELDS_2: dict[str, frozenset[str]] = {
    'ModelResponse': frozenset({'model_id'}),
    'ToolDefinition': frozenset({'toolset_id'}),
}
"""Fields that pydantic-ai 2.x added and fills in from data the object already holds, by class name: the response's
`model_id` (its system and model name) and a tool definition's `toolset_id`. A key by value (Prefect's cache keys)
leaves them out, with every other field at its default, so the same work has the same key on 1.107 and 2.x and a run
resumed after the upgrade repeats nothing."""


# pydantic-ai's private helpers the packages use, re-exported from here so that no other module imports a private
# pydantic-ai module (see the table above).
UNSET = _utils.UNSET
Unset = _utils.Unset
is_set = _utils.is_set
get_event_loop = _utils.get_event_loop
disable_threads = _utils.disable_threads
AgentInstructions = _instructions.AgentInstructions

if TYPE_CHECKING:
    from pydantic_ai.messages import _RecordsContentFiles as RecordsContentFiles  # pyright: ignore[reportPrivateUsage]
else:
    # 1.107.10 and the newest 2.x have it; some 2.x releases between them (2.54, the newest on Python 3.10) do not, and
    # there tool results round-trip as pydantic-ai's own `ToolReturn` did in those releases.
    RecordsContentFiles = getattr(_messages, '_RecordsContentFiles', object)


@functools.cache
def mcp_server_classes() -> tuple[type[AbstractToolset[Any]], ...]:
    """The MCP toolset classes of the installed line, most specific first; empty when the `mcp` extra is missing.

    1.107 has `MCPServer` (stdio, SSE, streamable HTTP) and `MCPToolset`; 2.x has only `MCPToolset`. Looked up once
    per process: the durable toolsets ask on every tool listing of a run.
    """
    try:
        module = importlib.import_module('pydantic_ai.mcp')
    except ImportError:  # the `mcp` extra (and so the `mcp` package) is not installed
        return ()
    names = ('MCPToolset',) if PYDANTIC_AI_2 else ('MCPServer', 'MCPToolset')
    return tuple(getattr(module, name) for name in names if hasattr(module, name))


# Modules whose toolsets talk to an MCP server: pydantic-ai's MCP modules (of either line) and the MCP client packages.
_MCP_MODULE_PREFIXES = ('pydantic_ai.mcp', 'pydantic_ai.toolsets.fastmcp', 'pydantic_ai._mcp', 'fastmcp', 'mcp.')


def unknown_mcp_toolset_class(toolset: AbstractToolset[Any]) -> type[Any] | None:
    """The MCP client class behind `toolset` when it is not one of the installed line's MCP classes, else `None`.

    Such a toolset (a class of another pydantic-ai line, of a future one, or a third-party MCP client) is not
    recognised by the engines' MCP wrappers, and would otherwise reach its server from workflow code: engines refuse
    it with a `UserError` that names the returned class.
    """
    fastmcp = fastmcp_toolset_class()
    if isinstance(toolset, (*mcp_server_classes(), *(() if fastmcp is None else (fastmcp,)))):
        return None
    return next((cls for cls in type(toolset).__mro__ if cls.__module__.startswith(_MCP_MODULE_PREFIXES)), None)


@functools.cache
def fastmcp_toolset_class() -> type[AbstractToolset[Any]] | None:
    """`FastMCPToolset` where the installed line has it (1.107 with the `fastmcp` extra), else `None`.

    pydantic-ai 2.x removed `pydantic_ai.toolsets.fastmcp`: a FastMCP server is reached through `MCPToolset` there.
    """
    if PYDANTIC_AI_2:
        return None
    try:
        module = importlib.import_module('pydantic_ai.toolsets.fastmcp')
    except ImportError:
        return None
    return module.FastMCPToolset


@functools.cache
def mcp_toolset_classes() -> tuple[type[AbstractToolset[Any]], ...]:
    """Every MCP client toolset class of the installed line that the engines make durable (MCP and FastMCP)."""
    fastmcp = fastmcp_toolset_class()
    return (*mcp_server_classes(), *((fastmcp,) if fastmcp is not None else ()))


def is_mcp_toolset(toolset: AbstractToolset[Any]) -> bool:
    """Whether the toolset is of one of `mcp_toolset_classes()`."""
    return isinstance(toolset, mcp_toolset_classes())


def mcp_toolset_class_names() -> str:
    """The MCP toolset classes the engines make durable on this line, for error messages."""
    return ', '.join(f'`{cls.__name__}`' for cls in mcp_toolset_classes()) or 'none (the `mcp` extra is not installed)'


def prepare_messages(
    model: models.Model,
    messages: Sequence[_messages.ModelMessage],
    model_request_parameters: ModelRequestParameters,
) -> list[_messages.ModelMessage]:
    """`Model.prepare_messages` with the arity of the installed line (2.x added `model_request_parameters`)."""
    prepare: Any = getattr(model, 'prepare_messages', None)
    if prepare is None:
        return list(messages)
    if PYDANTIC_AI_2:
        return list(prepare(list(messages), model_request_parameters))
    return list(prepare(list(messages)))


def prepare_messages_in_unit(
    model: models.Model,
    messages: Sequence[_messages.ModelMessage],
    model_request_parameters: ModelRequestParameters,
) -> list[_messages.ModelMessage]:
    """What pydantic-ai's agent graph does to a history before a request, for a model that exists only in the unit.

    A model selected by a string is built where the request runs (a Temporal activity), so the run's code cannot
    prepare the history for it: its preparation depends on the concrete model's profile (how a tool revealed during
    the run is told, system prompts inside the conversation), which a profile inferred from the string can get wrong,
    and it is lossy. The unit prepares the history it was sent, then normalizes it again as the agent graph does when
    preparation reshaped it (two requests in a row are merged).

    Args:
        model: The concrete model the unit requests.
        messages: The history as the run has it, unprepared.
        model_request_parameters: The request's parameters.

    Returns:
        The history to send to `model`.
    """
    listed = list(messages)
    prepare: Any = getattr(model, 'prepare_messages', None)
    if prepare is None:
        return listed
    prepared: list[_messages.ModelMessage] = (
        prepare(listed, model_request_parameters) if PYDANTIC_AI_2 else prepare(listed)
    )
    if prepared is listed:
        return listed
    repair: Any = getattr(_messages, 'repair_messages', None)  # pydantic-ai 2.68+
    if repair is not None:
        return list(repair(prepared, repair_last_response=True))
    clean: Any = importlib.import_module('pydantic_ai._agent_graph')._clean_message_history
    if 'repair_last_response' in inspect.signature(clean).parameters:  # 2.x before `repair_messages`
        return list(clean(prepared, repair_last_response=True))
    return list(clean(prepared))


def completed_streamed_response(
    response: _messages.ModelResponse, model_request_parameters: ModelRequestParameters, *, replay_parts: bool = False
) -> models.StreamedResponse:
    """A streamed response that ends as `response` (a durable unit already consumed the live stream).

    With `replay_parts` it yields one `PartStartEvent` per part, with its full content, so that code streaming the
    node in the workflow or flow (`agent.iter()` with `node.stream()`, `run_stream`, other capabilities) still sees the
    content; without, it yields no events (for a handler that already saw the live events inside the unit). 2.x
    synthesizes the events itself (`replay_events=True`); on 1.107 a `CompletedStreamedResponse` subclass starts each
    part through the stream's private `_parts_manager` (which `StreamedResponse` reads to close parts and find the final
    result).

    1.107 has `CompletedStreamedResponse(model_request_parameters, response)` in `pydantic_ai.models.wrapper`; 2.x
    moved it to `pydantic_ai.models` with the response first (the old import path and argument order warn there).
    """
    if PYDANTIC_AI_2:
        completed: Any = importlib.import_module('pydantic_ai.models').CompletedStreamedResponse
        if replay_parts:
            return completed(response, model_request_parameters=model_request_parameters, replay_events=True)
        return completed(response, model_request_parameters=model_request_parameters)
    if replay_parts:
        return _parts_replayed_class()(model_request_parameters, response)
    from pydantic_ai.models.wrapper import CompletedStreamedResponse

    return CompletedStreamedResponse(model_request_parameters, response)


def recorded_stream_response(recorded: Any) -> _messages.ModelResponse:
    """The final response in what a streamed model request's durable unit recorded.

    Ours records the bare `ModelResponse`, as pydantic-ai's own durability does from 2.60. Before 2.60 (2.33 to 2.59)
    it recorded a `StreamedActivityResult` (the response and the live events), which a workflow or flow it started
    and ours resumes hands back: its `response` is what the unit produced. Read by its attributes, since the class
    moved between releases (and 1.107 has none).
    """
    if isinstance(recorded, _messages.ModelResponse):
        return recorded
    response = getattr(recorded, 'response', None)
    if isinstance(response, _messages.ModelResponse) and hasattr(recorded, 'events'):
        return response
    raise TypeError(f'A streamed model request recorded {type(recorded).__name__!r}, not a `ModelResponse`.')


def wrapper_streamed_response(
    response: _messages.ModelResponse, model_request_parameters: ModelRequestParameters, *, handler_saw_events: bool
) -> models.StreamedResponse:
    """The wrapper form's streamed response in workflow code, after a durable unit consumed the live stream.

    A handler that saw the live events inside the unit is not given them again. Without one, 2.x replays the parts
    (as its own DBOS and Prefect wrappers do), so that `agent.iter()` with `node.stream()` yields the text; 1.107's
    `stream_text` yields the final text without events (its own wrappers replay none, and replaying there would repeat
    the text once per event).
    """
    return completed_streamed_response(
        response, model_request_parameters, replay_parts=PYDANTIC_AI_2 and not handler_saw_events
    )


_PARTS_REPLAYED: list[type[Any]] = []


def _parts_replayed_class() -> type[Any]:
    """1.107's `CompletedStreamedResponse` yielding a `PartStartEvent` per part (made on first use: 1.107 only)."""
    if not _PARTS_REPLAYED:
        from collections.abc import AsyncIterator

        from pydantic_ai.models.wrapper import CompletedStreamedResponse

        class PartsReplayed(CompletedStreamedResponse):
            async def _get_event_iterator(self) -> AsyncIterator[_messages.ModelResponseStreamEvent]:
                for index, part in enumerate(self.response.parts):
                    event = cast(Any, self)._parts_manager.handle_part(vendor_part_id=index, part=part)
                    if event is not None:
                        yield event

        _PARTS_REPLAYED.append(PartsReplayed)
    return _PARTS_REPLAYED[0]


async def mcp_tool_for_tool_def(
    toolset: AbstractToolset[Any], tool_def: ToolDefinition, ctx: RunContext[Any]
) -> ToolsetTool[Any]:
    """The tool an MCP toolset builds from a definition it listed earlier (recorded by a durable unit), without I/O.

    1.107's MCP classes have `tool_for_tool_def(tool_def)`; 2.x's `MCPToolset.tool_for_tool_def` needs the run
    context (for the retry budget), and later 2.x releases have the public
    `AbstractToolset.get_tool_for_tool_def(tool_def, ctx)` made for this, which is what we call where it exists.
    """
    if PYDANTIC_AI_2:
        # Typed as `Any`: neither method exists on the other line (nor on `AbstractToolset` on 1.107). Early 2.x
        # releases (2.33) lack `get_tool_for_tool_def` and have only `tool_for_tool_def(tool_def, *, ctx)`.
        if hasattr(toolset, 'get_tool_for_tool_def'):
            return await cast(Any, toolset).get_tool_for_tool_def(tool_def, ctx)
        return cast(Any, toolset).tool_for_tool_def(tool_def, ctx=ctx)
    return cast(Any, toolset).tool_for_tool_def(tool_def)


def mcp_tool_for_tool_def_sync(
    toolset: AbstractToolset[Any], tool_def: ToolDefinition, ctx: RunContext[Any] | None = None
) -> ToolsetTool[Any]:
    """[`mcp_tool_for_tool_def`][durable_kernel.mcp_tool_for_tool_def] without `await`, for a public sync method.

    1.107's MCP classes build the tool from the definition alone (`ctx` is not used there); 2.x's
    `MCPToolset.tool_for_tool_def(tool_def, *, ctx)` takes the tool's retry budget from the run context, so `ctx`
    is required on 2.x.

    Raises:
        UserError: On pydantic-ai 2.x, when `ctx` is missing.
    """
    if not PYDANTIC_AI_2:
        return cast(Any, toolset).tool_for_tool_def(tool_def)
    if ctx is None:
        raise exceptions.UserError(
            f'Building the tool {tool_def.name!r} of {toolset.label} from its definition needs the run context on '
            'pydantic-ai 2.x (the tool takes its retry budget from it): pass the run context as '
            '`tool_for_tool_def(tool_def, ctx=ctx)`.'
        )
    # Typed as `Any`: 1.107's method has no `ctx`.
    return cast(Any, toolset).tool_for_tool_def(tool_def, ctx=ctx)


# The `ModelRequestParameters` field holding the URL-derived MCP ids to mask in telemetry. It is excluded from the
# parameters' serialization, so a durable unit carries it beside them; 2.x renamed it (and made it private).
_TELEMETRY_IDS_FIELD = '_telemetry_mcp_url_ids' if PYDANTIC_AI_2 else 'telemetry_sensitive_ids'


def request_telemetry_ids(parameters: ModelRequestParameters) -> set[str] | None:
    """The URL-derived MCP ids that telemetry masks for a request (`None`: not known), to carry into a durable unit.

    1.107 keeps them in `ModelRequestParameters.telemetry_sensitive_ids`, 2.x in `_telemetry_mcp_url_ids`; both
    fields mean the same and are left out when the parameters are serialized.
    """
    ids = getattr(parameters, _TELEMETRY_IDS_FIELD, None)
    return None if ids is None else set(ids)


def restore_request_telemetry_ids(parameters: ModelRequestParameters, ids: set[str] | None) -> None:
    """Put the ids [`request_telemetry_ids`][durable_kernel.request_telemetry_ids] carried back on rebuilt parameters.

    Ids recorded by either line land in the installed line's field, so a payload recorded on 1.107 keeps masking
    the same MCP ids when a 2.x worker runs it (and back).
    """
    setattr(parameters, _TELEMETRY_IDS_FIELD, None if ids is None else set(ids))


async def cancel_suspended_response(model: models.Model, response: _messages.ModelResponse) -> None:
    """`Model.cancel_suspended_response(response)` on 2.x, which added it (a server-side background job's teardown).

    1.107 has no suspended responses, so there is nothing to cancel there.
    """
    if PYDANTIC_AI_2:
        # Not declared on 1.107's `Model`, which the type checker sees.
        await cast(Any, model).cancel_suspended_response(response)


def record_response_model_id(response: _messages.ModelResponse, model_id: str) -> _messages.ModelResponse:
    """`response` with `model_id` recorded as the agent records it after the request, where the line has the field.

    pydantic-ai 2.x fills `ModelResponse.model_id` (the model the request was sent to) when the request returns, if
    the model left it empty; 1.107 has no such field. A durable unit that fills it the same way returns the response
    exactly as the run will hold it.
    """
    # Early 2.x releases (2.33) have no `model_id` field either: `getattr` alone would try to set one there.
    has_field = any(f.name == 'model_id' for f in dataclasses.fields(response))
    if PYDANTIC_AI_2 and has_field and getattr(response, 'model_id', None) is None:
        return dataclasses.replace(response, **{'model_id': model_id})
    return response


def entry_point_parameters(entry_point: str) -> frozenset[str]:
    """The parameter names of the installed line's plain `Agent.<entry_point>` (without `self` and `**kwargs`)."""
    parameters = inspect.signature(getattr(Agent, entry_point)).parameters.values()
    return frozenset(p.name for p in parameters if p.name != 'self' and p.kind is not inspect.Parameter.VAR_KEYWORD)


def _exception_classes(*names: str) -> tuple[type[Exception], ...]:
    # The categories arrived during the 2.x line (2.33 has none of them): a release without one simply has no such
    # error to sort, and the status code decides as on 1.107.
    found = (getattr(exceptions, name, None) for name in names)
    return tuple(cls for cls in found if isinstance(cls, type) and issubclass(cls, Exception))


# pydantic-ai 2.x sorts provider errors into categories (each also a `ModelHTTPError` when a status came with it);
# 1.107 has only `ModelAPIError` and `ModelHTTPError`, so the status code is all there is to go by.
RETRYABLE_MODEL_ERROR_CATEGORIES: tuple[type[Exception], ...] = (
    _exception_classes('ModelRateLimitError', 'ModelUnavailableError', 'ModelServerError', 'ModelConnectionError')
    if PYDANTIC_AI_2
    else ()
)
"""2.x's error categories that another attempt can get past, whatever their status (empty on 1.107)."""

PERMANENT_MODEL_ERROR_CATEGORIES: tuple[type[Exception], ...] = (
    _exception_classes('ModelRequestRejectedError', 'ModelQuotaExceededError') if PYDANTIC_AI_2 else ()
)
"""2.x's error categories that another attempt cannot fix: a rejected request (bad request, rejected credentials,
unknown model, overflowing context window) and an exhausted quota (empty on 1.107)."""


def model_error_retry_after(error: BaseException) -> float | None:
    """The `retry_after` (seconds) that pydantic-ai 2.x's `ModelAPIError` carries; 1.107's has no such field."""
    value = (
        getattr(error, 'retry_after', None) if PYDANTIC_AI_2 and isinstance(error, exceptions.ModelAPIError) else None
    )
    return float(value) if isinstance(value, (int, float)) else None


def model_error_headers(error: BaseException) -> Mapping[str, str] | None:
    """The response headers that pydantic-ai 2.x's `ModelHTTPError` carries (keys lowercased); 1.107's has none."""
    headers = (
        getattr(error, 'headers', None) if PYDANTIC_AI_2 and isinstance(error, exceptions.ModelHTTPError) else None
    )
    return cast(Mapping[str, str], headers) if isinstance(headers, Mapping) else None


HAS_DEFAULT_RUN_ID_HOOK: bool = hasattr(AbstractCapability, 'get_default_run_id')
"""Whether pydantic-ai asks capabilities for a run's default `run_id` (`get_default_run_id`, 2.x); 1.107 does not."""


def agent_root_capability(agent: AbstractAgent[Any, Any]) -> AbstractCapability[Any]:
    """The capability tree of an agent: the public `root_capability` on 2.x, the private attribute on 1.107."""
    while isinstance(agent, WrapperAgent):
        agent = agent.wrapped
    root = getattr(agent, 'root_capability', None) if PYDANTIC_AI_2 else getattr(agent, '_root_capability', None)
    if root is None:
        return CombinedCapability([])
    return cast('AbstractCapability[Any]', root)


FOR_RUN_SEES_RUN_INSTRUMENTATION: bool = PYDANTIC_AI_VERSION >= (2, 68, 0)
"""Whether a capability's `for_run` gets a run context whose tracer is already the run's: set from every
`Instrumentation` of the run, those of its `capabilities=` included. pydantic-ai 2.68 and 2.78 do; 1.107 and 2.33 set
it from `instrument` / `Agent.instrument_all` only. 2.68 is the first release checked: one between may do it too,
and is treated as not (the safe side: a run it cannot tell is taken as instrumented)."""


def agent_instrument_default() -> Any:
    """What `Agent.instrument_all(...)` set for agents without an `instrument` of their own (`False` until called).

    The private class attribute `Agent._instrument_default`, read only: `InstrumentationSettings`, `True` or `False`.
    """
    return cast(Any, Agent)._instrument_default


def agent_override_capability(agent: AbstractAgent[Any, Any]) -> AbstractCapability[Any] | None:
    """The capability tree an `override(capabilities=...)` in force gives the agent's runs here, or `None`.

    The private context variable `Agent._override_root_capability`: an option holding the tree (1.107, 2.x before
    2.78) or the tree and the ids of what the override injected (2.78).
    """
    while isinstance(agent, WrapperAgent):
        agent = agent.wrapped
    variable: Any = getattr(agent, '_override_root_capability', None)
    override: Any = variable.get() if variable is not None else None
    if override is None:
        return None
    value: Any = override.value
    return cast('AbstractCapability[Any]', value[0] if isinstance(value, tuple) else value)


def is_reference_durability(capability: AbstractCapability[Any]) -> bool:
    """Whether a capability is one of pydantic-ai's own durability capabilities (told by module, never imported)."""
    return type(capability).__module__.startswith('pydantic_ai.durable_exec.')


def check_no_nested_sync_run() -> None:
    """Refuse a sync entry point called from a sync tool or output function of a running agent, as 2.x's agent does.

    Such a call starts a second event loop that can deadlock against the first; 2.x marks those callbacks and its own
    `run_sync` checks the mark (1.107 has neither: nothing to check).

    Raises:
        UserError: On 2.x, inside such a callback.
    """
    check: Any = getattr(_utils, 'check_no_nested_sync_run', None)
    if check is not None:
        check()


REALTIME_SESSION_HOOKS: bool = hasattr(WrapperAgent, '_open_realtime_session') and hasattr(
    WrapperAgent, '_resolve_realtime_session'
)
"""Whether the wrapper chain opens realtime sessions through the private hooks our wrappers override (2.x)."""


def request_model_selection(request_context: models.ModelRequestContext) -> str | None:
    """The string a request's model was selected by (`run(model='key')`, a string default), or `None`.

    pydantic-ai 2.x records it on the request context (`model_id`), so that a durable unit can resolve the same string
    again; 1.107 resolves strings with `infer_model` before any capability sees them and records nothing.
    """
    selection = getattr(request_context, 'model_id', None)
    return selection if isinstance(selection, str) else None


def request_context_with_model(
    request_context: models.ModelRequestContext, model: models.Model
) -> models.ModelRequestContext:
    """A copy of `request_context` whose model is `model`, every other field kept (`model_id` and `streaming` too).

    Not `dataclasses.replace`: pydantic-ai 2.33 declares `model_id` (the string the model was selected by) and
    `streaming` with `init=False`, and `replace` resets such fields to their defaults. A durable unit then no longer
    knew which string selected the model (a string default or an alias was refused as an unregistered instance), and
    the hooks after ours saw a streamed request as a plain one. 2.78 made them ordinary fields for that reason.
    """
    changed = copy.copy(request_context)
    changed.model = model
    return changed


async def resolve_model_id_by_capabilities(
    agent: AbstractAgent[Any, Any], deps: Any, model_id: str
) -> models.Model | None:
    """Ask the agent's capabilities (`resolve_model_id`, pydantic-ai 2.x) for the model a string names.

    Returns:
        The first capability's answer, or `None` when none claims the string (and always on 1.107, which has no such
        hook).
    """
    if not PYDANTIC_AI_2:
        return None
    # 2.x only: looked up by name so that the module imports on 1.107.
    resolution_type: Any = vars(models)['ModelResolutionContext']
    resolution_context: Any = resolution_type(agent=agent, deps=deps)
    resolved = await cast(Any, agent_root_capability(agent)).resolve_model_id(resolution_context, model_id=model_id)
    return cast('models.Model | None', resolved)


def _enqueue_guard_base() -> type[list[Any]]:
    # pydantic-ai 2.78+ checks `isinstance(ctx.pending_messages, EnqueueGuard)` first thing in `enqueue()` (and in
    # `dequeue()`/`set_enqueue_priority()`), before it reads fields such as `tool_manager` that a context rebuilt on
    # the far side of a durable boundary does not have: only a subclass gets our refusal in before that read fails.
    # Told by the class itself, not by the version: earlier releases have no guard and just `append`.
    try:
        guard: Any = importlib.import_module('pydantic_ai._enqueue').EnqueueGuard
    except (ImportError, AttributeError):
        return list[Any]
    return cast('type[list[Any]]', guard) if isinstance(guard, type) and issubclass(guard, list) else list[Any]


class _RefusingQueue(_enqueue_guard_base()):
    # Stands in for `RunContext.pending_messages` inside a durable unit: `enqueue` appends to it.
    def __init__(self, message: str) -> None:
        list[Any].__init__(self)  # not the guard's `__init__`, whose arguments are its own wording's nouns
        self._message = message

    def append(self, item: Any) -> None:
        raise exceptions.UserError(self._message)

    def change_error(self, method: str) -> exceptions.UserError:
        # pydantic-ai 2.78+: `ctx.dequeue()` / `ctx.set_enqueue_priority()` raise what this returns; the change would
        # be lost for the same reason an enqueued message would be dropped.
        return exceptions.UserError(self._message.replace('`ctx.enqueue()`', f'`ctx.{method}()`', 1))


def refusing_message_queue(message: str) -> list[Any]:
    """A stand-in for `RunContext.pending_messages` whose `append` (what `ctx.enqueue()` does) raises `message`."""
    return _RefusingQueue(message)


@functools.cache
def _refusing_cancellation_class() -> type[Any] | None:
    try:
        cancel_module = importlib.import_module('pydantic_ai._cancel')
    except ImportError:  # pragma: no cover - 1.107
        return None
    base: type[Any] = cancel_module.RunCancellation

    class _RefusingCancellation(base):
        def __init__(self, message: str) -> None:
            super().__init__()  # pyright: ignore[reportUnknownMemberType]
            self._refusal = message

        def cancel(self, *args: Any, **kwargs: Any) -> None:
            raise exceptions.UserError(self._refusal)

    return _RefusingCancellation


def _refusing_cancellation(message: str) -> Any:
    cls = _refusing_cancellation_class()
    return None if cls is None else cls(message)


def run_has_cancellation_token(ctx: RunContext[Any]) -> bool:
    """Whether the run was given a `cancellation_token=` (pydantic-ai 2.x; always `False` on 1.107).

    pydantic-ai attaches the token to the run's cancellation controller before the capabilities' run hooks. Read
    through `__dict__`: a rebuilt run context may refuse attribute access to fields it does not carry.
    """
    cancellation = ctx.__dict__.get('_cancellation')
    return bool(getattr(cancellation, 'has_token', False))


@functools.cache
def _field_names(cls: type[Any]) -> frozenset[str]:
    # Once per run-context class: `dataclasses.fields` walks the class's ~30 fields, and a durable unit asks on every
    # model request and tool call (measured with `benchmarks.profile_engines`).
    return frozenset(field.name for field in dataclasses.fields(cls))


def guard_unit_run_context(ctx: RunContext[Any], *, enqueue_refusal: str, cancel_refusal: str) -> RunContext[Any]:
    """A copy of a run context for user code inside a durable unit, whose `enqueue()` and (2.x) `cancel()` refuse.

    A unit's recorded result is what a recovered or retried run gets back, without running the unit again: a message
    enqueued or a cancellation asked for inside it would happen on the first attempt only.

    Args:
        ctx: The run's context.
        enqueue_refusal: The `UserError` message of `enqueue()`.
        cancel_refusal: The `UserError` message of `cancel()`.
    """
    changes: dict[str, Any] = {}
    fields = _field_names(type(ctx))
    if 'pending_messages' in fields:
        changes['pending_messages'] = _RefusingQueue(enqueue_refusal)
    if '_cancellation' in fields:
        cancellation = _refusing_cancellation(cancel_refusal)
        if cancellation is not None:
            changes['_cancellation'] = cancellation
    return dataclasses.replace(ctx, **changes) if changes else ctx


# --- pydantic-ai 2.68's workspaces (`RunContext.workspace`, chosen by capabilities such as `LocalWorkspace`) ----------

HAS_WORKSPACES: bool = hasattr(AbstractCapability, '_prepare_workspace')
"""Whether the installed pydantic-ai has workspaces (2.68+): a run's selected workspace passes through every
capability's private `_prepare_workspace` hook, where a durability capability can wrap it."""


def workspace_wrapper_base() -> type[Any]:
    """pydantic-ai's `WrapperWorkspace` (2.68+), the base of a workspace that composes the run's workspace.

    Raises:
        ImportError: The installed pydantic-ai has no workspaces (1.107, 2.x before 2.68).
    """
    return importlib.import_module('pydantic_ai.workspaces').WrapperWorkspace


# --- pydantic-ai 2.78's external events (`pydantic_ai.external_events`, a public module; absent before 2.78) --------

try:
    _external_events: Any = importlib.import_module('pydantic_ai.external_events')
except ImportError:  # 1.107 and 2.x before 2.78
    _external_events = None

HAS_EXTERNAL_EVENTS: bool = _external_events is not None
"""Whether the installed pydantic-ai has `wait_for_external_event` (2.78+)."""


def external_event_error(reason: str) -> Exception:
    """pydantic-ai's `ExternalEventError(reason)`: what a wait raises when it times out or its token is failed.

    Only called where external events exist (a wait is running), so the class is there.
    """
    assert _external_events is not None
    return _external_events.ExternalEventError(reason)


@contextlib.contextmanager
def waiting_for_external_events(wait: Any) -> Generator[None]:
    """Make `wait_for_external_event` wait through `wait(name, ask=..., timeout=...)` inside (no-op before 2.78).

    pydantic-ai 2.78 lets a durable engine supply the wait of a run (`external_event_scope` with an
    `ExternalEventWaiter`); the engine's `wait` is adapted to that class here, so the engine packages never name it.

    Args:
        wait: An async callable with the signature of `ExternalEventWaiter.wait`.
    """
    if _external_events is None:
        yield
        return
    with _external_events.external_event_scope(_engine_waiter_class()(wait)):
        yield


@functools.cache
def _engine_waiter_class() -> type[Any]:
    # Built once (every durable run installs a waiter): a subclass of 2.78's `ExternalEventWaiter` calling `wait`.
    assert _external_events is not None
    base: type[Any] = _external_events.ExternalEventWaiter

    class _EngineWaiter(base):
        def __init__(self, engine_wait: Any) -> None:
            self._engine_wait = engine_wait

        async def wait(self, name: str, *, ask: Any, timeout: Any) -> Any:
            return await self._engine_wait(name, ask=ask, timeout=timeout)

    return _EngineWaiter


def operation_ask_dispatch(ask: Any) -> Any | None:
    """The call that runs a wait's `ask` as its capability's durable operation, if it is one (else `None`).

    pydantic-ai 2.78 hands a wait an `ask` that is a capability's `@durable_operation` (the handler of
    `HandleDeferredToolCalls(id=...)`) wrapped in its `_OperationAsk`: called, it runs the operation inline (inside the
    wait's own unit); its `dispatch`, called from workflow code, sends it through the run's dispatcher to the
    operation's own unit. Before 2.78, and for any other `ask`, there is none.

    Args:
        ask: The `ask` pydantic-ai handed to the engine's wait.
    """
    operation_ask: type[Any] | None = getattr(_external_events, '_OperationAsk', None)
    if operation_ask is None or not isinstance(ask, operation_ask):
        return None
    return ask.dispatch


@contextlib.contextmanager
def refusing_external_events(message: str) -> Generator[None]:
    """Make `pydantic_ai.external_events.wait_for_external_event` raise `message` (a `UserError`) inside.

    Without a waiter of the engine's, a wait runs in process, which a durable run would neither record nor survive (a
    replay would ask again, a restart would lose the wait): the durable runs of an engine that records no such waits
    refuse them. Feature-detected: on releases without external events this does nothing.

    Args:
        message: Why the wait is refused and what to do instead.
    """

    async def refuse(name: str, *, ask: Any, timeout: Any) -> Any:
        raise exceptions.UserError(message)

    with waiting_for_external_events(refuse):
        yield


# pydantic-ai 2.78 stamps an `origin` (`ModelResponseOrigin`) on an agent run's model-stream events. Told by the class
# and the private getter themselves, not by the version: 1.107 and 2.x releases before 2.78 have neither.
_RESPONSE_ORIGIN_CLASS: type[Any] | None = getattr(_messages, 'ModelResponseOrigin', None)

HAS_RESPONSE_ORIGIN: bool = _RESPONSE_ORIGIN_CLASS is not None
"""Whether the installed pydantic-ai stamps an `origin` on model-stream events (2.78+)."""

COUNTS_TOKENS_BEFORE_REQUEST_HOOKS: bool = not hasattr(
    importlib.import_module('pydantic_ai._agent_graph').ModelRequestNode, '_prepare_attempt'
)
"""Whether the installed pydantic-ai counts a request's tokens (`count_tokens_before_request`) before the
`wrap_model_request` hooks and outside the run context (1.107, 2.33); later 2.x releases (2.68, 2.78) count inside
those hooks, with the model they installed and the run context set. Told by the method that later releases count in
(`ModelRequestNode._prepare_attempt`), only checked for presence."""


STREAM_STEP_COUNTED_BEFORE_MODEL_OPENS: bool = (
    importlib.util.find_spec('pydantic_ai.models._continuation') is not None
    and importlib.util.find_spec('pydantic_ai._usage_attribution') is None
)
"""Whether the installed pydantic-ai counts a streamed request step in `usage.requests` before the model's
`request_stream` is entered (2.33): its agent graph counts when it opens the step's stream, and its continuation streams
(`models._continuation`) enter the model only when the first event is read. 1.107 enters the model first; 2.68 and
2.78 count when the response is committed (`_usage_attribution.record_request`). Told by those two modules."""


@contextlib.contextmanager
def stream_step_uncounted(ctx: RunContext[Any]) -> Generator[None]:
    """Inside a durable model's `request_stream`, before its unit: the run's usage without the step not yet made.

    A decision taken there (a hand-over that carries `ctx.usage` to the next run) then sees the requests actually made,
    as on every other release, instead of one more on 2.33 (see `STREAM_STEP_COUNTED_BEFORE_MODEL_OPENS`).
    """
    if not STREAM_STEP_COUNTED_BEFORE_MODEL_OPENS or ctx.usage.requests == 0:
        yield
        return
    ctx.usage.requests -= 1
    try:
        yield
    finally:
        ctx.usage.requests += 1


def current_request_attempt() -> int:
    """The attempt at the request step the model is being called for (`ModelRequestContext.attempt`), `1` where unknown.

    pydantic-ai 2.78's agent graph sets it around calling a model, for durable models that carry it into their unit;
    earlier releases have no such attempt (every request step is attempt `1`).
    """
    getter: Any = getattr(_run_context, 'get_current_request_attempt', None)
    return 1 if getter is None else int(getter())


def response_origin(run_context: RunContext[Any] | None, *, attempt: int, execution_attempt: int) -> Any | None:
    """The `ModelResponseOrigin` of the events a durable model unit streams, or `None`.

    `None` where pydantic-ai has no origin (before 2.78) or the unit has no run id to name (a run context without
    one, or none at all): the events then go out unstamped, as a model's own stream outside a run does.

    Args:
        run_context: The run context the unit got.
        attempt: The attempt at the request step (`ModelRequestContext.attempt`), as the workflow side saw it.
        execution_attempt: Which execution of the unit this is (the engine's attempt), starting at 1.
    """
    if _RESPONSE_ORIGIN_CLASS is None or run_context is None or run_context.run_id is None:
        return None
    return _RESPONSE_ORIGIN_CLASS(
        run_id=run_context.run_id,
        run_step=run_context.run_step,
        attempt=attempt,
        execution_attempt=execution_attempt,
    )


def with_response_origin(event: Any, origin: Any | None) -> Any:
    """`event` with `origin` set (a copy), or `event` itself when there is no origin or the event has no such field.

    An event that already carries an origin keeps it: a response replayed from a recording keeps the origin it was
    recorded with.
    """
    if origin is None or not hasattr(event, 'origin') or event.origin is not None:
        return event
    return dataclasses.replace(event, origin=origin)


# --- capability operations (`pydantic_ai.capabilities.durable_operation`, 2.68+) -----------------------------------

_DURABLE_OPERATION_MARKER = '__pydantic_ai_durable_operation__'

HAS_DURABLE_OPERATIONS: bool = '_durable_operations' in {f.name for f in dataclasses.fields(RunContext)} and hasattr(
    AbstractCapability, '_prepare_run_context'
)
"""Whether the installed pydantic-ai has capability operations (`@durable_operation`, 2.68+): a run then asks each
capability to install its dispatchers (`_prepare_run_context`) and the decorator calls the one installed for it."""


@dataclasses.dataclass(frozen=True)
class DurableOperationMarker:
    """What `@durable_operation(name)` records on a method (read from pydantic-ai's own marker).

    Attributes:
        name: The operation's persisted name.
        function: The undecorated method (calling it never dispatches again).
        base_hook: Whether the marker is on a base hook whose overrides inherit it.
    """

    name: str
    function: Any
    base_hook: bool = False


def durable_operation_marker(obj: object) -> DurableOperationMarker | None:
    """The durable-operation marker pydantic-ai's decorator put on `obj`, or `None`."""
    marker = getattr(obj, _DURABLE_OPERATION_MARKER, None)
    name = getattr(marker, 'name', None)
    if marker is None or not isinstance(name, str):
        return None
    return DurableOperationMarker(
        name=name, function=getattr(marker, 'function', None), base_hook=bool(getattr(marker, 'base_hook', False))
    )


def durable_operations_need_id(capability: AbstractCapability[Any]) -> bool:
    """Whether an id-less `capability` with durable operations is an error (`False`: it binds none, by its own rule)."""
    return bool(getattr(capability, '_durable_operations_need_id', True))


def run_durable_operations(ctx: RunContext[Any]) -> dict[tuple[str, str], Any] | None:
    """The run's dispatchers of durable operations by `(capability id, operation)`, which the decorator reads.

    The run shares one mapping with every context it builds, so it is filled in place; `None` where the installed
    pydantic-ai has none (1.107, 2.33).
    """
    if not HAS_DURABLE_OPERATIONS:
        return None
    operations = cast('dict[tuple[str, str], Any] | None', getattr(ctx, '_durable_operations', None))
    if operations is None:
        operations = {}
        object.__setattr__(ctx, '_durable_operations', operations)
    return operations


def run_capabilities_by_id(ctx: RunContext[Any]) -> Mapping[str, AbstractCapability[Any]]:
    """The run's capabilities by id (its `for_run` replacements), as pydantic-ai installed them before `wrap_run`."""
    found = getattr(ctx, '_run_capabilities_by_id', None)
    return cast('Mapping[str, AbstractCapability[Any]]', found or {})
