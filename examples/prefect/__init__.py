"""Prefect examples: `uv run python -m examples.prefect.<name>` (fake model by default, `--model` for a real one).

Without `PREFECT_API_URL`, Prefect starts a temporary local server for the script (takes a few seconds); point
`PREFECT_API_URL` at your server (or Prefect Cloud) to see the runs in its UI.
"""

import os

# Prefect's temporary server sends usage telemetry that can race the migration of its own SQLite database and log a
# harmless ERROR traceback while it starts (docs/prefect.md, Install). The examples turn it off; your setting wins.
os.environ.setdefault('PREFECT_SERVER_ANALYTICS_ENABLED', 'false')
