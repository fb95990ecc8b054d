"""Activity configs: 60 s default, model/toolset/tool layers merged without mutating the caller's objects."""

from __future__ import annotations

import copy
import inspect
import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from core_helpers import WORKFLOW_TIMEOUT
from pydantic_ai import Agent, FunctionToolset, Tool
from pydantic_ai.exceptions import UserError
from pydantic_ai.models.test import TestModel
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import ActivityTaskScheduledEventAttributes
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityConfig

from durable_kernel import PYDANTIC_AI_2
from durable_temporal import AgentPlugin, TemporalAgent, TemporalDurability
from durable_temporal._config import NON_RETRYABLE_ERROR_TYPES, merge_activity_config
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio

TOOL_RUNS: list[str] = []


async def slow_tool() -> str:
    TOOL_RUNS.append('slow')
    return 'slow done'


async def inline_tool() -> str:
    TOOL_RUNS.append('inline')
    return 'inline done'


async def other_tool() -> str:
    TOOL_RUNS.append('other')
    return 'other done'


BASE: ActivityConfig = {
    'start_to_close_timeout': timedelta(seconds=30),
    'retry_policy': RetryPolicy(maximum_attempts=5),
}
MODEL: ActivityConfig = {'start_to_close_timeout': timedelta(seconds=45)}
TOOLSET: dict[str, ActivityConfig] = {'tools': {'retry_policy': RetryPolicy(maximum_attempts=2)}}
TOOLS: dict[str, dict[str, ActivityConfig | bool]] = {
    'tools': {'slow_tool': {'start_to_close_timeout': timedelta(seconds=90)}, 'inline_tool': False}
}
SNAPSHOT = copy.deepcopy((BASE, MODEL, TOOLSET, TOOLS))

config_agent = TemporalAgent(
    Agent(TestModel(), name='config', toolsets=[FunctionToolset([slow_tool, inline_tool, other_tool], id='tools')]),
    activity_config=BASE,
    model_activity_config=MODEL,
    toolset_activity_config=TOOLSET,
    tool_activity_config=TOOLS,  # pyright: ignore[reportArgumentType]
)
default_agent = TemporalAgent(Agent(TestModel(), name='config_default'))


@workflow.defn
class ConfigWorkflow:
    @workflow.run
    async def run(self, which: str) -> str:
        agent = config_agent if which == 'config' else default_agent
        return (await agent.run('go')).output


def test_caller_configs_are_not_mutated() -> None:
    assert (BASE, MODEL, TOOLSET, TOOLS) == SNAPSHOT
    policy = BASE.get('retry_policy')
    assert policy is not None
    assert policy.non_retryable_error_types is None


