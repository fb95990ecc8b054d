"""Benchmarks: our durable agents against the reference `pydantic_ai.durable_exec`, the bare engine and the plain agent.

Run `uv run just bench --help`.
"""
