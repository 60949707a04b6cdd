"""``crowdbench eval <metric>`` subcommands (one per registered metric) and the helpers they share."""

from __future__ import annotations

import argparse
import importlib
import math
from typing import TYPE_CHECKING

from crowdbench.bench.metrics.bootstrap import (
    DEFAULT_LEVEL,
    DEFAULT_SEED,
    centred_interval,
    percentile_interval,
    replicate_weights,
)
from crowdbench.bench.metrics.registry import METRICS

if TYPE_CHECKING:
    from crowdbench.bench.metrics.bootstrap import Resampler

__all__ = ["add_eval_commands"]


def add_eval_commands(eval_subparsers: argparse._SubParsersAction) -> None:
    """Register the ``crowdbench eval`` subcommand of every registered metric (``bench/metrics/registry.py``): each
    metric's module reads its files with the readers of ``datasets/formats/`` and calls the metric's evaluator."""
    for module in dict.fromkeys(m.command for m in METRICS):
        importlib.import_module(module).add_command(eval_subparsers)


def pct(v: float) -> str:
    """A fraction as ``0.1234  (12.34 %)``, ``n/a`` for NaN."""
    return "n/a" if math.isnan(v) else f"{v:.4f}  ({100 * v:.2f} %)"


def add_bootstrap_arguments(p: argparse.ArgumentParser, *, block_frames: bool = False) -> None:
    """``--bootstrap N``, ``--bootstrap-seed``, ``--level`` (and ``--block-frames`` for MOT) on an eval command."""
    p.add_argument("--bootstrap", type=int, metavar="N", help="N bootstrap resamples: print each metric's interval")
    p.add_argument("--bootstrap-seed", type=int, default=DEFAULT_SEED, metavar="S", help="seed of the resamples")
    p.add_argument("--level", type=float, default=DEFAULT_LEVEL, help="interval level (default 0.95)")
    if block_frames:
        p.add_argument(
            "--block-frames",
            type=int,
            default=50,
            metavar="L",
            help="bootstrap units: blocks of L contiguous frames within sequences (0: whole sequences; default 50)",
        )


def check_bootstrap_arguments(args: argparse.Namespace) -> None:
    """ValueError on a bad ``--bootstrap`` / ``--level``."""
    if args.bootstrap is not None and args.bootstrap < 1:
        raise ValueError(f"--bootstrap must be >= 1, got {args.bootstrap}")
    if not 0 < args.level < 1:
        raise ValueError(f"--level must be in (0, 1), got {args.level}")


def bootstrap_summary(resampler: Resampler, point: dict[str, float], args: argparse.Namespace) -> dict:
    """``{metric: {"value", "low", "high"}, ..., "bootstrap": {"resamples", "unit", "seed", "level"}}``."""
    w = replicate_weights(len(resampler.units), args.bootstrap, args.bootstrap_seed)
    vals = resampler.values(w)
    centre = set(getattr(resampler, "centre", ()))
    out: dict = {}
    for k, v in point.items():
        lo, hi = centred_interval(vals[k], v, args.level) if k in centre else percentile_interval(vals[k], args.level)
        out[k] = {"value": v, "low": lo, "high": hi}
    out["bootstrap"] = {"resamples": args.bootstrap, "unit": resampler.unit, "seed": args.bootstrap_seed}
    out["bootstrap"]["level"] = args.level
    if centre & set(point):
        out["bootstrap"]["centred"] = sorted(centre & set(point))
    return out


def print_intervals(summary: dict, scale: float = 1.0) -> None:
    """The text form of :func:`bootstrap_summary` (values times ``scale``)."""
    b = summary["bootstrap"]
    print(
        f"  bootstrap: {b['resamples']} resamples, unit {b['unit']}, seed {b['seed']}, {100 * b['level']:g} % intervals"
    )
    for k, v in summary.items():
        if k != "bootstrap":
            mark = "  (centred)" if k in b.get("centred", ()) else ""
            print(f"    {k:<10} {scale * v['value']:.4f}  [{scale * v['low']:.4f}, {scale * v['high']:.4f}]{mark}")
