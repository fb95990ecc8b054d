"""Runnable examples and the `just demo` crash-and-resume demo (fake model by default)."""
