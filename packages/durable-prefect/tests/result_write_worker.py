"""A worker process for the result-write crash test: `start` runs a flow whose process dies hard when the final model
request's result is about to be written; `resume` re-runs that flow run.

The model requests' results go to a local result storage that, in the `start` process, dies (`os._exit`) instead of
writing the third one. If the task run was already `Completed` at that moment, it first waits until the server shows
it `Completed`: that is where a killed worker left the task run whose model request ran again after the restart (the
random-kill suite's finding, `docs/kill-tests.md`). Every model request appends a line to the log file.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from typing import Any

from _resume_kit import LOG, PHASE, log, run_phase
from prefect.client.orchestration import get_client
from prefect.context import TaskRunContext
from prefect.exceptions import ObjectNotFound
from prefect.filesystems import LocalFileSystem
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from durable_prefect import PrefectAgent

DIED = 17
FINAL_MODEL_RESULT = 3
"""The model results are written in the order of the requests; the third request is the final one."""
_WRITES = itertools.count(1)
DIED_IN = LOG.with_name('died_in')
"""The id of the task run whose result was being written when the process died."""


class DyingStorage(LocalFileSystem):
    """Local result storage; in the `start` process, the process dies instead of writing the final model result."""

    _block_type_slug = 'dying-local-file-system'

    async def awrite_path(self, path: str, content: bytes) -> Any:
        """Prefect writes results through `awrite_path` where it exists (every version we support looks for it)."""
        if PHASE == 'start' and next(_WRITES) == FINAL_MODEL_RESULT:
            await _die_where_the_server_shows_the_task_completed()
        parent = getattr(super(), 'awrite_path', None)
        if parent is not None:  # Prefect 3.6+
            return await parent(path, content)
        return await super().write_path(path, content)  # pyright: ignore[reportGeneralTypeIssues,reportUnknownVariableType]


async def _die_where_the_server_shows_the_task_completed() -> None:
    task_ctx = TaskRunContext.get()
    assert task_ctx is not None
    task_run = task_ctx.task_run
    if task_run.state is not None and task_run.state.is_completed():
        # The state is sent to the server as an event, in the background: wait until it is there (not a timing
        # assumption of the test: without it the death would only be less likely to land after the state).
        deadline = time.monotonic() + 120
        async with get_client() as client:
            while time.monotonic() < deadline:
                try:
                    stored = await client.read_task_run(task_run.id)
                except ObjectNotFound:  # its creation, an event too, has not been recorded yet
                    stored = None
                if stored is not None and stored.state is not None and stored.state.is_completed():
                    break
                await asyncio.sleep(0.1)
    DIED_IN.write_text(str(task_run.id))
    os._exit(DIED)  # the process dies hard: no state is reported, no cleanup runs


def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    done = [p for m in messages if isinstance(m, ModelRequest) for p in m.parts if isinstance(p, ToolReturnPart)]
    log(f'model-{len(done) + 1}')
    if len(done) < 2:
        name = 'ab'[len(done)]
        return ModelResponse(parts=[ToolCallPart('step', {'name': name}, tool_call_id=f'call-{name}')])
    return ModelResponse(parts=[TextPart(' '.join(str(p.content) for p in done))])


agent = Agent(FunctionModel(respond), name='result_write')


@agent.tool_plain
def step(name: str) -> str:
    log(f'tool-{name}')
    return f'did {name}'


# Prefect takes a result storage block only once it is saved on the server.
storage = DyingStorage(basepath=os.environ['PREFECT_LOCAL_STORAGE_PATH'])
storage.save('result-write-test', overwrite=True)
prefect_agent = PrefectAgent(agent, model_task_config={'result_storage': storage})


async def run_agent() -> str:
    return (await prefect_agent.run('go')).output


if __name__ == '__main__':
    run_phase('result-write-parent', run_agent)
