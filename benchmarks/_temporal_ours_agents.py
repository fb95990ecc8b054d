"""The agent of `_temporal_ours_shared`, in a module the workflow sandbox passes through (built once per process)."""

from __future__ import annotations

from durable_temporal import TemporalAgent

from ._workload import build_agent

shared_agent = TemporalAgent(build_agent('bench_ours_shared'))
