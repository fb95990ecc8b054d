"""durable_kernel."""
