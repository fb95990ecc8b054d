"""`PydanticAIPlugin` on a real dev server: payload converter, codecs, sandbox passthrough, failure types, replayer."""

from __future__ import annotations

import importlib
import warnings
import zlib
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, cast

import pytest
from pydantic_ai.exceptions import UnexpectedModelBehavior, UsageLimitExceeded, UserError
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart
from sandbox_http_workflow import Httpx2ModuleWorkflow
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowFailureError
from temporalio.client import Plugin as ClientPlugin
from temporalio.contrib.pydantic import PydanticPayloadConverter, pydantic_data_converter
from temporalio.converter import DataConverter, DefaultPayloadConverter, PayloadCodec
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from durable_kernel import PYDANTIC_AI_2
from durable_temporal import PydanticAIPayloadConverter, PydanticAIPlugin
from durable_temporal.testing import agent_worker, unique_task_queue

pytestmark = pytest.mark.anyio


@workflow.defn
class EchoMessagesWorkflow:
    """Takes and returns pydantic-ai messages, built with pydantic-ai inside the sandbox."""

    @workflow.run
    async def run(self, messages: list[ModelMessage]) -> list[ModelMessage]:
        return [*messages, ModelResponse(parts=[TextPart(f'{len(messages)} message(s)')], timestamp=workflow.now())]


@workflow.defn
class RaisingWorkflow:
    """Raises what the agent loop raises when a run goes wrong."""

    @workflow.run
    async def run(self, kind: str) -> str:
        if kind == 'usage':
            raise UsageLimitExceeded('The next request would exceed the request_limit of 1')
        if kind == 'model':
            raise UnexpectedModelBehavior('Exceeded maximum retries (1) for output validation')
        raise UserError('Bad configuration: do something else')


def _sync_graph() -> Any:
    # pydantic-graph 2.x's builder API, reached through `Any` so that the module type-checks on both lines.
    graph_module: Any = importlib.import_module('pydantic_graph')
    builder = graph_module.GraphBuilder(name='sync_graph', input_type=str, output_type=str)

    @builder.step
    async def echo(ctx: Any) -> str:  # pragma: no cover - the graph never runs
        return ctx.inputs

    builder.add(builder.edge_from(builder.start_node).to(echo), builder.edge_from(echo).to(builder.end_node))
    return builder.build()


SYNC_GRAPH: Any = _sync_graph() if PYDANTIC_AI_2 else None


@workflow.defn
class GraphRunSyncWorkflow:
    """Calls a pydantic-graph graph's `run_sync()`, which Temporal's event loop cannot drive."""

    @workflow.run
    async def run(self) -> str:
        return SYNC_GRAPH.run_sync(inputs='hello')


class NotPydanticConverter(DefaultPayloadConverter):
    pass


class MyPydanticConverter(PydanticPayloadConverter):
    pass


class ZlibCodec(PayloadCodec):
    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [
            Payload(metadata={'encoding': b'binary/zlib'}, data=zlib.compress(payload.SerializeToString()))
            for payload in payloads
        ]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [Payload.FromString(zlib.decompress(payload.data)) for payload in payloads]


def _client_with(
    client: Client, plugins: Sequence[ClientPlugin], data_converter: DataConverter | None = None
) -> Client:
    config = client.config()
    config['plugins'] = list(plugins)
    if data_converter is not None:
        config['data_converter'] = data_converter
    return Client(**config)


MESSAGES: list[ModelMessage] = [ModelRequest.user_text_prompt('ping')]


async def _echo(client: Client, task_queue: str) -> list[ModelMessage]:
    async with agent_worker(client, workflows=[EchoMessagesWorkflow], task_queue=task_queue):
        return await client.execute_workflow(
            EchoMessagesWorkflow.run, MESSAGES, id=unique_task_queue('echo'), task_queue=task_queue
        )


