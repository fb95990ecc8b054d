"""A conversation that outlives one workflow history: continue-as-new, carrying the message history over.

    uv run python -m examples.temporal.long_conversation [--model openai:gpt-4o] [--address localhost:7233]

Each agent run of a workflow adds to its history (model activities are sent only new messages, so it grows linearly,
but it grows). A workflow that keeps a conversation going for ever hands it on to a fresh run of itself from time to
time with `hand_over`, which continues the workflow as new with an `AgentHandover` (the messages, the usage, and where
the conversation was last sent, so that the next run's first model request is sent only the new prompt): here after
every 3 turns, or sooner when Temporal suggests it (`continue_as_new_due()`). A single long agent run (many tool
calls) is handed over from inside the run instead: `TemporalAgent(agent, continue_as_new=...)`, see the docs.
"""

from __future__ import annotations

import uuid

from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from temporalio import workflow
from temporalio.worker import Worker

from durable_temporal import AgentHandover, PydanticAIWorkflow, TemporalAgent, continue_as_new_due, hand_over
from examples._support import example_args, real_model_name, run_example
from examples.temporal._server import ADDRESS_HELP, temporal_client

TURNS_PER_RUN = 3


def remembering_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """A fake model that answers with what it remembers: every prompt of the conversation so far."""
    prompts = [
        str(part.content)
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, UserPromptPart)
    ]
    return ModelResponse(parts=[TextPart(f'I remember {len(prompts)} messages: {", ".join(prompts)}')])


agent = Agent(FunctionModel(remembering_model), name='chat')
temporal_agent = TemporalAgent(agent)


class Chat(BaseModel):
    """The input of one run of the chat workflow: what is left to say, and what the previous run handed over."""

    prompts: list[str]
    handover: AgentHandover | None = None
    generation: int = 0
    model: str | None = None


@workflow.defn
class ChatWorkflow(PydanticAIWorkflow):
    """Answers the prompts one by one, continuing as new every `TURNS_PER_RUN` turns."""

    __pydantic_ai_agents__ = [temporal_agent]

    @workflow.run
    async def run(self, chat: Chat) -> str:
        history: list[ModelMessage] = []
        if chat.handover is not None:
            history = chat.handover.resume().messages  # the first request builds on the previous run's last one
        answer = ''
        result = None
        for turn, prompt in enumerate(chat.prompts):
            if result is not None and (turn >= TURNS_PER_RUN or continue_as_new_due()):
                # Hand the rest of the conversation to a fresh run (a new, empty history); this call does not return.
                rest = chat.prompts[turn:]
                await hand_over(
                    result,
                    lambda handover, rest=rest: [
                        Chat(prompts=rest, handover=handover, generation=chat.generation + 1, model=chat.model)
                    ],
                )
            result = await temporal_agent.run(prompt, message_history=history, model=chat.model)
            history = result.all_messages()
            answer = result.output
        return f'{answer} (continued as new {chat.generation} times)'


async def main() -> None:
    args = example_args(__doc__ or '', options={'--address': ADDRESS_HELP})
    prompts = ['hello', 'my name is Ann', 'I live in Lima', 'I like tea', 'what do you know about me?']
    async with (
        temporal_client(args.address) as client,
        Worker(client, task_queue='chat', workflows=[ChatWorkflow]),
    ):
        output = await client.execute_workflow(
            ChatWorkflow.run,
            Chat(prompts=prompts, model=real_model_name(args.model)),
            id=f'chat-{uuid.uuid4().hex[:8]}',
            task_queue='chat',
        )
    print(output)


if __name__ == '__main__':
    run_example(main, hard_exit=True)
