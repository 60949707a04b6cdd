"""CrowdPose keypoint AP/AR and AP(easy/medium/hard) with the official CrowdPose API semantics.

References (``shared/reference/metrics.md`` section 2): the official evaluator
``Jeff-sjtu/CrowdPose: crowdpose-api/PythonAPI/crowdposetools/cocoeval.py`` and ``jin-s13/xtcocoapi`` (what MMPose
uses). Backend: ``faster_coco_eval`` ``iouType="keypoints_crowd"``, ``use_area=False``, verified identical to the
official API (metrics.md 2.5). Protocol:

* 14 joints, sigmas ``[.79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89, .79, .79] / 10``;
* OKS scale ``0.53 * w * h`` of the GT box (CrowdPose GT has no ``area``); ignore = ``iscrowd or num_keypoints == 0``
  (the file's ``num_keypoints`` field, which counts the 12 limb joints only); ``maxDets = 20``;
* easy / medium / hard from each image's ``crowdIndex`` in the GT: ``< 0.2``, ``[0.2, 0.8)``, ``>= 0.8`` (the
  thresholds the official ``summarize`` passes); each split is re-evaluated and reported as
  ``round(mean(precision[..., area=all, :]), 4)`` including -1 entries; an empty split gives -1.

``drop_zero_score_predictions=True`` reproduces xtcocotools / MMPose, which drop predictions whose keypoint scores
(every third value) are all ``<= 0`` before evaluating (metrics.md 2.4); the official API keeps them (default).
xtcocotools also fixes the GT-id-0 bug (metrics.md 1.6); use ``renumber_zero_id=True`` for that part.
Scores, duplicate ids and input checks follow :mod:`crowdbench.bench.metrics.coco_keypoints`.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from crowdbench.bench.metrics.bootstrap import add_bootstrap_arguments
from crowdbench.bench.metrics.coco_keypoints import (
    CocoImageResampler,
    GtSource,
    PredSource,
    StatsResult,
    _copy_gt,
    _copy_preds,
    _counts,
    add_coco_parser,
    add_id_options,
    pycocotools_sigmas,
    run_cocoeval,
    run_command,
    score_and_print,
    validated,
)
from crowdbench.datasets.formats.coco_checks import renumbered
from crowdbench.datasets.keypoints import CROWDPOSE_14

__all__ = ["CROWDPOSE_STAT_NAMES", "CrowdPoseResult", "add_command", "drop_zero_score", "evaluate_crowdpose"]

CROWDPOSE_STAT_NAMES = ("AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP_easy", "AP_medium", "AP_hard")


@dataclass(frozen=True)
class CrowdPoseResult(StatsResult):
    """Official CrowdPose stats as fractions (easy/medium/hard rounded to 4 decimals as the API does; -1 = empty)."""

    AP: float
    AP50: float
    AP75: float
    AR: float
    AR50: float
    AR75: float
    AP_easy: float
    AP_medium: float
    AP_hard: float
    num_images: int = 0
    num_gt: int = 0
    num_ignored_gt: int = 0
    num_predictions: int = 0
    num_dropped_predictions: int = 0

    STAT_NAMES: ClassVar = CROWDPOSE_STAT_NAMES  # xtcocotools / faster-coco-eval order


def drop_zero_score(preds: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Predictions with at least one keypoint score ``> 0`` (xtcocotools' filter, metrics.md 2.4)."""
    return [p for p in preds if any(s > 0 for s in list(p["keypoints"])[2::3])]


def evaluate_crowdpose(
    gt: GtSource,
    preds: PredSource,
    *,
    drop_zero_score_predictions: bool = False,
    renumber_zero_id: bool = False,
    allow_duplicate_ids: bool = False,
    return_resampler: bool = False,
    lenient: bool = False,
) -> Any:
    """CrowdPose AP/AR + AP(easy/medium/hard) as the official API computes them (module docstring).

    ``gt``: CrowdPose GT dict or JSON path (every image needs ``crowdIndex``); ``preds``: COCO results list or path.
    ``return_resampler=True``: ``(result, CocoImageResampler)`` (AP easy / medium / hard resampled on their images).
    """
    g, p = validated(
        gt,
        preds,
        kind="keypoints",
        num_keypoints=CROWDPOSE_14.num_keypoints,
        need_area=False,
        lenient=lenient,
        allow_duplicate_ids=allow_duplicate_ids,
        image_keys=("crowdIndex",),
    )
    kept = drop_zero_score(p.records) if drop_zero_score_predictions else list(p.records)
    zero = renumber_zero_id and g.has_zero_id
    gd = _copy_gt(renumbered(g) if g.renumber and not zero else g.data, zero)
    for im in gd["images"]:
        im["crowdIndex"] = float(im["crowdIndex"])
    ev = run_cocoeval(
        gd,
        _copy_preds(kept),
        "keypoints_crowd",
        sigmas=pycocotools_sigmas(CROWDPOSE_14.sigmas),
        use_area=False,
        keep_states=return_resampler,
    )
    stats = [float(v) for v in np.asarray(ev.all_stats, dtype=np.float64)[:9]]
    res = CrowdPoseResult(
        *stats, **_counts(g.data, p.records, "keypoints"), num_dropped_predictions=len(p.records) - len(kept)
    )
    if not return_resampler:
        return res
    crowd = {im["id"]: im["crowdIndex"] for im in gd["images"]}
    index = np.array([crowd[i] for i in ev._boot_params.imgIds], dtype=np.float64)
    splits = {"easy": index < 0.2, "medium": (index >= 0.2) & (index < 0.8), "hard": index >= 0.8}
    return res, CocoImageResampler.from_eval(ev, crowd_splits=splits)


def _cmd(args: argparse.Namespace) -> int:
    def go() -> None:
        kw = {
            "drop_zero_score_predictions": args.drop_zero_score_predictions,
            "renumber_zero_id": args.renumber_zero_id,
            "allow_duplicate_ids": args.allow_duplicate_ids,
            "lenient": args.lenient,
        }
        title = f"CrowdPose ({args.gt.name} vs {args.pred.name})"
        dropped = args.drop_zero_score_predictions

        def extra(res: CrowdPoseResult) -> str:
            return f" ({res.num_dropped_predictions} dropped)" if dropped else ""

        score_and_print(args, evaluate_crowdpose, kw, CROWDPOSE_STAT_NAMES, title, "ignored", "predictions", extra)

    return run_command(go, args)


def add_command(eval_subparsers: argparse._SubParsersAction) -> None:
    """Register ``crowdbench eval crowdpose``."""
    p = add_coco_parser(
        eval_subparsers,
        "crowdpose",
        help="CrowdPose AP/AR + easy/medium/hard (official CrowdPose API protocol)",
        description="CrowdPose keypoint AP as the official crowdposetools evaluator computes it.",
    )
    p.add_argument(
        "--drop-zero-score-predictions",
        action="store_true",
        help="drop predictions whose keypoint scores are all <= 0 (xtcocotools / MMPose behaviour)",
    )
    add_id_options(p)
    add_bootstrap_arguments(p)
    p.set_defaults(func=_cmd)
