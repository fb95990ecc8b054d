"""The flow the Prefect workers of the scale-out benchmark serve (`just bench-scale --engine prefect`).

Only module-level definitions: each flow run executes in a subprocess that imports this module to find the flow.
"""

from __future__ import annotations

import functools

from prefect import flow

from durable_prefect import PrefectAgent

from ._workload import build_agent

DEPLOYMENT = 'bench-scale'
"""The deployment every serving process registers for the flow (the same one: they share its runs)."""


@functools.cache
def scale_agent() -> PrefectAgent[None, str]:
    """The durable benchmark agent, built once per process."""
    return PrefectAgent(build_agent('bench_scale'))


@flow(name='bench_scale_served', persist_result=True)
async def served_flow(prompt: str) -> str:
    """Run the benchmark agent on `prompt` (its run is a subflow; its model requests and tool calls are tasks)."""
    return (await scale_agent().run(prompt)).output
