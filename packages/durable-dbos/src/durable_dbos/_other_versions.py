"""At launch, name the agent's pending workflows that DBOS will not recover here because another version started them.

DBOS recovers a workflow only in a process of the application version that started it. Unless
`application_version` is set in the DBOS config, that version is a hash of the registered workflows' source code, so
it changes with any change of that code, including a switch between `pydantic_ai.durable_exec.dbos` and this package
(or an upgrade of either). DBOS leaves such workflows PENDING without a word; we list them, with their version and
the setting that recovers them, once DBOS has launched. Matching the other version's hash instead would be unsound:
the version exists to say that the code is the same.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from dbos import DBOS

from ._dbos_private import run_after_launch

__all__ = ('LOGGER_NAME', 'warn_about_other_versions_at_launch')

LOGGER_NAME = 'durable_dbos'
_logger = logging.getLogger(LOGGER_NAME)
_SHOWN_IDS = 5


def warn_about_other_versions_at_launch(agent_name: str, workflow_names: Sequence[str]) -> None:
    """Once DBOS has launched, log a warning listing the pending workflows of `workflow_names` that it will not recover."""
    run_after_launch(_warn_about_other_versions, agent_name, list(workflow_names))


def _warn_about_other_versions(agent_name: str, workflow_names: list[str]) -> None:
    try:
        current = DBOS.application_version
        waiting = DBOS.list_workflows(
            status=['PENDING', 'ENQUEUED'],
            name=workflow_names,
            executor_id=DBOS.executor_id,
            load_input=False,
            load_output=False,
        )
    except Exception as error:  # pragma: no cover - a check must never break the launch
        _logger.debug('could not check for workflows of other application versions: %r', error)
        return
    by_version: dict[str, list[str]] = {}
    for workflow in waiting:
        if workflow.app_version is not None and workflow.app_version != current:
            by_version.setdefault(workflow.app_version, []).append(workflow.workflow_id)
    for version, workflow_ids in sorted(by_version.items()):
        shown = ', '.join(workflow_ids[:_SHOWN_IDS]) + (' ...' if len(workflow_ids) > _SHOWN_IDS else '')
        _logger.warning(
            '%d workflow(s) of DBOS agent %r were started under application version %r and wait to be recovered, but '
            'this process runs version %r and DBOS recovers a workflow only in a process of its own version: they '
            'stay PENDING until one recovers them (%s). Unless a process of version %r is still running them, '
            "start one that recovers them with this package: `DBOS(config={..., 'application_version': %r})` "
            '(durable-dbos docs: DBOS, "Workflows started by another version").',
            len(workflow_ids),
            agent_name,
            version,
            current,
            shown,
            version,
            version,
        )
