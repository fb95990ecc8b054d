"""Small statistics helpers: percentiles and the growth exponent of a size against the number of turns."""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Sequence


def median(values: Sequence[float]) -> float:
    """The median of `values` (NaN when empty)."""
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], fraction: float) -> float:
    """The `fraction` percentile of `values` by linear interpolation (NaN when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def growth_exponent(points: Sequence[tuple[float, float]]) -> float | None:
    """The slope of log(y) against log(x) by least squares: ~1 for linear growth, ~2 for quadratic.

    Args:
        points: `(x, y)` pairs with positive values, e.g. `(turns, history_bytes)`.

    Returns:
        The exponent, or `None` with fewer than two usable points.
    """
    usable = [(math.log(x), math.log(y)) for x, y in points if x > 0 and y > 0]
    if len({x for x, _ in usable}) < 2:
        return None
    mean_x = sum(x for x, _ in usable) / len(usable)
    mean_y = sum(y for _, y in usable) / len(usable)
    numerator = sum((x - mean_x) * (y - mean_y) for x, y in usable)
    denominator = sum((x - mean_x) ** 2 for x, _ in usable)
    return numerator / denominator


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """`numerator / denominator`, or `None` when either is missing, NaN or the denominator is zero."""
    if numerator is None or denominator is None or math.isnan(numerator) or math.isnan(denominator):
        return None
    if denominator == 0:
        return None
    return numerator / denominator


def load_average() -> str:
    """The machine's load average over 1, 5 and 15 minutes, as `1.23 / 1.10 / 0.98`."""
    return ' / '.join(f'{value:.2f}' for value in os.getloadavg())
