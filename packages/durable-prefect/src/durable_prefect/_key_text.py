"""The text a cache key hashes, and the per-run memory that makes it cost the new messages only.

A task's key hashes the canonical JSON of its inputs (see `_canonical.py`), and every model request and tool call
holds the whole conversation so far. Serialized afresh for each task, a run of n messages would cost n² message
serializations. Instead, within one agent run, each message object is serialized once: its JSON text is kept (by the
message's identity) and spliced into the text of every later key that holds it. The text is byte for byte what
serializing it afresh gives, so keys do not change: a flow run recorded before this memory existed resumes from its
cache.

A message that changed since its text was kept must not be keyed by that text. pydantic-ai does change the newest
request in place (it sets its `instructions` when it builds the request, after an MCP tool listing may have keyed
it), so each kept text is checked against a snapshot of the message's fields and of its parts' fields, by identity
and then by equality: a field set to another value, a part added, removed or replaced, is seen, and the message is
serialized again. A list or dict *inside* a part changed in place is not seen: pydantic-ai does not do that, and
code that edits a message during a run should replace the part (`dataclasses.replace`) instead.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from contextlib import contextmanager
from contextvars import ContextVar
from json.encoder import encode_basestring_ascii
from typing import Any, cast

from durable_kernel import scoped_context_value

__all__ = ('Fragment', 'MessageKeyCache', 'current_message_key_cache', 'key_text', 'message_key_cache')


class Fragment:
    """The JSON text of a canonical value, spliced as is into the text of a key."""

    __slots__ = ('text',)

    def __init__(self, text: str) -> None:
        self.text = text


class _HoldsFragment(Exception):
    """Raised by the JSON encoder's fallback: this container holds a fragment, encode it piece by piece."""


def _refuse(value: Any) -> Any:
    if isinstance(value, Fragment):
        raise _HoldsFragment
    raise TypeError(f'{type(value).__name__} is not canonical data')


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(',', ':'), default=_refuse)


def key_text(value: Any) -> str:
    """The JSON text of canonical data, fragments spliced in: what `json.dumps(sort_keys=True)` gives without them.

    Args:
        value: Canonical data (JSON types and `Fragment`s).

    Returns:
        Compact JSON with sorted keys.
    """
    if isinstance(value, Fragment):
        return value.text
    if not isinstance(value, (dict, list)):
        return _dumps(value)
    pieces: list[str] = []
    _encode(cast(Any, value), pieces)
    return ''.join(pieces)


def _encode(value: Any, pieces: list[str]) -> None:
    if isinstance(value, Fragment):
        pieces.append(value.text)
        return
    if isinstance(value, (dict, list)):
        # The C encoder does the work unless the container holds a fragment; then only the path to each fragment is
        # encoded here, each sibling on it by the C encoder again.
        try:
            pieces.append(_dumps(value))
            return
        except _HoldsFragment:
            pass
        if isinstance(value, dict):
            mapping = cast(dict[str, Any], value)
            pieces.append('{')
            for index, key in enumerate(sorted(mapping)):
                pieces.append(',' if index else '')
                pieces.append(encode_basestring_ascii(key))
                pieces.append(':')
                _encode(mapping[key], pieces)
            pieces.append('}')
        else:
            pieces.append('[')
            for index, item in enumerate(cast(list[Any], value)):
                if index:
                    pieces.append(',')
                _encode(item, pieces)
            pieces.append(']')
        return
    pieces.append(_dumps(value))


def _snapshot(message: Any) -> tuple[Any, ...] | None:
    """A message's field values, its parts and their field values, or `None` when they are not in instance dicts."""
    try:
        state: dict[str, Any] = message.__dict__
        parts: list[Any] = state['parts']
        return (*state.values(), len(parts), *parts, *[tuple(part.__dict__.values()) for part in parts])
    except (AttributeError, KeyError, TypeError):
        return None


class MessageKeyCache:
    """The JSON text of each message seen in one agent run's keys, by message identity, checked against a snapshot."""

    __slots__ = ('_texts',)

    def __init__(self) -> None:
        # The message itself is kept with its text: while this cache lives, its id cannot be reused by another object.
        self._texts: dict[int, tuple[object, tuple[Any, ...], Fragment]] = {}

    def get(self, message: object) -> Fragment | None:
        """The text kept for this message, if it has not changed since.

        Args:
            message: A pydantic-ai message.

        Returns:
            Its text, or `None` when it must be serialized (again).
        """
        entry = self._texts.get(id(message))
        if entry is None or entry[0] is not message:
            return None
        snapshot = _snapshot(message)
        if snapshot is None or snapshot != entry[1]:
            return None
        return entry[2]

    def put(self, message: object, fragment: Fragment) -> None:
        """Keep the text of a message just serialized (unless its fields cannot be snapshot).

        Args:
            message: A pydantic-ai message.
            fragment: Its JSON text.
        """
        snapshot = _snapshot(message)
        if snapshot is not None:
            self._texts[id(message)] = (message, snapshot, fragment)


_current: ContextVar[MessageKeyCache | None] = ContextVar('durable_prefect_message_key_cache', default=None)


def current_message_key_cache() -> MessageKeyCache | None:
    """The cache of the agent run being keyed, if any (outside an agent run every key serializes everything)."""
    return _current.get()


@contextmanager
def message_key_cache() -> Generator[None]:
    """One agent run: its tasks' keys share one `MessageKeyCache`, dropped when the run ends."""
    with scoped_context_value(_current, MessageKeyCache()):
        yield
