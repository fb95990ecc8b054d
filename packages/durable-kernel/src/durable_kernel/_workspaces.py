"""pydantic-ai 2.68+'s workspaces in a durable run: I/O from workflow or flow code is refused, units keep working.

A run's workspace (`LocalWorkspace(...)` on the agent, or `run(workspace=...)`) is `ctx.workspace` everywhere in the
run. Its calls from workflow or flow code (a capability hook, instructions, an output function) would read files and
run commands outside any durable unit: the engine would not record them, and a replay, recovery or resumed run would
do them again (Temporal's sandbox may also refuse them obscurely). This package does not make those calls durable yet,
so they raise a `UserError` that says what to do instead. A tool runs in its own durable unit, where its workspace
calls are recorded with the unit's result: there they go straight to the workspace, as before.

One rule for every engine and both forms: a durability capability wraps the run's selected workspace in its
`_prepare_workspace` hook, and a wrapper agent adds `RefuseWorkspaceInContainerCode` to a run inside its container.
Nothing changes outside a durable container, and on a pydantic-ai without workspaces (1.107, 2.x before 2.68), which
never calls the hook.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from pydantic_ai.agent import AbstractAgent
from pydantic_ai.capabilities import AbstractCapability, DynamicCapability, WrapperCapability
from pydantic_ai.exceptions import UserError
from pydantic_ai.tools import AgentDepsT, RunContext

from ._compat import agent_override_capability, agent_root_capability, workspace_wrapper_base

__all__ = (
    'DEFAULT_WORKSPACE_ADVICE',
    'RefuseWorkspaceInContainerCode',
    'refusing_workspace',
    'run_may_select_workspace',
    'workspace_refusal',
)


DEFAULT_WORKSPACE_ADVICE = (
    'Do the workspace work inside a tool that runs in its own durable unit, or outside {container}.'
)
"""What to do instead, by default (`{container}` is filled in); engines say where their tools run."""


def workspace_refusal(container: str, units: str, advice: str = DEFAULT_WORKSPACE_ADVICE) -> str:
    """The message of a workspace call from workflow or flow code.

    Args:
        container: Where the run is (`'a Temporal workflow'`, ...).
        units: What the engine calls its durable units (`'activities'`, `'steps'`, `'tasks'`).
        advice: What to do instead; `{container}` in it is filled in.
    """
    return (
        f"The run's workspace (`ctx.workspace`) cannot be used in the code of {container} (instructions, capability "
        f'hooks, output functions, tools that are not {units}): its file and command operations would run outside '
        f"the engine's {units}, unrecorded, and again on every replay, recovery or resume. Workspaces are not "
        f'durable in this release. {advice.format(container=container)}'
    )


@functools.cache
def _refusing_workspace_class() -> type[Any]:
    # Built on first use: `WrapperWorkspace` exists only where pydantic-ai has workspaces (2.68+).
    base = workspace_wrapper_base()

    class RefusingWorkspace(base):
        """The run's workspace inside a durable container: every operation from container code raises `UserError`.

        Outside container code (inside a durable unit, or after the run, outside the container) every operation goes
        straight to the wrapped workspace. Path arithmetic (`paths`, `platform`, `ref`) does no I/O and passes.
        """

        def __init__(self, wrapped: Any, *, in_container_code: Callable[[], bool], message: str) -> None:
            # `WrapperWorkspace` is typed `Any` here (looked up at run time), and so is its constructor.
            super().__init__(wrapped)  # pyright: ignore[reportUnknownMemberType]
            self._in_container_code = in_container_code
            self._message = message

        def _inner(self) -> Any:
            if self._in_container_code():
                raise UserError(self._message)
            return self.wrapped

        @property
        def backend(self) -> Any:
            # The provider's backend bypasses the workspace's methods: refused in container code as well.
            return self._inner().backend

        async def working_dir(self) -> str:
            return await self._inner().working_dir()

        async def run(
            self,
            command: Any,
            *,
            shell: bool = False,
            env: Mapping[str, str] | None = None,
            timeout: float | None = None,
            cwd: str | None = None,
        ) -> Any:
            return await self._inner().run(command, shell=shell, env=env, timeout=timeout, cwd=cwd)

        async def read_bytes(self, path: str) -> bytes:
            return await self._inner().read_bytes(path)

        async def write_bytes(self, path: str, data: bytes) -> None:
            await self._inner().write_bytes(path, data)

        async def stat(self, path: str) -> Any:
            return await self._inner().stat(path)

        async def list_dir(self, path: str) -> Sequence[Any]:
            return await self._inner().list_dir(path)

        async def make_dir(self, path: str) -> None:
            await self._inner().make_dir(path)

        async def remove(self, path: str) -> None:
            await self._inner().remove(path)

        async def exists(self, path: str) -> bool:
            return await self._inner().exists(path)

        async def realpath(self, path: str) -> str:
            return await self._inner().realpath(path)

    return RefusingWorkspace


def refusing_workspace(
    workspace: Any,
    *,
    in_container_code: Callable[[], bool],
    container: str,
    units: str,
    advice: str = DEFAULT_WORKSPACE_ADVICE,
) -> Any:
    """`workspace` wrapped so that its operations raise a `UserError` when called from workflow or flow code.

    Args:
        workspace: The run's selected `Workspace` (pydantic-ai 2.68+).
        in_container_code: Whether the caller is the container's own code (not one of its durable units).
        container: Where the run is (`'a Temporal workflow'`, ...), for the message.
        units: What the engine calls its durable units, for the message.
        advice: What to do instead, for the message (`{container}` is filled in).

    Returns:
        A `Workspace` that refuses in container code and is `workspace` everywhere else.
    """
    return _refusing_workspace_class()(
        workspace, in_container_code=in_container_code, message=workspace_refusal(container, units, advice)
    )


class RefuseWorkspaceInContainerCode(AbstractCapability[AgentDepsT]):
    """Added by a wrapper agent to a run inside its container: the run's workspace refuses container code's calls.

    Args:
        in_container_code: Whether the caller is the container's own code (not one of its durable units).
        container: Where the run is (`'a Temporal workflow'`, ...), for the message.
        units: What the engine calls its durable units (`'activities'`, ...), for the message.
        advice: What to do instead, for the message (`{container}` is filled in).
    """

    def __init__(
        self,
        *,
        in_container_code: Callable[[], bool],
        container: str,
        units: str,
        advice: str = DEFAULT_WORKSPACE_ADVICE,
    ) -> None:
        self._in_container_code = in_container_code
        self._container = container
        self._units = units
        self._advice = advice

    def _prepare_workspace(self, ctx: RunContext[AgentDepsT], workspace: Any, *, explicit: bool) -> Any:
        return refusing_workspace(
            workspace,
            in_container_code=self._in_container_code,
            container=self._container,
            units=self._units,
            advice=self._advice,
        )


def run_may_select_workspace(
    agent: AbstractAgent[Any, Any], run_capabilities: Sequence[Any] | None = None, *, run_workspace: Any = None
) -> bool:
    """Whether a run of `agent` may have a workspace; `False` only when it surely has none.

    A wrapper agent adds `RefuseWorkspaceInContainerCode` to a run only then, so that the runs of an agent without
    workspaces (most) do not pay one more capability in every hook. A workspace is chosen when the run starts, by the
    run's `workspace=` or by a capability's `get_workspace`: the agent's, an `override(capabilities=...)`'s in force,
    or the run's `capabilities=`. A capability function (`DynamicCapability`, or a function among the run's
    capabilities) is known only in the run, so it counts.

    Args:
        agent: The agent (its capability tree, and an override's in force).
        run_capabilities: The run's `capabilities=`, where known.
        run_workspace: The run's `workspace=`, where given.
    """
    if run_workspace is not None:
        return True
    trees: list[AbstractCapability[Any]] = [agent_root_capability(agent)]
    override = agent_override_capability(agent)
    if override is not None:
        trees.append(override)
    for capability in run_capabilities or ():
        if not isinstance(capability, AbstractCapability):
            return True
        trees.append(cast('AbstractCapability[Any]', capability))
    leaves: list[AbstractCapability[Any]] = []
    for tree in trees:
        tree.apply(leaves.append)
    return any(_may_supply_workspace(leaf) for leaf in leaves)


def _may_supply_workspace(capability: AbstractCapability[Any]) -> bool:
    # A wrapper passes `get_workspace` to what it wraps unless its own class answers it.
    while isinstance(capability, WrapperCapability):
        if _get_workspace_of(type(capability)) is not _get_workspace_of(WrapperCapability):
            return True
        capability = capability.wrapped
    if isinstance(capability, DynamicCapability):
        return True
    return _get_workspace_of(type(capability)) is not _get_workspace_of(AbstractCapability)


def _get_workspace_of(cls: type[Any]) -> object:
    # By name: the lock's pydantic-ai (1.107), which pyright reads, has no `get_workspace`.
    return getattr(cls, 'get_workspace', None)
