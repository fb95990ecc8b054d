"""The digest of a key's text, at a cost that follows the messages new since the run's previous keys.

Every model request and tool call of an agent run holds the whole conversation so far, so hashing each key's text
afresh (and walking each message to splice its kept text in) costs the length of the conversation per key, and its
square per run. Yet the keys of one run share long prefixes: a tool call's key is its run context's fields up to the
messages (the same for every call of that tool), then the conversation, which only grows. So the digest is computed
incrementally, with the bytes SHA-256 would see unchanged (the key is the same as hashing the whole text):

- A `_Chain` holds the messages of the conversations keyed so far, in order: each one's JSON text (appended to one
  buffer), and a shallow copy of its fields and of its parts' fields, which proves it unchanged since.
- For the text before a key's first conversation (its *prefix*), the chain keeps the hasher state after the prefix
  and the messages of the longest conversation keyed with it (`hashlib`'s `copy()`). The next key with that prefix
  checks which of its messages are the chain's, unchanged, copies that state, and hashes only the rest.
- A conversation found later in the same key (a model request's run context holds it again) follows text that no
  earlier key shares, so it is hashed again, but from the chain's buffer in one call: no message is walked.

The checks stay linear in the conversation, but they run in C (`map`, list and dict comparisons): about 0.1 µs a
message, against microseconds to walk and splice it in Python. A message changed in place since it was chained (a
field set to another value, a part added, removed or replaced: what `_key_text.py` sees) ends the match there: it
and the messages after it are serialized and hashed again. The chains belong to one agent run and go with it.
"""

from __future__ import annotations

import hashlib
import threading
from itertools import chain as chained
from operator import attrgetter
from typing import Any, cast

from ._key_pieces import Fragment, History, Piece, key_pieces

__all__ = ('KeyDigests',)

_MAX_CHAINS = 8
"""Chains kept per agent run: one per conversation (a history processor's window starts a new one every turn)."""

_MAX_PREFIXES = 64
"""Hasher states kept per chain: one per distinct prefix (each tool's calls share one)."""

_fields = attrgetter('__dict__')
_parts = attrgetter('parts')


class _Unchainable(Exception):
    """A message whose fields are not in instance dicts: its key is hashed from its whole text."""


def _sha256(data: bytes = b'') -> Any:
    return hashlib.sha256(data)


class _Chain:
    """Messages keyed so far in one order, with their text, what proves them unchanged, and hasher states."""

    __slots__ = ('ends', 'fields', 'ids', 'messages', 'part_ends', 'part_fields', 'parts', 'states', 'text')

    def __init__(self) -> None:
        # The messages are kept: while the chain lives, their ids cannot be reused by other objects.
        self.messages: list[object] = []
        self.ids: list[int] = []
        self.fields: list[dict[str, Any]] = []
        self.parts: list[list[Any]] = []
        self.part_fields: list[dict[str, Any]] = []
        self.part_ends: list[int] = []  # len(part_fields) after each message
        self.text = bytearray()  # the messages' texts joined by ','
        self.ends: list[int] = []  # len(text) after each message
        # prefix -> (n, the hasher after prefix + the text of the first n messages)
        self.states: dict[str, tuple[int, Any]] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def shared(self, ids: list[int]) -> int:
        """How many of the messages `ids` names, from the first, are this chain's (by identity only)."""
        count = min(len(ids), len(self.ids))
        if ids[:count] != self.ids[:count]:
            count = next(index for index in range(count) if ids[index] != self.ids[index])
        return count

    def unchanged(self, messages: list[object], count: int) -> int:
        """How many of the first `count` messages (this chain's) are unchanged since they were chained."""
        if count and not self._unchanged(messages, 0, count):
            count = next(index for index in range(count) if not self._unchanged(messages, index, index + 1))
        return count

    def _unchanged(self, messages: list[object], start: int, stop: int) -> bool:
        # Comparisons by identity, then equality (an equal value has the same text), all in C. The whole chain is
        # compared without slicing it (the common case: the conversation only grew since the previous key).
        whole = start == 0 and stop == len(self.ids)
        try:
            window = messages[start:stop]
            if list(map(_fields, window)) != (self.fields if whole else self.fields[start:stop]):
                return False
            parts = list(map(_parts, window))
            if parts != (self.parts if whole else self.parts[start:stop]):
                return False
            first = self.part_ends[start - 1] if start else 0
            saved = self.part_fields if whole else self.part_fields[first : self.part_ends[stop - 1]]
            return list(map(_fields, chained.from_iterable(cast(list[list[Any]], parts)))) == saved
        except (AttributeError, TypeError):
            return False

    def extend(self, messages: list[object], resolve: Any) -> None:
        """Append messages, their text resolved (kept or serialized now) and copies of their fields taken."""
        for message in messages:
            fragment: Fragment = resolve(message)
            try:
                fields = dict(_fields(message))
                parts = _parts(message)[:]  # a copy of the same type (a list, or a tuple given by your code)
                part_fields = [dict(_fields(part)) for part in parts]
            except (AttributeError, TypeError) as error:
                raise _Unchainable from error
            self.messages.append(message)
            self.ids.append(id(message))
            self.fields.append(fields)
            self.parts.append(parts)
            self.part_fields.extend(part_fields)
            self.part_ends.append(len(self.part_fields))
            if self.ends:
                self.text += b','
            self.text += fragment.text.encode()
            self.ends.append(len(self.text))

    def truncate(self, count: int) -> None:
        """Keep the first `count` messages (and the states that hashed no more than them)."""
        del self.messages[count:], self.ids[count:], self.fields[count:], self.parts[count:]
        del self.part_fields[self.part_ends[count - 1] if count else 0 :], self.part_ends[count:]
        del self.text[self.ends[count - 1] if count else 0 :], self.ends[count:]
        self.states = {prefix: state for prefix, state in self.states.items() if state[0] <= count}

    def fork(self, count: int) -> _Chain:
        """A new chain of the first `count` messages (this one stays for the conversation it was built for)."""
        fork = _Chain()
        fork.messages, fork.ids, fork.fields = self.messages[:count], self.ids[:count], self.fields[:count]
        fork.parts, fork.part_ends = self.parts[:count], self.part_ends[:count]
        fork.part_fields = self.part_fields[: self.part_ends[count - 1]]
        fork.ends = self.ends[:count]
        fork.text = self.text[: self.ends[count - 1]]
        # A state is never updated in place (it is copied first), so the two chains can share it.
        fork.states = {prefix: state for prefix, state in self.states.items() if state[0] <= count}
        return fork

    def hash_into(self, hasher: Any, start: int, stop: int) -> None:
        """Hash the text of messages `start` to `stop` (the ',' before `start` included)."""
        if stop > start:
            with memoryview(self.text) as view:
                hasher.update(view[self.ends[start - 1] if start else 0 : self.ends[stop - 1]])


