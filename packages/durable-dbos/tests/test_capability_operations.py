"""Capability operations (pydantic-ai 2.68+'s `@durable_operation`) inside a DBOS workflow, in the capability form.

A method a capability declares durable runs, when called in workflow code, in its own step,
`{agent}__capability__{id}.{operation}` (pydantic-ai 2.78's name for the same agent): a workflow re-executed from after
it takes the recorded result. Outside a workflow, or inside another step, it runs where it is called. pydantic-ai 1.107
(and 2.33) has no such decorator: nothing to test there.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from dbos import DBOS, SetWorkflowID
from pydantic_ai import Agent, RunContext
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from durable_dbos import DBOSDurability
from durable_dbos.testing import workflow_step_names_async
from durable_kernel import HAS_DURABLE_OPERATIONS

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not HAS_DURABLE_OPERATIONS,
        reason='`pydantic_ai.capabilities.durable_operation` came with pydantic-ai 2.68: the installed one has none',
    ),
]


def _no_decorator(name: str) -> Any:
    # Where pydantic-ai has no `durable_operation` (1.107, 2.33) the module still imports; its tests are skipped.
    def unchanged(function: Any) -> Any:
        return function

    return unchanged


durable_operation: Any = (
    importlib.import_module('pydantic_ai.capabilities').durable_operation if HAS_DURABLE_OPERATIONS else _no_decorator
)


@dataclass
class Note:
    topic: str
    where: str


class Notes(AbstractCapability[Any]):
    """A capability whose `fetch` does I/O (here: says where it ran), declared durable."""

    id = 'notes'

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.got: list[Note] = []

    @durable_operation('fetch')
    async def fetch(self, ctx: RunContext[Any], topic: str) -> Note:
        where = 'step' if DBOS.step_status is not None else 'workflow' if DBOS.workflow_id else 'outside'
        self.ran.append(where)
        return Note(topic, where)

    async def before_run(self, ctx: RunContext[Any]) -> None:
        self.got.append(await self.fetch(ctx, 'weather'))


def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[TextPart('done')])


async def test_an_operation_called_in_workflow_code_is_its_own_step_and_not_repeated(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    notes = Notes()
    agent = Agent(FunctionModel(reply), name=agent_name, capabilities=[notes, DBOSDurability()])

    async def run() -> str:
        return (await agent.run('hi')).output

    workflow = DBOS.workflow(name=f'{agent_name}.ops')(run)
    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        assert await workflow() == 'done'
    assert notes.ran == ['step']
    assert notes.got == [Note('weather', 'step')]
    names = await workflow_step_names_async(workflow_id)
    assert names == [f'{agent_name}__capability__notes.fetch', f'{agent_name}__model.request']

    # Re-executed from after the operation's step, the workflow takes its recorded result: it does not run again.
    steps = await DBOS.list_workflow_steps_async(workflow_id)
    forked = await DBOS.fork_workflow_async(workflow_id, steps[0]['function_id'] + 1)
    assert await forked.get_result() == 'done'
    assert notes.ran == ['step']
    assert notes.got[-1] == Note('weather', 'step')

    # Outside a workflow it runs where it is called.
    assert (await agent.run('hi')).output == 'done'
    assert notes.ran == ['step', 'outside']
