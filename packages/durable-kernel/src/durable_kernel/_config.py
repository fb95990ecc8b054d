"""Merging layered configuration (base, per model, per toolset, per tool) without touching the caller's objects."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, TypeVar

__all__ = ('merge_config', 'merge_unique')

T = TypeVar('T')


def merge_config(*configs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge config mappings, later ones winning key by key.

    `None` layers are skipped; a key present in a later layer replaces the earlier value, even with `None`
    (an explicit override). Values are shallow-copied
    (`copy.copy`), so mutating the result, or an object inside it such as a retry policy, never changes a
    caller's config.

    Args:
        *configs: The layers, from the most general to the most specific.

    Returns:
        A new dict.
    """
    merged: dict[str, Any] = {}
    for config in configs:
        if config is None:
            continue
        for key, value in config.items():
            merged[key] = copy.copy(value)
    return merged


def merge_unique(*sequences: Any) -> list[Any]:
    """Concatenate sequences, keeping the first occurrence of each item (order-preserving).

    Used, for example, to keep the non-retryable error types of a base retry policy when a narrower config brings
    its own.

    Args:
        *sequences: Iterables (or `None`) to merge.

    Returns:
        A new list.
    """
    seen: list[Any] = []
    for sequence in sequences:
        for item in sequence or ():
            if item not in seen:
                seen.append(item)
    return seen