class KeyDigests:
    """The chains of one agent run, and the digests of its keys computed with them."""

    __slots__ = ('_busy', '_chains', '_lock')

    def __init__(self) -> None:
        self._chains: list[_Chain] = []  # the most recently used last
        # A chain is changed in several steps: keys computed in threads at once (sync tasks on a thread pool task
        # runner share the run's context) must not see one half changed. A key computed while another is (a
        # `cache_material()` in a message that keys a value) is hashed whole, leaving the chains alone.
        self._lock = threading.RLock()
        self._busy = False

    def digest(self, data: Any) -> str:
        """The SHA-256 hex digest of the key text of canonical data (`key_text(data)`), reusing earlier keys' work.

        Args:
            data: Canonical data, with `Fragment`s and `History`s.

        Returns:
            The hex digest.
        """
        pieces = key_pieces(data)
        with self._lock:
            if not self._busy:
                self._busy = True
                try:
                    return self._digest(pieces)
                except _Unchainable:
                    pass
                finally:
                    self._busy = False
            return _sha256(''.join([_text(piece) for piece in pieces]).encode()).hexdigest()

    def _digest(self, pieces: list[Piece]) -> str:
        first = next((index for index, piece in enumerate(pieces) if isinstance(piece, History)), None)
        if first is None:
            return _sha256(''.join([_text(piece) for piece in pieces]).encode()).hexdigest()
        history = pieces[first]
        assert isinstance(history, History)
        prefix = ''.join([_text(piece) for piece in pieces[:first]]) + '['
        chain, ids = self._chain_for(history)
        count = len(ids)
        state = chain.states.get(prefix)
        if state is not None and state[0] <= count:
            start, hasher = state[0], state[1].copy()
        else:
            start, hasher = 0, _sha256(prefix.encode())
        chain.hash_into(hasher, start, count)
        if state is None or state[0] <= count:
            if state is None and len(chain.states) >= _MAX_PREFIXES:
                del chain.states[next(iter(chain.states))]
            chain.states[prefix] = (count, hasher.copy())
        hasher.update(b']')
        for piece in pieces[first + 1 :]:
            if isinstance(piece, History):
                # The same messages again (a model request's run context): hashed from the buffer just checked.
                again = list(map(id, piece.messages))
                if again == ids and chain.ids[:count] == ids:
                    hasher.update(b'[')
                    chain.hash_into(hasher, 0, count)
                    hasher.update(b']')
                    continue
                other, again = self._chain_for(piece)
                hasher.update(b'[')
                other.hash_into(hasher, 0, len(again))
                hasher.update(b']')
            else:
                hasher.update(_text(piece).encode())
        return hasher.hexdigest()

    def _chain_for(self, history: History) -> tuple[_Chain, list[int]]:
        """The chain whose first messages are the history's, extended with the rest (the history's ids with it)."""
        messages = history.messages
        ids = list(map(id, messages))
        best: _Chain | None = None
        count = 0
        # The chains are compared by identity first (cheap) and only the best one is checked for changes: the check
        # is the part of a key's cost that follows the whole conversation, so it runs once per history, not per chain.
        for candidate in self._chains:
            if candidate.ids and candidate.ids[0] == ids[0]:
                shared = candidate.shared(ids)
                if best is None or shared > count:
                    best, count = candidate, shared
        if best is not None:
            count = best.unchanged(messages, count)
        if best is None or count == 0:
            best, count = _Chain(), 0
            self._chains.append(best)
        elif count < len(best) and count < len(ids):
            if ids[count] != best.ids[count] and len(self._chains) < _MAX_CHAINS:
                # Another conversation from here (not a message changed): the chain stays for its own.
                best = best.fork(count)
                self._chains.append(best)
            else:
                best.truncate(count)
        self._chains.remove(best)
        self._chains.append(best)
        if len(self._chains) > _MAX_CHAINS:
            del self._chains[0]
        if count < len(ids):
            best.extend(messages[count:], history.resolve)
        return best, ids


def _text(piece: Piece) -> str:
    return piece if isinstance(piece, str) else piece.text
