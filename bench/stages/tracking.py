"""The box-tracking pipeline of paper 004 (HIE2020 track 1): ``detector -> reid (train) -> embed -> track ->
evaluate``.

Keys follow DESIGN.md: the detector is the detection pipeline's own cell (shared with the detection and pose
tables); the ReID network is keyed by its training slice only, so test-time feature options (flip, scales) re-run
``embed`` alone; DeepSORT parameters and box smoothing key ``track`` alone, so a parameter search replays only the
tracker on cached boxes and embeddings (milliseconds per frame).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from crowdbench.bench.config import RunConfig
from crowdbench.bench.device import cell_numerics
from crowdbench.bench.digest import keyed_dump
from crowdbench.bench.metrics.registry import metric_for, videos_of
from crowdbench.bench.stages.base import bootstrap_slice, save_bootstrap
from crowdbench.bench.stages.data import DATA_MODULES, data_slice, load_frames
from crowdbench.bench.stages.detection import detector_cell
from crowdbench.bench.stages.pipeline import Artefact, Context, Stage, Task, Upstream, link, register
from crowdbench.datasets.model import Frame
from crowdbench.methods.pose.postprocess import box_iou

THIS = "crowdbench.bench.stages.tracking"
BOXES_MODULES = (THIS, *DATA_MODULES)
REID_MODULES = (THIS, "crowdbench.methods.tracking.reid", *DATA_MODULES)
TRACK_MODULES = (THIS, "crowdbench.methods.tracking.deepsort", "crowdbench.methods.tracking.kalman")
FLOW_MODULES = ("crowdbench.methods.tracking.flow",)
EVALUATE_MODULES = (THIS, "crowdbench.bench.metrics.registry", *DATA_MODULES)
"""Entry points of the stages' code hashes: a key hashes the source of their whole import closure
(:func:`crowdbench.bench.cache.import_closure`)."""


def metric_keys(cfg: RunConfig) -> tuple[str, ...]:
    return metric_for("tracking", cfg.evaluate.metric).keys


def detector_config(cfg: RunConfig) -> RunConfig:
    """The detection cell whose boxes are tracked (:func:`~crowdbench.bench.stages.detection.detector_cell` with
    ``tracking.detector_set``): trained on ``data.train_split``, inferring on the tracked ``data.val_split``."""
    return detector_cell(cfg, cfg.tracking.detector_set)


def tracked_boxes(ctx: Context, frames: list[Frame]) -> list[dict[str, np.ndarray]]:
    """Per frame ``{"boxes", "scores"}`` to track: the detector cell's NMS output (the cell's ``detector``), or
    the ground-truth boxes with score 1."""
    if ctx.cfg.tracking.boxes == "detector":
        # deferred: start-up (torch)
        from crowdbench.bench.stages.detector_training import load_per_frame

        _, boxes = load_per_frame(ctx.path("detector") / "detections.npz")
        if len(boxes) != len(frames):
            raise ValueError(f"detector gave boxes for {len(boxes)} frames, the tracking split has {len(frames)}")
        return boxes
    out = []
    for frame in frames:
        people = [i for i in frame.instances if not i.ignore]
        gt = np.array([i.box for i in people], dtype=np.float32).reshape(-1, 4)
        out.append({"boxes": gt, "scores": np.ones(len(gt), dtype=np.float32)})
    return out


def track_frames(
    frames: list[Frame], boxes: list[dict[str, np.ndarray]], features: list[np.ndarray] | None, cfg: RunConfig
) -> list[np.ndarray]:
    """DeepSORT over every video (a fresh tracker per video): per frame ``M x 6`` ``[x1, y1, x2, y2, id, det]``."""
    # deferred: start-up (scipy)
    from crowdbench.methods.tracking.deepsort import DeepSortParams, track_sequence

    params = DeepSortParams(**cfg.tracking.deepsort.model_dump())
    out: list[np.ndarray] = [np.zeros((0, 6))] * len(frames)
    for video in videos_of(frames):
        dets = [(boxes[i]["boxes"], boxes[i]["scores"], None if features is None else features[i]) for i in video]
        for i, tracks in zip(video, track_sequence(dets, params), strict=True):
            out[i] = np.asarray(tracks, dtype=np.float64).reshape(-1, 6)
    return out


def smooth_tracks(frames: list[Frame], tracks: list[np.ndarray], cfg: RunConfig, flow_root: Path) -> list[np.ndarray]:
    """Box smoothing with optical flow (paper 004 section 2.1): each tracked box blended with the same id's box of
    the previous frame moved by the flow (weight ``tracking.box_smoothing``)."""
    # deferred: start-up (cv2)
    from crowdbench.methods.tracking.flow import FlowCache, smooth_boxes

    t = cfg.tracking
    flows = FlowCache(flow_root, method=t.flow, scale=t.flow_scale)
    out = list(tracks)
    for video in videos_of(frames):
        per_frame = [{int(r[4]): r[:4] for r in tracks[i]} for i in video]
        video_frames = [frames[i] for i in video]
        prev_to_cur = [None] + [
            flows.get(video_frames, video_frames[k - 1].index, video_frames[k].index)
            if per_frame[k] and per_frame[k - 1]
            else None
            for k in range(1, len(video))
        ]
        smoothed = smooth_boxes(per_frame, prev_to_cur, weight=t.box_smoothing)
        for i, boxes in zip(video, smoothed, strict=True):
            rows = tracks[i].copy()
            for r in rows:
                r[:4] = boxes[int(r[4])][:4]
            out[i] = rows
    return out


def evaluate_tracks(
    frames: list[Frame], tracks: list[np.ndarray], *, block_frames: int | None = None
) -> dict[str, float] | tuple[dict[str, float], Any]:
    """The ``mot`` metric (``bench/metrics/registry.py``: CLEAR MOT + identity + HOTA, TrackEval semantics) of each
    video, combined.

    Ignore instances and ignore regions (crowds, people too small to label) act as MOT17's distractors: a
    prediction matched to one (Hungarian on IoU >= 0.5) is removed before scoring; they are not ground truth.
    With ``block_frames``: also the bootstrap resampler over blocks of that many frames of each video (the
    metrics are the same)."""
    # deferred: start-up (scipy)
    from scipy.optimize import linear_sum_assignment

    kept = []
    for frame, rows in zip(frames, tracks, strict=True):
        ignored = np.concatenate(
            [
                np.array([p.box for p in frame.instances if p.ignore], dtype=np.float64).reshape(-1, 4),
                np.asarray(frame.ignore_regions, dtype=np.float64).reshape(-1, 4),
            ]
        )
        if len(ignored) and len(rows):
            iou = box_iou(rows[:, :4], ignored)
            r, c = linear_sum_assignment(-iou)
            rows = np.delete(rows, r[iou[r, c] >= 0.5 - 1e-10], axis=0)
        kept.append(rows)
    bootstrap = block_frames is not None
    scored = metric_for("tracking", "mot").evaluate(frames, kept, bootstrap=bootstrap, block_frames=block_frames)
    return (scored.values, scored.resampler) if bootstrap else scored.values


def save_tracks(path: Path, frames: list[Frame], tracks: list[np.ndarray]) -> None:
    np.savez_compressed(path, **{f"f{i}": t.astype(np.float32) for i, t in enumerate(tracks)})
    (path.parent / "frames.json").write_text(json.dumps([f.frame_id for f in frames]))


def load_tracks(path: Path, n: int) -> list[np.ndarray]:
    with np.load(path) as z:
        return [z[f"f{i}"].astype(np.float64) for i in range(n)]


def trained_reid(ctx: Context) -> Any:
    """The ReID network the cell's ``reid`` stage trained, on the cell's device
    (:func:`crowdbench.methods.tracking.reid.load_reid_model`)."""
    # deferred: start-up (torch, cv2)
    from crowdbench.methods.tracking.reid import load_reid_model

    return load_reid_model(ctx.cfg.tracking.reid, ctx.path("reid") / "model.pt", ctx.device)


def embed_boxes(
    cfg: RunConfig, model: Any, frames: list[Frame], boxes: list[np.ndarray], device: str
) -> list[np.ndarray]:
    """ReID features (``N x dim``, L2-normalised) of each frame's boxes with the configured flip / scales."""
    # deferred: start-up (torch, cv2)
    from crowdbench.methods.tracking.reid import embed

    r = cfg.tracking.reid
    return embed(model, frames, boxes, flip=r.flip, scales=tuple(r.scales), device=device)


