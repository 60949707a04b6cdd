"""The metrics a cell can be evaluated with, one :class:`Metric` per ``evaluate.metric`` value and prediction kind.

A :class:`Metric` names the keys it produces, the tasks and prediction kind it scores (``boxes``: one
:class:`~crowdbench.datasets.formats.crowdhuman.DetectionRecord` per frame; ``poses``: COCO keypoint results;
``tracks``: per frame ``M x 5`` ``[x1, y1, x2, y2, id]`` rows; ``pose_tracks``: one
:class:`~crowdbench.bench.metrics.pose_tracks.FramePoses` per frame), its ``evaluate`` over in-memory ground-truth
frames and predictions (with the bootstrap resampler over its ``unit`` when asked) and the module whose
``add_command`` registers its ``crowdbench eval`` subcommand (which reads the files with the readers of
``datasets/formats/`` and calls the same evaluator). ``posetrack`` is registered twice: pose cells score poses frame
by frame (AP only), pose-tracking cells score pose tracks (AP, MOTA, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from crowdbench.bench.metrics.bootstrap import Merged, Renamed
from crowdbench.bench.metrics.coco_keypoints import (
    BOX_STAT_NAMES,
    KEYPOINT_STAT_NAMES,
    evaluate_coco_box,
    evaluate_coco_keypoints,
    evaluate_coco_vis_invis,
)
from crowdbench.bench.metrics.crowdpose import CROWDPOSE_STAT_NAMES, evaluate_crowdpose
from crowdbench.bench.metrics.hie_wap import HieWapResampler, evaluate_hie_wap
from crowdbench.bench.metrics.pose_tracks import METRIC_KEYS as POSE_TRACK_KEYS
from crowdbench.bench.metrics.pose_tracks import (
    FramePoses,
    evaluate_pose_tracks,
    evaluate_pose_tracks_bootstrap,
    indices_by_frame,
)
from crowdbench.datasets.formats.coco import CocoFrames, to_coco_keypoints
from crowdbench.datasets.keypoints import COCO_17
from crowdbench.datasets.model import Frame, KeypointSchema

Scores = Literal["boxes", "poses", "tracks", "pose_tracks"]
HIE_WAP_WEIGHTING = "people"
"""The w-AP weighting of pose cells: ``hie_wap``'s default (annotated person-frames per video; the official one is
unpublished)."""


@dataclass(frozen=True)
class Evaluation:
    """A metric's values under its keys, its bootstrap resampler (keys renamed to those values; None when not asked
    or not available) and curves for the report (CrowdHuman: ``pr``, ``mr_fppi``)."""

    values: dict[str, float]
    resampler: Any = None
    curves: dict[str, list[dict[str, float]]] = field(default_factory=dict)


Evaluate = Callable[..., Evaluation]
"""``evaluate(frames, predictions, *, schema, bootstrap, **options) -> Evaluation``."""


@dataclass(frozen=True)
class Metric:
    """One ``evaluate.metric`` value for one prediction kind (module docstring)."""

    name: str
    keys: tuple[str, ...]
    scores: Scores
    tasks: tuple[str, ...]
    unit: str | None  # bootstrap unit (bench/metrics/bootstrap.py); None: no resampler
    evaluate: Evaluate
    command: str  # module whose add_command registers `crowdbench eval <metric>`


def _values(result: Mapping[str, Any], keys: Sequence[str]) -> dict[str, float]:
    return {k: float(result[k]) for k in keys}


def _crowdhuman(
    frames: list[Frame], dets: list[Any], *, schema: KeypointSchema | None = None, bootstrap: bool = False
) -> Evaluation:
    """CrowdDet's AP / mMR / JI; curves: precision-recall and miss rate-FPPI as lists of points."""
    # deferred: start-up (scipy)
    from crowdbench.bench.metrics.crowdhuman import evaluate_crowdhuman

    res = evaluate_crowdhuman(frames, dets, return_resampler=bootstrap)
    res, rs = res if bootstrap else (res, None)
    result = res.to_dict()
    curves = {}
    if result["curve"]:
        c = result["curve"]
        curves["pr"] = [{"recall": r, "precision": p} for r, p in zip(c["recall"], c["precision"], strict=True)]
        curves["mr_fppi"] = [{"fppi": f, "miss": m} for f, m in zip(c["fppi"], c["miss"], strict=True)]
    keys = CROWDHUMAN_KEYS
    return Evaluation(_values(result, keys), _renamed(rs, keys), curves)


def _coco_box(
    frames: list[Frame], dets: list[Any], *, schema: KeypointSchema | None = None, bootstrap: bool = False
) -> Evaluation:
    """pycocotools box AP/AR of the detections (image ids 1.. in frame order)."""
    coco = [
        {"image_id": i, "category_id": 1, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(s)}
        for i, d in enumerate(dets, start=1)
        for (x1, y1, x2, y2), s in zip(d.boxes.tolist(), d.scores.tolist(), strict=True)
    ]
    res = evaluate_coco_box(to_coco_keypoints(frames, COCO_17), coco, return_resampler=bootstrap)
    res, rs = res if bootstrap else (res, None)
    return Evaluation(_values(res.to_dict(), COCO_BOX_KEYS), _renamed(rs, COCO_BOX_KEYS))


