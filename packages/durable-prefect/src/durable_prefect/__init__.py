"""durable_prefect."""
