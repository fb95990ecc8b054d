"""The DBOS worker the web server starts, and that its kill button (or `kill -9 <pid>`) ends.

    python -m examples.web_chat._dbos_worker --database-url sqlite:///... [--model ...] [--token-delay 0.15]

It registers the `web_chat.turn` workflow and the `web_chat` queue, then launches DBOS: the web server enqueues one
workflow per chat turn with a `DBOSClient`, this process dequeues and runs it. A worker started after another one
was killed recovers the unfinished turn when it launches (same database, same executor and application version):
completed steps are read back, the model step that was streaming runs again.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any

from dbos import DBOS, DBOSConfig
from pydantic_ai.messages import ModelMessagesTypeAdapter

from durable_dbos import DBOSDurability
from examples.web_chat._agent import TOPIC, build_agent

QUEUE = 'web_chat'
WORKFLOW = 'web_chat.turn'
APP_VERSION = 'web-chat-1'
"""Fixed, so that the web server's client enqueues for it and a restarted worker recovers what its predecessor left."""


def dbos_config(database_url: str) -> DBOSConfig:
    """The worker's DBOS configuration (the web server's client uses the same database)."""
    return {
        'name': 'web-chat',
        'system_database_url': database_url,
        'application_version': APP_VERSION,
        'notification_listener_polling_interval_sec': 0.05,
        'log_level': 'WARNING',
    }


def main(argv: list[str] | None = None) -> None:
    """Launch DBOS with the chat workflow, then serve the queue until SIGTERM/SIGINT (or SIGKILL)."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--database-url', required=True)
    parser.add_argument('--model', default=None)
    parser.add_argument('--token-delay', type=float, default=0.15)
    args = parser.parse_args(argv)

    DBOS(config=dbos_config(args.database_url))
    durability: DBOSDurability[None] = DBOSDurability(event_stream_topic=TOPIC, function_tool_steps=True)
    agent = build_agent(args.model, args.token_delay, [durability])

    @DBOS.workflow(name=WORKFLOW)
    async def turn(prompt: str, history: list[Any]) -> dict[str, Any]:
        """One chat turn: the agent's run publishes its events to the topic of this workflow's stream."""
        result = await agent.run(prompt, message_history=ModelMessagesTypeAdapter.validate_python(history))
        return {
            'output': result.output,
            'messages': ModelMessagesTypeAdapter.dump_python(result.all_messages(), mode='json'),
        }

    DBOS.launch()
    # After launch: a queue's configuration lives in the system database.
    DBOS.register_queue(QUEUE, polling_interval_sec=0.2)
    stop = threading.Event()

    def on_sigterm(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_sigterm)
    print(f'worker ready (pid {os.getpid()})', flush=True)
    parent = os.getppid()
    try:
        # Until told to stop, or orphaned (the web server died without stopping its worker).
        while not stop.wait(1) and os.getppid() == parent:
            pass
    except KeyboardInterrupt:
        pass
    finally:
        DBOS.destroy()


if __name__ == '__main__':
    main()
    sys.exit(0)
