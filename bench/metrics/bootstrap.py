"""Bootstrap intervals for every metric and paired effects between table rows (shared/reference/uncertainty.md).

The evaluation's matching runs once. Each evaluator keeps per-unit sufficient statistics (a :class:`Resampler`: per
image matches and scores for AP / mMR / JI / OKS AP; per sequence, frame block or video counts for MOTA, IDF1, HOTA,
PoseTrack and w-AP), and a replicate re-accumulates the metric with the units' multiplicities as weights: never an
average of per-unit metrics. With every weight 1 a resampler reproduces the point estimate bit for bit.

- :func:`replicate_weights`: ``R x n`` multinomial counts (the same matrix for every row of a table, so effects are
  paired: same units, same replicates), from a fixed seed.
- :func:`percentile_interval`: the 95 % percentile interval (Efron) of the replicates.
- :func:`paired_effect` / :func:`verdict`: metric(B) - metric(A) on the same replicates, and whether its interval
  agrees with the paper's effect, opposes it, or contains 0 (``within noise``). Intervals are per effect, with no
  correction for multiple comparisons.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_LEVEL = 0.95
DEFAULT_SEED = 0

VERDICTS = ("agrees", "opposes", "within noise", "no paper effect")


class Resampler(Protocol):
    """Per-unit sufficient statistics of one evaluation (one cell, one seed)."""

    unit: str  # what is resampled: "image", "video", "sequence block", ...
    units: Sequence[str]  # unit ids, in the order of the weight columns

    def values(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """``weights`` (R x len(units), non-negative integers) -> metric key -> R replicate values."""
        ...


@dataclass(frozen=True)
class Interval:
    """A percentile bootstrap interval."""

    low: float
    high: float
    level: float = DEFAULT_LEVEL
    resamples: int = DEFAULT_RESAMPLES
    unit: str = "image"

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def to_dict(self) -> dict[str, float | int | str]:
        return {"low": self.low, "high": self.high, "level": self.level, "resamples": self.resamples, "unit": self.unit}


def replicate_weights(n_units: int, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> np.ndarray:
    """``resamples x n_units`` multinomial counts (each row sums to ``n_units``): one bootstrap test set per row."""
    if n_units <= 0:
        raise ValueError("a bootstrap needs at least one unit (image, video or block)")
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=resamples).astype(np.int32)


def aligned_weights(units: Sequence[str], all_units: Sequence[str], weights: np.ndarray) -> np.ndarray:
    """The columns of ``weights`` (over ``all_units``) for a resampler's own ``units`` order: rows of one table share
    one weight matrix even if their evaluators list the units in different orders."""
    index = {u: i for i, u in enumerate(all_units)}
    missing = [u for u in units if u not in index]
    if missing:
        raise ValueError(f"units {missing[:3]} are not in the table's evaluation set")
    return weights[:, [index[u] for u in units]]


def percentile_interval(samples: np.ndarray, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """The ``level`` percentile interval of the finite replicate values (NaN, NaN when none is finite)."""
    finite = np.asarray(samples, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(low), float(high)


def pooled_values(
    resamplers: Sequence[Resampler], all_units: Sequence[str], weights: np.ndarray
) -> dict[str, np.ndarray]:
    """One row's replicate values pooled over its seeds: each seed's predictions resampled with the same image
    weights, then the mean over seeds (training variance and test-set variance in one interval)."""
    per_seed = [r.values(aligned_weights(r.units, all_units, weights)) for r in resamplers]
    keys = set.intersection(*(set(v) for v in per_seed)) if per_seed else set()
    return {k: np.mean([v[k] for v in per_seed], axis=0) for k in sorted(keys)}


def paired_effect(
    b: Mapping[str, np.ndarray], a: Mapping[str, np.ndarray], level: float = DEFAULT_LEVEL
) -> dict[str, tuple[float, float]]:
    """metric(B) - metric(A) on the same replicates: per metric key, its percentile interval."""
    return {k: percentile_interval(b[k] - a[k], level) for k in b if k in a}


def verdict(paper_effect: float | None, low: float, high: float) -> str:
    """``agrees``: the interval excludes 0 on the paper effect's side; ``opposes``: on the other side; ``within
    noise``: it contains 0; ``no paper effect``: the paper gives none (or none of 0)."""
    if paper_effect is None or paper_effect == 0 or not (np.isfinite(low) and np.isfinite(high)):
        return "no paper effect" if paper_effect is None or paper_effect == 0 else "within noise"
    if low > 0 or high < 0:
        return "agrees" if (low > 0) == (paper_effect > 0) else "opposes"
    return "within noise"


def bootstrap_summary(
    point: Mapping[str, float],
    resampler: Resampler,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = DEFAULT_LEVEL,
    undefined: float | None = None,
) -> dict[str, dict]:
    """Each metric's point value with its percentile interval over ``resamples`` replicates of the resampler's
    units: ``{key: {"value", "low", "high"}, ..., "bootstrap": {"resamples", "unit", "seed", "level"}}``.
    ``undefined``: a replicate value meaning "not defined" (pycocotools' -1), left out of the interval."""
    reps = resampler.values(replicate_weights(len(resampler.units), resamples, seed))
    out: dict[str, dict] = {}
    for key, value in point.items():
        if key not in reps:
            continue
        r = np.asarray(reps[key], dtype=np.float64)
        if undefined is not None:
            r = np.where(r == undefined, np.nan, r)
        low, high = percentile_interval(r, level)
        out[key] = {"value": value, "low": low, "high": high}
    out["bootstrap"] = {"resamples": resamples, "unit": resampler.unit, "seed": seed, "level": level}
    return out


def add_bootstrap_arguments(p: argparse.ArgumentParser) -> None:
    """``--bootstrap N``, ``--bootstrap-seed S``, ``--level`` on an ``argparse`` parser (the eval commands)."""
    p.add_argument(
        "--bootstrap", type=int, metavar="N", help="add a percentile interval from N bootstrap resamples of the images"
    )
    p.add_argument(
        "--bootstrap-seed", type=int, default=DEFAULT_SEED, metavar="S", help="seed of the resamples (default 0)"
    )
    p.add_argument("--level", type=float, default=DEFAULT_LEVEL, help="interval level (default 0.95)")


def format_interval(entry: Mapping[str, float]) -> str:
    """``0.7877  (78.77 %)  [0.7012, 0.8541]`` for the text output of the eval commands."""
    v, lo, hi = entry["value"], entry["low"], entry["high"]
    if v == -1 or not np.isfinite(v):
        return "n/a"
    span = "[n/a]" if not (np.isfinite(lo) and np.isfinite(hi)) else f"[{lo:.4f}, {hi:.4f}]"
    return f"{v:.4f}  ({100 * v:.2f} %)  {span}"


def check_bootstrap_arguments(args: argparse.Namespace) -> None:
    """``ValueError`` (exit 2 in the eval commands) for a non-positive ``--bootstrap`` or a level outside (0, 1)."""
    if args.bootstrap is not None and args.bootstrap < 1:
        raise ValueError(f"--bootstrap must be at least 1, got {args.bootstrap}")
    if not 0 < args.level < 1:
        raise ValueError(f"--level must be in (0, 1), got {args.level}")


def print_intervals(title: str, summary: Mapping[str, Mapping], names: Sequence[str]) -> None:
    """Text output: title, one line per metric with its interval, then the bootstrap settings."""
    b = summary["bootstrap"]
    print(title)
    for n in names:
        if n in summary:
            print(f"  {n:<9} {format_interval(summary[n])}")
    level, n, unit, seed = 100 * b["level"], b["resamples"], b["unit"], b["seed"]
    print(f"  ({level:g} % percentile intervals, {n} resamples of {unit}s, seed {seed})")


def load_resampler(path: str | Path) -> Resampler:
    """A resampler saved by an evaluator's ``save(path)`` (``.npz``), whichever metric wrote it."""
    with np.load(path, allow_pickle=False) as z:
        files = set(z.files)
    if "seq_tp" in files:
        from crowdbench.bench.metrics.crowdhuman import CrowdHumanImageResampler

        return CrowdHumanImageResampler.load(path)
    if "iou_type" in files:
        from crowdbench.bench.metrics.coco_keypoints import CocoImageResampler

        return CocoImageResampler.load(path)
    raise ValueError(f"{path}: not a saved bootstrap resampler")
