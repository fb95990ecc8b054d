"""A tool's `args_validator` in pydantic-ai 2.x's `Validate Tool Args: {tool}` tasks (where it has them: 2.68, 2.78).

In the capability form for function and dynamic tools, in the wrapper form for dynamic tools, as pydantic-ai 2.x's
`PrefectDurability` and `PrefectAgent` do; elsewhere (1.107, 2.33) validated in flow code, as before.
"""

from __future__ import annotations

from typing import Any, cast
from uuid import UUID

import pytest
from prefect import flow
from prefect.context import FlowRunContext, TaskRunContext
from pydantic_ai import Agent, RunContext, Tool
from pydantic_ai.exceptions import ModelRetry
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.toolsets import FunctionToolset

from durable_kernel import ARGS_VALIDATOR_UNITS, DynamicToolset, prefect_flow_name
from durable_prefect import PrefectAgent, PrefectDurability

from ._helpers import flow_runs_named, task_runs_of

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures('prefect_server')]


def _script(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Call `double` with -1 (refused), then with 2, then answer."""
    responses = sum(isinstance(message, ModelResponse) for message in messages)
    if responses < 2:
        return ModelResponse(parts=[ToolCallPart('double', {'n': -1 if responses == 0 else 2}, f'c{responses}')])
    return ModelResponse(parts=[TextPart('done')])


def _double(n: int) -> int:
    return 2 * n


def _validator(checked: list[tuple[int, bool]]) -> Any:
    def positive(ctx: RunContext[None], n: int) -> None:
        checked.append((n, TaskRunContext.get() is not None))
        if n < 0:
            raise ModelRetry('n must be positive')

    return positive


async def _run(agent: Any, *, expected: int | None = None) -> tuple[str, list[str]]:
    """Run `agent` (the capability form in a user flow, the wrapper as its own flow): its output and task names."""
    validated = 2 if ARGS_VALIDATOR_UNITS else 0
    if isinstance(agent, PrefectAgent):
        wrapper = cast('PrefectAgent[None, str]', agent)
        output = (await wrapper.run('go')).output
        (flow_run,) = await flow_runs_named(prefect_flow_name(wrapper.name or '', 'run'))
        flow_run_id = flow_run.id
    else:

        @flow
        async def user_flow() -> tuple[str, UUID]:
            context = FlowRunContext.get()
            assert context is not None
            assert context.flow_run is not None
            return (await agent.run('go')).output, context.flow_run.id

        output, flow_run_id = await user_flow()
    runs = await task_runs_of([flow_run_id], expected=4 + validated if expected is None else expected)
    return output, [run.name.rsplit('-', 1)[0] for run in runs]


def _expected_dynamic(validated_in_tasks: bool) -> list[str]:
    """A dynamic toolset's run: each step lists in `Discover Tools: checked`; the validator runs in a task either way."""
    discover = 'Discover Tools: checked'
    if validated_in_tasks:
        return [
            discover,
            'Model Request: function:_script:',
            'Validate Tool Args: double',
            discover,
            'Model Request: function:_script:',
            'Validate Tool Args: double',
            'Call Tool: double',
            discover,
            'Model Request: function:_script:',
        ]
    # Without validation tasks the validator runs in the call task, where the real tool is built.
    return [
        discover,
        'Model Request: function:_script:',
        'Call Tool: double',
        discover,
        'Model Request: function:_script:',
        'Call Tool: double',
        discover,
        'Model Request: function:_script:',
    ]


def _expected(validated_in_tasks: bool) -> list[str]:
    if validated_in_tasks:
        return [
            'Model Request: function:_script:',
            'Validate Tool Args: double',
            'Model Request: function:_script:',
            'Validate Tool Args: double',
            'Call Tool: double',
            'Model Request: function:_script:',
        ]
    return [
        'Model Request: function:_script:',
        'Model Request: function:_script:',
        'Call Tool: double',
        'Model Request: function:_script:',
    ]


async def test_a_function_tools_validator_runs_in_its_task_in_the_capability_form() -> None:
    checked: list[tuple[int, bool]] = []
    agent = Agent(
        FunctionModel(_script),
        name='va-cap',
        tools=[Tool(_double, name='double', args_validator=_validator(checked))],
        capabilities=[PrefectDurability()],
    )
    output, names = await _run(agent)
    assert output == 'done'
    assert names == _expected(ARGS_VALIDATOR_UNITS)
    assert checked == [(-1, ARGS_VALIDATOR_UNITS), (2, ARGS_VALIDATOR_UNITS)]


async def test_a_dynamic_tools_validator_runs_in_its_task_in_both_forms() -> None:
    for form in ('capability', 'wrapper'):
        checked: list[tuple[int, bool]] = []

        def tools(ctx: RunContext[None], checked: list[tuple[int, bool]] = checked) -> FunctionToolset[None]:
            toolset = FunctionToolset[None]()
            toolset.add_function(_double, name='double', args_validator=_validator(checked))
            return toolset

        toolset = DynamicToolset(tools, id='checked')
        if form == 'capability':
            agent: Any = Agent(
                FunctionModel(_script), name='va-dyn', toolsets=[toolset], capabilities=[PrefectDurability()]
            )
        else:
            agent = PrefectAgent(Agent(FunctionModel(_script), name='va-dyn-wrap', toolsets=[toolset]))
        output, names = await _run(agent, expected=len(_expected_dynamic(ARGS_VALIDATOR_UNITS)))
        assert output == 'done', form
        assert names == _expected_dynamic(ARGS_VALIDATOR_UNITS), form
        assert checked == [(-1, True), (2, True)], form


async def test_the_wrapper_validates_function_tools_in_flow_code() -> None:
    checked: list[tuple[int, bool]] = []
    agent = PrefectAgent(
        Agent(
            FunctionModel(_script),
            name='va-wrap',
            tools=[Tool(_double, name='double', args_validator=_validator(checked))],
        )
    )

    @flow
    async def user_flow() -> str:
        return (await agent.run('go')).output

    assert await user_flow() == 'done'
    assert checked == [(-1, False), (2, False)]