async def test_default_converter_becomes_pydantic_without_warning(client: Client, task_queue: str):
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        plugged = _client_with(client, [PydanticAIPlugin()])
    assert plugged.data_converter.payload_converter_class is PydanticAIPayloadConverter
    result = await _echo(plugged, task_queue)
    assert isinstance(result[0], ModelRequest)
    assert isinstance(result[1], ModelResponse)
    assert result[1].parts == [TextPart('1 message(s)')]


async def test_non_pydantic_converter_is_replaced_with_a_warning(client: Client, task_queue: str):
    with pytest.warns(UserWarning, match='replaced the payload converter NotPydanticConverter'):
        plugged = _client_with(
            client, [PydanticAIPlugin()], DataConverter(payload_converter_class=NotPydanticConverter)
        )
    assert plugged.data_converter.payload_converter_class is PydanticAIPayloadConverter
    assert isinstance((await _echo(plugged, task_queue))[1], ModelResponse)


async def test_own_pydantic_converter_is_kept():
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        config = PydanticAIPlugin().configure_client(
            {'data_converter': DataConverter(payload_converter_class=MyPydanticConverter)}  # pyright: ignore[reportArgumentType]
        )
    assert config['data_converter'].payload_converter_class is MyPydanticConverter


async def test_payload_codec_is_kept_and_used(client: Client, task_queue: str):
    codec = ZlibCodec()
    with pytest.warns(UserWarning, match='replaced the payload converter'):
        plugged = _client_with(
            client,
            [PydanticAIPlugin()],
            DataConverter(payload_converter_class=NotPydanticConverter, payload_codec=codec),
        )
    assert plugged.data_converter.payload_codec is codec
    async with agent_worker(plugged, workflows=[EchoMessagesWorkflow], task_queue=task_queue):
        handle = await plugged.start_workflow(
            EchoMessagesWorkflow.run, MESSAGES, id=unique_task_queue('codec'), task_queue=task_queue
        )
        assert isinstance((await handle.result())[1], ModelResponse)
    # What the server stored went through the codec.
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    assert started.input.payloads[0].metadata['encoding'] == b'binary/zlib'


@pytest.mark.parametrize(
    ('kind', 'error_type'),
    [('usage', 'UsageLimitExceeded'), ('model', 'UnexpectedModelBehavior'), ('user', 'UserError')],
)
async def test_agent_loop_errors_fail_the_workflow(client: Client, task_queue: str, kind: str, error_type: str):
    """Reference defect 11: these errors failed the workflow *task*, retried forever; the caller waited forever."""
    async with agent_worker(client, workflows=[RaisingWorkflow], task_queue=task_queue):
        with pytest.raises(WorkflowFailureError) as failure:
            await client.execute_workflow(
                RaisingWorkflow.run,
                kind,
                id=unique_task_queue('raise'),
                task_queue=task_queue,
                # A regression would hang; this turns it into a timeout failure, which the asserts below reject.
                execution_timeout=timedelta(seconds=20),
            )
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == error_type


@pytest.mark.skipif(not PYDANTIC_AI_2, reason="pydantic-graph's UnsupportedEventLoopError is a 2.x type")
async def test_a_graph_run_sync_in_workflow_code_fails_the_workflow(client: Client, task_queue: str):
    """pydantic-graph raises `UnsupportedEventLoopError` itself (not pydantic-ai's `UserError`): it failed the task,
    which Temporal retried forever, so the caller hung."""
    async with agent_worker(client, workflows=[GraphRunSyncWorkflow], task_queue=task_queue):
        with pytest.raises(WorkflowFailureError) as failure:
            await client.execute_workflow(
                GraphRunSyncWorkflow.run,
                id=unique_task_queue('graph-sync'),
                task_queue=task_queue,
                # A regression would hang; this turns it into a timeout failure, which the asserts below reject.
                execution_timeout=timedelta(seconds=30),
            )
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == 'UnsupportedEventLoopError'
    assert 'run_until_complete()' in str(cause)