def save_features(out: Path, features: list[np.ndarray]) -> None:
    np.savez_compressed(out / "features.npz", **{f"f{i}": f.astype(np.float32) for i, f in enumerate(features)})


def load_features(embed: Path, n: int) -> list[np.ndarray]:
    """The features an ``embed`` stage (output folder ``embed``) wrote for ``n`` frames."""
    with np.load(embed / "features.npz") as z:
        return [z[f"f{i}"] for i in range(n)]


# ---------------------------------------------------------------------------------------------------- the stages


def train_reid_stage(ctx: Context, out: Path, scratch: Path) -> None:
    """The ReID network trained on the identities of ``data.train_split`` (or copied from ``tracking.reid.weights``)."""
    # deferred: start-up (torch, cv2)
    from crowdbench.methods.tracking.reid import train_reid

    cfg, r = ctx.cfg, ctx.cfg.tracking.reid
    if r.weights is not None:
        shutil.copyfile(r.weights, out / "model.pt")
        (out / "train.json").write_text(json.dumps({"weights": str(r.weights)}))
        return
    info = train_reid(
        load_frames(cfg.data, cfg.data.train_split),
        arch=r.arch,
        dim=r.dim,
        input_hw=r.input_hw,
        iterations=r.iterations,
        batch_size=(r.ids_per_batch, r.crops_per_id),
        lr=r.lr,
        seed=cfg.seed,
        device=ctx.device,
        out_dir=out,
        scratch=scratch,
        weights=r.backbone_weights,
    )
    (out / "train.json").write_text(json.dumps(info, default=str))


