"""Weights of a growing list of members (extra training sets, fused models): an empty tuple means all weigh 1."""

from __future__ import annotations

from collections.abc import Sequence


def appended_weight(weights: Sequence[float], count: int, weight: float) -> tuple[float, ...]:
    """The weights of ``count`` members (``weights``; empty = all 1) with one member of ``weight`` appended; empty
    again while every weight is 1, so a config that never weighs anything stays as it was."""
    if not weights and weight == 1.0:
        return ()
    return (*(weights or (1.0,) * count), weight)
