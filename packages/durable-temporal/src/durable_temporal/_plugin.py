from __future__ import annotations

import dataclasses
import importlib
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

from pydantic.errors import PydanticUserError
from pydantic_ai.agent import AbstractAgent
from pydantic_ai.exceptions import AgentRunError, UserError
from temporalio import activity
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import DataConverter, DefaultPayloadConverter
from temporalio.plugin import SimplePlugin
from temporalio.worker import Interceptor, ReplayerConfig, WorkerConfig, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from ._activation_lock import SerializedActivationRunner, serialize_activations
from ._child_workflow import mark_child_workflows_registered
from ._claim_check import DEFAULT_CLAIM_CHECK_THRESHOLD, ClaimCheckCodec, ClaimCheckStore
from ._payload_converter import PydanticAIPayloadConverter
from ._payload_limits import DEFAULT_PAYLOAD_SIZE_LIMIT, PayloadLimitInterceptor, PayloadLimits
from ._versioning import PatchSwitchInterceptor, patch_switches

__all__ = ('AgentPlugin', 'PydanticAIPlugin', 'SANDBOX_PASSTHROUGH_MODULES', 'WORKFLOW_FAILURE_EXCEPTION_TYPES')

SANDBOX_PASSTHROUGH_MODULES: tuple[str, ...] = (
    'durable_kernel',
    'durable_temporal',
    'pydantic_ai',
    'pydantic',
    'pydantic_core',
    'pydantic_graph',
    # pydantic-ai 2.x's code-mode interpreter: a PyO3 extension, which can be initialised once per process only.
    'pydantic_monty',
    'typing_inspection',
    'annotated_types',
    'genai_prices',
    'griffe',
    'logfire',
    'logfire_api',
    'opentelemetry',
    'rich',
    'httpx',
    'httpcore',
    'h11',
    # pydantic-ai 2.x's HTTP stack: re-imported in the sandbox, `httpx2`'s cookie jar subclasses
    # `urllib.request.Request`, which the sandbox restricts, so any workflow module importing it fails validation.
    'httpx2',
    'httpcore2',
    'truststore',
    'anyio',
    'sniffio',
    'certifi',
    'idna',
    'exceptiongroup',
    # mcp/fastmcp resolve config directories with `Path.expanduser` at import time, which the sandbox forbids.
    'mcp',
    'fastmcp',
    'beartype',
    # Provider SDKs read credential files while a model built inside a workflow constructs its client.
    'anthropic',
    'openai',
    'google.auth',
    'google.genai',
    # Imported lazily by logfire's JSON encoder and schema when an activity logs structured attributes.
    'attrs',
    'numpy',
    'pandas',
)
"""Modules the workflow sandbox shares with the worker instead of re-importing them for every workflow.

They are pydantic-ai, this package and their dependencies: deterministic in what workflow code uses of them, and
too expensive (or, for some, impossible: they touch the file system at import time) to re-import in the sandbox.
"""


def _graph_sync_error_types() -> tuple[type[BaseException], ...]:
    # pydantic-graph 2.x raises this from its sync entry points (`Graph.run_sync()`) on Temporal's event loop, which
    # cannot be driven by the caller; pydantic-ai turns it into a `UserError`, a graph called directly does not.
    # Older pydantic-graph releases lack it (their `run_sync` fails otherwise).
    error_type: Any = getattr(importlib.import_module('pydantic_graph.exceptions'), 'UnsupportedEventLoopError', None)
    return () if error_type is None else (cast('type[BaseException]', error_type),)


WORKFLOW_FAILURE_EXCEPTION_TYPES: tuple[type[BaseException], ...] = (
    UserError,
    PydanticUserError,
    AgentRunError,
    *_graph_sync_error_types(),
)
"""Exceptions that fail the workflow when the agent loop raises them in workflow code.

Without this, Temporal treats them as a bug in the workflow task and retries the task forever: a run that exceeds
its usage limits (`UsageLimitExceeded`) or gets an unusable model response (`UnexpectedModelBehavior`) would hang
instead of failing with its error visible to the caller. On pydantic-ai 2.x this includes pydantic-graph's
`UnsupportedEventLoopError` (a graph's `run_sync()` called in workflow code).
"""


