from __future__ import annotations

from dataclasses import dataclass, field

from durable_kernel import merge_config, merge_unique


@dataclass
class Policy:
    attempts: int
    non_retryable: list[str] = field(default_factory=list[str])


def test_later_layers_win_and_none_layers_are_skipped():
    assert merge_config({'a': 1, 'b': 2}, None, {'b': 3}, {'c': None}) == {'a': 1, 'b': 3, 'c': None}


def test_merge_never_mutates_the_inputs_or_their_values():
    policy = Policy(attempts=3, non_retryable=['UserError'])
    base = {'timeout': 60, 'retry_policy': policy}
    override = {'timeout': 10}
    merged = merge_config(base, override)
    merged['retry_policy'].attempts = 1
    merged['extra'] = True
    assert base == {'timeout': 60, 'retry_policy': Policy(attempts=3, non_retryable=['UserError'])}
    assert override == {'timeout': 10}
    assert merged['retry_policy'] is not policy


def test_merge_unique_keeps_order_and_first_occurrence():
    assert merge_unique(['UserError', 'X'], None, ('X', 'Y')) == ['UserError', 'X', 'Y']
