"""Shared machinery of the integration suite: scenarios written once, an engine harness per engine.

`tests-integration/` is put on `sys.path` by `conftest.py` (and by `crash.py`), so this package imports as `harness`
everywhere, the Temporal workflow sandbox included.
"""

from ._base import EngineHarness, run_plain
from ._events import record_events, take_events
from ._outcome import (
    DurableRunFailed,
    RunOutcome,
    comparable_events,
    comparable_messages,
    describe_error,
    outcome_from_result,
)
from ._params import ENGINES, engine_params
from .scenarios import (
    ALL_SCENARIOS,
    CONFORMANCE_SECRET,
    FAILING_SCENARIOS,
    FORMS,
    OVERSIZED_SCENARIO,
    SCENARIOS,
    SECRETS_SCENARIO,
    STREAM_OUT_SCENARIOS,
    STREAM_OUT_TOPIC,
    Deps,
    Form,
    RunInput,
    Scenario,
    scenario,
)

__all__ = (
    'ALL_SCENARIOS',
    'CONFORMANCE_SECRET',
    'SECRETS_SCENARIO',
    'STREAM_OUT_SCENARIOS',
    'STREAM_OUT_TOPIC',
    'FAILING_SCENARIOS',
    'DurableRunFailed',
    'OVERSIZED_SCENARIO',
    'describe_error',
    'ENGINES',
    'SCENARIOS',
    'FORMS',
    'Deps',
    'EngineHarness',
    'Form',
    'RunInput',
    'RunOutcome',
    'Scenario',
    'comparable_events',
    'comparable_messages',
    'engine_params',
    'outcome_from_result',
    'record_events',
    'run_plain',
    'scenario',
    'take_events',
)
