"""Runs a flow in a `contextvars` context copied before the test server started; prints the settings seen there.

The copy stands for the runner task of anyio's pytest plugin, kept alive by a session-scoped async fixture that
was set up before the test server's fixture (or for a `unittest.IsolatedAsyncioTestCase`).
"""

from __future__ import annotations

import contextvars
import json

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, PREFECT_LOCAL_STORAGE_PATH

from durable_prefect.testing import prefect_test_server


@flow
def hello() -> str:
    """A flow that records its run on whichever server the settings point at."""
    return 'hello'


if __name__ == '__main__':
    copied_before = contextvars.copy_context()
    with prefect_test_server() as home:
        state = copied_before.run(hello, return_state=True)
        with get_client(sync_client=True) as client:  # the test server, as the fixture's own context sees it
            recorded = client.read_flow_runs()
        report = {
            'server': PREFECT_API_URL.value(),
            'seen_in_copy': copied_before.run(PREFECT_API_URL.value),
            'storage': str(home / 'storage'),
            'storage_in_copy': str(copied_before.run(PREFECT_LOCAL_STORAGE_PATH.value)),
            'flow_run': str(state.state_details.flow_run_id),
            'recorded': [str(flow_run.id) for flow_run in recorded],
        }
        print(json.dumps(report), flush=True)
