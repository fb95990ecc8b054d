"""Temporal workflow of the bare-engine floor: no pydantic-ai, so it needs no sandbox passthrough.

Only module-level definitions here: the sandbox re-imports this module for every workflow run.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow


@dataclass
class FloorTurn:
    """Payload sizes of one turn (see `benchmarks._workload.TurnPayload`)."""

    request_bytes: int
    response_bytes: int
    tool_args_bytes: list[int]
    tool_result_bytes: list[int]


@activity.defn(name='bench_floor_model')
async def floor_model(request: str, response_bytes: int) -> str:
    """A no-op 'model request': takes the turn's new messages, returns a response of the measured size."""
    return 'm' * response_bytes


@activity.defn(name='bench_floor_tool')
async def floor_tool(args: str, result_bytes: int) -> str:
    """A no-op 'tool call': takes the arguments, returns a result of the measured size."""
    return 't' * result_bytes


@workflow.defn(name='BenchFloorWorkflow')
class FloorWorkflow:
    """The physical floor: the same activities with the same payload sizes, and no pydantic-ai."""

    @workflow.run
    async def run(self, plan: list[FloorTurn]) -> int:
        """One model activity per turn, then that turn's tool activities in parallel."""
        timeout = timedelta(seconds=60)
        received = 0
        for turn in plan:
            response = await workflow.execute_activity(
                floor_model, args=['r' * turn.request_bytes, turn.response_bytes], start_to_close_timeout=timeout
            )
            received += len(response)
            results = await asyncio.gather(
                *(
                    workflow.execute_activity(
                        floor_tool, args=['a' * args_bytes, result_bytes], start_to_close_timeout=timeout
                    )
                    for args_bytes, result_bytes in zip(turn.tool_args_bytes, turn.tool_result_bytes, strict=True)
                )
            )
            received += sum(len(result) for result in results)
        return received
