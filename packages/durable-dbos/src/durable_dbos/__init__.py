"""durable_dbos."""