async def test_merged_configs_reach_the_scheduled_activities(client: Client, task_queue: str) -> None:
    TOOL_RUNS.clear()
    async with agent_worker(
        client, workflows=[ConfigWorkflow], agents=[config_agent, default_agent], task_queue=task_queue
    ):
        handle = await client.start_workflow(
            ConfigWorkflow.run,
            'config',
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        output = await handle.result()
        default_handle = await client.start_workflow(
            ConfigWorkflow.run,
            'default',
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        await default_handle.result()
    # The tool whose activity is disabled ran in the workflow sandbox (its own copy of this module), not here.
    assert 'inline done' in output
    assert sorted(TOOL_RUNS) == ['other', 'slow']

    scheduled: dict[str, ActivityTaskScheduledEventAttributes] = {}
    for event in (await handle.fetch_history()).events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            key: str = attrs.activity_type.name
            if key.endswith('call_tool'):
                params = client.data_converter.payload_converter.from_payload(attrs.input.payloads[0], dict[str, Any])
                key += f':{params["name"]}'
            scheduled[key] = attrs
    # The tool whose activity is disabled ran in the workflow: no activity for it.
    assert set(scheduled) == {
        'agent__config__model_request',
        'agent__config__toolset__tools__call_tool:slow_tool',
        'agent__config__toolset__tools__call_tool:other_tool',
    }
    model = scheduled['agent__config__model_request']
    assert model.start_to_close_timeout.ToTimedelta() == timedelta(seconds=45)
    assert model.retry_policy.maximum_attempts == 5
    slow = scheduled['agent__config__toolset__tools__call_tool:slow_tool']
    assert slow.start_to_close_timeout.ToTimedelta() == timedelta(seconds=90)
    assert slow.retry_policy.maximum_attempts == 2
    other = scheduled['agent__config__toolset__tools__call_tool:other_tool']
    assert other.start_to_close_timeout.ToTimedelta() == timedelta(seconds=30)
    for attrs in scheduled.values():
        # A narrower retry policy keeps UserError and PydanticUserError non-retryable.
        assert list(attrs.retry_policy.non_retryable_error_types) == list(NON_RETRYABLE_ERROR_TYPES)

    for event in (await default_handle.fetch_history()).events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            assert attrs.start_to_close_timeout.ToTimedelta() == timedelta(seconds=60)
            assert list(attrs.retry_policy.non_retryable_error_types) == list(NON_RETRYABLE_ERROR_TYPES)


def test_merge_activity_config_layers_without_mutation() -> None:
    policy = RetryPolicy(maximum_attempts=3, non_retryable_error_types=['MyError'])
    base: ActivityConfig = {'retry_policy': policy, 'schedule_to_close_timeout': timedelta(seconds=5)}
    merged = merge_activity_config(base, {'summary': 'narrower'})
    # A schedule-to-close timeout is enough: no start-to-close default is added.
    assert 'start_to_close_timeout' not in merged
    merged_policy = merged.get('retry_policy')
    assert merged_policy is not None
    assert merged_policy is not policy
    assert merged_policy.non_retryable_error_types == ['MyError', *NON_RETRYABLE_ERROR_TYPES]
    assert policy.non_retryable_error_types == ['MyError']
    assert merged.get('summary') == 'narrower'
    assert merge_activity_config(None).get('start_to_close_timeout') == timedelta(seconds=60)


def test_non_retryable_error_types_of_each_line() -> None:
    """On pydantic-ai 2.x a retry policy also stops on what 2.x's own Temporal integration stops on; 1.107 as 1.107."""
    if PYDANTIC_AI_2:
        assert NON_RETRYABLE_ERROR_TYPES[:4] == (
            'UserError',
            'PydanticUserError',
            'UnexpectedModelBehavior',
            'FallbackExceptionGroup',
        )
        # The over-limit payload failure, under the name the installed temporalio gives it.
        assert NON_RETRYABLE_ERROR_TYPES[4] in {'PayloadSizeError', 'PayloadsTooLarge'}
        assert len(NON_RETRYABLE_ERROR_TYPES) == 5
    else:
        assert NON_RETRYABLE_ERROR_TYPES == ('UserError', 'PydanticUserError')
    for config in (
        TemporalDurability(activity_config={'retry_policy': RetryPolicy(non_retryable_error_types=['Mine'])}),
        TemporalAgent(Agent(TestModel(), name='config_errors_probe')),
    ):
        policy = config.activity_config.get('retry_policy')
        assert policy is not None
        names = list(policy.non_retryable_error_types or [])
        assert names[-len(NON_RETRYABLE_ERROR_TYPES) :] == list(NON_RETRYABLE_ERROR_TYPES)


@pytest.mark.parametrize(
    ('kwargs', 'where'),
    [
        ({'activity_config': {'timeout': timedelta(seconds=1)}}, '`activity_config`'),
        ({'model_activity_config': {'start_to_close': timedelta(seconds=1)}}, '`model_activity_config`'),
        ({'model_activity_config': {'start_to_close_timeout': 'five minutes'}}, '`model_activity_config`'),
        # A per-tool map given as a toolset's config (it belongs in `tool_activity_config`).
        ({'toolset_activity_config': {'tools': {'slow_tool': False}}}, "`toolset_activity_config['tools']`"),
        (
            {'tool_activity_config': {'tools': {'slow_tool': {'retry': 3}}}},
            "`tool_activity_config['tools']['slow_tool']`",
        ),
    ],
)
@pytest.mark.parametrize('form', ['wrapper', 'capability'])
def test_invalid_activity_configs_are_refused_at_construction(kwargs: dict[str, Any], where: str, form: str) -> None:
    """A key temporalio does not know, or a value it cannot use, fails when the agent is made durable.

    Left alone it would fail only when workflow code schedules the activity, as a workflow *task* failure that
    Temporal retries forever.
    """

    def make_durable() -> object:
        if form == 'wrapper':
            return TemporalAgent(Agent(TestModel(), name='config_refused'), **kwargs)
        return TemporalDurability(**kwargs)

    with pytest.raises(UserError, match=re.escape(f'Invalid Temporal `ActivityConfig` in {where}')):
        make_durable()


# As a config comes back from JSON (a file, an environment variable): ISO-8601 durations and a retry policy as a dict.
JSON_BASE: dict[str, Any] = {'start_to_close_timeout': 'PT50S', 'retry_policy': {'maximum_attempts': 4}}
JSON_TOOLSET: dict[str, Any] = {'json_tools': {'start_to_close_timeout': 'PT1M10S'}}
json_config_agent = Agent(
    TestModel(),
    name='config_json',
    toolsets=[FunctionToolset([other_tool], id='json_tools')],
    capabilities=[
        TemporalDurability(
            activity_config=JSON_BASE,  # pyright: ignore[reportArgumentType]
            toolset_activity_config=JSON_TOOLSET,
        )
    ],
)


@workflow.defn
class JsonConfigWorkflow:
    @workflow.run
    async def run(self) -> str:
        return (await json_config_agent.run('go')).output


async def test_configs_from_json_are_coerced_for_the_scheduled_activities(client: Client, task_queue: str) -> None:
    """Durations given as ISO-8601 strings and a retry policy given as a dict reach Temporal as its own types."""
    assert JSON_BASE == {'start_to_close_timeout': 'PT50S', 'retry_policy': {'maximum_attempts': 4}}
    async with agent_worker(
        client, workflows=[JsonConfigWorkflow], plugins=[AgentPlugin(json_config_agent)], task_queue=task_queue
    ):
        handle = await client.start_workflow(
            JsonConfigWorkflow.run, id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
        )
        assert 'other done' in await handle.result()
    timeouts: dict[str, timedelta] = {}
    for event in (await handle.fetch_history()).events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            timeouts[attrs.activity_type.name] = attrs.start_to_close_timeout.ToTimedelta()
            assert attrs.retry_policy.maximum_attempts == 4
            assert list(attrs.retry_policy.non_retryable_error_types) == list(NON_RETRYABLE_ERROR_TYPES)
    assert timeouts == {
        'agent__config_json__model_request': timedelta(seconds=50),
        'agent__config_json__toolset__json_tools__call_tool': timedelta(seconds=70),
    }


# --- what a tool says of itself (pydantic-ai 2.78: `metadata={'temporal': ...}`, `durable=False`) ---------------------

TOOL_SAYS_DURABLE = 'durable' in inspect.signature(Tool).parameters
"""Whether this pydantic-ai has `Tool(..., durable=...)` (2.78+)."""


async def measured() -> str:
    return 'measured'


async def inline() -> str:
    return 'inline'


async def undurable() -> str:
    return 'undurable'


async def kept() -> str:
    return 'kept'


def _own_tools() -> FunctionToolset[None]:
    tools: list[Tool[None]] = [
        Tool(measured, metadata={'temporal': {'start_to_close_timeout': timedelta(seconds=77)}}),
        Tool(inline, metadata={'temporal': False}),
    ]
    if TOOL_SAYS_DURABLE:
        durable_false: dict[str, Any] = {'durable': False}
        tools.append(Tool(undurable, **durable_false))
        # The engine's metadata key wins over `durable=False`, and the agent's own per-tool config over both.
        tools.append(
            Tool(kept, metadata={'temporal': {'start_to_close_timeout': timedelta(seconds=5)}}, **durable_false)
        )
    return FunctionToolset(tools, id='own')


own_tools_agent = Agent(
    TestModel(),
    name='config_own',
    toolsets=[_own_tools()],
    capabilities=[
        TemporalDurability(tool_activity_config={'own': {'kept': {'start_to_close_timeout': timedelta(seconds=88)}}})
    ],
)


@workflow.defn
class OwnToolConfigWorkflow:
    @workflow.run
    async def run(self) -> str:
        return (await own_tools_agent.run('go')).output


async def test_a_tool_configures_its_own_activity(client: Client, task_queue: str) -> None:
    """`metadata={'temporal': config}` sets the tool's activity options, `False` (and, on 2.78, `durable=False`) runs
    the tool in workflow code; the agent's `tool_activity_config` for the tool wins over both."""
    async with agent_worker(
        client, workflows=[OwnToolConfigWorkflow], plugins=[AgentPlugin(own_tools_agent)], task_queue=task_queue
    ):
        handle = await client.start_workflow(
            OwnToolConfigWorkflow.run, id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
        )
        output = await handle.result()
    for name in ('measured', 'inline', *(('undurable', 'kept') if TOOL_SAYS_DURABLE else ())):
        assert f'"{name}":"{name}"' in output
    tool_calls: list[timedelta] = []
    for event in (await handle.fetch_history()).events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name.endswith('__call_tool'):
                tool_calls.append(attrs.start_to_close_timeout.ToTimedelta())
    # One activity per tool that runs in one: `measured` (77 s) and, on 2.78, `kept` (the agent's 88 s).
    expected = [timedelta(seconds=77), *([timedelta(seconds=88)] if TOOL_SAYS_DURABLE else [])]
    assert sorted(tool_calls) == expected
