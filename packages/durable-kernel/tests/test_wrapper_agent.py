from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncGenerator, AsyncIterable, Generator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, cast

import pytest
from pydantic_ai import Agent, RunContext
from pydantic_ai.agent import AgentRun, AgentRunResult
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import AgentStreamEvent, ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.result import StreamedRunResult
from pydantic_ai.tools import DeferredToolResults
from pydantic_ai.toolsets import FunctionToolset
from pydantic_ai.usage import RunUsage, UsageLimits

from durable_kernel import PYDANTIC_AI_2, RUN_KEYWORDS_2, DurableWrapperAgent, OverrideArguments, RunArguments

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return 'asyncio'


async def _handler(ctx: RunContext[str], events: AsyncIterable[AgentStreamEvent]) -> None:
    async for _ in events:
        pass


class _Stop(Exception):
    """Raised by the recording hooks instead of running anything: the test only looks at what reached them."""


class RecordingAgent(DurableWrapperAgent[str, str]):
    """An engine-less wrapper whose hooks record the arguments they receive."""

    def __init__(self) -> None:
        super().__init__(Agent(TestModel(), deps_type=str))
        self.calls: list[tuple[str, RunArguments[str] | OverrideArguments[str]]] = []

    async def _run_impl(self, arguments: RunArguments[str]) -> AgentRunResult[Any]:
        self.calls.append(('run', arguments))
        raise _Stop

    def _run_sync_impl(self, arguments: RunArguments[str]) -> AgentRunResult[Any]:
        self.calls.append(('run_sync', arguments))
        raise _Stop

    @asynccontextmanager
    async def _run_stream_impl(self, arguments: RunArguments[str]) -> AsyncGenerator[StreamedRunResult[str, Any]]:
        self.calls.append(('run_stream', arguments))
        raise _Stop
        yield  # pragma: no cover

    def _run_stream_events_impl(self, arguments: RunArguments[str]) -> Any:
        self.calls.append(('run_stream_events', arguments))
        raise _Stop

    @asynccontextmanager
    async def _iter_impl(self, arguments: RunArguments[str]) -> AsyncGenerator[AgentRun[str, Any]]:
        self.calls.append(('iter', arguments))
        raise _Stop
        yield  # pragma: no cover

    @contextmanager
    def _override_impl(self, arguments: OverrideArguments[str]) -> Generator[None]:
        self.calls.append(('override', arguments))
        yield


def _all_run_arguments(*, with_handler: bool) -> dict[str, Any]:
    """A distinct value for every keyword argument of `run` (`iter`'s lack `event_stream_handler`)."""
    arguments: dict[str, Any] = {
        'output_type': int,
        'message_history': [],
        'deferred_tool_results': DeferredToolResults(),
        'conversation_id': 'conversation',
        'model': TestModel(),
        'instructions': 'be brief',
        'deps': 'the deps',
        'model_settings': {'temperature': 0.5},
        'usage_limits': UsageLimits(request_limit=3),
        'usage': RunUsage(),
        'metadata': {'key': 'value'},
        'retries': 4,
        'infer_name': False,
        'toolsets': [FunctionToolset[str]()],
        'capabilities': [],
        'spec': {'name': 'from spec'},
    }
    if PYDANTIC_AI_2:  # the keywords 2.x added (those this release has): any distinct value, the hooks record it
        arguments |= {name: object() for name in RUN_KEYWORDS_2 if name in inspect.signature(Agent.run).parameters}
    if with_handler:
        arguments['event_stream_handler'] = _handler
    return arguments


ENTRY_POINTS = ('run', 'run_sync', 'run_stream', 'run_stream_events', 'iter', 'override')


def _takes_aliases(entry_point: str) -> bool:
    """Whether the installed line's entry point takes `**kwargs` (deprecated aliases): 1.107 except `iter`; not 2.x."""
    parameters = inspect.signature(getattr(Agent, entry_point)).parameters.values()
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _aliases(entry_point: str) -> dict[str, Any]:
    return {'old_alias': 1} if _takes_aliases(entry_point) else {}


@pytest.mark.parametrize('entry_point', ENTRY_POINTS)
def test_entry_points_have_the_installed_lines_signature(entry_point: str) -> None:
    ours = inspect.signature(getattr(RecordingAgent(), entry_point))
    plain = inspect.signature(getattr(Agent(TestModel()), entry_point))
    assert ours == plain


@pytest.mark.parametrize('entry_point', ['run_sync', 'override'])
def test_unknown_keyword_is_handled_as_by_the_plain_agent(entry_point: str) -> None:
    agent = RecordingAgent()
    call = getattr(cast(Any, agent), entry_point)
    if not _takes_aliases(entry_point):  # 2.x: no `**kwargs`, so Python refuses the keyword at the call
        with pytest.raises(TypeError, match='no_such_keyword'):
            call(no_such_keyword=1)
        return
    # 1.107: `**_deprecated_kwargs` takes it; it reaches the hook untouched and pydantic-ai validates it there.
    with contextlib.suppress(_Stop), call(no_such_keyword=1):
        pass
    [(_, recorded)] = agent.calls
    assert recorded.deprecated_kwargs == {'no_such_keyword': 1}


