"""The fail-over suite's Prefect flow, served by two processes as one deployment (`FAILOVER_DEPLOYMENT`).

A served flow run starts from the flow object pickled by value, with the globals its function uses: a pydantic-ai
agent does not pickle (it holds context variables), so the flow reaches its `PrefectAgent` through a cached factory,
which pickles by reference (as `examples/prefect/production.py` does).
"""

from __future__ import annotations

import functools

from prefect import flow

from durable_prefect import PrefectAgent

from .failover_agent import FailoverDeps, failover_agent, prompt_for

__all__ = ('FAILOVER_DEPLOYMENT', 'FAILOVER_FLOW_NAME', 'failover_flow', 'prefect_failover_agent')

FAILOVER_FLOW_NAME = 'failover agent durable run'
FAILOVER_DEPLOYMENT = 'failover'


@functools.cache
def prefect_failover_agent() -> PrefectAgent[FailoverDeps, str]:
    """The durable agent, built once per process."""
    return PrefectAgent(failover_agent)


@flow(name=FAILOVER_FLOW_NAME, persist_result=True)
async def failover_flow(run: str) -> str:
    """Run the fail-over agent (its own flow runs as a subflow) for run `run` and return its output."""
    result = await prefect_failover_agent().run(prompt_for(run), deps=FailoverDeps(run=run))
    return result.output
