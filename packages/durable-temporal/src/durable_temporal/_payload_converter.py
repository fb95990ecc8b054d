"""The payload converter that pydantic-ai messages, outputs and run contexts cross the activity boundary with."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter, PydanticPayloadConverter, ToJsonOptions
from temporalio.converter import CompositePayloadConverter, DefaultPayloadConverter, JSONPlainPayloadConverter

__all__ = ('PydanticAIJSONPayloadConverter', 'PydanticAIPayloadConverter')

JOURNAL_VALIDATION_CONTEXT: Mapping[str, Any] = {'pydantic_ai': {'rebuild_unrecorded_tool_files': True}}
"""Validation context pydantic-ai documents for decoding its own durable journal.

Tool results written by an older pydantic-ai carry no record of their files; with this context they load the way the
worker that wrote them saw them, so a run recorded before an upgrade keeps its files when it is replayed after it.
"""


@functools.lru_cache(maxsize=512)
def _cached_type_adapter(hint: Any) -> TypeAdapter[Any]:
    return TypeAdapter(hint)


def _type_adapter(hint: Any) -> TypeAdapter[Any]:
    """A `TypeAdapter` for `hint`, shared by every converter instance in the process.

    Temporal builds a new payload converter for every workflow instance (and copies for every activity context), so
    a per-instance cache would rebuild the adapter of `ModelResponse` on each workflow run. That costs milliseconds
    normally and, on a loaded machine, more than the 2 s that Temporal's deadlock detector allows a workflow
    activation. This module passes through the sandbox, so the cache is shared; its bound keeps types of sandboxed
    user modules (a new class object per workflow run) from piling up.
    """
    try:
        return _cached_type_adapter(hint)
    except TypeError:  # an unhashable hint (e.g. an `Annotated` with a dict): build without caching
        return TypeAdapter(hint)


class PydanticAIJSONPayloadConverter(PydanticJSONPlainPayloadConverter):
    """`json/plain` converter that validates payloads with pydantic, in pydantic-ai's journal context."""

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        """Decode `payload` as `type_hint` (any JSON value when `None`)."""
        return _type_adapter(Any if type_hint is None else type_hint).validate_json(
            payload.data, context=dict(JOURNAL_VALIDATION_CONTEXT)
        )


class PydanticAIPayloadConverter(PydanticPayloadConverter):
    """Temporal's pydantic payload converter, decoding JSON in pydantic-ai's journal context.

    It is a `PydanticPayloadConverter` (so code checking for one accepts it) whose `json/plain` member is
    `PydanticAIJSONPayloadConverter`; the other encodings
    (null, binary, protobuf) are Temporal's defaults.
    """

    def __init__(self, to_json_options: ToJsonOptions | None = None) -> None:
        json_converter = PydanticAIJSONPayloadConverter(to_json_options)
        # Skip `PydanticPayloadConverter.__init__`: it would build its own JSON member that we replace anyway.
        CompositePayloadConverter.__init__(
            self,
            *(
                json_converter if isinstance(converter, JSONPlainPayloadConverter) else converter
                for converter in DefaultPayloadConverter.default_encoding_payload_converters
            ),
        )