def _with_pydantic_payload_converter(converter: DataConverter | None) -> DataConverter:
    if converter is None:
        return DataConverter(payload_converter_class=PydanticAIPayloadConverter)
    current = converter.payload_converter_class
    if issubclass(current, PydanticPayloadConverter) and current is not PydanticPayloadConverter:
        # Ours already, or the user's own pydantic converter: keep it with whatever it customizes.
        return converter
    if current not in (DefaultPayloadConverter, PydanticPayloadConverter):
        warnings.warn(
            f'PydanticAIPlugin replaced the payload converter {current.__qualname__} with PydanticAIPayloadConverter, '
            'because pydantic-ai messages only round-trip through a pydantic converter. To keep custom behaviour, '
            'make your payload converter a subclass of temporalio.contrib.pydantic.PydanticPayloadConverter.',
            stacklevel=2,
        )
    # `replace` keeps the payload codec, failure converter and the rest of the user's data converter.
    return dataclasses.replace(converter, payload_converter_class=PydanticAIPayloadConverter)


def _with_claim_check(converter: DataConverter, store: ClaimCheckStore, threshold: int) -> DataConverter:
    codec = converter.payload_codec
    if isinstance(codec, ClaimCheckCodec) and codec.store is store:
        return converter  # the same plugin applied twice (a client's plugins are applied to its workers' replayers)
    # The user's codec runs first, so an encryption codec encrypts what goes to the store.
    return dataclasses.replace(converter, payload_codec=ClaimCheckCodec(store, threshold=threshold, inner=codec))


def _offloads_large_payloads(converter: DataConverter) -> bool:
    # `DataConverter.external_storage` is Temporal's own claim check (experimental, in recent temporalio releases; absent from older ones).
    return (
        isinstance(converter.payload_codec, ClaimCheckCodec) or getattr(converter, 'external_storage', None) is not None
    )


def _with_sandbox_passthrough(runner: WorkflowRunner | None) -> WorkflowRunner:
    if isinstance(runner, SerializedActivationRunner):
        runner = runner.inner
    if runner is None:
        runner = SandboxedWorkflowRunner()
    if isinstance(runner, SandboxedWorkflowRunner):
        runner = dataclasses.replace(
            runner, restrictions=runner.restrictions.with_passthrough_modules(*SANDBOX_PASSTHROUGH_MODULES)
        )
    # (An unsandboxed runner imports nothing again: there is nothing to pass through.) Either way, an eviction after
    # a deadlock-detector timeout must not run beside the interrupted activation: see `_activation_lock`.
    return serialize_activations(runner)


def _with_interceptors(existing: Sequence[Interceptor] | None, added: Sequence[Interceptor]) -> list[Interceptor]:
    # The same plugin instance may configure a worker twice (given to the client and to the worker): add ours once.
    merged = list(existing or ())
    merged.extend(interceptor for interceptor in added if interceptor not in merged)
    return merged


def _activity_name(fn: Callable[..., Any]) -> str:
    # Temporal has no public accessor for the name `@activity.defn` recorded on a callable.
    definition = activity._Definition.must_from_callable(fn)  # pyright: ignore[reportPrivateUsage, reportUnknownMemberType]
    return definition.name or fn.__name__


def merge_activities(
    existing: Iterable[Callable[..., Any]], added: Iterable[Callable[..., Any]]
) -> list[Callable[..., Any]]:
    """Append `added` to `existing`, skipping activities already registered under the same name.

    The same agent is often registered twice (by `AgentPlugin` and by a workflow's `__pydantic_ai_agents__`, or
    by two workflows); Temporal rejects a worker with two activities of one name, so the second registration of an
    agent's activity is dropped. Two *different* callables under one name mean two agents share a name: that is
    refused, because history could not tell their activities apart.
    """
    merged = list(existing)
    by_name: dict[str, Callable[..., Any]] = {}
    for fn in merged:
        definition = activity._Definition.from_callable(fn)  # pyright: ignore[reportPrivateUsage, reportUnknownMemberType]
        if definition is not None and definition.name is not None:
            by_name[definition.name] = fn
    for fn in added:
        name = _activity_name(fn)
        registered = by_name.get(name)
        if registered is None:
            by_name[name] = fn
            merged.append(fn)
        elif registered != fn:
            raise UserError(
                f'Two different activities are registered as {name!r}: two agents probably share a name. '
                'Give every TemporalAgent a unique `name=`, or register the same agent instance in both places.'
            )
    return merged


