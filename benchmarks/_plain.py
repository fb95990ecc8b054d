"""The `plain` variant: the unwrapped agent in-process, no engine (zero durable units)."""

from __future__ import annotations

from ._harness import RunFacts, Variant
from ._workload import Workload, build_agent, drain_events


class PlainVariant(Variant):
    """The plain pydantic-ai agent, run in-process."""

    name = 'plain'
    description = 'the unwrapped agent in-process (no engine)'

    def __init__(self, *, with_events: bool = False) -> None:
        self._agent = build_agent('bench_plain')
        self._with_events = with_events
        if not with_events:
            self.events = PlainVariant(with_events=True)

    async def run(self, workload: Workload, run_id: str) -> None:
        await self._agent.run(workload.prompt(), event_stream_handler=drain_events if self._with_events else None)

    async def facts(self, run_id: str) -> RunFacts:
        return RunFacts(units=0)

    def expected_units(self, workload: Workload) -> int:
        return 0
