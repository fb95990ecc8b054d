"""The text a cache key hashes, as pieces: plain JSON text, and the messages spliced into it.

A key hashes the canonical JSON of a task's inputs (`_canonical.py`). Inside an agent run, each message's JSON text
is kept (`_key_text.py`) and the conversation's list of messages is left as one piece (`History`), so that the digest
(`_key_digest.py`) can start from the hasher state it had after the same messages in an earlier key. Joined, the
pieces are byte for byte the JSON `json.dumps(sort_keys=True, separators=(',', ':'))` gives: keys do not change.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import encode_basestring_ascii
from typing import Any, cast

__all__ = ('Fragment', 'History', 'Piece', 'key_pieces', 'key_text')


class Fragment:
    """The JSON text of a canonical value, spliced as is into the text of a key."""

    __slots__ = ('text',)

    def __init__(self, text: str) -> None:
        self.text = text


class History:
    """A list of pydantic-ai messages (a conversation): its text is `[`, their texts joined by `,`, and `]`."""

    __slots__ = ('messages', 'resolve')

    def __init__(self, messages: list[object], resolve: Callable[[object], Fragment]) -> None:
        """Leave a list of messages as one piece.

        Args:
            messages: The messages (a copy of the list: the key is of the list as it was when it was visited).
            resolve: The text of one message (kept for the agent run, or serialized now).
        """
        self.messages = messages
        self.resolve = resolve

    @property
    def text(self) -> str:
        """The JSON text of the list (each message's text resolved now)."""
        return '[' + ','.join([self.resolve(message).text for message in self.messages]) + ']'


Piece = str | Fragment | History
"""A piece of a key's text: JSON text, or a value whose text is spliced in."""


class _HoldsFragment(Exception):
    """Raised by the JSON encoder's fallback: this container holds a fragment, encode it piece by piece."""


def _refuse(value: Any) -> Any:
    if isinstance(value, (Fragment, History)):
        raise _HoldsFragment
    raise TypeError(f'{type(value).__name__} is not canonical data')


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(',', ':'), default=_refuse)


def key_text(value: Any) -> str:
    """The JSON text of canonical data, fragments spliced in: what `json.dumps(sort_keys=True)` gives without them.

    Args:
        value: Canonical data (JSON types, `Fragment`s and `History`s).

    Returns:
        Compact JSON with sorted keys.
    """
    return ''.join([piece if isinstance(piece, str) else piece.text for piece in key_pieces(value)])


def key_pieces(value: Any) -> list[Piece]:
    """The JSON text of canonical data as pieces: text (adjacent text joined) and the fragments and histories in it.

    Args:
        value: Canonical data (JSON types, `Fragment`s and `History`s).

    Returns:
        The pieces, in order.
    """
    pieces: list[Piece] = []
    _encode(value, pieces)
    merged: list[Piece] = []
    text: list[str] = []
    for piece in pieces:
        if isinstance(piece, str):
            text.append(piece)
            continue
        if text:
            merged.append(''.join(text))
            text = []
        merged.append(piece)
    if text:
        merged.append(''.join(text))
    return merged


def _encode(value: Any, pieces: list[Piece]) -> None:
    if isinstance(value, (Fragment, History)):
        pieces.append(value)
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