async def test_replayer_gets_the_converter_and_passthrough(client: Client, task_queue: str):
    async with agent_worker(client, workflows=[EchoMessagesWorkflow], task_queue=task_queue):
        handle = await client.start_workflow(
            EchoMessagesWorkflow.run, MESSAGES, id=unique_task_queue('replay'), task_queue=task_queue
        )
        await handle.result()
    history = await handle.fetch_history()
    replayer = Replayer(workflows=[EchoMessagesWorkflow], plugins=[PydanticAIPlugin()])
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None


async def test_a_workflow_module_importing_httpx2_is_valid(client: Client, task_queue: str):
    """pydantic-ai 2.x's HTTP stack (`httpx2`, `httpcore2`, `truststore`) passes through the sandbox.

    Re-imported in the sandbox, `httpx2`'s cookie module subclasses the restricted `urllib.request.Request` and the
    workflow's module fails validation (`__mro_entries__`), as pydantic-ai's own 2.33 test module did on ours.
    """
    async with agent_worker(client, workflows=[Httpx2ModuleWorkflow], task_queue=task_queue):
        host = await client.execute_workflow(
            Httpx2ModuleWorkflow.run, 'https://example.com/x', id=unique_task_queue('httpx2'), task_queue=task_queue
        )
    assert host == 'example.com'


async def test_without_the_plugin_the_sandbox_rejects_pydantic_ai(client: Client, task_queue: str):
    """The passthrough is what makes workflows importing pydantic-ai valid at all (this guards the test above)."""
    bare = _client_with(client, [], pydantic_data_converter)
    with pytest.raises(RuntimeError, match='Failed validating workflow EchoMessagesWorkflow'):
        Worker(bare, task_queue=task_queue, workflows=[EchoMessagesWorkflow])


async def test_plugin_on_a_worker_whose_client_lacks_it_is_refused(client: Client, task_queue: str):
    """A worker decodes with its client's converter: the plugin must be on the client, or messages arrive as dicts."""
    bare = _client_with(client, [])
    with pytest.raises(UserError, match=r'Pass the plugin to the client instead'):
        Worker(bare, task_queue=task_queue, workflows=[EchoMessagesWorkflow], plugins=[PydanticAIPlugin()])


def test_stock_pydantic_converter_is_upgraded_without_warning():
    """As in the reference: the stock pydantic converter becomes ours silently; only a non-pydantic one warns."""
    codec = ZlibCodec()
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        config = PydanticAIPlugin().configure_client(
            {'data_converter': DataConverter(payload_converter_class=PydanticPayloadConverter, payload_codec=codec)}  # pyright: ignore[reportArgumentType]
        )
    assert config['data_converter'].payload_converter_class is PydanticAIPayloadConverter
    assert config['data_converter'].payload_codec is codec


def test_a_worker_config_without_a_client_is_configured():
    """A worker config built by hand has no `client` (a `Worker` always passes its own).

    `SimplePlugin` looked up the client's interceptors there, so the plugin failed with `KeyError: 'client'`
    (pydantic-ai's `test_pydantic_ai_plugin_passes_pydantic_monty_through_sandbox` builds such a config).
    """
    plugin = PydanticAIPlugin()
    # SDK typing: `WorkerConfig` has bare `Callable`s, which pyright reports on every read; read it as a dict.
    config: dict[str, Any] = dict(plugin.configure_worker(cast(Any, {'workflow_runner': SandboxedWorkflowRunner()})))
    runner = config['workflow_runner']
    assert isinstance(runner, SandboxedWorkflowRunner)
    assert {'pydantic_monty', 'pydantic_ai', 'durable_temporal'} <= set(runner.restrictions.passthrough_modules)
    assert config['interceptors'] == list(plugin.worker_interceptors)
    # Applied again (the plugin given to the client and to the worker), the interceptors are not added twice.
    assert dict(plugin.configure_worker(cast(Any, config)))['interceptors'] == list(plugin.worker_interceptors)


def test_the_replayer_gets_the_worker_interceptors():
    plugin = PydanticAIPlugin()
    config: dict[str, Any] = dict(plugin.configure_replayer(cast(Any, {'interceptors': []})))
    assert config['interceptors'] == list(plugin.worker_interceptors)
