from __future__ import annotations

import pickle
from typing import Any, cast

import pytest
from pydantic import TypeAdapter, ValidationError
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
    unwrap_recorded_tool_result,
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


def _reference_toolset_module() -> Any:
    # pydantic-ai 2.x's own outcome classes (private): a DBOS step recorded by its `DBOSDurability` holds them.
    import importlib

    try:
        module = importlib.import_module('pydantic_ai.durable_exec._toolset')
    except ImportError:
        pytest.skip('this pydantic-ai has no durable_exec._toolset (1.107)')
    if not hasattr(module, 'wrap_tool_call_result'):
        pytest.skip('this pydantic-ai 2.x release does not wrap tool results with `wrap_tool_call_result`')
    return module


async def _recorded_by_reference(reference: Any, call: Any) -> Any:
    """What pydantic-ai 2.x's `wrap_tool_call_result` records for `call`, pickled and read back as DBOS would."""
    try:
        wrapped = await reference.wrap_tool_call_result(call)
    except ValidationError:
        # pydantic-ai 2.33 lets a tool's `ValidationError` through instead of recording it (2.68+ record it): such a
        # step has no output to read back.
        pytest.skip("this pydantic-ai 2.x release does not record a tool's ValidationError")
    return pickle.loads(pickle.dumps(wrapped))


async def _validation_error() -> Any:
    from pydantic import TypeAdapter as Adapter

    Adapter(int).validate_python('not a number')


REFERENCE_CALLS: dict[str, Any] = {
    'result': lambda: _return({'answer': 42}),
    'tool_return': lambda: _return(ToolReturn(return_value=3, content=['see this'], metadata={'m': 1})),
    'tool_return_raw_content': lambda: _return(
        ToolReturn(return_value=3, content=cast(Any, [{'not': 'user content'}]))
    ),
    'tagged_dict': lambda: _return({'kind': 'tool-return', 'x': 1}),
    'model_retry': lambda: _raise(ModelRetry('again')),
    'approval': lambda: _raise(ApprovalRequired(metadata={'why': 'money'})),
    'deferred': lambda: _raise(CallDeferred(metadata={'job': 7})),
    'validation_error': _validation_error,
}


def _tool_failed_call() -> Any:
    tool_failed: Any = getattr(pydantic_ai_exceptions, 'ToolFailed')  # noqa: B009 (a 2.x name)
    return _raise(tool_failed('broken'))


@pytest.mark.parametrize('case', [*REFERENCE_CALLS, 'tool_failed'])
async def test_outcomes_recorded_by_pydantic_ai_2_unwrap_as_its_own_agent_would(case: str):
    """A step output of pydantic-ai 2.x's own durability (pickled by DBOS) gives the same result or exception on ours."""
    reference = _reference_toolset_module()
    call = _tool_failed_call if case == 'tool_failed' else REFERENCE_CALLS[case]
    recorded = await _recorded_by_reference(reference, call())

    def outcome_of(unwrap: Any) -> tuple[str, Any]:
        try:
            value = unwrap(recorded)
        except ValidationError as error:
            return type(error).__name__, error.errors(include_url=False)
        except Exception as error:
            return type(error).__name__, (str(error), vars(error))
        return 'returned', value

    ours = outcome_of(unwrap_tool_outcome)
    assert ours == outcome_of(reference.unwrap_tool_call_result)
    assert ours[0] == {
        'model_retry': 'ModelRetry',
        'approval': 'ApprovalRequired',
        'deferred': 'CallDeferred',
        'validation_error': 'ValidationError',
        'tool_failed': 'ToolFailed',
    }.get(case, 'returned')


def test_a_result_of_unknown_shape_is_refused_with_what_to_do():
    with pytest.raises(UserError, match='unknown shape'):
        unwrap_tool_outcome(object())  # pyright: ignore[reportArgumentType]


@pytest.mark.parametrize('case', [*REFERENCE_CALLS])
async def test_a_recorded_result_is_read_whatever_recorded_it(case: str):
    """Ours' outcomes, pydantic-ai 2.x's, and a result recorded as itself (1.107's DBOS MCP steps) all read back."""
    reference = _reference_toolset_module()
    recorded = await _recorded_by_reference(reference, REFERENCE_CALLS[case]())

    def outcome_of(unwrap: Any, value: Any) -> tuple[str, Any]:
        try:
            return 'returned', unwrap(value)
        except ValidationError as error:
            return type(error).__name__, error.errors(include_url=False)
        except Exception as error:
            return type(error).__name__, str(error)

    expected = outcome_of(reference.unwrap_tool_call_result, recorded)
    assert outcome_of(unwrap_recorded_tool_result, recorded) == expected
    if case != 'validation_error':  # ours validates arguments before the unit: a `ValidationError` never reaches it
        ours = await capture_tool_outcome(REFERENCE_CALLS[case]())
        assert outcome_of(unwrap_recorded_tool_result, ours) == expected
    if expected[0] == 'returned':
        assert unwrap_recorded_tool_result(expected[1]) == expected[1]  # the result recorded as itself


def test_a_result_recorded_as_itself_or_as_an_outcome_of_ours_reads_back():
    """DBOS MCP steps record a result as itself (as pydantic-ai 1.107's do); earlier releases of ours a `ToolReturned`."""
    assert unwrap_recorded_tool_result(42) == 42
    assert unwrap_recorded_tool_result({'kind': 'tool_return', 'result': 1}) == {'kind': 'tool_return', 'result': 1}
    assert unwrap_recorded_tool_result(ToolReturned(result=42)) == 42
    with pytest.raises(ModelRetry, match='again'):
        unwrap_recorded_tool_result(ToolRetryRequested(message='again'))
