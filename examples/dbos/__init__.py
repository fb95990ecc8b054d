"""DBOS examples: `uv run python -m examples.dbos.<name>` (fake model by default, `--model` for a real one)."""
