"""The conformance scenarios: agents with scripted models, written once and run on every engine.

Everything here is built at import time and deterministically, because the Temporal sandbox re-imports this
module in every workflow run and DBOS needs every agent before `DBOS.launch()`.
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from pathlib import Path
from typing import Any, Literal

import anyio
from pydantic import BaseModel
from pydantic_ai import Agent, DeferredToolRequests, FunctionToolset, ModelRetry, RunContext
from pydantic_ai.exceptions import CallDeferred
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.messages import (
    BinaryContent,
    DocumentUrl,
    ImageUrl,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    ToolReturnPart,
    UserContent,
    UserPromptPart,
)
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import DeferredToolResults
from pydantic_ai.usage import UsageLimits

from durable_kernel import PYDANTIC_AI_2, DepsResolver

from ._events import record_events
from ._inputs import Deps, RunInput, Scenario
from ._scripted import calls, last_request, prompt_text, scripted_model, text, turn

__all__ = (
    'ALL_SCENARIOS',
    'FAILING_SCENARIOS',
    'OVERSIZED_SCENARIO',
    'SCENARIOS',
    'SECRETS_SCENARIO',
    'STREAM_OUT_SCENARIOS',
    'STREAM_OUT_TOPIC',
    'capability_twin',
    'FORMS',
    'Deps',
    'Form',
    'RunInput',
    'Scenario',
    'scenario',
)


Form = Literal['wrapper', 'capability']
"""How a scenario's agent is made durable: wrapped (`TemporalAgent`, ...) or with a capability (`TemporalDurability`)."""

FORMS: tuple[Form, ...] = ('wrapper', 'capability')

_BUILT_WITH: dict[str, dict[str, Any]] = {}
"""The keywords each scenario agent was built with, by agent name (`capability_twin` builds it again from them)."""


def _agent(model: Model, **kwargs: Any) -> Agent[Deps, Any]:
    """`Agent(model, **kwargs)`, its keywords kept for `capability_twin`."""
    _BUILT_WITH[kwargs['name']] = {'model': model, **kwargs}
    return Agent(model, **kwargs)


def capability_twin(agent: Agent[Deps, Any], capability: Any, *, suffix: str = '_capability') -> Agent[Deps, Any]:
    """`agent` built again under the name `{name}{suffix}` with `capability` attached: the capability form.

    The twin has the same model, keywords, tools (those registered with decorators too) and toolsets (dynamic ones
    too, the same instances), so a run of it must equal a plain run of `agent`.
    """
    assert agent.name is not None
    own = agent._function_toolset  # pyright: ignore[reportPrivateUsage]  # the decorated tools: the twin's own
    built: dict[str, Any] = {
        **_BUILT_WITH[agent.name],
        'name': f'{agent.name}{suffix}',
        'tools': list(own.tools.values()),
        'toolsets': [toolset for toolset in agent.toolsets if toolset is not own],
        'capabilities': [] if capability is None else [capability],
    }
    return Agent(**built)


def _tool_returns(messages: list[ModelMessage]) -> list[str]:
    request = last_request(messages)
    return [f'{part.tool_name}={part.content}' for part in request.parts if isinstance(part, ToolReturnPart)]


def _agent_with_handler(model: Model, name: str) -> Agent[Deps, str]:
    # The handler is given to the durable wrapper (`event_stream_handler=` of TemporalAgent/DBOSAgent/PrefectAgent,
    # see `handler_for`): pydantic-ai 2.x has no agent-level handler (1.107 deprecated it).
    return _agent(model, name=name, deps_type=Deps)


# --- plain text ---------------------------------------------------------------------------------------------------


