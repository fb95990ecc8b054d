"""Capability operations (`@durable_operation`, pydantic-ai 2.68+): collection, what crosses a unit, the unit names.

What crosses is compatibility data: the arguments and the result must be what pydantic-ai 2.78's own durable
execution sends and records, so that a run moves between the two.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic_ai import RunContext
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart
from pydantic_ai.models import ModelRequestContext, ModelRequestParameters
from pydantic_ai.models.function import FunctionModel
from pydantic_ai.usage import RunUsage
from pydantic_core import to_jsonable_python

from durable_kernel import (
    HAS_DURABLE_OPERATIONS,
    CapabilityOperationOutcome,
    DBOSOperationNamer,
    PrefectOperationNamer,
    RequestContextProjection,
    TemporalOperationNamer,
    capability_operations,
    dbos_capability_operation_step_name,
    prefect_capability_operation_task_name,
    run_operation_in_unit,
    temporal_activity_prefix,
    temporal_capability_operation_activity_name,
)

pytestmark = pytest.mark.anyio

needs_operations = pytest.mark.skipif(
    not HAS_DURABLE_OPERATIONS,
    reason='`pydantic_ai.capabilities.durable_operation` came with pydantic-ai 2.68: the installed one has none',
)


def _no_decorator(name: str) -> Any:
    def unchanged(function: Any) -> Any:
        return function

    return unchanged


durable_operation: Any = (
    importlib.import_module('pydantic_ai.capabilities').durable_operation if HAS_DURABLE_OPERATIONS else _no_decorator
)


@dataclass
class Combined:
    text: str
    total: float


class Joiner(AbstractCapability[Any]):
    id = 'joiner'

    @durable_operation('combine')
    async def combine(self, first: int, ctx: RunContext[Any], *rest: int, sep: str = '-', **extra: float) -> Combined:
        ctx.usage.requests += 1
        parts = [str(first), *map(str, rest), *extra]
        return Combined(sep.join(parts), first + sum(rest) + sum(extra.values()))


def _ctx() -> RunContext[Any]:
    return RunContext(deps=None, model=FunctionModel(lambda messages, info: None), usage=RunUsage())  # type: ignore[arg-type]


def test_unit_names_are_those_of_pydantic_ai_2_78() -> None:
    prefix = temporal_activity_prefix('support')
    assert (
        temporal_capability_operation_activity_name(prefix, 'notes', 'fetch')
        == 'agent__support__capability__notes__fetch'
    )
    assert dbos_capability_operation_step_name('support', 'notes', 'fetch') == 'support__capability__notes.fetch'
    assert prefect_capability_operation_task_name('notes', 'fetch') == 'Capability: notes.fetch'
    if not HAS_DURABLE_OPERATIONS:
        return
    operation: Any = importlib.import_module('pydantic_ai.durable_exec._operation')
    op = operation.CapabilityOperationId('notes', operation='fetch')
    temporal: Any = importlib.import_module('pydantic_ai.durable_exec.temporal._operation_names')
    dbos: Any = importlib.import_module('pydantic_ai.durable_exec.dbos._operation_names')
    prefect: Any = importlib.import_module('pydantic_ai.durable_exec.prefect._operation_names')
    assert temporal.TemporalOperationNamer('support').operation_name(op) == 'agent__support__capability__notes__fetch'
    assert dbos.DBOSOperationNamer('support').operation_name(op) == 'support__capability__notes.fetch'
    assert prefect.PrefectOperationNamer().operation_name(op) == 'Capability: notes.fetch'


@needs_operations
async def test_arguments_cross_as_pydantic_ai_2_78_sends_them_and_the_method_gets_them_back() -> None:
    capability = Joiner()
    [(key, operation)] = capability_operations(capability).items()
    assert key == ('joiner', 'combine')
    assert operation.ctx_parameter == 'ctx'
    ctx = _ctx()
    args: tuple[Any, ...] = (1, ctx, 2, 3)
    kwargs: dict[str, Any] = {'sep': '+', 'x': 0.5}
    wire = operation.wire_arguments(args, kwargs)
    assert wire == {'first': 1, 'rest': [2, 3], 'sep': '+', 'x': 0.5}

    # pydantic-ai 2.78's own arguments for the same call, as its payload converter would send them.
    reference: Any = importlib.import_module('pydantic_ai.durable_exec._capability_operation')
    declaration = reference.collect_capability_operations(capability)['combine']
    theirs = reference.bind_arguments(declaration, ctx=ctx, args=args, kwargs=kwargs)
    assert to_jsonable_python(theirs) == wire

    # Inside the unit: the method is called with the arguments validated back, and its usage is the delta.
    unit_ctx = dataclasses.replace(_ctx(), agent=_agent_with(capability))
    outcome = await run_operation_in_unit(operation, unit_ctx, wire)
    assert outcome.value == {'text': '1+2+3+x', 'total': 6.5}
    assert outcome.usage_delta == RunUsage(requests=1)
    assert operation.load_result(outcome.value) == Combined('1+2+3+x', 6.5)


def _agent_with(capability: AbstractCapability[Any]) -> Any:
    from pydantic_ai import Agent

    return Agent(FunctionModel(lambda messages, info: None), capabilities=[capability])  # type: ignore[arg-type]


@needs_operations
def test_the_outcome_has_the_fields_of_pydantic_ai_2_78s_result() -> None:
    reference: Any = importlib.import_module('pydantic_ai.durable_exec._capability_operation')
    ours = {field.name for field in dataclasses.fields(CapabilityOperationOutcome)}
    assert ours == {field.name for field in dataclasses.fields(reference.CapabilityOperationResult)}


def _reference_ids() -> list[Any]:
    """One id of every kind pydantic-ai 2.78 names, with each toolset kind and both streaming modes."""
    operation: Any = importlib.import_module('pydantic_ai.durable_exec._operation')
    ids: list[Any] = [
        operation.CapabilityOperationId('notes', operation='fetch'),
        operation.ModelRequestId('fast', model_name='gpt-5'),
        operation.ModelRequestId(None, streaming=True, model_name='gpt-5'),
        operation.ModelCancelSuspendedResponseId(model_name='gpt-5'),
        operation.ModelCompactMessagesId(model_name='gpt-5'),
        operation.ModelCountTokensId(model_name='gpt-5'),
        operation.EventStreamHandlerId(),
        operation.ToolsetGetInstructionsId('mcp1'),
    ]
    for kind in ('function', 'mcp', 'dynamic'):
        ids.append(operation.ToolsetGetToolsId(kind, toolset_id='ts'))
        ids.append(operation.ToolsetValidateToolArgumentsId(kind, toolset_id='ts'))
        ids.append(operation.ToolsetCallToolId(kind, toolset_id='ts'))
    return ids


@needs_operations
def test_our_namers_name_every_operation_id_as_pydantic_ai_2_78s_do() -> None:
    operation: Any = importlib.import_module('pydantic_ai.durable_exec._operation')
    if not hasattr(operation, 'ModelCountTokensId'):  # pragma: no cover - 2.68
        pytest.skip('the namers compared are 2.78+')
    temporal: Any = importlib.import_module('pydantic_ai.durable_exec.temporal._operation_names')
    dbos: Any = importlib.import_module('pydantic_ai.durable_exec.dbos._operation_names')
    prefect: Any = importlib.import_module('pydantic_ai.durable_exec.prefect._operation_names')
    pairs: list[tuple[Any, Any]] = [
        (TemporalOperationNamer('support'), temporal.TemporalOperationNamer('support')),
        (DBOSOperationNamer('support'), dbos.DBOSOperationNamer('support')),
        (PrefectOperationNamer(), prefect.PrefectOperationNamer()),
    ]
    for ours, theirs in pairs:
        for operation_id in _reference_ids():
            assert ours.operation_name(operation_id) == theirs.operation_name(operation_id), operation_id


def test_an_unknown_operation_id_is_refused() -> None:
    class NewId:
        pass

    with pytest.raises(UserError, match='newer than this package'):
        TemporalOperationNamer('support').operation_name(NewId())


class RequestHooks(AbstractCapability[Any]):
    id = 'hooks'

    @durable_operation('before_model_request')
    async def before_model_request(self, ctx: RunContext[Any], request_context: ModelRequestContext) -> Any:
        request_context.model_settings = {'temperature': 0.5}
        return request_context

    @durable_operation('after_model_request')
    async def after_model_request(
        self, ctx: RunContext[Any], *, request_context: ModelRequestContext, response: ModelResponse
    ) -> Any:
        return response

    @durable_operation('inspect')
    async def inspect_request(self, request_context: ModelRequestContext) -> Any:
        return request_context


@needs_operations
async def test_an_operation_on_a_request_context_sends_its_projection_and_returns_one() -> None:
    from pydantic_ai.messages import ModelResponse
    from pydantic_ai.models import ModelRequestContext

    # Annotated `Any` here: the kernel finds the request context parameter by annotation, so use the real one.
    for name in ('before_model_request', 'after_model_request', 'inspect_request'):
        function = vars(RequestHooks)[name]
        target = function.__pydantic_ai_durable_operation__.function
        target.__annotations__['request_context'] = ModelRequestContext
    hooks = RequestHooks()
    operations = capability_operations(hooks)
    before, after, own = (operations[('hooks', n)] for n in ('before_model_request', 'after_model_request', 'inspect'))
    # A hook returns what the hook returns: the context from `before_model_request` (and from a method of one's own
    # that takes it), the response from `after_model_request`.
    assert before.returns_request_context
    assert own.returns_request_context
    assert not after.returns_request_context
    assert after.result_type is ModelResponse

    model = FunctionModel(lambda messages, info: ModelResponse(parts=[TextPart('x')]))
    live = ModelRequestContext(
        model=model,
        messages=[ModelRequest.user_text_prompt('hi')],
        model_settings=None,
        model_request_parameters=ModelRequestParameters(),
    )
    setattr(live, 'attempt', 2)  # noqa: B010 (pydantic-ai 2.68+ has the field; typed against 1.107 here)
    wire = before.wire_arguments((None, live), {})
    # pydantic-ai 2.78's field names: what its units send and record.
    assert set(wire['request_context']) == {
        'messages',
        'model_settings',
        'model_request_parameters',
        'model_id',
        'streaming',
        'attempt',
    }
    assert wire['request_context']['attempt'] == 2

    ctx = dataclasses.replace(_ctx(), agent=_agent_with(hooks))
    outcome = await run_operation_in_unit(before, ctx, wire, model=model)
    returned = before.load_result(outcome.value)
    assert isinstance(returned, RequestContextProjection)
    assert returned.model_settings == {'temperature': 0.5}
    assert returned.attempt == 2
    returned.apply_to(live)
    assert live.model_settings == {'temperature': 0.5}
    assert live.model is model

    # Without a model the unit cannot rebuild the context.
    with pytest.raises(UserError, match='does not rebuild'):
        await run_operation_in_unit(before, ctx, wire)