def agent_activities(agent: object, *, where: str) -> list[Callable[..., Any]]:
    """The activities of a `TemporalAgent`, or of an agent carrying `TemporalDurability` (bound now if need be).

    Args:
        agent: What was given to register.
        where: How the refusal names the place the agent was given, e.g. `'AgentPlugin(...)'`.

    Raises:
        UserError: `agent` is neither.
    """
    activities: object = getattr(agent, 'temporal_activities', None)
    if isinstance(activities, Sequence):
        return list(cast('Sequence[Callable[..., Any]]', activities))
    if isinstance(agent, AbstractAgent):
        from ._durability import TemporalDurability

        durability: TemporalDurability[Any] | None = TemporalDurability.from_agent(
            cast('AbstractAgent[Any, Any]', agent)
        )
        if durability is not None:
            return durability.temporal_activities
    raise UserError(
        f'{where} contains {agent!r}, which is neither a TemporalAgent nor an agent with the TemporalDurability '
        'capability: add `capabilities=[TemporalDurability()]` to the agent, or wrap it with `TemporalAgent(agent)` '
        'and list the wrapper.'
    )


def agent_workflows(agent: object) -> list[type]:
    """The child workflow types of a `TemporalAgent` or of an agent carrying `TemporalDurability`.

    See `TemporalAgent.temporal_workflows`; none for anything else (`agent_activities` refuses it).
    """
    workflows: object = getattr(agent, 'temporal_workflows', None)
    if isinstance(workflows, Sequence):
        return list(cast('Sequence[type]', workflows))
    if isinstance(agent, AbstractAgent):
        from ._durability import TemporalDurability

        durability: TemporalDurability[Any] | None = TemporalDurability.from_agent(
            cast('AbstractAgent[Any, Any]', agent)
        )
        if durability is not None:
            return durability.temporal_workflows
    return []


def merge_workflows(existing: Iterable[type], added: Iterable[type]) -> list[type]:
    """Append the child workflow types `added` to `existing`, each once, and note them as registered in this process."""
    merged = list(existing)
    merged.extend(cls for cls in dict.fromkeys(added) if cls not in merged)
    mark_child_workflows_registered(merged)
    return merged


def _agent_activities(agents: object, *, owner: str) -> list[Callable[..., Any]]:
    if isinstance(agents, (str, bytes)) or not isinstance(agents, Sequence):
        raise UserError(
            f'{owner}.__pydantic_ai_agents__ must be a sequence of TemporalAgent instances or agents with the '
            f'TemporalDurability capability, got {type(agents).__name__}.'
        )
    activities: list[Callable[..., Any]] = []
    for agent in cast('Sequence[object]', agents):
        activities.extend(agent_activities(agent, where=f'{owner}.__pydantic_ai_agents__'))
    return activities


