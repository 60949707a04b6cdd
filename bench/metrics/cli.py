"""``crowdbench eval <metric>`` subcommands."""

from __future__ import annotations

import argparse
import importlib
import math
from pathlib import Path
from typing import TYPE_CHECKING

from crowdbench.bench.errors import fail, need_file
from crowdbench.bench.jsonout import dumps as strict_dumps
from crowdbench.bench.metrics import bootstrap
from crowdbench.bench.metrics.bootstrap import (
    DEFAULT_LEVEL,
    DEFAULT_SEED,
    centred_interval,
    percentile_interval,
    replicate_weights,
)
from crowdbench.datasets.formats.crowdhuman import read_detections, read_id_hw, read_odgt, record_id
from crowdbench.datasets.formats.errors import FormatError

if TYPE_CHECKING:
    from crowdbench.bench.metrics.bootstrap import Resampler

__all__ = ["add_eval_commands", "cmd_eval_crowdhuman"]


# Metric modules that register their own ``crowdbench eval <metric>`` command through ``add_command``.
METRIC_MODULES = (
    "crowdbench.bench.metrics.coco_keypoints",
    "crowdbench.bench.metrics.crowdpose",
    "crowdbench.bench.metrics.hie_wap",
    "crowdbench.bench.metrics.posetrack",
    "crowdbench.bench.metrics.mot",
)


def add_eval_commands(eval_subparsers: argparse._SubParsersAction) -> None:
    """Register every metric subcommand on the ``crowdbench eval`` subparsers."""
    p = eval_subparsers.add_parser(
        "crowdhuman",
        help="CrowdHuman AP / mMR / JI (CrowdDet protocol, full-body boxes)",
        description="CrowdHuman full-body AP, mMR and JI exactly as CrowdDet's evaluation code computes them.",
    )
    p.add_argument("--gt", type=Path, required=True, metavar="FILE.odgt", help="ground truth, CrowdHuman .odgt")
    p.add_argument(
        "--pred",
        type=Path,
        required=True,
        metavar="FILE.json",
        help="detections: CrowdDet JSON lines (ID, height, width, dtboxes) or a COCO results list",
    )
    p.add_argument("--id-hw", type=Path, metavar="FILE", help="image sizes {ID: [height, width]} (mmdet format)")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument(
        "--lenient",
        action="store_true",
        help="score what CrowdDet's evaluation code accepts instead of refusing it: boxes (GT fbox/vbox/hbox, "
        "detection box) with negative width or height (CrowdDet: they intersect nothing, so such a GT box is a miss, "
        "such a detection a false positive, such an ignore region absorbs nothing) or beyond 1e6 px (used as given), "
        "and extra.ignore / head_attr.ignore values other than 0/1 (non-zero = ignore). Without it those are errors. "
        "NaN/inf, wrong types, missing keys, duplicate or unknown IDs and an empty detections file stay errors",
    )
    bootstrap.add_bootstrap_arguments(p)  # CrowdHuman's image bootstrap, not this module's per-metric options
    p.set_defaults(func=cmd_eval_crowdhuman)
    for name in METRIC_MODULES:
        importlib.import_module(name).add_command(eval_subparsers)


def _pct(v: float) -> str:
    return "n/a" if math.isnan(v) else f"{v:.4f}  ({100 * v:.2f} %)"


def cmd_eval_crowdhuman(args: argparse.Namespace) -> int:
    # deferred: start-up (scipy)
    from crowdbench.bench.metrics.crowdhuman import evaluate_crowdhuman

    try:
        bootstrap.check_bootstrap_arguments(args)
        for path in (args.gt, args.pred, args.id_hw):
            if path is not None:
                need_file(path)
        id_hw = read_id_hw(args.id_hw) if args.id_hw is not None else None
        gt = read_odgt(args.gt, id_hw=id_hw, lenient=args.lenient)
        dets = read_detections(args.pred, lenient=args.lenient, gt_ids={record_id(f) for f in gt})
        if args.bootstrap:
            result, resampler = evaluate_crowdhuman(gt, dets, return_resampler=True, lenient=args.lenient)
        else:
            result = evaluate_crowdhuman(gt, dets, lenient=args.lenient)
    except (FormatError, OSError, ValueError, RecursionError, MemoryError) as exc:
        return fail(exc)
    if args.bootstrap:
        point = {"AP": result.AP, "mMR": result.mMR, "JI": result.JI}
        summary = bootstrap.bootstrap_summary(point, resampler, args.bootstrap, args.bootstrap_seed, args.level)
        if args.json:
            print(strict_dumps(result.to_dict() | summary, _crowdhuman_reasons(result)))
        else:
            bootstrap.print_intervals(
                f"CrowdHuman ({args.gt.name} vs {args.pred.name}): {result.num_images} images (mMR: lower is better)",
                summary,
                ("AP", "mMR", "JI"),
            )
        return 0
    if args.json:
        print(strict_dumps(result.to_dict(), _crowdhuman_reasons(result)))
        return 0
    print(
        f"CrowdHuman ({args.gt.name} vs {args.pred.name}): {result.num_images} images, {result.num_gt} GT "
        f"(+{result.num_ignore} ignore), {result.num_det} detections"
    )
    print(f"  {'AP':<4} {_pct(result.AP)}")
    print(f"  {'mMR':<4} {_pct(result.mMR)}   (lower is better)")
    print(f"  {'JI':<4} {_pct(result.JI)}")
    return 0


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


def _crowdhuman_reasons(result: object) -> dict[str, str]:
    """Why CrowdHuman's AP / mMR / JI can be undefined (the JSON says so beside the ``null``)."""
    if getattr(result, "num_det", 1) == 0:
        return dict.fromkeys(("AP", "mMR", "JI"), "no detections")
    if getattr(result, "num_gt", 1) == 0:
        return dict.fromkeys(("AP", "mMR", "JI"), "no ground-truth boxes")
    return {}