def _assert_routed(
    recorded: RunArguments[str] | OverrideArguments[str],
    given: dict[str, Any],
    *,
    iter_like: bool,
    aliases: dict[str, Any],
) -> None:
    assert isinstance(recorded, RunArguments)
    assert recorded.user_prompt == 'the prompt'
    assert recorded.deprecated_kwargs == aliases
    kwargs = recorded.iter_kwargs() if iter_like else recorded.run_kwargs()
    assert kwargs.keys() == {*given, *aliases}
    for name, value in given.items():
        assert kwargs[name] is value, name
    if iter_like:
        assert recorded.event_stream_handler is None


async def test_async_entry_points_route_every_argument() -> None:
    agent = RecordingAgent()
    any_agent = cast(Any, agent)  # `old_alias` stands for a deprecated keyword the signatures do not declare
    run_args = _all_run_arguments(with_handler=True)
    iter_args = _all_run_arguments(with_handler=False)

    with pytest.raises(_Stop):
        await any_agent.run('the prompt', **_aliases('run'), **run_args)
    with pytest.raises(_Stop):
        async with any_agent.run_stream('the prompt', **_aliases('run_stream'), **run_args):
            pass  # pragma: no cover
    with pytest.raises(_Stop):
        any_agent.run_stream_events('the prompt', **_aliases('run_stream_events'), **iter_args)
    with pytest.raises(_Stop):
        async with any_agent.iter('the prompt', **_aliases('iter'), **iter_args):
            pass  # pragma: no cover

    assert [name for name, _ in agent.calls] == ['run', 'run_stream', 'run_stream_events', 'iter']
    _assert_routed(agent.calls[0][1], run_args, iter_like=False, aliases=_aliases('run'))
    _assert_routed(agent.calls[1][1], run_args, iter_like=False, aliases=_aliases('run_stream'))
    _assert_routed(agent.calls[2][1], iter_args, iter_like=True, aliases=_aliases('run_stream_events'))
    _assert_routed(agent.calls[3][1], iter_args, iter_like=True, aliases=_aliases('iter'))


def test_run_sync_routes_every_argument() -> None:
    agent = RecordingAgent()
    run_args = _all_run_arguments(with_handler=True)
    with pytest.raises(_Stop):
        cast(Any, agent).run_sync('the prompt', **_aliases('run_sync'), **run_args)
    assert [name for name, _ in agent.calls] == ['run_sync']
    _assert_routed(agent.calls[0][1], run_args, iter_like=False, aliases=_aliases('run_sync'))


def test_override_routes_every_argument() -> None:
    agent = RecordingAgent()
    given: dict[str, Any] = {
        'name': 'other',
        'deps': 'deps',
        'model': TestModel(),
        'toolsets': [],
        'tools': [],
        'native_tools': [],
        'instructions': 'be brief',
        'model_settings': {'temperature': 0.1},
        'retries': 2,
        'spec': {'name': 'spec'},
    }
    # `metadata`: 1.107 and 2.x; `workspace`: 2.x only; `capabilities`: 2.78+.
    declared = inspect.signature(Agent.override).parameters
    optional: list[tuple[str, Any]] = [('metadata', {'k': 'v'}), ('workspace', object()), ('capabilities', [])]
    given |= {name: value for name, value in optional if name in declared}
    with cast(Any, agent).override(**_aliases('override'), **given):
        pass
    [(name, recorded)] = agent.calls
    assert name == 'override'
    assert isinstance(recorded, OverrideArguments)
    kwargs = recorded.kwargs()
    assert kwargs.keys() == {*given, *_aliases('override')}
    for key, value in given.items():
        assert kwargs[key] is value, key


def test_override_defaults_are_unset() -> None:
    agent = RecordingAgent()
    with agent.override(name='only the name'):
        pass
    [(_, recorded)] = agent.calls
    assert recorded == OverrideArguments[str](name='only the name')


def test_run_arguments_round_trip_through_kwargs() -> None:
    arguments = RunArguments[str](
        user_prompt='hi', deps='d', event_stream_handler=_handler, deprecated_kwargs={'old_alias': 1}
    )
    rebuilt = RunArguments.from_kwargs('hi', arguments.run_kwargs())
    assert rebuilt == arguments
    assert 'event_stream_handler' not in arguments.iter_kwargs()
    # An `event_stream_handler` passed where the signature has none is forwarded untouched, for pydantic-ai to refuse.
    given_anyway = RunArguments[str](deps='d', deprecated_kwargs={'event_stream_handler': _handler})
    assert given_anyway.iter_kwargs()['event_stream_handler'] is _handler


