"""The one place that knows which pydantic-ai line is installed (1.107.x or 2.x) and how the two differ.

Every engine package asks this module instead of writing its own `try/except ImportError`: a scattered fallback once
hid that pydantic-ai 2.x had removed `MCPServer`, and the MCP toolsets of a 2.x user then ran in workflow code,
outside any durable unit, without an error. A new pydantic-ai release should break this file, not ten.

Private pydantic-ai APIs we still use, and why (each is imported from here or named in the module that uses it):

| private API | used for | lines |
| --- | --- | --- |
| `pydantic_ai._utils.UNSET` / `Unset` / `is_set` | `override()`'s "not given" sentinel, the same object as the agent's | 1.107, 2.x |
| `pydantic_ai._utils.run_until_complete` / `get_event_loop` | `run_sync` on the loop pydantic-ai itself would use | 1.107, 2.x |
| `pydantic_ai._instructions.AgentInstructions` | the `instructions=` type of the entry points | 1.107, 2.x |
| `pydantic_ai._run_context.set_current_run_context` | a tool's run context inside an activity/step/task | 1.107, 2.x |
| `pydantic_ai.toolsets._dynamic.DynamicToolset` | recognising `@agent.toolset` toolsets, which have no public class | 1.107, 2.x |
| `RunContext` fields starting with `_` | given their defaults in a rebuilt run context (pydantic-ai reads them) | 2.x |
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import inspect
import re
from collections.abc import Sequence
from typing import Any

from pydantic_ai import messages as _messages
from pydantic_ai import models
from pydantic_ai.agent import Agent
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.toolsets import AbstractToolset

__all__ = (
    'CAPABILITY_STATE_FIELD',
    'field_default',
    'translate_run_context_fields',
    'PYDANTIC_AI_2',
    'PYDANTIC_AI_VERSION',
    'RUN_KEYWORDS_2',
    'entry_point_parameters',
    'fastmcp_toolset_class',
    'mcp_server_classes',
    'prepare_messages',
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

RUN_KEYWORDS_2: tuple[str, ...] = ('conversation', 'run_id', 'cancellation_token', 'timeout', 'workspace')
"""Keyword arguments of the run entry points that pydantic-ai 2.x added: engines carry each into the durable run or
refuse it with a `UserError`, never drop it."""


CAPABILITY_STATE_FIELD: str = 'capability_active' if PYDANTIC_AI_2 else 'capability_loaded'
"""The `RunContext` field that tells whether the current capability is in effect: 2.x renamed it (and deprecated the
old name, which then warns on every read)."""

_OTHER_CAPABILITY_STATE_FIELD = 'capability_loaded' if PYDANTIC_AI_2 else 'capability_active'


def translate_run_context_fields(values: dict[str, Any]) -> dict[str, Any]:
    """Serialized run-context fields with the other line's names renamed to the installed line's.

    A run recorded on 1.107 (`capability_loaded`) and resumed on 2.x (`capability_active`), or back, keeps the value.
    """
    if _OTHER_CAPABILITY_STATE_FIELD not in values:
        return values
    translated = dict(values)
    translated.setdefault(CAPABILITY_STATE_FIELD, translated.pop(_OTHER_CAPABILITY_STATE_FIELD))
    translated.pop(_OTHER_CAPABILITY_STATE_FIELD, None)
    return translated


def field_default(field: dataclasses.Field[Any]) -> Any:
    """The value a dataclass field takes when it is not given (`None` if it has no default)."""
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def mcp_server_classes() -> tuple[type[AbstractToolset[Any]], ...]:
    """The MCP toolset classes of the installed line, most specific first; empty when the `mcp` extra is missing.

    1.107 has `MCPServer` (stdio, SSE, streamable HTTP) and `MCPToolset`; 2.x has only `MCPToolset`.
    """
    try:
        module = importlib.import_module('pydantic_ai.mcp')
    except ImportError:  # the `mcp` extra (and so the `mcp` package) is not installed
        return ()
    names = ('MCPToolset',) if PYDANTIC_AI_2 else ('MCPServer', 'MCPToolset')
    return tuple(getattr(module, name) for name in names if hasattr(module, name))


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


def entry_point_parameters(entry_point: str) -> frozenset[str]:
    """The parameter names of the installed line's plain `Agent.<entry_point>` (without `self` and `**kwargs`)."""
    parameters = inspect.signature(getattr(Agent, entry_point)).parameters.values()
    return frozenset(p.name for p in parameters if p.name != 'self' and p.kind is not inspect.Parameter.VAR_KEYWORD)