def _embed(ctx: Context, out: Path, _scratch: Path) -> None:
    """ReID features of the tracked boxes (nothing without ReID)."""
    if ctx.cfg.tracking.reid.enabled:
        frames = ctx.val_frames()
        boxes = [b["boxes"] for b in tracked_boxes(ctx, frames)]
        save_features(out, embed_boxes(ctx.cfg, trained_reid(ctx), frames, boxes, ctx.device))


def _track(ctx: Context, out: Path, _scratch: Path) -> None:
    cfg, frames = ctx.cfg, ctx.val_frames()
    features = load_features(ctx.path("embed"), len(frames)) if cfg.tracking.reid.enabled else None
    tracks = track_frames(frames, tracked_boxes(ctx, frames), features, cfg)
    if cfg.tracking.box_smoothing is not None:
        tracks = smooth_tracks(frames, tracks, cfg, ctx.cache.root / "flow")
    save_tracks(out / "tracks.npz", frames, tracks)


def _evaluate(ctx: Context, out: Path, _scratch: Path) -> None:
    frames, e = ctx.val_frames(), ctx.cfg.evaluate
    tracks = load_tracks(ctx.path("track") / "tracks.npz", len(frames))
    if e.bootstrap:
        metrics, resampler = evaluate_tracks(frames, tracks, block_frames=e.block_frames)
        save_bootstrap(out, resampler, e.bootstrap, e.bootstrap_seed)
    else:
        metrics = evaluate_tracks(frames, tracks)
    (out / "metrics.json").write_text(json.dumps(metrics))


def reid_stage(cfg: RunConfig) -> Stage:
    """The ``reid`` stage: keyed by the ReID training slice only (test-time flip and scales re-run ``embed``)."""
    reid = {k: v for k, v in keyed_dump(cfg.tracking.reid, "tracking.reid").items() if k not in ("flip", "scales")}
    train = {
        "data": data_slice(cfg.data, cfg.data.train_split),
        "reid": reid,  # weights, backbone_weights: by content
        "seed": cfg.seed,
        "numerics": cell_numerics(cfg),
    }
    return Stage("reid", train, REID_MODULES, train_reid_stage)


def stages(cfg: RunConfig) -> list[Stage]:
    """``detector`` (or ground-truth boxes) -> [``reid``] -> ``embed`` -> ``track`` -> ``evaluate``."""
    t = cfg.tracking
    val = data_slice(cfg.data, cfg.data.val_split)
    if t.boxes == "detector":
        boxes = link("detector", Upstream("detection", detector_config(cfg), "postprocess", "detector"))
    else:
        boxes = Stage("boxes", {"data": val, "boxes": "gt"}, BOXES_MODULES, recorded=False)
    graph = [boxes, reid_stage(cfg)] if t.reid.enabled else [boxes]
    embed = {"flip": t.reid.flip, "scales": list(t.reid.scales), "enabled": t.reid.enabled, "data": val}
    embed_inputs = (boxes.name, "reid") if t.reid.enabled else (boxes.name,)
    embed_modules = REID_MODULES if t.reid.enabled else BOXES_MODULES
    track = {
        "deepsort": t.deepsort.model_dump(mode="json"),
        "box_smoothing": t.box_smoothing,
        "flow": [t.flow, t.flow_scale] if t.box_smoothing is not None else None,
    }
    evaluate = {"data": val, "metric": "mot", "bootstrap": bootstrap_slice(cfg)}
    return [
        *graph,
        Stage("embed", embed, embed_modules, _embed, embed_inputs),
        Stage("track", track, TRACK_MODULES + FLOW_MODULES, _track, ("embed",)),
        Stage("evaluate", evaluate, EVALUATE_MODULES, _evaluate, ("track",)),
    ]


TASK = register(
    Task(
        "tracking",
        stages,
        metric_keys,
        artefacts={"tracks": Artefact("track", "tracks.npz", lambda path, frames: load_tracks(path, len(frames)))},
        figure="tracks",
        shared=("reid", "detector", "evaluate"),
    )
)