def test_from_kwargs_defaults_missing_deps() -> None:
    assert RunArguments.from_kwargs(None, {}) == RunArguments[Any](deps=None)


def _shouting(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[TextPart('SHOUT')])


class PlainAgent(DurableWrapperAgent[None, str]):
    """A wrapper that overrides no hook: every entry point must behave like the wrapped agent."""


def _plain_agent() -> PlainAgent:
    return PlainAgent(Agent(TestModel(custom_output_text='plain')))


async def test_default_hooks_behave_like_the_wrapped_agent() -> None:
    agent = _plain_agent()
    assert (await agent.run('hi')).output == 'plain'
    async with agent.run_stream('hi') as streamed:
        assert await streamed.get_output() == 'plain'
    kinds: list[str] = []
    async with agent.run_stream_events('hi') as stream:
        async for event in stream:
            kinds.append(cast(Any, event).event_kind)
    assert kinds[-1] == 'agent_run_result'
    async with agent.iter('hi') as agent_run:
        async for _ in agent_run:
            pass
    assert agent_run.result is not None
    assert agent_run.result.output == 'plain'
    with agent.override(model=FunctionModel(_shouting)):
        assert (await agent.run('hi')).output == 'SHOUT'
    assert (await agent.run('hi', model=FunctionModel(_shouting))).output == 'SHOUT'


def test_default_run_sync_behaves_like_the_wrapped_agent() -> None:
    agent = _plain_agent()
    assert agent.run_sync('hi').output == 'plain'
    assert agent.run_sync('hi', model=FunctionModel(_shouting)).output == 'SHOUT'


def test_run_keywords_are_carried_refused_or_refused_by_default() -> None:
    reasons = {'timeout': 'use the engine timeout.'}
    carried = {'run_id'}
    RunArguments[str](deps='d', run_id='r').refuse_run_keywords(carried=carried, refused=reasons, where='here')
    with pytest.raises(UserError, match=r'^`timeout=` cannot be passed to here: use the engine timeout\.$'):
        RunArguments[str](deps='d', timeout=3.0).refuse_run_keywords(carried=carried, refused=reasons, where='here')
    # A keyword in neither collection (as a later pydantic-ai adds one) is refused, never dropped.
    with pytest.raises(UserError, match='`workspace=` cannot be passed to here: .*does not know how to carry'):
        RunArguments[str](deps='d', workspace='new').refuse_run_keywords(carried=carried, refused=reasons, where='here')


class _OwnLoopAgent(DurableWrapperAgent[None, str]):
    """Runs `run_sync` on its own event loop, as the DBOS and Prefect wrappers do (not through the plain agent's)."""

    def _run_sync_impl(self, arguments: RunArguments[None]) -> AgentRunResult[Any]:
        return asyncio.run(self._agent_run(arguments))


def test_run_sync_from_a_sync_tool_is_handled_as_by_the_plain_agent() -> None:
    """2.x refuses a nested `run_sync` in a sync tool (it can deadlock the run); the wrappers' own `run_sync` does too."""
    inner = Agent(TestModel(), name='inner')

    def outcome(agent: Any) -> str:
        def call(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
            if any(isinstance(p, ToolReturnPart) for m in messages for p in m.parts):
                return ModelResponse(parts=[TextPart('done')])
            return ModelResponse(parts=[ToolCallPart('delegate', {})])

        outer = Agent(FunctionModel(call))

        @outer.tool_plain
        def delegate() -> str:
            return agent.run_sync('hello').output

        try:
            return outer.run_sync('go').output
        except UserError as error:
            return f'UserError: {error}'

    plain, wrapped = outcome(inner), outcome(_OwnLoopAgent(inner))
    assert wrapped == plain
    if PYDANTIC_AI_2:
        assert 'cannot be used inside a synchronous tool' in wrapped


class _InContainer(DurableWrapperAgent[None, str]):
    def _durable_container(self) -> str | None:
        return 'a test container'


async def test_realtime_sessions_are_refused_inside_a_durable_container() -> None:
    agent = _InContainer(Agent(TestModel(), name='realtime'))
    if not hasattr(agent, 'realtime'):  # 1.107 has no realtime sessions: nothing to refuse
        assert not PYDANTIC_AI_2
        return
    realtime: Any = cast(Any, agent).realtime(cast(Any, object()))
    with pytest.raises(
        UserError, match=r'`agent.realtime\(\.\.\.\)\.session\(\)` cannot be used inside a test container'
    ):
        async with realtime.session():
            pass  # pragma: no cover
    with pytest.raises(UserError, match='answer_webrtc_offer.*cannot be used inside a test container'):
        await realtime.answer_webrtc_offer('v=0')