def _plain_text(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return text(f'echo: {prompt_text(messages)} (instructions: {info.instructions})')


plain_text_agent = _agent(
    scripted_model('plain', _plain_text),
    name='plain_text',
    deps_type=Deps,
    instructions='Answer briefly.',
)


# --- structured output --------------------------------------------------------------------------------------------


class City(BaseModel):
    """A structured output."""

    name: str
    population: int
    landmarks: list[str]


def _structured(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    output_tool = info.output_tools[0].name
    return calls((output_tool, {'name': 'Rome', 'population': 2_800_000, 'landmarks': ['Colosseum']}, 'out-1'))


structured_agent = _agent(
    scripted_model('structured', _structured), name='structured_output', deps_type=Deps, output_type=City
)


# --- function tools (sync and async) with pydantic deps ----------------------------------------------------------


def _function_tools(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    if turn(messages) == 0:
        return calls(('multiply', {'x': 7}, 'call-mul'), ('greet', {'name': 'bob'}, 'call-greet'))
    return text('; '.join(_tool_returns(messages)))


function_tools_agent = _agent(scripted_model('tools', _function_tools), name='function_tools', deps_type=Deps)


@function_tools_agent.tool
def multiply(ctx: RunContext[Deps], x: int) -> int:
    """Multiply by the multiplier in the deps (a sync tool)."""
    return x * ctx.deps.multiplier


@function_tools_agent.tool
async def greet(ctx: RunContext[Deps], name: str) -> str:
    """Greet someone (an async tool that reads the run context)."""
    await anyio.sleep(0)
    return f'hello {name} from {ctx.deps.user} (step {ctx.run_step}, call {ctx.tool_call_id}, retry {ctx.retry})'


# --- parallel tool calls ------------------------------------------------------------------------------------------

PARALLEL_DELAYS = (0.2, 0.1, 0.0, 0.15)


def _parallel(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    if turn(messages) == 0:
        return calls(*((('slow_square', {'n': n}, f'call-{n}')) for n in range(len(PARALLEL_DELAYS))))
    return text(', '.join(_tool_returns(messages)))


parallel_agent = _agent_with_handler(scripted_model('parallel', _parallel), 'parallel_tools')


@parallel_agent.tool_plain
async def slow_square(n: int) -> int:
    """Square `n` after a delay that makes the calls finish in a different order than they were made."""
    await anyio.sleep(PARALLEL_DELAYS[n])
    return n * n


# --- dynamic toolset ----------------------------------------------------------------------------------------------


def _dynamic(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    names = sorted(tool.name for tool in info.function_tools)
    if turn(messages) == 0:
        return calls(('shout', {'word': 'hey'}, 'call-shout'))
    return text(f'tools {names}: {_tool_returns(messages)}')


dynamic_agent = _agent(scripted_model('dynamic', _dynamic), name='dynamic_toolset', deps_type=Deps)


def _shout(ctx: RunContext[Deps], word: str) -> str:
    """Shout a word on behalf of the user in the deps."""
    return f'{ctx.deps.user} says {word.upper()}!'


@dynamic_agent.toolset(id='per_user')
def per_user_tools(ctx: RunContext[Deps]) -> FunctionToolset[Deps]:
    """A toolset built from the deps on every step."""
    toolset = FunctionToolset[Deps]()
    toolset.add_function(_shout, name='shout')
    if ctx.deps.multiplier > 1:
        toolset.add_function(_shout, name=f'shout_x{ctx.deps.multiplier}')
    return toolset


# --- a local stdio MCP server -------------------------------------------------------------------------------------

MCP_SERVER_SCRIPT = Path(__file__).with_name('mcp_server.py')


def _mcp(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    names = sorted(tool.name for tool in info.function_tools)
    if turn(messages) == 0:
        return calls(('add', {'a': 2, 'b': 40}, 'call-add'), ('describe_number', {'n': 7}, 'call-describe'))
    return text(f'tools {names}: {_tool_returns(messages)}; instructions: {info.instructions}')


def _mcp_stdio_agent() -> Agent[Deps, str]:
    from pydantic_ai import mcp

    with warnings.catch_warnings():
        # `MCPServerStdio` is deprecated in favour of `MCPToolset`, but it is what the durable wrappers must support.
        warnings.filterwarnings('ignore', message=r'.*MCPServerStdio.*')
        calculator = mcp.MCPServerStdio(  # pyright: ignore[reportDeprecated]
            sys.executable, [str(MCP_SERVER_SCRIPT)], id='calc', timeout=30
        )
    return _agent(scripted_model('mcp', _mcp), name='mcp_stdio', deps_type=Deps, toolsets=[calculator])


def _mcp_stdio_agent_v2() -> Agent[Deps, str]:
    # What a user upgrading to pydantic-ai 2.x writes instead (2.x removed `MCPServerStdio`): an `MCPToolset` on the
    # same server with the same id, so the durable units keep their names and a run recorded on 1.107 replays.
    calculator: MCPToolset[Deps] = MCPToolset(MCP_SERVER_SCRIPT, id='calc', init_timeout=30)
    return _agent(scripted_model('mcp', _mcp), name='mcp_stdio', deps_type=Deps, toolsets=[calculator])


mcp_agent = _mcp_stdio_agent_v2() if PYDANTIC_AI_2 else _mcp_stdio_agent()


def _fastmcp_calculator() -> MCPToolset[Deps]:
    from fastmcp.client.transports import PythonStdioTransport

    # fastmcp keeps a stdio server alive between sessions by default, in a task of the first session's caller: a run
    # in a later test (another task of pytest's runner) then finds that task cancelled. One server per session here.
    transport = PythonStdioTransport(MCP_SERVER_SCRIPT, keep_alive=False)
    return MCPToolset(transport, id='calc_fast', include_instructions=True, init_timeout=30)


# The FastMCP-based toolset that pydantic-ai recommends, on the same server, with its instructions included.
# `init_timeout=30`: the server is a Python subprocess, slower to start than the default 5 s on a loaded machine.
fastmcp_agent = _agent(
    scripted_model('fastmcp', _mcp), name='mcp_toolset', deps_type=Deps, toolsets=[_fastmcp_calculator()]
)


# --- streamed model request observed by an event handler ---------------------------------------------------------


def _streamed(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    if turn(messages) == 0:
        return ModelResponse(
            parts=[*text('let me look that up').parts, *calls(('lookup', {'key': 'answer'}, 'call-lookup')).parts]
        )
    return text(f'the answer is {_tool_returns(messages)}')


streamed_agent = _agent_with_handler(scripted_model('streamed', _streamed), 'streamed_events')


@streamed_agent.tool_plain
def lookup(key: str) -> str:
    """Look up a key."""
    return {'answer': '42'}.get(key, 'unknown')


# --- ModelRetry from a tool ---------------------------------------------------------------------------------------


def _retry(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    request = last_request(messages)
    if turn(messages) == 0:
        return calls(('pick_even', {'n': 3}, 'call-pick-1'))
    if any(isinstance(part, RetryPromptPart) for part in request.parts):
        return calls(('pick_even', {'n': 4}, 'call-pick-2'))
    return text(f'done: {_tool_returns(messages)}')


retry_agent = _agent(scripted_model('retry', _retry), name='model_retry', deps_type=Deps)


@retry_agent.tool(retries=2)
def pick_even(ctx: RunContext[Deps], n: int) -> str:
    """Accept only even numbers."""
    if n % 2:
        raise ModelRetry(f'{n} is odd, pick an even number (retry {ctx.retry})')
    return f'{n} accepted after {ctx.retry} retries'


# --- approval-required and deferred tools -------------------------------------------------------------------------


def _deferred(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    if turn(messages) == 0:
        return calls(
            ('delete_file', {'path': '/tmp/x'}, 'call-delete'),
            ('long_job', {'size': 5}, 'call-job'),
            ('multiply_plain', {'x': 2}, 'call-mul'),
        )
    return text(f'resumed with {_tool_returns(messages)}')


deferred_agent = _agent(
    scripted_model('deferred', _deferred),
    name='deferred_tools',
    deps_type=Deps,
    output_type=[str, DeferredToolRequests],
)


@deferred_agent.tool(requires_approval=True)
def delete_file(ctx: RunContext[Deps], path: str) -> str:
    """Delete a file (needs approval)."""
    return f'{ctx.deps.user} deleted {path}'


@deferred_agent.tool_plain
def long_job(size: int) -> str:
    """Start a job that finishes outside the run."""
    raise CallDeferred(metadata={'size': size})


@deferred_agent.tool_plain
def multiply_plain(x: int) -> int:
    """Double a number."""
    return x * 2


def _deferred_follow_up(messages: list[ModelMessage]) -> RunInput:
    results = DeferredToolResults(approvals={'call-delete': True}, calls={'call-job': 'job finished: 5 items'})
    return RunInput(prompt=None, message_history=messages, deferred_tool_results=results)


# --- model settings subclass --------------------------------------------------------------------------------------


class TunedSettings(ModelSettings, total=False):
    """A provider-specific settings subclass: its extra keys must reach the model unchanged."""

    tuned_style: str
    tuned_depth: int


def _settings(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return text(json.dumps(info.model_settings, sort_keys=True))


settings_agent = _agent(
    scripted_model('settings', _settings),
    name='model_settings',
    deps_type=Deps,
    model_settings=TunedSettings(temperature=0.25, tuned_style='terse'),
)


# --- multimodal content -------------------------------------------------------------------------------------------

PIXEL = bytes.fromhex('89504e470d0a1a0a0000000d4948445200000001000000010806000000') + bytes(range(64))


def _multimodal(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    described: list[str] = []
    for message in messages:
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, UserPromptPart) and not isinstance(part.content, str):
                    for item in part.content:
                        if isinstance(item, BinaryContent):
                            digest = hashlib.sha256(item.data).hexdigest()[:12]
                            described.append(f'binary {item.media_type} {len(item.data)}B {digest}')
                        elif isinstance(item, DocumentUrl | ImageUrl):
                            described.append(f'{item.kind} {item.url} {item.media_type}')
                        else:
                            described.append(f'{type(item).__name__} {item!r}')
    return text(' | '.join(described))


multimodal_agent = _agent(scripted_model('multimodal', _multimodal), name='multimodal', deps_type=Deps)

MULTIMODAL_PROMPT: list[UserContent] = [
    'Describe these:',
    BinaryContent(data=PIXEL, media_type='image/png'),
    DocumentUrl(url='https://example.com/report.pdf'),
    ImageUrl(url='https://example.com/cat.jpg'),
]


# --- a run that fails: the agent loop's error must reach the caller ----------------------------------------------


def _endless(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return calls(('tick', {}, f'call-tick-{turn(messages)}'))


endless_agent = _agent(scripted_model('endless', _endless), name='usage_limit', deps_type=Deps)


@endless_agent.tool_plain
def tick() -> str:
    """Do nothing, forever."""
    return 'tock'


# --- secrets: deps cross as a reference, the live ones hold a credential ------------------------------------------

CONFORMANCE_SECRET = 'sk-conformance-5e0d7c1b9a34f2'
"""A credential only the worker's secret store holds: it must appear in no engine's storage."""

SECRET_STORE = {'vault-user': CONFORMANCE_SECRET}


class KeyedDeps(Deps):
    """The live deps: the reference's fields and the credential resolved for them."""

    api_key: str


def resolve_keyed_deps(reference: Deps) -> KeyedDeps:
    return KeyedDeps(user=reference.user, multiplier=reference.multiplier, api_key=SECRET_STORE[reference.user])


def keyed_deps_reference(deps: Deps) -> Deps:
    return Deps(user=deps.user, multiplier=deps.multiplier)


KEYED_DEPS_RESOLVER = DepsResolver[Deps, Deps](reference=keyed_deps_reference, resolve=resolve_keyed_deps)


def _secrets(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    if turn(messages) == 0:
        return calls(('call_api', {}, 'api1'))
    return text(f'api said: {", ".join(_tool_returns(messages))}')


secrets_agent = _agent(
    scripted_model('secrets', _secrets), name='secrets', deps_type=Deps, instructions='Call the API for the user.'
)


@secrets_agent.tool
def call_api(ctx: RunContext[Deps]) -> str:
    """Call an API with the user's credential (a tool call: an activity, a step, a task)."""
    deps = ctx.deps
    authorized = isinstance(deps, KeyedDeps) and deps.api_key == SECRET_STORE.get(deps.user)
    return f'{deps.user} vault-ok={authorized}'


SECRETS_SCENARIO = Scenario(
    'secrets', secrets_agent, RunInput('Call the API', Deps(user='vault-user')), deps_resolver=KEYED_DEPS_RESOLVER
)
"""Runs on every engine like the others, outside `SCENARIOS` (it has no golden Temporal history): the durable run
must equal the plain one and the credential must be in none of the engine's storage."""


# --- a tool result over Temporal's payload size limit ----------------------------------------------------------


def _oversized(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    if turn(messages) == 0:
        return calls(('produce', {'size': int(prompt_text(messages).split()[-1])}, 'call-produce'))
    request = last_request(messages)
    sizes = [len(str(part.content)) for part in request.parts if isinstance(part, ToolReturnPart)]
    return text(f'received {sum(sizes)} characters')


oversized_agent = _agent(scripted_model('oversized', _oversized), name='oversized', deps_type=Deps)


@oversized_agent.tool_plain
def produce(size: int) -> str:
    """Return `size` characters."""
    return 'x' * size


# --- the catalogue ------------------------------------------------------------------------------------------------

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario('plain_text', plain_text_agent, RunInput('What is durable execution?')),
        Scenario('structured_output', structured_agent, RunInput('Tell me about Rome')),
        Scenario('function_tools', function_tools_agent, RunInput('Use the tools', Deps(user='grace', multiplier=5))),
        Scenario('parallel_tools', parallel_agent, RunInput('Square 0..3 in parallel'), records_events=True),
        Scenario('dynamic_toolset', dynamic_agent, RunInput('Shout', Deps(user='linus', multiplier=2))),
        Scenario('mcp_stdio', mcp_agent, RunInput('Add 2 and 40')),
        Scenario('mcp_toolset', fastmcp_agent, RunInput('Add 2 and 40')),
        Scenario('streamed_events', streamed_agent, RunInput('What is the answer?'), records_events=True),
        Scenario('model_retry', retry_agent, RunInput('Pick an even number')),
        Scenario('deferred_tools', deferred_agent, RunInput('Clean up'), follow_up=_deferred_follow_up),
        Scenario(
            'model_settings',
            settings_agent,
            RunInput('Which settings?', model_settings=dict(TunedSettings(tuned_depth=3, max_tokens=100))),
        ),
        Scenario('multimodal', multimodal_agent, RunInput(MULTIMODAL_PROMPT)),
    )
}

FAILING_SCENARIOS: dict[str, Scenario] = {
    'usage_limit': Scenario('usage_limit', endless_agent, RunInput('Loop', usage_limits=UsageLimits(request_limit=3))),
}
"""Scenarios whose run raises: the durable run must fail with the plain run's error, not hang or retry."""

OVERSIZED_SCENARIO = Scenario('oversized_tool_result', oversized_agent, RunInput('Produce 0'))
"""A tool returning as many characters as the prompt's last word says (`RunInput(f'Produce {size}')`).

The outcome depends on the engine's payload limits (see `test_conformance.test_oversized_tool_result`).
"""

# --- stream out: a run's events read live by a consumer outside the run (issue: live events) ---------------------

STREAM_OUT_TOPIC = 'conformance-events'
"""The `event_stream_topic=` the engines' wrappers of the stream-out agents publish to."""

stream_out_streamed_agent = _agent_with_handler(scripted_model('stream_out_streamed', _streamed), 'stream_out_streamed')
stream_out_streamed_agent.tool_plain(lookup)
stream_out_parallel_agent = _agent_with_handler(scripted_model('stream_out_parallel', _parallel), 'stream_out_parallel')
stream_out_parallel_agent.tool_plain(slow_square)

STREAM_OUT_SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            'stream_out_streamed', stream_out_streamed_agent, RunInput('What is the answer?'), records_events=True
        ),
        Scenario(
            'stream_out_parallel', stream_out_parallel_agent, RunInput('Square 0..3 in parallel'), records_events=True
        ),
    )
}
"""Scenarios whose durable wrapper publishes to `STREAM_OUT_TOPIC`: a consumer outside the run must read the events
the run's handler sees, in the same order, and the run's output."""

ALL_SCENARIOS: dict[str, Scenario] = {
    **SCENARIOS,
    **FAILING_SCENARIOS,
    SECRETS_SCENARIO.name: SECRETS_SCENARIO,
    OVERSIZED_SCENARIO.name: OVERSIZED_SCENARIO,
}
"""Every agent the engines must wrap without a topic."""


def handler_for(scenario: Scenario) -> Any:
    """The `event_stream_handler=` to give the durable wrapper of `scenario`'s agent (`None` if it records none)."""
    return record_events if scenario.records_events else None


def scenario(name: str) -> Scenario:
    """The scenario called `name`."""
    return ALL_SCENARIOS[name] if name in ALL_SCENARIOS else STREAM_OUT_SCENARIOS[name]
