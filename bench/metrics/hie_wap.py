"""HIE2020 / HiEve pose "w-AP" (``w_AP@avg``, ``@50``, ``@75``): per-video OKS AP combined by a named weighting.

What is known (``shared/reference/metrics.md`` section 4): the challenge ranks pose estimation by w_AP @avg
(OKS .50:.95), @50 and @75, computed per test video and then combined (1st-place report, arXiv 2010.10008).
**The official weighting is unpublished** (no evaluation code or definition was found), and so are HIE OKS sigmas.
This module therefore makes both explicit:

* per-video AP: the COCO protocol of :mod:`crowdbench.bench.metrics.coco_keypoints` (pycocotools semantics, 10 OKS
  thresholds, ``maxDets=20``, ignore = ``iscrowd or num_keypoints == 0``) on the 14 HIE joints;
* sigmas: ``crowdbench.datasets.keypoints.HIE_14.sigmas``, a project choice (COCO's value per joint, ``chest`` =
  CrowdPose's ``neck`` .079), **not** official values; the unofficial ``Zepyhrus/hie`` evaluator uses other ones;
* OKS scale: the GT ``area`` field (``use_area=True``, COCO) or ``0.53 * w * h`` of the GT box (``use_area=False``,
  CrowdPose convention) for HIE boxes without a segmentation area;
* weighting (``weighting=``), a named plug-in:

  - ``"people"`` (default): weight = number of annotated people in the video, counted as non-ignored GT person
    instances summed over its frames (person-frames; a person seen in 100 frames counts 100 times);
  - ``"frames"``: weight = number of frames (GT images) of the video;
  - ``"uniform"``: every video weighs 1 (plain mean over videos).

  ``w_AP = sum_v w_v AP_v / sum_v w_v`` over videos whose AP is defined (a video without non-ignored GT has AP -1
  and is left out); -1 if no video qualifies.

Input: one COCO keypoint GT dict whose images carry a video key (``video_id``, or ``vid_id`` as in PoseTrack) and
one COCO results list; or, in memory, a mapping ``video -> (gt_dict, results_list)``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from crowdbench.bench.jsonout import dumps as strict_dumps
from crowdbench.bench.metrics.coco_keypoints import (
    GtSource,
    PredSource,
    _copy_gt,
    _copy_preds,
    _fmt,
    add_coco_parser,
    add_lenient_argument,
    pycocotools_sigmas,
    run_cocoeval,
    run_command,
    validated,
)
from crowdbench.datasets.formats.errors import FormatError
from crowdbench.datasets.keypoints import HIE_14

__all__ = [
    "WEIGHTINGS",
    "HieVideoAP",
    "HieWapResampler",
    "HieWapResult",
    "add_command",
    "evaluate_hie_wap",
    "evaluate_hie_wap_bootstrap",
    "split_by_video",
]

WEIGHTINGS = ("people", "frames", "uniform")
Weighting = Literal["people", "frames", "uniform"]


@dataclass(frozen=True)
class HieVideoAP:
    """One video: COCO-protocol AP@avg/@50/@75 (-1 without non-ignored GT) and its weight inputs."""

    video: str
    AP: float
    AP50: float
    AP75: float
    num_frames: int
    num_people: int
    num_predictions: int
    weight: float


@dataclass(frozen=True)
class HieWapResult:
    """``w_AP@avg``, ``w_AP@50``, ``w_AP@75`` (fractions) plus the per-video values they combine."""

    w_AP_avg: float
    w_AP_50: float
    w_AP_75: float
    weighting: str
    videos: tuple[HieVideoAP, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {
            "w_AP@avg": self.w_AP_avg,
            "w_AP@50": self.w_AP_50,
            "w_AP@75": self.w_AP_75,
            "weighting": self.weighting,
            "videos": [v.__dict__.copy() for v in self.videos],
        }


def _video_key(im: Mapping) -> Any:
    for key in ("video_id", "vid_id"):
        if key in im:
            return im[key]
    return None


def split_by_video(gt: Mapping[str, Any], preds: Sequence[Mapping], src: str = "<gt>") -> dict[str, tuple[dict, list]]:
    """Per-video ``(gt_dict, results)`` from one GT whose images carry ``video_id`` (or ``vid_id``)."""
    vid_of: dict[Any, str] = {}
    for i, im in enumerate(gt["images"]):
        v = _video_key(im)
        if v is None:
            raise FormatError(f"{src}: images[{i}]: no 'video_id' (or 'vid_id') to group frames by video")
        if type(v) not in (str, int) or v == "":
            raise FormatError(f"{src}: images[{i}]: 'video_id' must be a non-empty string or an integer, got {v!r}")
        vid_of[im["id"]] = str(v)
    out: dict[str, tuple[dict, list]] = {}
    for v in dict.fromkeys(vid_of.values()):
        out[v] = ({**gt, "images": [], "annotations": []}, [])
    for im in gt["images"]:
        out[vid_of[im["id"]]][0]["images"].append(im)
    for a in gt["annotations"]:
        out[vid_of[a["image_id"]]][0]["annotations"].append(a)
    for p in preds:
        out[vid_of[p["image_id"]]][1].append(p)
    return out


def _weight(weighting: str, frames: int, people: int) -> float:
    return {"people": float(people), "frames": float(frames), "uniform": 1.0}[weighting]


def evaluate_hie_wap(
    gt: GtSource | Mapping[str, tuple[Mapping, Sequence]],
    preds: PredSource | None = None,
    *,
    weighting: Weighting = "people",
    sigmas: Sequence[float] | None = None,
    use_area: bool = True,
    allow_duplicate_ids: bool = False,
    lenient: bool = False,
) -> HieWapResult:
    """HIE w-AP under a named ``weighting`` (module docstring; the official weighting is unpublished).

    Either ``gt`` (dict or path, images with ``video_id``) and ``preds`` (list or path), or ``gt`` a mapping
    ``video -> (gt_dict, results)`` and ``preds=None``. ``sigmas`` default to ``HIE_14.sigmas``.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {weighting!r}; known: {', '.join(WEIGHTINGS)}")
    sig = pycocotools_sigmas(HIE_14.sigmas if sigmas is None else sigmas)
    k = len(sig)
    if preds is None:
        if not isinstance(gt, Mapping) or "images" in gt:
            raise ValueError("preds=None needs gt as a mapping video -> (gt_dict, results)")
        videos = {str(v): (g, list(p)) for v, (g, p) in gt.items()}
        for v, (g, p) in videos.items():
            validated(
                g,
                p,
                kind="keypoints",
                num_keypoints=k,
                need_area=use_area,
                lenient=lenient,
                allow_duplicate_ids=allow_duplicate_ids,
                gt_name=f"<gt video {v}>",
                pred_name=f"<predictions video {v}>",
            )
    else:
        g_all, p_all = validated(
            gt, preds, kind="keypoints", num_keypoints=k, need_area=use_area, lenient=lenient,
            allow_duplicate_ids=allow_duplicate_ids,
        )  # fmt: skip
        videos = split_by_video(g_all.data, p_all.records, g_all.source)
    per: list[HieVideoAP] = []
    for v, (g, p) in videos.items():
        ev = run_cocoeval(_copy_gt(g, False), _copy_preds(p), "keypoints", sigmas=sig, use_area=use_area)
        ap, ap50, ap75 = (float(x) for x in np.asarray(ev.stats, dtype=np.float64)[:3])
        people = sum(1 for a in g["annotations"] if not a.get("iscrowd", 0) and a["num_keypoints"] > 0)
        frames = len(g["images"])
        per.append(HieVideoAP(v, ap, ap50, ap75, frames, people, len(p), _weight(weighting, frames, people)))
    wapp = []
    for attr in ("AP", "AP50", "AP75"):
        pairs = [(r.weight, getattr(r, attr)) for r in per if getattr(r, attr) >= 0 and r.weight > 0]
        total = sum(w for w, _ in pairs)
        wapp.append(sum(w * a for w, a in pairs) / total if total > 0 else -1.0)
    return HieWapResult(*wapp, weighting=weighting, videos=tuple(per))


