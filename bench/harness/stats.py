"""Percentiles of a measurement, nearest rank: each one a value that was measured."""

from __future__ import annotations

import math


def percentiles(values: list[float]) -> dict:
    ordered = sorted(values)
    if not ordered:
        return dict.fromkeys(("p50", "p95", "p99", "max"), math.nan) | {"n": 0}

    def rank(q: float) -> float:
        return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]

    return {"n": len(ordered), "p50": rank(50), "p95": rank(95), "p99": rank(99),
            "max": ordered[-1]}  # fmt: skip
