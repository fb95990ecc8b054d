"""Inside an agent run, a key's digest reuses the hashing of earlier keys: it must equal hashing the whole text afresh.

A run is played as a sequence of steps over one conversation (messages appended, changed in place, replaced,
windows of it taken, lists of it keyed inside various structures, twice in one key, beside other values), keying as
it goes; every key is compared with the SHA-256 of the canonical JSON computed from scratch, outside any run.
"""

from __future__ import annotations

import contextvars
import dataclasses
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from durable_prefect import canonical_value, value_key
from durable_prefect._key_text import message_key_cache

words = st.text(alphabet='abcé"\\\n', max_size=6)


def new_message(kind: int, text: str) -> ModelMessage:
    if kind == 0:
        return ModelRequest(parts=[UserPromptPart(text)])
    if kind == 1:
        return ModelResponse(parts=[TextPart(text), ToolCallPart('tool', {'q': text}, tool_call_id='c')])
    if kind == 2:
        return ModelRequest(parts=[ToolReturnPart('tool', {'rows': [text]}, tool_call_id='c')])
    return ModelResponse(parts=[TextPart(text)], model_name=text or None)


def change_in_place(message: ModelMessage, how: int, text: str) -> None:
    """The changes a snapshot sees: a field set, a part replaced, added or removed, a part's field set."""
    parts = cast(list[Any], message.parts)
    if how == 0:
        if isinstance(message, ModelRequest):
            message.instructions = text
        else:
            message.model_name = text
    elif how == 1:
        parts[0] = TextPart(text) if isinstance(message, ModelResponse) else UserPromptPart(text)
    elif how == 2:
        parts.append(TextPart(text) if isinstance(message, ModelResponse) else UserPromptPart(text))
    elif how == 3 and len(parts) > 1:
        parts.pop()
    else:
        part = parts[0]
        if isinstance(part, (UserPromptPart, TextPart)):
            part.content = text + '!'
        else:
            parts[0] = dataclasses.replace(part, tool_call_id=text)


def shape(which: int, conversation: list[ModelMessage], start: int, extra: str) -> Any:
    """Structures that hold the conversation where tasks' inputs do (first, after other fields, twice, sliced...)."""
    window = conversation[start:]
    if which == 0:  # a model request: the history, then the run context's copy of it
        return {'request': {'handler': None, 'messages': list(conversation), 'run_context': {'messages': conversation}}}
    if which == 1:  # a tool call: the run context first, the arguments after
        return {'call': {'ctx': {'deps': extra, 'messages': conversation}, 'tool_args': {'q': extra}}}
    if which == 2:  # a window of it (a history processor), then the whole
        return {'a': window, 'b': conversation}
    if which == 3:  # a tuple, and messages among other values (not a conversation)
        return [tuple(conversation), [*conversation, extra], conversation[-1]]
    if which == 4:  # the window first: another conversation with the same first message, or a later start
        return {'a': window, 'b': extra}
    return {'a': conversation, 'b': window, 'c': conversation}


steps = st.one_of(
    st.tuples(st.just('append'), st.integers(0, 3), words),
    st.tuples(st.just('change'), st.integers(0, 60), st.integers(0, 4), words),
    st.tuples(st.just('replace'), st.integers(0, 60), st.integers(0, 3), words),
    st.tuples(st.just('truncate'), st.integers(1, 60)),
    st.tuples(st.just('key'), st.integers(0, 5), st.integers(0, 60), words),
)


def afresh(value: Any) -> str:
    text = json.dumps(canonical_value(value), sort_keys=True, separators=(',', ':'))
    return hashlib.sha256(text.encode()).hexdigest()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 3), words), min_size=1, max_size=8), st.lists(steps, max_size=40))
def test_each_key_of_a_run_is_the_hash_of_its_whole_text(
    start: list[tuple[int, str]], plan: list[tuple[Any, ...]]
) -> None:
    conversation: list[ModelMessage] = [new_message(kind, text) for kind, text in start]
    with message_key_cache():
        for step in plan:
            if step[0] == 'append':
                conversation.append(new_message(step[1], step[2]))
            elif step[0] == 'change':
                index: int = step[1] % len(conversation)
                change_in_place(conversation[index], step[2], step[3])
            elif step[0] == 'replace':
                conversation[step[1] % len(conversation)] = new_message(step[2], step[3])
            elif step[0] == 'truncate':
                del conversation[max(1, len(conversation) - step[1]) :]
            else:
                value = shape(step[1], conversation, step[2] % len(conversation), step[3])
                assert value_key(value) == afresh(value)


def test_a_long_run_keys_like_hashing_afresh_and_a_message_changed_in_place_is_not_reused() -> None:
    conversation: list[ModelMessage] = [new_message(0, 'hello')]
    with message_key_cache():
        for turn in range(150):
            conversation.append(new_message(1 + turn % 3, f'turn {turn}'))
            for which in (0, 1):
                value = shape(which, conversation, 0, 'acme')
                assert value_key(value) == afresh(value)
        # An old message changed in place: the keys that hold it change, as hashing afresh says.
        before = value_key(shape(1, conversation, 0, 'acme'))
        change_in_place(conversation[10], 4, 'edited')
        after = value_key(shape(1, conversation, 0, 'acme'))
        assert after != before
        assert after == afresh(shape(1, conversation, 0, 'acme'))


def test_keys_computed_in_threads_at_once_are_the_hash_of_their_whole_text() -> None:
    # Sync tasks on a thread-pool task runner compute their keys in threads that share the run's context.
    conversation: list[ModelMessage] = [new_message(0, 'hello')]
    with message_key_cache():
        context = contextvars.copy_context()

        def key_in_the_run(value: Any) -> str:
            return context.copy().run(value_key, value)

        with ThreadPoolExecutor(max_workers=4) as pool:
            for turn in range(60):
                conversation.append(new_message(1 + turn % 3, f'turn {turn}'))
                values = [shape(which % 6, list(conversation), turn % len(conversation), 'acme') for which in range(8)]
                keys = list(pool.map(key_in_the_run, values))
                assert keys == [afresh(value) for value in values]
