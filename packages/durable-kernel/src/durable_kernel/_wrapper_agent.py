"""`DurableWrapperAgent`: the public entry points of every durable wrapper agent, declared once.

pydantic-ai's `run`, `run_sync`, `iter` (and, in `_wrapper_agent_streams`, `run_stream` and `run_stream_events`)
take some twenty keyword arguments and come in `@overload` sets. The engine packages subclass this class and override
a few protected hooks that receive the call's arguments as one [`RunArguments`][durable_kernel.RunArguments]
([`OverrideArguments`][durable_kernel.OverrideArguments] for `override`), so no engine re-declares or re-forwards them.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, overload

from pydantic_ai import _instructions, _utils, models
from pydantic_ai import messages as _messages
from pydantic_ai import usage as _usage
from pydantic_ai.agent import AgentRun, AgentRunResult, EventStreamHandler
from pydantic_ai.agent.abstract import AgentMetadata, AgentModelSettings, AgentRetries, RunOutputDataT
from pydantic_ai.capabilities import AgentCapability
from pydantic_ai.output import OutputDataT, OutputSpec
from pydantic_ai.tools import AgentDepsT, AgentNativeTool, DeferredToolResults, Tool, ToolFuncEither
from pydantic_ai.toolsets import AbstractToolset

from ._run_arguments import OverrideArguments, RunArguments, UserPrompt
from ._wrapper_agent_streams import DurableStreamingAgent

if TYPE_CHECKING:
    from pydantic_ai.agent.spec import AgentSpec

__all__ = ('DurableWrapperAgent',)


class DurableWrapperAgent(DurableStreamingAgent[AgentDepsT, OutputDataT]):
    """Base class of the engines' wrapper agents: one public signature per entry point, one protected hook each.

    Every hook's default is what the plain [`WrapperAgent`][pydantic_ai.agent.WrapperAgent] does; an engine
    overrides the hooks it needs (`_run_impl`, `_run_sync_impl`, `_iter_impl`, `_run_stream_impl`,
    `_run_stream_events_impl`, `_override_impl`) and calls `super()` for the plain behaviour.
    [`_agent_run`][durable_kernel.DurableWrapperAgent._agent_run] is the agent loop itself, which engines run
    inside their durable unit.
    """

    async def _agent_run(self, arguments: RunArguments[AgentDepsT]) -> AgentRunResult[Any]:
        """The agent loop of [`AbstractAgent.run`][pydantic_ai.agent.AbstractAgent.run], which drives `self.iter`."""
        return await super().run(arguments.user_prompt, **arguments.run_kwargs())

    async def _run_impl(self, arguments: RunArguments[AgentDepsT]) -> AgentRunResult[Any]:
        """What `run` does; by default the agent loop. Engines start their durable unit here."""
        return await self._agent_run(arguments)

    def _run_sync_impl(self, arguments: RunArguments[AgentDepsT]) -> AgentRunResult[Any]:
        """What `run_sync` does; by default pydantic-ai's, which runs `self.run` in an event loop."""
        return super().run_sync(arguments.user_prompt, **arguments.run_kwargs())

    def _iter_impl(self, arguments: RunArguments[AgentDepsT]) -> AbstractAsyncContextManager[AgentRun[AgentDepsT, Any]]:
        """What `iter` does; by default the wrapped agent's `iter`. Engines install their durable model and toolsets."""
        return super().iter(arguments.user_prompt, **arguments.iter_kwargs())

    def _override_impl(self, arguments: OverrideArguments[AgentDepsT]) -> AbstractContextManager[None]:
        """What `override` does; by default the wrapped agent's `override`. Engines check or keep the model."""
        return super().override(**arguments.kwargs())

    @overload
    async def run(
        self,
        user_prompt: UserPrompt = None,
        *,
        output_type: None = None,
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
    ) -> AgentRunResult[OutputDataT]: ...

    @overload
    async def run(
        self,
        user_prompt: UserPrompt = None,
        *,
        output_type: OutputSpec[RunOutputDataT],
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
    ) -> AgentRunResult[RunOutputDataT]: ...

    async def run(
        self,
        user_prompt: UserPrompt = None,
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
        """Run the agent to completion, durably as the engine defines it.

        Arguments are those of [`run`][pydantic_ai.agent.AbstractAgent.run]; they reach `_run_impl` as one
        [`RunArguments`][durable_kernel.RunArguments].

        Returns:
            The result of the run.
        """
        arguments = RunArguments[AgentDepsT](
            user_prompt=user_prompt,
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
            deprecated_kwargs=_deprecated_kwargs,
        )
        return await self._run_impl(arguments)

    @overload
    def run_sync(
        self,
        user_prompt: UserPrompt = None,
        *,
        output_type: None = None,
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
    ) -> AgentRunResult[OutputDataT]: ...

    @overload
    def run_sync(
        self,
        user_prompt: UserPrompt = None,
        *,
        output_type: OutputSpec[RunOutputDataT],
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
    ) -> AgentRunResult[RunOutputDataT]: ...

    def run_sync(
        self,
        user_prompt: UserPrompt = None,
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
        """Run the agent to completion synchronously, durably as the engine defines it.

        Arguments are those of [`run_sync`][pydantic_ai.agent.AbstractAgent.run_sync]; they reach `_run_sync_impl` as one
        [`RunArguments`][durable_kernel.RunArguments].

        Returns:
            The result of the run.
        """
        arguments = RunArguments[AgentDepsT](
            user_prompt=user_prompt,
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
            deprecated_kwargs=_deprecated_kwargs,
        )
        return self._run_sync_impl(arguments)

    @overload
    def iter(
        self,
        user_prompt: UserPrompt = None,
        *,
        output_type: None = None,
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
    ) -> AbstractAsyncContextManager[AgentRun[AgentDepsT, OutputDataT]]: ...

    @overload
    def iter(
        self,
        user_prompt: UserPrompt = None,
        *,
        output_type: OutputSpec[RunOutputDataT],
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
    ) -> AbstractAsyncContextManager[AgentRun[AgentDepsT, RunOutputDataT]]: ...

    def iter(
        self,
        user_prompt: UserPrompt = None,
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
    ) -> AbstractAsyncContextManager[AgentRun[AgentDepsT, Any]]:
        """Iterate over the agent graph's nodes with the engine's durable model and toolsets.

        Arguments are those of [`iter`][pydantic_ai.agent.AbstractAgent.iter]; they reach `_iter_impl` as one
        [`RunArguments`][durable_kernel.RunArguments].

        Returns:
            An async context manager giving the agent run.
        """
        arguments = RunArguments[AgentDepsT](
            user_prompt=user_prompt,
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
            deprecated_kwargs=_deprecated_kwargs,
        )
        return self._iter_impl(arguments)

    @contextmanager
    def override(
        self,
        *,
        name: str | _utils.Unset = _utils.UNSET,
        deps: AgentDepsT | _utils.Unset = _utils.UNSET,
        model: models.Model | models.KnownModelName | str | _utils.Unset = _utils.UNSET,
        toolsets: Sequence[AbstractToolset[AgentDepsT]] | _utils.Unset = _utils.UNSET,
        tools: Sequence[Tool[AgentDepsT] | ToolFuncEither[AgentDepsT, ...]] | _utils.Unset = _utils.UNSET,
        native_tools: Sequence[AgentNativeTool[AgentDepsT]] | _utils.Unset = _utils.UNSET,
        instructions: _instructions.AgentInstructions[AgentDepsT] | _utils.Unset = _utils.UNSET,
        model_settings: AgentModelSettings[AgentDepsT] | _utils.Unset = _utils.UNSET,
        retries: int | AgentRetries | _utils.Unset = _utils.UNSET,
        spec: dict[str, Any] | AgentSpec | None = None,
        **_deprecated_kwargs: Any,
    ) -> Generator[None]:
        """Temporarily override the agent's configuration (useful in tests), as the engine allows.

        Args:
            name: The name to use instead of the agent's.
            deps: The dependencies to use instead of the run's.
            model: The model to use instead of the agent's and the run's (engines require their durable model).
            toolsets: The toolsets to use instead of the agent's.
            tools: The tools to use instead of the agent's.
            native_tools: The native tools to use instead of the agent's.
            instructions: The instructions to use instead of the agent's.
            model_settings: The model settings to use instead of the agent's and the run's.
            retries: The retry budgets to use instead of the agent's and the run's.
            spec: An agent spec to apply as overrides.
            **_deprecated_kwargs: Deprecated aliases, passed on to pydantic-ai.

        Yields:
            Nothing; the overrides apply inside the `with` block.
        """
        arguments = OverrideArguments[AgentDepsT](
            name=name,
            deps=deps,
            model=model,
            toolsets=toolsets,
            tools=tools,
            native_tools=native_tools,
            instructions=instructions,
            model_settings=model_settings,
            retries=retries,
            spec=spec,
            deprecated_kwargs=_deprecated_kwargs,
        )
        with self._override_impl(arguments):
            yield
