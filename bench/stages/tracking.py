"""The box-tracking pipeline of paper 004 (HIE2020 track 1): ``detector -> reid (train) -> embed -> track ->
evaluate``.

Keys follow DESIGN.md: the detector is the detection pipeline's own cell (shared with the detection and pose
tables); the ReID network is keyed by its training slice only, so test-time feature options (flip, scales) re-run
``embed`` alone; DeepSORT parameters and box smoothing key ``track`` alone, so a parameter search replays only the
tracker on cached boxes and embeddings (milliseconds per frame).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from crowdbench.bench.cache import StageCache, stage_key
from crowdbench.bench.checkpoints import CheckpointError
from crowdbench.bench.config import RunConfig
from crowdbench.bench.device import cell_numerics
from crowdbench.bench.digest import keyed_dump
from crowdbench.bench.metrics.registry import metric_for
from crowdbench.bench.stages.base import (
    CellOutcome,
    StageResult,
    bootstrap_slice,
    load_bootstrap,
    prefixed,
    run_stage,
    save_bootstrap,
)
from crowdbench.bench.stages.data import DATA_MODULES, data_slice, load_frames
from crowdbench.bench.stages.detection import detector_cell, run_detection_cell
from crowdbench.bench.stages.detection import stage_keys as detection_keys
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


def _reid_train_config(cfg: RunConfig) -> dict[str, Any]:
    dump = keyed_dump(cfg.tracking.reid, "tracking.reid")  # weights, backbone_weights: by content
    return {k: v for k, v in dump.items() if k not in ("flip", "scales")}


def stage_keys(cfg: RunConfig) -> dict[str, str]:
    t = cfg.tracking
    val = data_slice(cfg.data, cfg.data.val_split)
    keys: dict[str, str] = {}
    if t.boxes == "detector":
        keys["detector"] = detection_keys(detector_config(cfg))["postprocess"]
        boxes = [keys["detector"]]
    else:
        boxes = [stage_key("boxes", {"data": val, "boxes": "gt"}, [], BOXES_MODULES)]
    reid: list[str] = []
    if t.reid.enabled:
        keys["reid"] = stage_key(
            "reid",
            {
                "data": data_slice(cfg.data, cfg.data.train_split),
                "reid": _reid_train_config(cfg),
                "seed": cfg.seed,
                "numerics": cell_numerics(cfg),
            },
            [],
            REID_MODULES,
        )
        reid = [keys["reid"]]
    test = {"flip": t.reid.flip, "scales": list(t.reid.scales), "enabled": t.reid.enabled, "data": val}
    keys["embed"] = stage_key("embed", test, boxes + reid, REID_MODULES if t.reid.enabled else BOXES_MODULES)
    track = {
        "deepsort": t.deepsort.model_dump(mode="json"),
        "box_smoothing": t.box_smoothing,
        "flow": [t.flow, t.flow_scale] if t.box_smoothing is not None else None,
    }
    keys["track"] = stage_key("track", track, [keys["embed"]], TRACK_MODULES + FLOW_MODULES)
    boot = bootstrap_slice(cfg)
    keys["evaluate"] = stage_key(
        "evaluate", {"data": val, "metric": "mot", "bootstrap": boot}, [keys["track"]], EVALUATE_MODULES
    )
    return keys


def tracked_boxes(cfg: RunConfig, cache_: StageCache, frames: list[Frame]) -> list[dict[str, np.ndarray]]:
    """Per frame ``{"boxes", "scores"}`` to track: the (already run) detector cell's NMS output, or the
    ground-truth boxes with score 1."""
    if cfg.tracking.boxes == "detector":
        # deferred: start-up (torch)
        from crowdbench.bench.stages.detector_training import load_per_frame

        _, boxes = load_per_frame(cache_.path("postprocess", stage_keys(cfg)["detector"]) / "detections.npz")
        if len(boxes) != len(frames):
            raise ValueError(f"detector gave boxes for {len(boxes)} frames, the tracking split has {len(frames)}")
        return boxes
    out = []
    for frame in frames:
        people = [i for i in frame.instances if not i.ignore]
        gt = np.array([i.box for i in people], dtype=np.float32).reshape(-1, 4)
        out.append({"boxes": gt, "scores": np.ones(len(gt), dtype=np.float32)})
    return out


def videos_of(frames: list[Frame]) -> list[list[int]]:
    """Indices into ``frames`` of each video, in order of first appearance, each ordered by frame index."""
    by_video: dict[str, list[int]] = {}
    for i, frame in enumerate(frames):
        by_video.setdefault(frame.video, []).append(i)
    return [sorted(idx, key=lambda i: frames[i].index) for idx in by_video.values()]


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
    """The ``mot`` metric (``bench/metrics/registry.py``) of each video, combined.

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


