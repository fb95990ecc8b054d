"""Prefect examples: `uv run python -m examples.prefect.<name>` (fake model by default, `--model` for a real one).

Without `PREFECT_API_URL`, Prefect starts a temporary local server for the script (takes a few seconds); point
`PREFECT_API_URL` at your server (or Prefect Cloud) to see the runs in its UI.
"""