def _cmd(args: argparse.Namespace) -> int:
    # deferred: import cycle (bench.metrics.cli imports this module)
    from crowdbench.bench.metrics.cli import bootstrap_summary, check_bootstrap_arguments, print_intervals

    def go() -> None:
        summary: dict = {}
        if args.bootstrap is not None:
            check_bootstrap_arguments(args)
        res = evaluate_hie_wap(
            args.gt, args.pred, weighting=args.weighting, use_area=not args.bbox_area, lenient=args.lenient
        )
        if args.bootstrap is not None:
            point = dict(zip(HieWapResampler.keys, (res.w_AP_avg, res.w_AP_50, res.w_AP_75), strict=True))
            summary = bootstrap_summary(HieWapResampler.from_result(res), point, args)
        if args.json:
            print(strict_dumps({**res.to_dict(), **summary}))
            return
        print(f"HIE w-AP ({args.gt.name} vs {args.pred.name}): {len(res.videos)} videos, weighting={res.weighting}")
        print("  (the official HIE weighting and sigmas are unpublished; see crowdbench.bench.metrics.hie_wap)")
        for name, v in (("w_AP@avg", res.w_AP_avg), ("w_AP@50", res.w_AP_50), ("w_AP@75", res.w_AP_75)):
            print(f"  {name:<9} {_fmt(v)}")
        for r in res.videos:
            print(f"    video {r.video}: AP {_fmt(r.AP)}  frames {r.num_frames}  people {r.num_people}")
        if summary:
            print_intervals(summary)

    return run_command(go, args)