def run_tracking_cell(cfg: RunConfig, cache_: StageCache, device: str) -> CellOutcome:
    """Run (or fetch from the cache) every stage of one tracking cell."""
    keys = stage_keys(cfg)
    t = cfg.tracking
    meta = {"config": cfg.model_dump(mode="json"), "device": device}
    frames = load_frames(cfg.data, cfg.data.val_split)
    stages: list[StageResult] = []
    if t.boxes == "detector":
        stages += prefixed("detector", run_detection_cell(detector_config(cfg), cache_, device).stages)
    boxes = tracked_boxes(cfg, cache_, frames)

    if t.reid.enabled:
        stages.append(reid_train_stage(cfg, cache_, keys["reid"], device))

    def embed_stage(out: Path, _scratch: Path) -> None:
        model = load_reid_model(cfg, cache_, keys["reid"], device)
        save_features(out, embed_boxes(cfg, model, frames, [b["boxes"] for b in boxes], device))

    if t.reid.enabled:
        stages.append(run_stage(cache_, "embed", keys["embed"], meta, embed_stage))
    else:
        stages.append(run_stage(cache_, "embed", keys["embed"], meta, lambda out, _s: None))

    def track(out: Path, scratch: Path) -> None:
        features = load_features(cache_, keys["embed"], len(frames)) if t.reid.enabled else None
        tracks = track_frames(frames, boxes, features, cfg)
        if t.box_smoothing is not None:
            tracks = smooth_tracks(frames, tracks, cfg, cache_.root / "flow")
        save_tracks(out / "tracks.npz", frames, tracks)

    def evaluate(out: Path, _scratch: Path) -> None:
        tracks = load_tracks(cache_.path("track", keys["track"]) / "tracks.npz", len(frames))
        e = cfg.evaluate
        if e.bootstrap:
            metrics, resampler = evaluate_tracks(frames, tracks, block_frames=e.block_frames)
            save_bootstrap(out, resampler, e.bootstrap, e.bootstrap_seed)
        else:
            metrics = evaluate_tracks(frames, tracks)
        (out / "metrics.json").write_text(json.dumps(metrics))

    stages += [
        run_stage(cache_, "track", keys["track"], meta, track),
        run_stage(cache_, "evaluate", keys["evaluate"], meta, evaluate),
    ]
    done = cache_.path("evaluate", keys["evaluate"])
    return CellOutcome(json.loads((done / "metrics.json").read_text()), keys, stages, bootstrap=load_bootstrap(done))


def reid_train_stage(cfg: RunConfig, cache_: StageCache, key: str, device: str) -> StageResult:
    """Run (or fetch) the ``reid`` stage: the ReID network trained on the identities of ``data.train_split`` (or
    copied from ``tracking.reid.weights``)."""
    r = cfg.tracking.reid
    meta = {"config": cfg.model_dump(mode="json"), "device": device}

    def train(out: Path, scratch: Path) -> None:
        # deferred: start-up (torch, cv2)
        from crowdbench.methods.tracking.reid import train_reid

        if r.weights is not None:
            import shutil

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
            device=device,
            out_dir=out,
            scratch=scratch,
            weights=r.backbone_weights,
        )
        (out / "train.json").write_text(json.dumps(info, default=str))

    return run_stage(cache_, "reid", key, meta, train)


def load_reid_model(cfg: RunConfig, cache_: StageCache, key: str, device: str) -> Any:
    """The trained ReID network of stage ``key`` on ``device``. Only the training-only ID classifier
    (``classifier``, ``kappa``) may be absent from or extra in the state dict: a file missing any embedding weight
    (e.g. ``tracking.reid.weights`` of another architecture) is a one-line error naming it."""
    # deferred: start-up (torch, cv2)
    from crowdbench.methods.tracking.reid import build_reid, load_reid_weights

    r = cfg.tracking.reid
    model = build_reid(r.arch, dim=r.dim, input_hw=r.input_hw)
    path = cache_.path("reid", key) / "model.pt"
    try:
        load_reid_weights(model, path)
    except CheckpointError as err:
        if r.weights is None:
            raise
        raise CheckpointError(r.weights, err.problem, "tracking.reid.weights") from None  # the file it copied
    return model.to(device)


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


def load_features(cache_: StageCache, key: str, n: int) -> list[np.ndarray]:
    with np.load(cache_.path("embed", key) / "features.npz") as z:
        return [z[f"f{i}"] for i in range(n)]
