"""Percentiles and the median-of-runs summary every figure in the report goes through."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linearly interpolated; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def spread(runs: Sequence[float]) -> dict[str, float]:
    """Median of the runs with their min and max, so a reader sees how steady a figure is."""
    clean = [v for v in runs if v is not None and not math.isnan(v)]
    if not clean:
        return {"median": math.nan, "min": math.nan, "max": math.nan, "n": 0}
    return {"median": percentile(clean, 50), "min": min(clean), "max": max(clean),
            "n": len(clean)}
