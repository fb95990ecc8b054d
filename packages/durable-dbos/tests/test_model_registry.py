"""One model per registry key: a recovered workflow resumes with the `DBOSModel` it was started with."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, Callable
from typing import Any

import pytest
from dbos import DBOS, SetWorkflowID
from pydantic_ai import Agent, RunContext
from pydantic_ai.exceptions import ModelHTTPError, UserError
from pydantic_ai.messages import AgentStreamEvent
from pydantic_ai.models.test import TestModel

from durable_dbos import DBOSAgent, DBOSModel, StepConfig

pytestmark = pytest.mark.anyio


async def test_a_different_model_under_a_registered_key_is_refused_and_recovery_uses_the_first(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    dbos_agent = DBOSAgent(Agent(TestModel(custom_output_text='original'), name=agent_name))
    prefix = f'{agent_name}_alt'
    first = DBOSModel(TestModel(custom_output_text='first'), step_name_prefix=prefix)
    dbos_launch()

    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        assert (await dbos_agent.run('hi', model=first)).output == 'first'

    # Same prefix, system and model name, other settings: it used to replace `first` without a word.
    with pytest.raises(UserError) as refused:
        DBOSModel(TestModel(custom_output_text='second'), step_name_prefix=prefix)
    message = str(refused.value)
    assert f"under '{prefix}:test:test'" in message
    assert 'the model instance it wraps' in message
    assert 'its own `step_name_prefix=`' in message

    # Re-executed from its model step, the workflow gets its model back from its recorded input: still `first`.
    steps = await DBOS.list_workflow_steps_async(workflow_id)
    assert [step['function_name'] for step in steps] == [f'{prefix}__model.request']
    forked = await DBOS.fork_workflow_async(workflow_id, steps[0]['function_id'])
    assert (await forked.get_result()).output == 'first'


async def test_the_same_model_wrapped_again_is_the_same_registration(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    model = TestModel(custom_output_text='shared')
    dbos_agent = DBOSAgent(Agent(model, name=agent_name))
    # The agent's own model under the agent's key, wrapped again (e.g. to pass it to `run` explicitly).
    again = DBOSModel(model, step_name_prefix=agent_name)
    # Equal step configs, and the same classes in a list or a tuple, are the same options.
    config = StepConfig(retries_allowed=True, max_attempts=3)
    DBOSModel(model, step_name_prefix=f'{agent_name}_alt', step_config=config)
    DBOSModel(model, step_name_prefix=f'{agent_name}_alt', step_config=StepConfig(**config))
    DBOSModel(model, step_name_prefix=f'{agent_name}_other', non_retryable_model_errors=[ModelHTTPError])
    DBOSModel(model, step_name_prefix=f'{agent_name}_other', non_retryable_model_errors=(ModelHTTPError,))
    dbos_launch()

    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        assert (await dbos_agent.run('hi', model=again)).output == 'shared'
    steps = await DBOS.list_workflow_steps_async(workflow_id)
    assert [step['function_name'] for step in steps] == [f'{agent_name}__model.request']


async def _handler(ctx: RunContext[None], events: AsyncIterable[AgentStreamEvent]) -> None:
    async for _ in events:  # pragma: no cover - never run
        pass


OTHER_OPTIONS: dict[str, dict[str, Any]] = {
    'step_config': {'step_config': StepConfig(retries_allowed=True)},
    'event_stream_handler': {'event_stream_handler': _handler},
    'non_retryable_model_errors': {'non_retryable_model_errors': ()},
}


@pytest.mark.parametrize('difference', list(OTHER_OPTIONS))
def test_the_same_model_with_other_options_is_refused(agent_name: str, difference: str) -> None:
    model = TestModel()
    DBOSModel(model, step_name_prefix=agent_name)
    with pytest.raises(UserError, match=rf'this one differs in `{difference}`'):
        DBOSModel(model, step_name_prefix=agent_name, **OTHER_OPTIONS[difference])


def test_a_second_agent_of_the_same_name_is_told_about_the_name(agent_name: str) -> None:
    DBOSAgent(Agent(TestModel(), name=agent_name))
    # Its model would clash too (same key, another instance): the name is what to change, so that is what it says.
    with pytest.raises(UserError, match=r'already exists in this process'):
        DBOSAgent(Agent(TestModel(), name=agent_name))
