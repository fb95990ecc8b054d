"""Workflow histories recorded by the reference integration and by ours, and the apps that record them."""
