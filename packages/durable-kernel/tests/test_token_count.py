"""Counting a request's tokens in a durable unit: what the unit records, what workflow code makes of it, the names."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, cast

import pytest
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart
from pydantic_ai.models import ModelRequestContext, ModelRequestParameters
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.usage import RequestUsage

from durable_kernel import (
    PYDANTIC_AI_2,
    CountTokensResult,
    count_tokens_in_unit,
    counted_usage,
    dbos_model_step_name,
    prefect_task_name,
    request_context_with_model,
    temporal_activity_name,
)
from durable_kernel._token_count import CountsInDurableUnit, without_count_layer

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return 'asyncio'


def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[TextPart('never asked')])  # pragma: no cover


class CountingModel(FunctionModel):
    """Counts five tokens per message and, like a provider's model may, keeps state on the request it counted."""

    def __init__(self, error: Exception | None = None) -> None:
        super().__init__(reply)
        self.error = error

    async def count_tokens(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> RequestUsage:
        if self.error is not None:
            raise self.error
        request = messages[-1]
        assert isinstance(request, ModelRequest)
        request.metadata = {'app': 'kept', '__pydantic_ai__': {'seen': 1, 'counted': len(messages)}}
        return RequestUsage(input_tokens=5 * len(messages))


def _messages() -> list[ModelMessage]:
    request = ModelRequest.user_text_prompt('hi')
    request.metadata = {'__pydantic_ai__': {'seen': 1}}
    return [request]


async def test_the_unit_records_the_usage_and_only_the_framework_metadata_the_count_changed() -> None:
    result = await count_tokens_in_unit(CountingModel(), _messages(), None, ModelRequestParameters())
    assert result == CountTokensResult(usage=RequestUsage(input_tokens=5), framework_metadata={'counted': 1})

    # Workflow code holds its own copy of the request: it gets the usage, and the count's metadata.
    messages = _messages()
    assert counted_usage(result, messages) == RequestUsage(input_tokens=5)
    assert messages[-1].metadata == {'__pydantic_ai__': {'seen': 1, 'counted': 1}}


async def test_a_model_that_cannot_count_is_recorded_as_data_and_raised_again_in_workflow_code() -> None:
    # pydantic-ai's `Model.count_tokens` raises `NotImplementedError`: an engine would retry it raised in the unit.
    result = await count_tokens_in_unit(FunctionModel(reply), _messages(), None, ModelRequestParameters())
    assert result.usage is None
    assert result.error is not None
    assert result.error[0] == 'NotImplementedError'
    with pytest.raises(NotImplementedError, match='Token counting ahead of the request is not supported'):
        counted_usage(result, _messages())


class CountingUnavailable(UserError, NotImplementedError):
    """As pydantic-ai 2.78's provider models raise where the provider serves no counting."""


class CountingRefused(UserError):
    """A `UserError` subclass: it carries more than its message."""


async def test_user_errors_are_recorded_as_the_plain_user_error_they_are_documented_as() -> None:
    for error in (UserError('too long to count'), CountingUnavailable('no counting here')):
        result = await count_tokens_in_unit(CountingModel(error), _messages(), None, ModelRequestParameters())
        assert result == CountTokensResult(error=('UserError', str(error)))
        with pytest.raises(UserError, match=str(error)):
            counted_usage(result, _messages())
    # A subclass (and any other error) fails the unit: the engine records or retries it as it does any error.
    with pytest.raises(CountingRefused):
        await count_tokens_in_unit(CountingModel(CountingRefused('no')), _messages(), None, ModelRequestParameters())


def test_unit_names_are_those_of_pydantic_ai_2_78() -> None:
    assert temporal_activity_name('support', 'model_count_tokens') == 'agent__support__model_count_tokens'
    assert dbos_model_step_name('support', operation='count_tokens') == 'support__model.count_tokens'
    assert prefect_task_name('model_count_tokens', 'gpt-5') == 'Count Tokens: gpt-5'
    if not PYDANTIC_AI_2:
        return
    try:
        operation: Any = importlib.import_module('pydantic_ai.durable_exec._operation')
    except ImportError:  # pragma: no cover - an older 2.x
        pytest.skip('the installed pydantic-ai has no durable operation ids')
    if not hasattr(operation, 'ModelCountTokensId'):  # pragma: no cover - before 2.78
        pytest.skip('the installed pydantic-ai counts tokens in workflow code')
    count = operation.ModelCountTokensId('other', model_name='gpt-5')
    temporal: Any = importlib.import_module('pydantic_ai.durable_exec.temporal._operation_names')
    dbos: Any = importlib.import_module('pydantic_ai.durable_exec.dbos._operation_names')
    prefect: Any = importlib.import_module('pydantic_ai.durable_exec.prefect._operation_names')
    assert temporal.TemporalOperationNamer('support').operation_name(count) == 'agent__support__model_count_tokens'
    assert dbos.DBOSOperationNamer('support').operation_name(count) == 'support__model.count_tokens'
    assert prefect.PrefectOperationNamer().operation_name(count) == 'Count Tokens: gpt-5'


def test_a_result_recorded_by_pydantic_ai_2_78_is_read_as_ours_and_ours_has_its_fields() -> None:
    # A DBOS step output or Prefect task result is the recorded object itself: a run recorded by pydantic-ai 2.78's
    # capability form and recovered by ours (or the reverse) reads the other's result by its fields.
    utils: Any = importlib.import_module('pydantic_ai.durable_exec._utils') if PYDANTIC_AI_2 else None
    if utils is None or not hasattr(utils, 'CountTokensResult'):
        pytest.skip('the installed pydantic-ai records no token counts (2.78+)')
    theirs = utils.CountTokensResult(usage=RequestUsage(input_tokens=7), framework_metadata={'counted': 1})
    messages = _messages()
    assert counted_usage(theirs, messages) == RequestUsage(input_tokens=7)
    assert messages[-1].metadata == {'__pydantic_ai__': {'seen': 1, 'counted': 1}}
    fields = {field.name for field in dataclasses.fields(CountTokensResult)}
    assert fields == {field.name for field in dataclasses.fields(utils.CountTokensResult)}


def test_taking_the_counting_layer_off_keeps_every_field_of_the_request_context() -> None:
    # pydantic-ai 2.33 declares `model_id` (the string a model was selected by) and `streaming` with `init=False`,
    # which `dataclasses.replace` resets: a durable unit then refused a string default or an alias as an unregistered
    # model instance. Whatever fields the installed release has, the copy keeps them all but the model.
    model = CountingModel()
    request_context = ModelRequestContext(
        model=model, messages=_messages(), model_settings=None, model_request_parameters=ModelRequestParameters()
    )
    set_late = {'model_id': 'tenant-model', 'streaming': True}
    for item in dataclasses.fields(request_context):
        if item.name in set_late:  # set by the agent graph after construction, on every 2.x release
            setattr(request_context, item.name, set_late[item.name])
    request_context.model = CountsInDurableUnit(model, cast(Any, None), cast(Any, None))

    stripped = without_count_layer(request_context)

    assert stripped.model is model
    assert isinstance(request_context.model, CountsInDurableUnit)  # a copy: the hook's own context is unchanged
    for item in dataclasses.fields(request_context):
        if item.name != 'model':
            assert getattr(stripped, item.name) == getattr(request_context, item.name), item.name
    if PYDANTIC_AI_2:
        assert getattr(stripped, 'model_id', None) == 'tenant-model'
        assert getattr(stripped, 'streaming', None) is True
    assert request_context_with_model(stripped, model) is not stripped