def add_command(eval_subparsers: argparse._SubParsersAction) -> None:
    """Register ``crowdbench eval hie-wap``."""
    p = add_coco_parser(
        eval_subparsers,
        "hie-wap",
        help="HIE2020 pose w-AP (per-video COCO OKS AP, named weighting; official weighting unpublished)",
        description="HIE w_AP@avg/@50/@75 from per-video OKS AP; GT images need 'video_id'.",
    )
    p.add_argument("--weighting", choices=WEIGHTINGS, default="people", help="how videos are weighted (default people)")
    p.add_argument("--bbox-area", action="store_true", help="OKS scale 0.53*w*h of the GT box instead of 'area'")
    add_lenient_argument(p)
    # deferred: import cycle (bench.metrics.cli imports this module)
    from crowdbench.bench.metrics.cli import add_bootstrap_arguments

    add_bootstrap_arguments(p)
    p.set_defaults(func=_cmd)


# ------------------------------------------------------------------------------------------------------- bootstrap
class HieWapResampler:
    """Videos as bootstrap units of HIE w-AP (:class:`crowdbench.bench.metrics.bootstrap.Resampler`).

    A video's AP is fixed (its images are not resampled); a replicate re-weights the per-video AP contributions:
    ``w_AP = sum_v c_v w_v AP_v / sum_v c_v w_v`` with ``c_v`` the video's multiplicity and ``w_v`` its declared
    weight (``weighting``), over videos with a defined AP. With all ``c_v = 1`` it equals the point estimate bit
    for bit (same summation order).
    """

    kind = "HieWapResampler"
    keys = ("w_AP@avg", "w_AP@50", "w_AP@75")

    def __init__(self, unit: str, units: Sequence[str], arrays: Mapping[str, np.ndarray]) -> None:
        self.unit, self.units = unit, list(units)
        self.arrays = {k: np.asarray(v) for k, v in arrays.items()}  # ap: videos x 3, weight: videos

    @classmethod
    def from_result(cls, result: HieWapResult) -> HieWapResampler:
        """The resampler of an :func:`evaluate_hie_wap` result (no re-evaluation)."""
        ap = np.array([[v.AP, v.AP50, v.AP75] for v in result.videos], dtype=np.float64).reshape(-1, 3)
        weight = np.array([v.weight for v in result.videos], dtype=np.float64)
        return cls("video", [v.video for v in result.videos], {"ap": ap, "weight": weight})

    def values(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """``weights`` (R x videos) -> ``w_AP@avg`` / ``@50`` / ``@75`` per replicate (-1 where no video counts)."""
        # deferred: import cycle (bench.metrics.bootstrap imports this module)
        from crowdbench.bench.metrics.bootstrap import batched_values

        return batched_values(weights, len(self.units), self._batch, batch=4096)

    def _batch(self, c: np.ndarray) -> dict[str, np.ndarray]:
        ap, weight = self.arrays["ap"], self.arrays["weight"]
        out = {}
        for col, key in enumerate(self.keys):
            num = den = 0
            for v in range(len(self.units)):
                if ap[v, col] >= 0 and weight[v] > 0:  # as evaluate_hie_wap: sum(w * a) / sum(w)
                    w = c[:, v] * weight[v]
                    num, den = num + w * ap[v, col], den + w
            num, den = np.broadcast_to(num, (len(c),)), np.broadcast_to(den, (len(c),))
            with np.errstate(divide="ignore", invalid="ignore"):
                out[key] = np.where(den > 0, num / np.where(den > 0, den, 1.0), -1.0)
        return out

    def save(self, path: str | Path) -> None:
        """Write the per-video APs and weights to one ``.npz``."""
        # deferred: import cycle (bench.metrics.bootstrap imports this module)
        from crowdbench.bench.metrics.bootstrap import save_npz

        save_npz(path, self.kind, self.unit, self.units, self.arrays)

    @classmethod
    def load(cls, path: str | Path) -> HieWapResampler:
        """Read a :meth:`save` file."""
        # deferred: import cycle (bench.metrics.bootstrap imports this module)
        from crowdbench.bench.metrics.bootstrap import load_npz

        return cls(*load_npz(path, cls.kind))


def evaluate_hie_wap_bootstrap(*args: Any, **kwargs: Any) -> tuple[HieWapResult, HieWapResampler]:
    """:func:`evaluate_hie_wap` (same arguments) and its :class:`HieWapResampler` (videos as units)."""
    res = evaluate_hie_wap(*args, **kwargs)
    return res, HieWapResampler.from_result(res)