def _coco_keypoints(
    frames: list[Frame], results: list[dict], *, schema: KeypointSchema, bootstrap: bool = False
) -> Evaluation:
    """COCO OKS AP/AR (the schema's sigmas unless COCO-17) + AP-vis / AP-invis (paper 001)."""
    gt = to_coco_keypoints(frames, schema)
    sigmas = None if schema.name == "coco17" else schema.sigmas
    res = evaluate_coco_keypoints(gt, results, sigmas=sigmas, return_resampler=bootstrap)
    split = evaluate_coco_vis_invis(gt, results, sigmas=sigmas, return_resampler=bootstrap)
    if not bootstrap:
        return Evaluation(_values(res.to_dict() | split.to_dict(), COCO_KEYPOINT_KEYS), None)
    (res, rs), (split, (rs_vis, rs_invis)) = res, split
    merged = Merged(
        Renamed(rs, {k: k for k in KEYPOINT_STAT_NAMES}),
        Renamed(rs_vis, {"AP": "AP_vis"}),
        Renamed(rs_invis, {"AP": "AP_invis"}),
    )
    return Evaluation(_values(res.to_dict() | split.to_dict(), COCO_KEYPOINT_KEYS), merged)


def _crowdpose(
    frames: list[Frame], results: list[dict], *, schema: KeypointSchema, bootstrap: bool = False
) -> Evaluation:
    """CrowdPose AP/AR + easy / medium / hard (the frames' crowd index where the images carry none)."""
    # deferred: start-up (cv2)
    from crowdbench.datasets.synthetic import crowd_index

    gt = to_coco_keypoints(frames, schema)
    for image, frame in zip(gt["images"], frames, strict=True):
        image.setdefault("crowdIndex", round(crowd_index(frame), 4))
    res = evaluate_crowdpose(gt, results, return_resampler=bootstrap)
    res, rs = res if bootstrap else (res, None)
    return Evaluation(_values(res.to_dict(), CROWDPOSE_KEYS), _renamed(rs, CROWDPOSE_KEYS))


def _hie_wap(
    frames: list[Frame], results: list[dict], *, schema: KeypointSchema, bootstrap: bool = False
) -> Evaluation:
    """HIE w-AP: per-video OKS AP (videos = ``vid_id`` of ``to_coco_keypoints``, ``schema.sigmas``: HIE-14 ones are a
    project choice) weighted by :data:`HIE_WAP_WEIGHTING`; fractions, -1 without any annotated person."""
    gt = to_coco_keypoints(frames, schema)
    res = evaluate_hie_wap(gt, results, weighting=HIE_WAP_WEIGHTING, sigmas=schema.sigmas)
    values = {"wAP": res.w_AP_avg, "wAP50": res.w_AP_50, "wAP75": res.w_AP_75}
    names = {"w_AP@avg": "wAP", "w_AP@50": "wAP50", "w_AP@75": "wAP75"}
    rs = Renamed(HieWapResampler.from_result(res), names) if bootstrap else None
    return Evaluation(_values(values, HIE_WAP_KEYS), rs)


def _posetrack_frames(
    frames: list[Frame], results: list[dict], *, schema: KeypointSchema, bootstrap: bool = False
) -> Evaluation:
    """poseval's total AP (PCKh 0.5, a fraction) of COCO keypoint results, frame by frame (no track ids needed;
    image ids as ``to_coco_keypoints`` numbers them: a read file's own, else 1.. in order). No resampler."""
    ids = frames.image_ids if isinstance(frames, CocoFrames) else range(1, len(frames) + 1)
    frame_of = {image_id: f for f, image_id in enumerate(ids)}
    by_frame = indices_by_frame([frame_of[r["image_id"]] for r in results], len(frames))
    k = schema.num_keypoints
    poses = []
    for idx in by_frame:
        rs = [results[n] for n in idx]
        poses.append(
            FramePoses(
                np.array([r["keypoints"] for r in rs], dtype=np.float64).reshape(-1, k, 3),
                np.array([r["score"] for r in rs], dtype=np.float64),
                np.arange(len(rs), dtype=np.int64),  # poseval wants ids unique per frame, even for AP
                np.zeros((len(rs), 4)),
            )
        )
    return Evaluation({"AP": evaluate_pose_tracks(frames, poses, schema, tracking=False)["AP"]})


def _posetrack_tracks(
    frames: list[Frame], poses: list[FramePoses], *, schema: KeypointSchema, bootstrap: bool = False, **options: Any
) -> Evaluation:
    """poseval's AP / MOTA / MOTP / precision / recall of pose tracks; ``options``: those of
    :func:`~crowdbench.bench.metrics.pose_tracks.evaluate_pose_tracks` (``kp_thr``, ``out_dir``, poseval's quirks)."""
    if not bootstrap:
        return Evaluation(evaluate_pose_tracks(frames, poses, schema, **options))
    values, rs = evaluate_pose_tracks_bootstrap(frames, poses, schema, **options)
    return Evaluation(values, _renamed(rs, values))


