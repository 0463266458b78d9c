"""Medians, spreads and paired ratios over rounds."""

from __future__ import annotations

import math
import statistics
from typing import Any


def _clean(values: list[float]) -> list[float]:
    return [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def summary(values: list[float]) -> dict[str, Any]:
    """Median, min/max and quartiles of one metric across rounds."""
    vals = sorted(_clean(values))
    if not vals:
        return {"median": None, "min": None, "max": None, "q1": None, "q3": None, "n": 0}
    if len(vals) >= 4:
        q1, _, q3 = statistics.quantiles(vals, n=4, method="inclusive")
    else:
        q1, q3 = vals[0], vals[-1]
    return {
        "median": statistics.median(vals),
        "min": vals[0],
        "max": vals[-1],
        "q1": q1,
        "q3": q3,
        "n": len(vals),
    }


def paired_ratio(
    num: list[dict[str, Any] | None], den: list[dict[str, Any] | None], key: str
) -> dict[str, Any]:
    """``num[key] / den[key]`` round by round (same round = same machine state), summarised."""
    ratios = []
    for a, b in zip(num, den, strict=False):
        if a is None or b is None:
            continue
        x, y = a.get(key), b.get(key)
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and y:
            ratios.append(x / y)
    return summary(ratios)


def metric(runs: list[dict[str, Any] | None], key: str) -> dict[str, Any]:
    return summary([r[key] for r in runs if r is not None and key in r])
