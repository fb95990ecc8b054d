"""Counting a request's tokens ahead of it in a durable unit of its own (`UsageLimits(count_tokens_before_request=True)`).

pydantic-ai counts the input tokens of a request before sending it when a run's limits ask for it
(`Model.count_tokens`), and checks the limits against the count. Counting is a call to the provider: in workflow or
flow code it would run again on every replay, recovery or retry (and Temporal's sandbox is no place for I/O). So a
durable model counts in a unit of its own, named as pydantic-ai 2.78's durable execution names it for the same agent,
and workflow code gets the recorded result.

What the unit records is what the count did, as data (`CountTokensResult`, the fields of pydantic-ai 2.78's own
result): the usage, the framework metadata the count wrote on the request it counted (a provider's model may keep
state there for later counts), or the `NotImplementedError` of a model that cannot count. Raised in the unit, that
error would be retried by the engine (or, recorded as a failure, come back as another class); as data it is raised in
workflow code as the class the model raised, as without durability.

pydantic-ai 1.107 (and 2.33) counts after the `before_model_request` hooks and before `wrap_model_request`, where a
durability capability swaps in its durable model, and outside the run context: the count would reach the agent's own
model in workflow code, and a durable model would not know the run (its deps, its continue-as-new policy). There a
capability's `before_model_request` puts `CountsInDurableUnit` around the request's model, which counts with the run
context set and through the engine's durable model; `wrap_model_request` takes it off again. The wrapper agents add
`CountInRunContext` to their runs for the run context (their model is durable already). Later 2.x releases count
inside `wrap_model_request`, with the durable model and the run context: nothing is added there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.capabilities.abstract import WrapModelRequestHandler
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse
from pydantic_ai.models import Model, ModelRequestContext, ModelRequestParameters
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext
from pydantic_ai.usage import RequestUsage

from ._compat import request_context_with_model, set_current_run_context

__all__ = (
    'CountInRunContext',
    'CountTokensResult',
    'CountsInDurableUnit',
    'count_tokens_in_unit',
    'counted_usage',
    'with_count_layer',
    'without_count_layer',
)

FRAMEWORK_METADATA_KEY = '__pydantic_ai__'
"""The key of a request's `metadata` that only pydantic-ai writes (2.x's `_PYDANTIC_AI_METADATA_KEY`)."""

CountTokensError = tuple[Literal['NotImplementedError', 'UserError'], str]


@dataclass
class CountTokensResult:
    """What a token-counting unit returns (field names are wire format: pydantic-ai 2.78's own result's).

    Attributes:
        usage: The counted usage, or `None` when counting raised `error`.
        framework_metadata: The framework metadata keys (`__pydantic_ai__`) the count added to or changed on the
            request it counted, which workflow code copies onto its own request: the unit counted a copy.
        error: The class name and message of the `NotImplementedError` (a model that cannot count) or plain
            `UserError` (a request it cannot count) the count raised, raised again in workflow code.
    """

    usage: RequestUsage | None = None
    framework_metadata: dict[str, Any] = field(default_factory=dict[str, Any])
    error: CountTokensError | None = None


def _framework_metadata(messages: list[ModelMessage]) -> tuple[ModelRequest | None, dict[str, Any]]:
    """The last request of `messages` (the one counted) and a copy of its framework metadata."""
    request = next((message for message in reversed(messages) if isinstance(message, ModelRequest)), None)
    metadata: Any = getattr(request, 'metadata', None) or {}
    namespace = metadata.get(FRAMEWORK_METADATA_KEY)
    return request, dict(namespace) if isinstance(namespace, dict) else {}  # pyright: ignore[reportUnknownArgumentType]


async def count_tokens_in_unit(
    model: Model,
    messages: list[ModelMessage],
    model_settings: ModelSettings | None,
    model_request_parameters: ModelRequestParameters,
) -> CountTokensResult:
    """Count the tokens of a request with `model`, inside the durable unit: what the count did, as data.

    Args:
        model: The model to count with (the request's own model, not a durable one).
        messages: The request's messages.
        model_settings: The request's model settings.
        model_request_parameters: The request's parameters.

    Returns:
        The usage and the framework metadata the count wrote, or the error it raised (see `CountTokensResult`).

    Raises:
        Exception: Any other error of the count (a provider error, a `UserError` subclass), which fails the unit as
            the engine fails it (and retries it as its config says).
    """
    _, before = _framework_metadata(messages)
    try:
        usage = await model.count_tokens(messages, model_settings, model_request_parameters)
    except NotImplementedError as error:
        # A provider that serves no counting raises a `UserError` that is also a `NotImplementedError` (2.78): it is
        # recorded as the `UserError` it is documented as, which fails the run instead of being retried.
        kind: Literal['NotImplementedError', 'UserError'] = (
            'UserError' if isinstance(error, UserError) else 'NotImplementedError'
        )
        return CountTokensResult(error=(kind, str(error)))
    except UserError as error:
        if type(error) is not UserError:
            raise  # a subclass carries more than its message: it fails the unit like any other error
        return CountTokensResult(error=('UserError', str(error)))
    _, after = _framework_metadata(messages)
    updates = {key: value for key, value in after.items() if key not in before or before[key] != value}
    return CountTokensResult(usage=usage, framework_metadata=updates)


def counted_usage(result: CountTokensResult, messages: list[ModelMessage]) -> RequestUsage:
    """In workflow code: the usage a counting unit recorded, with its framework metadata copied onto `messages`.

    Args:
        result: What the unit returned (or the engine recorded).
        messages: The request's messages, as workflow code holds them.

    Returns:
        The counted usage.

    Raises:
        NotImplementedError: The model cannot count tokens.
        UserError: The model cannot count this request.
    """
    if result.error is not None:
        kind, message = result.error
        raise NotImplementedError(message) if kind == 'NotImplementedError' else UserError(message)
    if result.framework_metadata:
        request, namespace = _framework_metadata(messages)
        if request is not None and hasattr(request, 'metadata'):
            request.metadata = {
                **(request.metadata or {}),
                FRAMEWORK_METADATA_KEY: {**namespace, **result.framework_metadata},
            }
    if result.usage is None:
        raise UserError('The token-counting unit recorded neither a usage nor an error: the record is damaged.')
    return result.usage


CountTokens = Callable[
    [Model, list[ModelMessage], ModelSettings | None, ModelRequestParameters], Awaitable[RequestUsage]
]
"""Counts a request of the given model: `(model, messages, settings, parameters) -> usage`."""


class CountsInDurableUnit(WrapperModel):
    """The request's model, whose `count_tokens` runs with the run context set, through the engine's durable model.

    Put around the request's model by `before_model_request` where pydantic-ai counts before `wrap_model_request`
    (`COUNTS_TOKENS_BEFORE_REQUEST_HOOKS`), and taken off by `wrap_model_request` (`without_count_layer`): every other
    method is the model's own.
    """

    def __init__(self, wrapped: Model, count: CountTokens, run_context: RunContext[Any]) -> None:
        super().__init__(wrapped)
        self._count = count
        self._run_context = run_context

    async def count_tokens(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> RequestUsage:
        """Count with the wrapped model as `count` routes it, with the run context set (as pydantic-ai 2.68+ does)."""
        with set_current_run_context(self._run_context):
            return await self._count(self.wrapped, messages, model_settings, model_request_parameters)


def with_count_layer(ctx: RunContext[Any], request_context: ModelRequestContext, count: CountTokens) -> None:
    """Put `CountsInDurableUnit` around the model of `request_context` (in place), unless it is there already."""
    if not isinstance(request_context.model, CountsInDurableUnit):
        request_context.model = CountsInDurableUnit(request_context.model, count, ctx)


def without_count_layer(request_context: ModelRequestContext) -> ModelRequestContext:
    """`request_context` with its model out of `CountsInDurableUnit` (a copy), or itself when it has none."""
    model = request_context.model
    if not isinstance(model, CountsInDurableUnit):
        return request_context
    return request_context_with_model(request_context, model.wrapped)


async def _count_with_model(
    model: Model,
    messages: list[ModelMessage],
    model_settings: ModelSettings | None,
    model_request_parameters: ModelRequestParameters,
) -> RequestUsage:
    return await model.count_tokens(messages, model_settings, model_request_parameters)


class CountInRunContext(AbstractCapability[Any]):
    """A run capability of the wrapper agents where pydantic-ai counts outside the run context (1.107, 2.33).

    The wrappers' model is their durable model already, whose `count_tokens` runs the counting unit; it needs the run
    context there (the deps the unit rebuilds the model with, the continue-as-new policy, a Prefect key's tenant),
    which this capability sets around the count.
    """

    async def before_model_request(
        self, ctx: RunContext[Any], request_context: ModelRequestContext
    ) -> ModelRequestContext:
        """Put the counting layer around the request's model."""
        with_count_layer(ctx, request_context, _count_with_model)
        return request_context

    async def wrap_model_request(
        self,
        ctx: RunContext[Any],
        *,
        request_context: ModelRequestContext,
        handler: WrapModelRequestHandler,
    ) -> ModelResponse:
        """Take the counting layer off again: the request is the durable model's own."""
        return await handler(without_count_layer(request_context))