class PydanticAIPlugin(SimplePlugin):
    """Temporal client and worker plugin for pydantic-ai agents.

    Pass it to `Client.connect(..., plugins=[PydanticAIPlugin()])` (workers built on that client inherit it) or to
    a `Worker` or `Replayer`. It:

    - uses [`PydanticAIPayloadConverter`][durable_temporal.PydanticAIPayloadConverter]: a non-pydantic payload
      converter is replaced with a warning, while payload codecs and failure converters are kept;
    - passes pydantic-ai and its dependencies through the workflow sandbox
      (`durable_temporal._plugin.SANDBOX_PASSTHROUGH_MODULES`);
    - registers the activities of the agents listed in each workflow's `__pydantic_ai_agents__`
      (see [`PydanticAIWorkflow`][durable_temporal.PydanticAIWorkflow]), once each;
    - fails the workflow, instead of retrying its task forever, when the agent loop raises one of
      pydantic-ai's `UserError`, `AgentRunError` (e.g. `UsageLimitExceeded`, `UnexpectedModelBehavior`) or pydantic's
      `PydanticUserError`;
    - fails the run at once, with an error naming the tool or model request, when an agent activity's arguments or
      result are over `payload_size_limit` (Temporal would otherwise retry it forever); unless `claim_check` keeps
      large payloads out of the workflow history;
    - switches the behaviours that change a workflow's commands on or off (`patches`), so that a fleet can deploy a
      release before turning its new behaviours on (see "Versioning policy" in the Temporal guide).
    """

    def __init__(
        self,
        *,
        claim_check: ClaimCheckStore | None = None,
        claim_check_threshold: int = DEFAULT_CLAIM_CHECK_THRESHOLD,
        payload_size_limit: int | None = DEFAULT_PAYLOAD_SIZE_LIMIT,
        patches: Mapping[str, bool] | None = None,
    ) -> None:
        """Configure the plugin.

        Args:
            claim_check: A store for payloads over `claim_check_threshold` bytes (e.g.
                [`FileClaimCheckStore`][durable_temporal.FileClaimCheckStore]): the workflow history keeps a reference
                instead. It wraps the data converter's own payload codec (which runs first). Every client and worker
                of the namespace needs the same store.
            claim_check_threshold: The size in bytes (after your codec) over which a payload goes to `claim_check`.
            payload_size_limit: The size in bytes over which the arguments or result of an agent activity fail the
                run (Temporal's default blob size limit, 2 MiB); `None` checks nothing. Not checked when large
                payloads go to a claim check or to Temporal's external storage.
            patches: Behaviours that change the commands a workflow schedules, on (`True`) or off (`False`) by their
                `workflow.patched` id, e.g. `{'durable_temporal.event_batches': False}`; ids left out keep their
                default. Off, new executions take the previous behaviour and record no marker, so their histories
                replay on the previous release and on the reference; a history that has the marker still replays
                with the behaviour, and a workflow keeps the behaviour it started with. Replay does not depend on
                the switches: workers with different switches can share a task queue (see "Versioning policy" in
                the Temporal guide).

        Raises:
            UserError: `claim_check_threshold` is not below `payload_size_limit`, or `patches` names an unknown id.
        """
        if claim_check is not None and payload_size_limit is not None and claim_check_threshold >= payload_size_limit:
            raise UserError(
                f'claim_check_threshold ({claim_check_threshold} bytes) must be below payload_size_limit '
                f'({payload_size_limit} bytes), or payloads between the two would be refused by Temporal. '
                'Lower the threshold (the default is 128 KiB).'
            )
        self.claim_check = claim_check
        self.patches = patch_switches(patches)
        self.payload_limits = PayloadLimits(limit=payload_size_limit, offloaded=claim_check is not None)

        def data_converter(converter: DataConverter | None) -> DataConverter:
            converter = _with_pydantic_payload_converter(converter)
            if claim_check is not None:
                converter = _with_claim_check(converter, claim_check, claim_check_threshold)
            if _offloads_large_payloads(converter):
                self.payload_limits.offloaded = True
            return converter

        # SDK typing: `SimplePlugin` declares `activities` with a bare `Callable`, hence the unknown member type.
        super().__init__(  # pyright: ignore[reportUnknownMemberType]
            'durable_temporal.PydanticAIPlugin',
            data_converter=data_converter,
            workflow_runner=_with_sandbox_passthrough,
            workflow_failure_exception_types=list(WORKFLOW_FAILURE_EXCEPTION_TYPES),
        )
        # Added by `configure_worker` and `configure_replayer` below rather than given to `SimplePlugin`, whose
        # `configure_worker` reads them against `config["client"]` and fails with a `KeyError` on a worker config
        # built by hand (a `Worker` always passes its client). They are worker interceptors only: a client has none
        # of them to skip.
        self.worker_interceptors: tuple[Interceptor, ...] = (
            PayloadLimitInterceptor(self.payload_limits),
            PatchSwitchInterceptor(self.patches),
        )

    def configure_worker(self, config: WorkerConfig) -> WorkerConfig:
        """Apply the plugin to a worker and register the activities of its workflows' agents."""
        config = super().configure_worker(config)
        config['interceptors'] = _with_interceptors(config.get('interceptors'), self.worker_interceptors)  # pyright: ignore[reportUnknownMemberType]  # SDK: bare `Callable`s in WorkerConfig
        client = config.get('client')  # pyright: ignore[reportUnknownMemberType]  # SDK: bare `Callable`s in WorkerConfig
        if client is not None and not issubclass(
            client.data_converter.payload_converter_class, PydanticPayloadConverter
        ):
            # A worker uses its client's data converter, which a worker plugin cannot change.
            raise UserError(
                'PydanticAIPlugin was given to a Worker whose client does not convert payloads with pydantic, so '
                'pydantic-ai messages would not survive the activity boundary. Pass the plugin to the client '
                'instead: `Client.connect(..., plugins=[PydanticAIPlugin()])` (workers inherit it).'
            )
        # SDK typing: `WorkerConfig.activities` is a sequence of bare `Callable`s.
        activities = list(cast('Sequence[Callable[..., Any]]', config.get('activities', ())))  # pyright: ignore[reportUnknownMemberType]
        workflows = list(config.get('workflows', ()))  # pyright: ignore[reportUnknownMemberType]
        child_workflows: list[type] = []
        for workflow_class in workflows:
            agents: object = getattr(workflow_class, '__pydantic_ai_agents__', None)
            if agents is not None:
                activities = merge_activities(activities, _agent_activities(agents, owner=workflow_class.__qualname__))
                for agent in cast('Sequence[object]', agents):
                    child_workflows.extend(agent_workflows(agent))
        config['activities'] = activities
        if child_workflows:
            config['workflows'] = merge_workflows(workflows, child_workflows)
        return config

    def configure_replayer(self, config: ReplayerConfig) -> ReplayerConfig:
        """Apply the plugin to a replayer."""
        config = super().configure_replayer(config)
        config['interceptors'] = _with_interceptors(config.get('interceptors'), self.worker_interceptors)
        return config


