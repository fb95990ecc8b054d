"""Ours' agent built once per worker process instead of once per workflow run (`profile_temporal --variant ours-shared`).

The sandbox re-imports a workflow's module for every workflow run, so agents defined in it (the main section's
`_temporal_ours`, the usual layout) are built again for every run. Here the agent lives in a module imported through
the sandbox (`workflow.unsafe.imports_passed_through()`): the difference in CPU per run is what building the agents
costs per run.

Only module-level definitions here: the sandbox re-imports this module for every workflow run.
"""

from __future__ import annotations

from temporalio import workflow

from durable_temporal import PydanticAIWorkflow

with workflow.unsafe.imports_passed_through():
    from ._temporal_ours_agents import shared_agent


@workflow.defn(name='BenchOursSharedWorkflow')
class OursSharedWorkflow(PydanticAIWorkflow):
    """Runs the benchmark agent built once per worker process."""

    __pydantic_ai_agents__ = [shared_agent]

    @workflow.run
    async def run(self, prompt: str) -> str:
        """Run the agent on `prompt` and return its output."""
        return (await shared_agent.run(prompt)).output
