"""Choosing the model: the scripted fake by default, a real provider with `--model provider:name` and a key."""

from __future__ import annotations

from pydantic_ai.models import Model, infer_model


def resolve_model(name: str | None) -> Model | None:
    """The model named on the command line, or `None` for the scripted fake model.

    Raises:
        pydantic_ai.exceptions.UserError: when the provider cannot be set up (for example, its API key is missing).
    """
    if not name or name == 'fake':
        return None
    return infer_model(name)
