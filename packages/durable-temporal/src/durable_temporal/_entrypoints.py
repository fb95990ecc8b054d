"""The run entry points of `TemporalAgent`: durable `run` in a workflow, refusals, and the plain agent elsewhere."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Sequence
from contextlib import AbstractContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from pydantic_ai import _instructions, models
from pydantic_ai import messages as _messages
from pydantic_ai import usage as _usage
from pydantic_ai.agent import AgentRun, AgentRunResult, EventStreamHandler, WrapperAgent
from pydantic_ai.agent.abstract import AgentMetadata, AgentModelSettings, AgentRetries, RunOutputDataT
from pydantic_ai.capabilities import AgentCapability
from pydantic_ai.exceptions import UserError
from pydantic_ai.output import OutputDataT, OutputSpec
from pydantic_ai.result import AgentEventStream, StreamedRunResult
from pydantic_ai.tools import AgentDepsT, DeferredToolResults
from pydantic_ai.toolsets import AbstractToolset
from temporalio import workflow

if TYPE_CHECKING:
    from pydantic_ai.agent.spec import AgentSpec

__all__ = ('TemporalEntryPoints',)

_USE_RUN = 'Set an `event_stream_handler` on the TemporalAgent and use `await agent.run()` instead.'


def _refuse_in_workflow(entry_point: str, alternative: str = _USE_RUN) -> None:
    if workflow.in_workflow():
        raise UserError(f'`agent.{entry_point}()` cannot be used inside a Temporal workflow. {alternative}')


class TemporalEntryPoints(WrapperAgent[AgentDepsT, OutputDataT], ABC):
    """`run`, `run_sync`, `run_stream`, `run_stream_events` and `iter` with Temporal's rules."""

    @abstractmethod
    def _durable_scope(self, model: models.Model | str | None) -> AbstractContextManager[None]:
        """Inside a workflow: swap in the durable model and toolsets for the block."""

    @abstractmethod
    def _in_durable_run(self) -> bool:
        """Whether `iter` is being called by `run` in a workflow."""

    @abstractmethod
    def _resolve_model_outside_workflow(self, model: models.Model | str | None) -> models.Model:
        """The model to give the plain agent for a `model=` argument outside a workflow."""

    async def run(
        self,
        user_prompt: str | Sequence[_messages.UserContent] | None = None,
        *,
        output_type: OutputSpec[RunOutputDataT] | None = None,
        message_history: Sequence[_messages.ModelMessage] | None = None,
        deferred_tool_results: DeferredToolResults | None = None,
        conversation_id: str | None = None,
        model: models.Model | models.KnownModelName | str | None = None,
        instructions: _instructions.AgentInstructions[AgentDepsT] = None,
        deps: AgentDepsT = None,
        model_settings: AgentModelSettings[AgentDepsT] | None = None,
        usage_limits: _usage.UsageLimits | None = None,
        usage: _usage.RunUsage | None = None,
        metadata: AgentMetadata[AgentDepsT] | None = None,
        retries: int | AgentRetries | None = None,
        infer_name: bool = True,
        toolsets: Sequence[AbstractToolset[AgentDepsT]] | None = None,
        event_stream_handler: EventStreamHandler[AgentDepsT] | None = None,
        capabilities: Sequence[AgentCapability[AgentDepsT]] | None = None,
        spec: dict[str, Any] | AgentSpec | None = None,
        **_deprecated_kwargs: Any,
    ) -> AgentRunResult[Any]:
        """Run the agent to completion; inside a workflow, model requests and tool I/O run as activities.

        Outside a workflow this is the wrapped agent's `run`. Inside one, the model must be the wrapped agent's, a
        model registered with `models=` (instance or key) or a provider string, and `event_stream_handler` and
        `toolsets` cannot be given at run time (set them when creating the agent, so their activities exist).

        Args:
            user_prompt: User input to start/continue the conversation.
            output_type: Custom output type for this run.
            message_history: History of the conversation so far.
            deferred_tool_results: Results for deferred tool calls in the message history.
            conversation_id: ID of the conversation this run belongs to (`'new'` starts a fresh one).
            model: The model for this run (inside a workflow: registered instance, key, or provider string).
            instructions: Additional instructions for this run.
            deps: Dependencies for this run (inside a workflow they must be serializable by pydantic).
            model_settings: Model settings for this run.
            usage_limits: Limits on model request count or token usage.
            usage: Usage to start with.
            metadata: Metadata to attach to this run.
            retries: Retry budgets for this run.
            infer_name: Whether to infer the agent name from the call frame.
            toolsets: Additional toolsets for this run (refused inside a workflow).
            event_stream_handler: Event stream handler for this run (refused inside a workflow).
            capabilities: Additional capabilities for this run.
            spec: Agent spec to apply for this run.

        Returns:
            The result of the run.
        """
        if not workflow.in_workflow():
            return await super().run(
                user_prompt,
                output_type=output_type,
                message_history=message_history,
                deferred_tool_results=deferred_tool_results,
                conversation_id=conversation_id,
                model=model,
                instructions=instructions,
                deps=deps,
                model_settings=model_settings,
                usage_limits=usage_limits,
                usage=usage,
                metadata=metadata,
                retries=retries,
                infer_name=infer_name,
                toolsets=toolsets,
                event_stream_handler=event_stream_handler,
                capabilities=capabilities,
                spec=spec,
                **_deprecated_kwargs,
            )
        if event_stream_handler is not None:
            raise UserError(
                'An event stream handler cannot be given to `run()` inside a Temporal workflow: its activity must be '
                'registered when the worker starts. Pass `event_stream_handler=` to `TemporalAgent(...)` instead.'
            )
        if toolsets is not None:
            raise UserError(
                'Toolsets cannot be given to `run()` inside a Temporal workflow: their activities must be registered '
                'when the worker starts. Add them to the agent before wrapping it in `TemporalAgent(...)`.'
            )
        with self._durable_scope(model):
            return await super().run(
                user_prompt,
                output_type=output_type,
                message_history=message_history,
                deferred_tool_results=deferred_tool_results,
                conversation_id=conversation_id,
                instructions=instructions,
                deps=deps,
                model_settings=model_settings,
                usage_limits=usage_limits,
                usage=usage,
                metadata=metadata,
                retries=retries,
                infer_name=infer_name,
                event_stream_handler=self.event_stream_handler,
                capabilities=capabilities,
                spec=spec,
                **_deprecated_kwargs,
            )

    def run_sync(
        self,
        user_prompt: str | Sequence[_messages.UserContent] | None = None,
        *,
        output_type: OutputSpec[RunOutputDataT] | None = None,
        message_history: Sequence[_messages.ModelMessage] | None = None,
        deferred_tool_results: DeferredToolResults | None = None,
        conversation_id: str | None = None,
        model: models.Model | models.KnownModelName | str | None = None,
        instructions: _instructions.AgentInstructions[AgentDepsT] = None,
        deps: AgentDepsT = None,
        model_settings: AgentModelSettings[AgentDepsT] | None = None,
        usage_limits: _usage.UsageLimits | None = None,
        usage: _usage.RunUsage | None = None,
        metadata: AgentMetadata[AgentDepsT] | None = None,
        retries: int | AgentRetries | None = None,
        infer_name: bool = True,
        toolsets: Sequence[AbstractToolset[AgentDepsT]] | None = None,
        event_stream_handler: EventStreamHandler[AgentDepsT] | None = None,
        capabilities: Sequence[AgentCapability[AgentDepsT]] | None = None,
        spec: dict[str, Any] | AgentSpec | None = None,
        **_deprecated_kwargs: Any,
    ) -> AgentRunResult[Any]:
        """Run the agent synchronously (the wrapped agent's `run_sync`); refused inside a workflow.

        Args: as for [`run`][durable_temporal.TemporalAgent.run].

        Returns:
            The result of the run.
        """
        _refuse_in_workflow('run_sync', 'Use `await agent.run()` instead.')
        return super().run_sync(
            user_prompt,
            output_type=output_type,
            message_history=message_history,
            deferred_tool_results=deferred_tool_results,
            conversation_id=conversation_id,
            model=model,
            instructions=instructions,
            deps=deps,
            model_settings=model_settings,
            usage_limits=usage_limits,
            usage=usage,
            metadata=metadata,
            retries=retries,
            infer_name=infer_name,
            toolsets=toolsets,
            event_stream_handler=event_stream_handler,
            capabilities=capabilities,
            spec=spec,
            **_deprecated_kwargs,
        )

    @asynccontextmanager
    async def run_stream(
        self,
        user_prompt: str | Sequence[_messages.UserContent] | None = None,
        *,
        output_type: OutputSpec[RunOutputDataT] | None = None,
        message_history: Sequence[_messages.ModelMessage] | None = None,
        deferred_tool_results: DeferredToolResults | None = None,
        conversation_id: str | None = None,
        model: models.Model | models.KnownModelName | str | None = None,
        instructions: _instructions.AgentInstructions[AgentDepsT] = None,
        deps: AgentDepsT = None,
        model_settings: AgentModelSettings[AgentDepsT] | None = None,
        usage_limits: _usage.UsageLimits | None = None,
        usage: _usage.RunUsage | None = None,
        metadata: AgentMetadata[AgentDepsT] | None = None,
        retries: int | AgentRetries | None = None,
        infer_name: bool = True,
        toolsets: Sequence[AbstractToolset[AgentDepsT]] | None = None,
        event_stream_handler: EventStreamHandler[AgentDepsT] | None = None,
        capabilities: Sequence[AgentCapability[AgentDepsT]] | None = None,
        spec: dict[str, Any] | AgentSpec | None = None,
        **_deprecated_kwargs: Any,
    ) -> AsyncGenerator[StreamedRunResult[AgentDepsT, Any]]:
        """Run the agent streaming its output (the wrapped agent's `run_stream`); refused inside a workflow.

        Args: as for [`run`][durable_temporal.TemporalAgent.run].

        Yields:
            The streamed run result.
        """
        _refuse_in_workflow('run_stream')
        async with super().run_stream(
            user_prompt,
            output_type=output_type,
            message_history=message_history,
            deferred_tool_results=deferred_tool_results,
            conversation_id=conversation_id,
            model=model,
            instructions=instructions,
            deps=deps,
            model_settings=model_settings,
            usage_limits=usage_limits,
            usage=usage,
            metadata=metadata,
            retries=retries,
            infer_name=infer_name,
            toolsets=toolsets,
            event_stream_handler=event_stream_handler,
            capabilities=capabilities,
            spec=spec,
            **_deprecated_kwargs,
        ) as streamed:
            yield streamed

    def run_stream_events(
        self,
        user_prompt: str | Sequence[_messages.UserContent] | None = None,
        *,
        output_type: OutputSpec[RunOutputDataT] | None = None,
        message_history: Sequence[_messages.ModelMessage] | None = None,
        deferred_tool_results: DeferredToolResults | None = None,
        conversation_id: str | None = None,
        model: models.Model | models.KnownModelName | str | None = None,
        instructions: _instructions.AgentInstructions[AgentDepsT] = None,
        deps: AgentDepsT = None,
        model_settings: AgentModelSettings[AgentDepsT] | None = None,
        usage_limits: _usage.UsageLimits | None = None,
        usage: _usage.RunUsage | None = None,
        metadata: AgentMetadata[AgentDepsT] | None = None,
        retries: int | AgentRetries | None = None,
        infer_name: bool = True,
        toolsets: Sequence[AbstractToolset[AgentDepsT]] | None = None,
        capabilities: Sequence[AgentCapability[AgentDepsT]] | None = None,
        spec: dict[str, Any] | AgentSpec | None = None,
        **_deprecated_kwargs: Any,
    ) -> AgentEventStream[Any]:
        """Run the agent streaming its events (the wrapped agent's `run_stream_events`); refused inside a workflow.

        Args: as for [`run`][durable_temporal.TemporalAgent.run].

        Returns:
            The event stream, ending with the run result event.
        """
        _refuse_in_workflow('run_stream_events')
        return super().run_stream_events(
            user_prompt,
            output_type=output_type,
            message_history=message_history,
            deferred_tool_results=deferred_tool_results,
            conversation_id=conversation_id,
            model=model,
            instructions=instructions,
            deps=deps,
            model_settings=model_settings,
            usage_limits=usage_limits,
            usage=usage,
            metadata=metadata,
            retries=retries,
            infer_name=infer_name,
            toolsets=toolsets,
            capabilities=capabilities,
            spec=spec,
            **_deprecated_kwargs,
        )

    @asynccontextmanager
    async def iter(
        self,
        user_prompt: str | Sequence[_messages.UserContent] | None = None,
        *,
        output_type: OutputSpec[RunOutputDataT] | None = None,
        message_history: Sequence[_messages.ModelMessage] | None = None,
        deferred_tool_results: DeferredToolResults | None = None,
        conversation_id: str | None = None,
        model: models.Model | models.KnownModelName | str | None = None,
        instructions: _instructions.AgentInstructions[AgentDepsT] = None,
        deps: AgentDepsT = None,
        model_settings: AgentModelSettings[AgentDepsT] | None = None,
        usage_limits: _usage.UsageLimits | None = None,
        usage: _usage.RunUsage | None = None,
        metadata: AgentMetadata[AgentDepsT] | None = None,
        retries: int | AgentRetries | None = None,
        infer_name: bool = True,
        toolsets: Sequence[AbstractToolset[AgentDepsT]] | None = None,
        capabilities: Sequence[AgentCapability[AgentDepsT]] | None = None,
        spec: dict[str, Any] | AgentSpec | None = None,
        **_deprecated_kwargs: Any,
    ) -> AsyncGenerator[AgentRun[AgentDepsT, Any]]:
        """Iterate over the agent graph's nodes (the wrapped agent's `iter`); inside a workflow only `run` may call it.

        Outside a workflow a `model=` key registered with `models=` is resolved to its model.

        Args: as for [`run`][durable_temporal.TemporalAgent.run].

        Yields:
            The agent run.
        """
        resolved: models.Model | None = None
        if workflow.in_workflow():
            if not self._in_durable_run():
                _refuse_in_workflow('iter')
        else:
            resolved = self._resolve_model_outside_workflow(model)
        async with super().iter(
            user_prompt,
            output_type=output_type,
            message_history=message_history,
            deferred_tool_results=deferred_tool_results,
            conversation_id=conversation_id,
            model=resolved,
            instructions=instructions,
            deps=deps,
            model_settings=model_settings,
            usage_limits=usage_limits,
            usage=usage,
            metadata=metadata,
            retries=retries,
            infer_name=infer_name,
            toolsets=toolsets,
            capabilities=capabilities,
            spec=spec,
            **_deprecated_kwargs,
        ) as agent_run:
            yield agent_run
