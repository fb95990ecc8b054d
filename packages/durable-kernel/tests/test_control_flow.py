from __future__ import annotations

import pickle
from typing import Any

import pytest
from pydantic import TypeAdapter
from pydantic_ai import exceptions as pydantic_ai_exceptions
from pydantic_ai.exceptions import ApprovalRequired, CallDeferred, ModelRetry, UserError
from pydantic_ai.messages import BinaryContent, ToolReturn

from durable_kernel import (
    ToolApprovalRequired,
    ToolCallDeferred,
    ToolFailureReported,
    ToolOutcome,
    ToolRetryRequested,
    ToolReturned,
    capture_tool_outcome,
    unwrap_tool_outcome,
)

pytestmark = pytest.mark.anyio

OUTCOMES: TypeAdapter[Any] = TypeAdapter(ToolOutcome)


@pytest.fixture
def anyio_backend() -> str:
    return 'asyncio'


async def _raise(error: Exception) -> Any:
    raise error


async def _return(value: Any) -> Any:
    return value


@pytest.mark.parametrize(
    ('error', 'expected'),
    [
        (ModelRetry('try again'), ToolRetryRequested(message='try again')),
        (ApprovalRequired(metadata={'why': 'money'}), ToolApprovalRequired(metadata={'why': 'money'})),
        (CallDeferred(metadata={'ticket': 1}), ToolCallDeferred(metadata={'ticket': 1})),
    ],
)
async def test_control_flow_becomes_data_and_back(error: Exception, expected: Any):
    outcome = await capture_tool_outcome(_raise(error))
    assert outcome == expected
    for decoded in (OUTCOMES.validate_json(OUTCOMES.dump_json(outcome)), pickle.loads(pickle.dumps(outcome))):
        with pytest.raises(type(error)) as raised:
            unwrap_tool_outcome(decoded)
        assert vars(raised.value) == vars(error)


async def test_other_exceptions_propagate():
    with pytest.raises(ValueError, match='real failure'):
        await capture_tool_outcome(_raise(ValueError('real failure')))


@pytest.mark.parametrize(
    'value',
    [
        'text',
        42,
        None,
        [1, 'a', {'b': 2}],
        {'kind': 'tool-return', 'looks': 'like a ToolReturn but is content'},
        ToolReturn(return_value={'x': 1}, content='extra for the model', metadata={'m': 1}),
        BinaryContent(data=b'\x89PNG', media_type='image/png'),
    ],
)
async def test_return_values_survive_json_and_pickle(value: Any):
    outcome = await capture_tool_outcome(_return(value))
    assert isinstance(outcome, ToolReturned)
    for decoded in (OUTCOMES.validate_json(OUTCOMES.dump_json(outcome)), pickle.loads(pickle.dumps(outcome))):
        result = unwrap_tool_outcome(decoded)
        if isinstance(value, BinaryContent):
            # pydantic-ai 2.x validates image content as its subclass `BinaryImage`: the same bytes and media type.
            assert isinstance(result, BinaryContent)
            assert (result.data, result.media_type) == (value.data, value.media_type)
            continue
        assert result == value
        assert type(result) is type(value)


def test_payload_shape_matches_the_reference_wire_format():
    assert OUTCOMES.dump_python(ToolRetryRequested('m'), mode='json') == {'message': 'm', 'kind': 'model_retry'}
    assert OUTCOMES.dump_python(ToolCallDeferred(), mode='json') == {'metadata': None, 'kind': 'call_deferred'}
    dumped = OUTCOMES.dump_python(ToolReturned(result={'a': 1}), mode='json')
    assert dumped['kind'] == 'tool_return'
    assert dumped['is_tool_return'] is False
    # A payload written before `is_tool_return` existed: a mapping tagged `tool-return` is a ToolReturn.
    legacy = OUTCOMES.validate_python({'kind': 'tool_return', 'result': {'kind': 'tool-return', 'return_value': 5}})
    assert unwrap_tool_outcome(legacy) == ToolReturn(return_value=5)


TOOL_FAILED: Any = getattr(pydantic_ai_exceptions, 'ToolFailed', None)


@pytest.mark.skipif(TOOL_FAILED is None, reason='ToolFailed is a pydantic-ai 2.x exception')
async def test_tool_failed_becomes_data_and_back():
    """A tool's `ToolFailed` is a result the model sees, not a unit failure the engine would retry."""
    outcome = await capture_tool_outcome(_raise(TOOL_FAILED('Disk full')))
    assert outcome == ToolFailureReported(message='Disk full')
    # The reference's Temporal payload shape for it.
    assert OUTCOMES.dump_python(outcome, mode='json') == {'message': 'Disk full', 'kind': 'tool_failed'}
    for decoded in (OUTCOMES.validate_json(OUTCOMES.dump_json(outcome)), pickle.loads(pickle.dumps(outcome))):
        with pytest.raises(TOOL_FAILED) as raised:
            unwrap_tool_outcome(decoded)
        assert raised.value == TOOL_FAILED('Disk full')


@pytest.mark.skipif(TOOL_FAILED is not None, reason='pydantic-ai 1.107 has no ToolFailed')
def test_a_recorded_tool_failed_on_1107_names_the_version_it_needs():
    with pytest.raises(UserError, match=r'resume this run with pydantic-ai 2\.x'):
        unwrap_tool_outcome(OUTCOMES.validate_python({'message': 'Disk full', 'kind': 'tool_failed'}))
