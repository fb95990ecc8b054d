"""Loaded at interpreter start by the docs' code blocks under test (`examples/test_docs.py`), never by users.

The blocks are what a user copies, so they name real providers (`Agent('openai:gpt-5.2')`) and the default Temporal
address. Under test, a model named by a string is pydantic-ai's `TestModel` (no network, no key), and a client that
connects to `localhost:7233` reaches the test's dev server instead. Nothing else is changed: the engines are real.
"""

from __future__ import annotations

import os
from typing import Any

import pydantic_ai.models as _models
from pydantic_ai.models.test import TestModel

_infer_model = _models.infer_model


def _fake_infer_model(model: Any, *args: Any, **kwargs: Any) -> Any:
    if isinstance(model, str) and model != 'test':
        return TestModel()
    return _infer_model(model, *args, **kwargs)


_models.infer_model = _fake_infer_model

_address = os.environ.get('DOCS_TEMPORAL_ADDRESS', '')
if _address:
    from temporalio.client import Client

    _connect = Client.connect

    async def _connect_to_test_server(target_host: str, *args: Any, **kwargs: Any) -> Client:
        if target_host in ('localhost:7233', '127.0.0.1:7233'):
            target_host = _address
        return await _connect(target_host, *args, **kwargs)

    Client.connect = staticmethod(_connect_to_test_server)
