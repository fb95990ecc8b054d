from __future__ import annotations

from contextvars import ContextVar

import pytest
from pydantic_ai import _utils

from durable_kernel import scoped_context_value

_VAR: ContextVar[str | None] = ContextVar('test_scoped_context_value', default=None)


def test_value_applies_inside_the_block_only() -> None:
    with scoped_context_value(_VAR, 'outer'):
        assert _VAR.get() == 'outer'
        with scoped_context_value(_VAR, 'inner'):
            assert _VAR.get() == 'inner'
        assert _VAR.get() == 'outer'
    assert _VAR.get() is None


def test_unset_leaves_the_variable_untouched() -> None:
    with scoped_context_value(_VAR, 'outer'):
        with scoped_context_value(_VAR, _utils.UNSET):
            assert _VAR.get() == 'outer'
        assert _VAR.get() == 'outer'


def test_value_is_restored_after_an_error() -> None:
    with pytest.raises(RuntimeError), scoped_context_value(_VAR, 'inside'):
        raise RuntimeError('boom')
    assert _VAR.get() is None
