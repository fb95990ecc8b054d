"""durable_temporal."""
