"""Secrets and clients: keep credentials out of the workflow history with a deps resolver and an encryption codec.

    uv run python -m examples.temporal.secrets_and_clients [--model openai:gpt-4o] [--address localhost:7233]

Everything an activity receives is recorded in the workflow history, in plain JSON, for as long as the server keeps
it. Two measures, which work together:

- `TemporalAgent(deps_resolver=...)`: `deps` cross into activities as a small reference (here the customer id) and
  each activity rebuilds the live deps (an API client holding the worker's key) from it. The key never leaves the
  worker.
- A payload codec on the client (`DataConverter(payload_codec=...)`): everything else in the history (prompts, tool
  arguments and results, model responses) is encrypted with a key only your workers and tools hold.
  `PydanticAIPlugin` keeps the codec. The codec below uses AES-GCM from `cryptography` (`pip install cryptography`),
  after the `encryption` sample of temporalio/samples-python.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Sequence

from pydantic_ai import Agent
from pydantic_ai.models.function import FunctionModel
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import History
from temporalio.client import Client
from temporalio.converter import PayloadCodec
from temporalio.worker import Worker

from durable_temporal import PydanticAIWorkflow, TemporalAgent
from examples._payments import PAYMENTS_API_KEY, SHOP, Shop, charge_card, scripted_model
from examples._support import example_args, real_model_name, run_example
from examples.temporal._server import ADDRESS_HELP, temporal_client

with workflow.unsafe.imports_passed_through():
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

agent = Agent(FunctionModel(scripted_model), name='payments', deps_type=Shop, tools=[charge_card])

temporal_agent = TemporalAgent(agent, deps_resolver=SHOP)


@workflow.defn
class PaymentsWorkflow(PydanticAIWorkflow):
    """Charges one customer: the workflow's input is the reference, never the key."""

    __pydantic_ai_agents__ = [temporal_agent]

    @workflow.run
    async def run(self, customer: str, model: str | None) -> str:
        result = await temporal_agent.run('Charge 42.50 EUR.', deps=SHOP.resolve(customer), model=model)
        return result.output


class EncryptionCodec(PayloadCodec):
    """Encrypts every payload with AES-GCM (the `encryption` sample of temporalio/samples-python)."""

    ENCODING = b'binary/encrypted'

    def __init__(self, key_id: str, key: bytes) -> None:
        self.key_id = key_id
        self._aes = AESGCM(key)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        encoded: list[Payload] = []
        for payload in payloads:
            nonce = os.urandom(12)
            encoded.append(
                Payload(
                    metadata={'encoding': self.ENCODING, 'encryption-key-id': self.key_id.encode()},
                    data=nonce + self._aes.encrypt(nonce, payload.SerializeToString(), None),
                )
            )
        return encoded

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        decoded: list[Payload] = []
        for payload in payloads:
            if payload.metadata.get('encoding') != self.ENCODING:
                decoded.append(payload)
                continue
            key_id = payload.metadata.get('encryption-key-id', b'').decode()
            if key_id != self.key_id:
                raise ValueError(f'Payload encrypted with key {key_id!r}, this codec has {self.key_id!r}')
            decoded.append(Payload.FromString(self._aes.decrypt(payload.data[:12], payload.data[12:], None)))
        return decoded


def with_codec(client: Client, codec: PayloadCodec) -> Client:
    """`client` with `codec` on its data converter (`PydanticAIPlugin`, in its plugins, keeps the codec)."""
    config = client.config()
    config['data_converter'] = dataclasses.replace(config['data_converter'], payload_codec=codec)
    return Client(**config)


async def main() -> None:
    args = example_args(__doc__ or '', options={'--address': ADDRESS_HELP})
    codec = EncryptionCodec('example-key', AESGCM.generate_key(bit_length=256))
    workflow_id = f'payments-{uuid.uuid4().hex[:8]}'
    async with temporal_client(args.address) as plain_client:
        client = with_codec(plain_client, codec)
        async with Worker(client, task_queue='payments', workflows=[PaymentsWorkflow]):
            output = await client.execute_workflow(
                PaymentsWorkflow.run, args=['ada', real_model_name(args.model)], id=workflow_id, task_queue='payments'
            )
        print(output)

        history = await client.get_workflow_handle(workflow_id).fetch_history()
        raw = History(events=history.events).SerializeToString()
        print(
            'the API key is nowhere in the workflow history'
            if PAYMENTS_API_KEY.encode() not in raw
            else 'KEY IN HISTORY'
        )
        print('tool arguments and results are encrypted' if b'42.50 EUR' not in raw else 'PLAINTEXT IN HISTORY')
        # With the codec (what your tools and workers hold), the activities' `deps` argument reads as the reference.
        for event in history.events:
            if event.HasField('activity_task_scheduled_event_attributes'):
                payloads = event.activity_task_scheduled_event_attributes.input.payloads
                deps = await client.data_converter.decode(payloads[1:2])
                print(f'  {event.activity_task_scheduled_event_attributes.activity_type.name}: deps={deps[0]!r}')


if __name__ == '__main__':
    run_example(main, hard_exit=True)