def _mot(
    frames: list[Frame],
    tracks: list[np.ndarray],
    *,
    schema: KeypointSchema | None = None,
    bootstrap: bool = False,
    block_frames: int | None = 50,
) -> Evaluation:
    """CLEAR MOT + identity + HOTA (TrackEval semantics) of each video, combined. Ground truth: the frames' people
    that are not ignored; predictions: rows ``[x1, y1, x2, y2, id, ...]`` (distractors already removed). The
    resampler (``block_frames`` frames per unit, None: whole videos) keeps all of ``MotResampler``'s keys."""
    # deferred: start-up (scipy)
    from crowdbench.bench.metrics.mot import evaluate_mot, evaluate_mot_bootstrap, sequence_from_frames

    sequences = []
    for video in videos_of(frames):
        gt, pred = [], []
        for i in video:
            people = [p for p in frames[i].instances if not p.ignore]
            gt.append((np.array([p.track_id for p in people]), _xywh(np.array([p.box for p in people]))))
            pred.append((tracks[i][:, 4].astype(np.int64), _xywh(tracks[i][:, :4])))
        sequences.append(sequence_from_frames(frames[video[0]].video, gt, pred, len(video)))
    rs = None
    if bootstrap:
        result, rs = evaluate_mot_bootstrap(sequences, block_frames=block_frames)
        m = result.combined
    else:
        m = evaluate_mot(sequences).combined
    values = {
        "MOTA": m.MOTA,
        "MOTP": m.MOTP,
        "FP": float(m.FP),
        "FN": float(m.FN),
        "IDSw": float(m.IDSW),
        "IDF1": m.IDF1,
        "HOTA": float(m.HOTA) if m.HOTA is not None else -1.0,
        "MT": float(m.MT),
        "ML": float(m.ML),
        "Frag": float(m.Frag),
    }
    return Evaluation(values, rs)


def videos_of(frames: Sequence[Frame]) -> list[list[int]]:
    """Indices into ``frames`` of each video, in order of first appearance, each ordered by frame index."""
    by_video: dict[str, list[int]] = {}
    for i, frame in enumerate(frames):
        by_video.setdefault(frame.video, []).append(i)
    return [sorted(idx, key=lambda i: frames[i].index) for idx in by_video.values()]


def _xywh(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)


def _renamed(resampler: Any, keys: Sequence[str]) -> Any:
    """The resampler filtered to ``keys`` (None stays None)."""
    return None if resampler is None else Renamed(resampler, {k: k for k in keys})


CROWDHUMAN_KEYS = ("AP", "mMR", "JI")
COCO_BOX_KEYS = BOX_STAT_NAMES
COCO_KEYPOINT_KEYS = (*KEYPOINT_STAT_NAMES, "AP_vis", "AP_invis")
CROWDPOSE_KEYS = CROWDPOSE_STAT_NAMES
HIE_WAP_KEYS = ("wAP", "wAP50", "wAP75")  # w_AP@avg, @50, @75 (bench/metrics/hie_wap.py, weighting "people")
MOT_KEYS = ("MOTA", "MOTP", "FP", "FN", "IDSw", "IDF1", "HOTA", "MT", "ML", "Frag")

_M = "crowdbench.bench.metrics."
_PT = _M + "posetrack"
METRICS: tuple[Metric, ...] = (
    Metric("crowdhuman", CROWDHUMAN_KEYS, "boxes", ("detection",), "image", _crowdhuman, _M + "crowdhuman"),
    Metric("coco_box", COCO_BOX_KEYS, "boxes", ("detection",), "image", _coco_box, _M + "coco_keypoints"),
    Metric(
        "coco_keypoints",
        COCO_KEYPOINT_KEYS,
        "poses",
        ("pose", "pose_regression"),
        "image",
        _coco_keypoints,
        _M + "coco_keypoints",
    ),
    Metric("crowdpose", CROWDPOSE_KEYS, "poses", ("pose", "pose_regression"), "image", _crowdpose, _M + "crowdpose"),
    Metric("hie_wap", HIE_WAP_KEYS, "poses", ("pose", "pose_tracking"), "video", _hie_wap, _M + "hie_wap"),
    Metric("posetrack", ("AP",), "poses", ("pose",), None, _posetrack_frames, _PT),
    Metric("posetrack", POSE_TRACK_KEYS, "pose_tracks", ("pose_tracking",), "video", _posetrack_tracks, _PT),
    Metric("mot", MOT_KEYS, "tracks", ("tracking",), "frame block", _mot, _M + "mot"),
)
"""Every metric, in the order of the ``crowdbench eval`` subcommands."""


def metric_for(task: str, name: str) -> Metric:
    """The metric ``name`` as cells of ``task`` use it; ValueError naming the ones the task can produce."""
    for metric in METRICS:
        if metric.name == name and task in metric.tasks:
            return metric
    names = [m.name for m in METRICS if task in m.tasks]
    either = " or ".join(names) if len(names) < 3 else f"{', '.join(names[:-1])} or {names[-1]}"
    raise ValueError(f"{task} cells evaluate with {either}, not {name!r}")
