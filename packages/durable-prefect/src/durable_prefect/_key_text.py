"""The text a cache key hashes, and the per-run memory that makes it cost the new messages only.

A task's key hashes the canonical JSON of its inputs (see `_canonical.py`), and every model request and tool call
holds the whole conversation so far. Serialized afresh for each task, a run of n messages would cost n² message
serializations. Instead, within one agent run, each message object is serialized once: its JSON text is kept (by the
message's identity) and spliced into the text of every later key that holds it. The text is byte for byte what
serializing it afresh gives, so keys do not change: a flow run recorded before this memory existed resumes from its
cache. The digest of that text is computed with the run's `KeyDigests` (`_key_digest.py`), which hashes only what
the run's earlier keys did not already hash.

A message that changed since its text was kept must not be keyed by that text. pydantic-ai does change the newest
request in place (it sets its `instructions` when it builds the request, after an MCP tool listing may have keyed
it), so each kept text is checked against a snapshot of the message's fields and of its parts' fields, by identity
and then by equality: a field set to another value, a part added, removed or replaced, is seen, and the message is
serialized again. A list or dict *inside* a part changed in place is not seen: pydantic-ai does not do that, and
code that edits a message during a run should replace the part (`dataclasses.replace`) instead.
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from durable_kernel import scoped_context_value

from ._key_digest import KeyDigests
from ._key_pieces import Fragment, History, key_text

__all__ = ('Fragment', 'History', 'MessageKeyCache', 'current_message_key_cache', 'key_text', 'message_key_cache')


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

    __slots__ = ('_texts', 'digests')

    def __init__(self) -> None:
        # The message itself is kept with its text: while this cache lives, its id cannot be reused by another object.
        self._texts: dict[int, tuple[object, tuple[Any, ...], Fragment]] = {}
        self.digests = KeyDigests()
        """The digests of the run's keys, each hashing the messages new since the run's earlier keys."""

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