class AgentPlugin(SimplePlugin):
    """Temporal worker plugin that registers one agent's activities.

    The agent is a `TemporalAgent` or an agent with the `TemporalDurability` capability.
    `Worker(client, task_queue=..., workflows=[...], plugins=[AgentPlugin(agent)])` is the same as passing
    `activities=agent.temporal_activities` (`TemporalDurability.from_agent(agent).temporal_activities`), except that registering the agent again elsewhere (another
    `AgentPlugin`, or a workflow's `__pydantic_ai_agents__`) is harmless.
    """

    def __init__(self, agent: AbstractAgent[Any, Any]) -> None:
        """Register `agent`'s activities on the worker.

        Args:
            agent: A [`TemporalAgent`][durable_temporal.TemporalAgent], or an agent with the
                [`TemporalDurability`][durable_temporal.TemporalDurability] capability.

        Raises:
            UserError: `agent` is neither.
        """
        self.agent = agent
        activities = agent_activities(agent, where='AgentPlugin(...)')

        def add_activities(existing: Sequence[Callable[..., Any]] | None) -> Sequence[Callable[..., Any]]:
            return merge_activities(existing or (), activities)

        def add_workflows(existing: Sequence[type] | None) -> Sequence[type]:
            # Read when the worker is configured: tools added to the agent after this plugin was made count.
            return merge_workflows(existing or (), agent_workflows(agent))

        super().__init__(  # pyright: ignore[reportUnknownMemberType]  # SDK: bare `Callable` in `activities`
            f'durable_temporal.AgentPlugin[{agent.name}]', activities=add_activities, workflows=add_workflows
        )
