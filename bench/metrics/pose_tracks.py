"""PoseTrack metrics (poseval: per-joint AP at PCKh 0.5, MOTA / MOTP of joint tracks) of crowdbench frames and
per-frame pose predictions.

Ground truth and predictions are written as native PoseTrack18 per-video files
(:func:`~crowdbench.datasets.formats.posetrack.write_posetrack`) and scored by
:func:`~crowdbench.bench.metrics.posetrack.evaluate_posetrack` exactly as ``crowdbench eval posetrack`` scores a
submission folder, so the files a cell leaves behind can be re-scored (or handed to poseval) unchanged. Keypoints
of another schema (HIE-14) are converted to the PoseTrack-17 slots by name; joints a schema lacks are unlabeled in
both ground truth and predictions.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crowdbench.datasets.keypoints import POSETRACK_17, convert_keypoints
from crowdbench.datasets.model import Frame, Instance, KeypointSchema

if TYPE_CHECKING:
    from crowdbench.bench.metrics.posetrack import PoseTrackResampler

METRIC_KEYS = ("MOTA", "MOTP", "AP", "Prec", "Rec")
"""Totals over the 15 poseval joints, as fractions (poseval prints percentages)."""


@dataclass
class FramePoses:
    """The poses of one frame: ``keypoints`` M x K x 3 (x, y, score), person ``scores`` M, track ``ids`` M (-1 =
    none), ``boxes`` M x 4."""

    keypoints: np.ndarray
    scores: np.ndarray
    ids: np.ndarray
    boxes: np.ndarray


def indices_by_frame(frame_of: Sequence[int], num_frames: int) -> list[list[int]]:
    """For each frame, the positions ``n`` (in order) with ``frame_of[n]`` equal to it."""
    out: list[list[int]] = [[] for _ in range(num_frames)]
    for n, f in enumerate(frame_of):
        out[f].append(n)
    return out


def _by_video(frames: Sequence[Frame]) -> dict[str, list[Frame]]:
    out: dict[str, list[Frame]] = {}
    for frame in frames:
        out.setdefault(frame.video, []).append(frame)
    return out


def _to_pt17(kpts: np.ndarray | None, schema: KeypointSchema) -> np.ndarray | None:
    if kpts is None or schema.name == POSETRACK_17.name:
        return kpts
    return convert_keypoints(kpts, schema, POSETRACK_17)


def ground_truth_frames(frames: Sequence[Frame], schema: KeypointSchema) -> list[Frame]:
    """``frames`` with their people's keypoints in PoseTrack-17 slots (ignored people stay ignore areas)."""
    out = []
    for f in frames:
        people = [
            Instance(
                box=i.box,
                keypoints=_to_pt17(i.keypoints, schema),
                track_id=i.track_id,
                ignore=i.ignore,
                head_box=i.head_box,
            )
            for i in f.instances
        ]
        out.append(Frame(f.video, f.index, f.width, f.height, None, people, f.ignore_regions, list(f.ignore_polygons)))
    return out


def prediction_frames(
    frames: Sequence[Frame], poses: Sequence[FramePoses], schema: KeypointSchema, kp_thr: float = 0.0
) -> list[Frame]:
    """Prediction frames (one instance per pose, joints scoring ``<= kp_thr`` left out) in PoseTrack-17 slots."""
    if len(poses) != len(frames):
        raise ValueError(f"{len(poses)} frames of poses for {len(frames)} frames")
    out = []
    for f, p in zip(frames, poses, strict=True):
        people = []
        for kp, score, tid, box in zip(p.keypoints, p.scores, p.ids, p.boxes, strict=True):
            kp = np.array(kp, dtype=np.float64)
            kp[kp[:, 2] <= kp_thr] = 0.0
            people.append(Instance(box=box, keypoints=_to_pt17(kp, schema), score=float(score), track_id=int(tid)))
        out.append(Frame(f.video, f.index, f.width, f.height, None, people))
    return out


def _pose_tracks(
    frames: Sequence[Frame],
    poses: Sequence[FramePoses],
    schema: KeypointSchema,
    *,
    tracking: bool = True,
    kp_thr: float = 0.0,
    out_dir: Path | None = None,
    skip_last_frame: bool = True,
    empty_frame_dummy: bool = True,
    motp_all_events: bool = True,
    bootstrap: bool = False,
) -> tuple[dict[str, float], PoseTrackResampler | None]:
    """poseval AP (and with ``tracking`` MOTA / MOTP / precision / recall) of ``poses`` against ``frames``, with the
    resampler when ``bootstrap``.

    Predictions are written to ``out_dir/predictions/<video>.json`` when ``out_dir`` is given (ground truth to a
    temporary folder). Raises ``ValueError`` when tracking cannot be scored (poseval drops the last frame of every
    video, so a video needs two evaluated frames; every person needs an id). The three poseval quirks are the
    options of :func:`~crowdbench.bench.metrics.posetrack.evaluate_posetrack_tracking`."""
    # deferred: start-up (scipy)
    from crowdbench.bench.metrics.posetrack import evaluate_posetrack, evaluate_posetrack_bootstrap
    from crowdbench.datasets.formats.posetrack import write_posetrack

    with tempfile.TemporaryDirectory(prefix="crowdbench-posetrack-") as tmp:
        gt_dir = Path(tmp) / "gt"
        pred_dir = (out_dir / "predictions") if out_dir is not None else Path(tmp) / "pred"
        write_posetrack(_by_video(ground_truth_frames(frames, schema)), gt_dir, "2018")
        write_posetrack(_by_video(prediction_frames(frames, poses, schema, kp_thr)), pred_dir, "2018", predictions=True)
        kw = {"skip_last_frame": skip_last_frame, "empty_frame_dummy": empty_frame_dummy}
        kw["motp_all_events"] = motp_all_events
        rs = None
        if bootstrap:
            result, rs = evaluate_posetrack_bootstrap(gt_dir, pred_dir, fmt="2018", **kw)
        else:
            result = evaluate_posetrack(gt_dir, pred_dir, fmt="2018", **kw)
    out = {"AP": result.ap.total / 100.0}
    if not tracking:
        return out, rs
    if result.mot is None:
        raise ValueError(f"PoseTrack MOTA cannot be computed: {result.mot_error}")
    m = result.mot
    out.update(
        MOTA=m.total_mota / 100.0, MOTP=m.total_motp / 100.0, Prec=m.total_precision / 100.0, Rec=m.total_recall / 100.0
    )
    return {k: out[k] for k in METRIC_KEYS}, rs


def evaluate_pose_tracks(
    frames: Sequence[Frame], poses: Sequence[FramePoses], schema: KeypointSchema, **options: Any
) -> dict[str, float]:
    """poseval AP (and with ``tracking`` MOTA / MOTP / precision / recall) of ``poses`` against ``frames``; the
    ``options`` of :func:`_pose_tracks`."""
    return _pose_tracks(frames, poses, schema, **options)[0]


def evaluate_pose_tracks_bootstrap(
    frames: Sequence[Frame], poses: Sequence[FramePoses], schema: KeypointSchema, **kwargs: Any
) -> tuple[dict[str, float], PoseTrackResampler]:
    """:func:`evaluate_pose_tracks` (same arguments, same metrics) and its
    :class:`~crowdbench.bench.metrics.posetrack.PoseTrackResampler` (videos as units; its keys ``AP``, ``MOTA``,
    ``MOTP``, ``Prec``, ``Rec`` are these metrics as fractions)."""
    metrics, rs = _pose_tracks(frames, poses, schema, bootstrap=True, **kwargs)
    assert rs is not None
    return metrics, rs
