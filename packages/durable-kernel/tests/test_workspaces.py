"""Which runs a wrapper agent gives the workspace refusal (pydantic-ai 2.68+'s workspaces; engines: test_workspaces.py)."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai import Agent, RunContext
from pydantic_ai.capabilities import AbstractCapability, WrapperCapability
from pydantic_ai.models.test import TestModel

from durable_kernel import HAS_WORKSPACES
from durable_kernel._workspaces import run_may_select_workspace

pytestmark = pytest.mark.skipif(not HAS_WORKSPACES, reason='workspaces exist from pydantic-ai 2.68')


def _local_workspace(path: Path) -> AbstractCapability[Any]:
    # By name: pyright reads the lock's pydantic-ai (1.107), which has no `LocalWorkspace`.
    return importlib.import_module('pydantic_ai.capabilities').LocalWorkspace(str(path))


class _Plain(AbstractCapability[Any]):
    pass


def test_an_agent_without_workspaces_needs_no_refusal():
    agent = Agent(TestModel(), capabilities=[_Plain()])
    assert not run_may_select_workspace(agent)
    assert not run_may_select_workspace(agent, [_Plain()])


def test_a_workspace_on_the_agent_in_a_wrapper_or_in_the_run_is_seen(tmp_path: Path):
    assert run_may_select_workspace(Agent(TestModel(), capabilities=[_local_workspace(tmp_path)]))
    assert run_may_select_workspace(
        Agent(TestModel(), capabilities=[WrapperCapability[Any](wrapped=_local_workspace(tmp_path))])
    )
    assert run_may_select_workspace(Agent(TestModel()), [_local_workspace(tmp_path)])
    assert run_may_select_workspace(Agent(TestModel()), run_workspace=object())


def test_a_capability_known_only_in_the_run_counts(tmp_path: Path):
    def build(ctx: RunContext[Any]) -> AbstractCapability[Any]:
        return _local_workspace(tmp_path)

    assert run_may_select_workspace(Agent(TestModel()), [build])
    assert run_may_select_workspace(Agent(TestModel(), capabilities=[build]))


def test_an_override_in_force_counts(tmp_path: Path):
    if 'capabilities' not in inspect.signature(Agent.override).parameters:
        pytest.skip('`override(capabilities=...)` came with pydantic-ai 2.78')
    agent = Agent(TestModel())
    with agent.override(capabilities=[_local_workspace(tmp_path)]):
        assert run_may_select_workspace(agent)
    assert not run_may_select_workspace(agent)
