"""The pose-tracking pipeline: an id for every pose of every frame, optional optical-flow pose smoothing, poseval.

Two pipelines (``pose_tracking.tracker``), both ending ``poses -> [smooth] -> evaluate``:

* ``deepsort`` (paper 004 section 4.3): the box-tracking cell (``detector -> reid -> embed -> track``, shared
  with hie-tracking Tables 4-5) gives tracked boxes; the pose cell's model(s) (``train``, ensemble members) estimate
  a pose in every tracked box (``poses``), which takes the box's id.
* ``iou_reid`` (paper 003 section 4.2): the pose cell (``detector`` with GBG, ``train``, ``infer``, pose NMS in
  ``postprocess``) gives each frame's poses; ``reid -> embed`` gives features of their boxes; ``poses`` matches
  them frame to frame (IoU + ReID Euclidean distance, Hungarian; ``methods/tracking/pose_tracker.py``) and, with
  ``propagation``, adds FlowTrack's flow-propagated poses (re-estimated by the pose model) and compares the tracks'
  flow-moved boxes.

``smooth`` is paper 000 eq. 1 (``pose_tracking.smoothing`` = alpha) with DIS optical flow cached per video;
``evaluate`` writes PoseTrack18 prediction files and scores them with poseval's AP and MOTA / MOTP
(``bench/metrics/pose_tracks.py``). Keys follow DESIGN.md: smoothing options re-run ``smooth`` and ``evaluate``
only; tracker options re-run ``poses`` on the cached pose model, boxes and features.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from crowdbench.bench.cache import StageCache, stage_key
from crowdbench.bench.config import RunConfig
from crowdbench.bench.digest import keyed_dump
from crowdbench.bench.metrics.pose_tracks import FramePoses, indices_by_frame
from crowdbench.bench.metrics.registry import metric_for
from crowdbench.bench.stages import pose, tracking
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
from crowdbench.datasets.model import Frame
from crowdbench.methods.pose.postprocess import pose_score

THIS = "crowdbench.bench.stages.pose_tracking"
POSES_MODULES = (THIS, "crowdbench.methods.tracking.pose_tracker", *tracking.FLOW_MODULES, *pose.INFER_MODULES)
SMOOTH_MODULES = (THIS, *tracking.FLOW_MODULES)
EVALUATE_MODULES = (
    THIS,
    "crowdbench.bench.metrics.registry",
    "crowdbench.datasets.formats.posetrack",
    *DATA_MODULES,
)
BOX_CHOICE_KEYS = ("boxes", "detections", "det_score_thr", "detector_set")
"""Pose test options that pick the boxes to estimate poses in: with DeepSORT the tracked boxes are used instead."""


def metric_keys(cfg: RunConfig) -> tuple[str, ...]:
    """``posetrack``: poseval's AP / MOTA / MOTP of the tracked poses; ``hie_wap``: HIE w-AP of the same (tracked,
    smoothed) poses, ids unused (hie-tracking Table 6)."""
    return metric_for("pose_tracking", cfg.evaluate.metric).keys


def coco_results(frames: list[Frame], poses: list[FramePoses]) -> list[dict]:
    """The tracked poses as COCO keypoint results (image ids of ``pose_training.image_ids``). Every joint is
    submitted: OKS scores predicted positions whatever their score, so ``kp_thr`` does not apply."""
    # deferred: start-up (torch)
    from crowdbench.bench.stages.pose_training import image_ids

    return [
        {"image_id": int(i), "category_id": 1, "keypoints": kp.ravel().tolist(), "score": float(score)}
        for i, p in zip(image_ids(frames), poses, strict=True)
        for kp, score in zip(p.keypoints, p.scores, strict=True)
    ]


def _uses_reid(cfg: RunConfig) -> bool:
    pt = cfg.pose_tracking
    return cfg.tracking.reid.enabled and (pt.tracker == "deepsort" or pt.appearance_weight > 0)


def poseval_options(cfg: RunConfig) -> dict[str, bool]:
    """poseval's MOTA quirks as the cell's ``evaluate`` settings say (``bench/metrics/posetrack.py``)."""
    e = cfg.evaluate
    return {
        "skip_last_frame": e.skip_last_frame,
        "empty_frame_dummy": e.empty_frame_dummy,
        "motp_all_events": e.motp_all_events,
    }


def stage_keys(cfg: RunConfig) -> dict[str, str]:
    pt = cfg.pose_tracking
    schema = pose.schema_of(cfg).name
    val = data_slice(cfg.data, cfg.data.val_split, schema)
    pkeys = pose.stage_keys(cfg)
    models = [pkeys["train"], *(v for k, v in pkeys.items() if k.startswith("ensemble"))]
    keys = {k: v for k, v in pkeys.items() if k in ("pretrain", "train") or k.startswith("ensemble")}
    test = {k: v for k, v in keyed_dump(cfg.pose.test, "pose.test").items() if k not in pose.POST_KEYS}
    if pt.tracker == "deepsort":
        tkeys = tracking.stage_keys(cfg)
        keys.update({k: v for k, v in tkeys.items() if k != "evaluate"})
        test = {k: v for k, v in test.items() if k not in BOX_CHOICE_KEYS and not k.startswith("gbg")}
        keys["poses"] = stage_key(
            "poses", {"data": val, "tracker": "deepsort", "test": test}, [keys["track"], *models], POSES_MODULES
        )
    else:
        keys.update({k: pkeys[k] for k in ("infer", "postprocess")})
        if "detector" in pkeys:
            keys["detector"] = pkeys["detector"]
        inputs = [keys["postprocess"]]
        if _uses_reid(cfg):
            keys["reid"] = tracking.stage_keys(cfg)["reid"]
            r = cfg.tracking.reid
            embed = {"flip": r.flip, "scales": list(r.scales), "data": val}
            keys["embed"] = stage_key("embed", embed, [keys["postprocess"], keys["reid"]], tracking.REID_MODULES)
            inputs += [keys["embed"], keys["reid"]]
        options = pt.model_dump(mode="json")
        tracker = {k: options[k] for k in ("appearance_weight", "max_cost", "max_age", "min_score", "propagation")}
        if pt.propagation:  # propagated poses are re-estimated by the model: its test options and the flow matter
            tracker.update({k: options[k] for k in options if k.startswith("propagation_")})
            tracker.update(test=test, flow=[cfg.tracking.flow, cfg.tracking.flow_scale])
            inputs += models
        keys["poses"] = stage_key("poses", {"data": val, "tracker": "iou_reid", **tracker}, inputs, POSES_MODULES)
    last = keys["poses"]
    if pt.smoothing is not None:
        smooth = {
            "alpha": pt.smoothing,
            "thr": pt.smoothing_thr,
            "missing": pt.smoothing_missing,
            "flow": [cfg.tracking.flow, cfg.tracking.flow_scale],
        }
        keys["smooth"] = last = stage_key("smooth", smooth, [last], SMOOTH_MODULES)
    scoring = (
        {"metric": "posetrack", "kp_thr": pt.kp_thr, **poseval_options(cfg)}
        if cfg.evaluate.metric == "posetrack"
        else {"metric": "hie_wap"}
    )
    scoring["bootstrap"] = bootstrap_slice(cfg)
    keys["evaluate"] = stage_key("evaluate", {"data": val, **scoring}, [last], EVALUATE_MODULES)
    return keys


# ------------------------------------------------------------------------------------------------- pose files


def save_poses(path: Path, poses: list[FramePoses]) -> None:
    arrays: dict[str, np.ndarray] = {}
    for i, p in enumerate(poses):
        arrays |= {f"k{i}": p.keypoints, f"s{i}": p.scores, f"t{i}": p.ids, f"b{i}": p.boxes}
    np.savez_compressed(path, **arrays)


def load_poses(path: Path, n: int) -> list[FramePoses]:
    with np.load(path) as z:
        return [
            FramePoses(
                z[f"k{i}"].astype(np.float64),
                z[f"s{i}"].astype(np.float64),
                z[f"t{i}"].astype(np.int64),
                z[f"b{i}"].astype(np.float64),
            )
            for i in range(n)
        ]


# --------------------------------------------------------------------------------------------- DeepSORT boxes


def poses_on_tracks(
    cfg: RunConfig, cache_: StageCache, keys: dict[str, str], frames: list[Frame], device: str
) -> list[FramePoses]:
    """Paper 004 section 4.3 (b): a pose in every DeepSORT box, carrying its id. Person score = the matched
    detection's score (a box the tracker predicted without a detection keeps its track's last one) x the mean of
    the joint scores above ``pose.test.kp_score_thr`` (``pose_score``)."""
    # deferred: start-up (torch)
    from crowdbench.bench.stages.pose_training import Person, predict_poses

    schema = pose.schema_of(cfg)
    tracks = tracking.load_tracks(cache_.path("track", keys["track"]) / "tracks.npz", len(frames))
    detections = tracking.tracked_boxes(cfg, cache_, frames)
    persons: list[Person] = []
    ids: list[int] = []
    for video in tracking.videos_of(frames):
        last: dict[int, float] = {}
        for i in video:
            for row in tracks[i]:
                tid, det = int(row[4]), int(row[5])
                score = float(detections[i]["scores"][det]) if det >= 0 else last.get(tid, 0.0)
                last[tid] = score
                persons.append(Person(i, -1, row[:4].copy(), score))
                ids.append(tid)
    model, ensemble = pose.load_models(cfg, cache_, device)
    kps = predict_poses(model, cfg.pose, frames, persons, schema, device, ensemble=ensemble)
    k = schema.num_keypoints
    out = []
    for idx in indices_by_frame([p.frame for p in persons], len(frames)):
        kp = kps[idx].reshape(-1, k, 3).astype(np.float64)
        box_scores = np.array([persons[n].score for n in idx], dtype=np.float64)
        scores = np.atleast_1d(pose_score(box_scores, kp[..., 2], cfg.pose.test.kp_score_thr)) if idx else np.zeros(0)
        boxes = np.array([persons[n].box for n in idx], dtype=np.float64).reshape(-1, 4)
        out.append(FramePoses(kp, scores, np.array([ids[n] for n in idx], dtype=np.int64), boxes))
    return out


# ------------------------------------------------------------------------------------- IoU + ReID (+ flow)


def pose_cell_poses(cache_: StageCache, keys: dict[str, str], frames: list[Frame], k: int) -> list[FramePoses]:
    """The pose cell's kept poses (after pose NMS) per frame, with their boxes and scores, ids -1."""
    post = cache_.path("postprocess", keys["postprocess"])
    results = json.loads((post / "results.json").read_text())
    people = json.loads((post / "people.json").read_text())
    return [
        FramePoses(
            np.array([results[n]["keypoints"] for n in idx], dtype=np.float64).reshape(-1, k, 3),
            np.array([results[n]["score"] for n in idx], dtype=np.float64),
            np.full(len(idx), -1, dtype=np.int64),
            np.array([people[n]["box"] for n in idx], dtype=np.float64).reshape(-1, 4),
        )
        for idx in indices_by_frame([p["frame"] for p in people], len(frames))
    ]


def _take(p: FramePoses, keep: np.ndarray) -> FramePoses:
    return FramePoses(p.keypoints[keep], p.scores[keep], p.ids[keep], p.boxes[keep])


def _cat(a: FramePoses, b: FramePoses) -> FramePoses:
    return FramePoses(
        np.concatenate([a.keypoints, b.keypoints]),
        np.concatenate([a.scores, b.scores]),
        np.concatenate([a.ids, b.ids]),
        np.concatenate([a.boxes, b.boxes]),
    )


def track_iou_reid(
    cfg: RunConfig,
    frames: list[Frame],
    poses: list[FramePoses],
    features: list[np.ndarray] | None,
    flow_root: Path,
    estimate: Any = None,
    embed: Any = None,
) -> list[FramePoses]:
    """Paper 003 section 4.2 on every video: ids by IoU + ReID Hungarian matching with the previous frame's tracks;
    persons scoring below ``min_score`` are dropped. With ``propagation`` (FlowTrack): the previous frame's tracked
    poses moved by the flow give boxes (``pose_box``), those not overlapping a detection (``merge_propagated``) get a
    pose from ``estimate(frame index, boxes, scores) -> FramePoses`` and features from ``embed(frame index, boxes)``,
    and the IoU term compares the tracks' flow-moved boxes."""
    # deferred: start-up (scipy, cv2)
    from crowdbench.methods.tracking.flow import FlowCache, propagate_box
    from crowdbench.methods.tracking.pose_tracker import (
        IoUReIDParams,
        IoUReIDTracker,
        merge_propagated,
        pose_box,
        propagate_poses,
    )

    pt = cfg.pose_tracking
    params = IoUReIDParams(pt.appearance_weight, pt.max_cost, pt.max_age, pt.min_score)
    flows = FlowCache(flow_root, method=cfg.tracking.flow, scale=cfg.tracking.flow_scale)
    out: list[FramePoses] = list(poses)
    for video in tracking.videos_of(frames):
        tracker = IoUReIDTracker(params)
        video_frames = [frames[i] for i in video]
        prev: FramePoses | None = None
        for k, i in enumerate(video):
            cur = poses[i]
            feats = None if features is None else features[i]
            moved = None
            if pt.propagation and prev is not None and len(tracker.live_ids()):  # prev's ids are all live
                flow = flows.get(video_frames, video_frames[k - 1].index, video_frames[k].index)
                moved = np.array([propagate_box(b, flow) for b in tracker.live_boxes()]).reshape(-1, 4)
                warped = propagate_poses(prev.keypoints, flow)
                boxes = [pose_box(w, pt.propagation_kp_thr, pt.propagation_margin) for w in warped]
                has = [n for n, b in enumerate(boxes) if b is not None]
                if has:
                    prop_boxes = np.array([boxes[n] for n in has])
                    add = merge_propagated(cur.boxes, cur.scores, prop_boxes, prev.scores[has], pt.propagation_nms)
                    if len(add):
                        extra = estimate(i, prop_boxes[add], prev.scores[has][add])
                        cur = _cat(cur, extra)
                        if feats is not None:
                            feats = np.concatenate([feats, embed(i, prop_boxes[add])])
            ids = tracker.step(cur.boxes, cur.scores, feats, prev_boxes=moved)
            kept = ids >= 0
            cur = _take(cur, kept)
            cur.ids = ids[kept]
            out[i] = prev = cur
    return out


# ---------------------------------------------------------------------------------------------- smoothing


def smooth_frames(cfg: RunConfig, frames: list[Frame], poses: list[FramePoses], flow_root: Path) -> list[FramePoses]:
    """Paper 000 eq. 1 per video: each tracked pose averaged with the same id's poses of the previous and next
    frames moved by optical flow (``smooth_poses``; flows computed only between frames that share an id)."""
    # deferred: start-up (cv2)
    from crowdbench.methods.tracking.flow import FlowCache, smooth_poses

    pt = cfg.pose_tracking
    flows = FlowCache(flow_root, method=cfg.tracking.flow, scale=cfg.tracking.flow_scale)
    out = list(poses)
    for video in tracking.videos_of(frames):
        vf = [frames[i] for i in video]
        per_frame = [{int(t): kp for t, kp in zip(poses[i].ids, poses[i].keypoints, strict=True)} for i in video]

        n = len(video)
        ok = [k + 1 < n and bool(per_frame[k].keys() & per_frame[k + 1].keys()) for k in range(n)]  # k and k + 1
        prev_to_cur = [flows.get(vf, vf[k - 1].index, vf[k].index) if k and ok[k - 1] else None for k in range(n)]
        next_to_cur = [flows.get(vf, vf[k + 1].index, vf[k].index) if ok[k] else None for k in range(n)]
        smoothed = smooth_poses(
            per_frame, prev_to_cur, next_to_cur, pt.smoothing, pt.smoothing_thr, pt.smoothing_missing
        )
        for i, joints in zip(video, smoothed, strict=True):
            p = poses[i]
            kp = np.array([joints[int(t)] for t in p.ids]).reshape(p.keypoints.shape)
            out[i] = FramePoses(kp, p.scores, p.ids, p.boxes)
    return out


# ---------------------------------------------------------------------------------------------------- the cell


def run_pose_tracking_cell(cfg: RunConfig, cache_: StageCache, device: str) -> CellOutcome:
    """Run (or fetch from the cache) every stage of one pose-tracking cell."""

    pt = cfg.pose_tracking
    keys = stage_keys(cfg)
    schema = pose.schema_of(cfg)
    meta = {"config": cfg.model_dump(mode="json"), "device": device}
    frames = load_frames(cfg.data, cfg.data.val_split, schema.name)
    stages: list[StageResult] = []
    flow_root = cache_.root / "flow"

    if pt.tracker == "deepsort":
        stages += prefixed("boxes", tracking.run_tracking_cell(cfg, cache_, device).stages)
        stages += pose.train_models(cfg, cache_, device, frames)

        def poses_stage(out: Path, _scratch: Path) -> None:
            save_poses(out / "poses.npz", poses_on_tracks(cfg, cache_, keys, frames, device))

    else:
        stages += prefixed("pose", pose.run_pose_cell(cfg, cache_, device).stages)
        detected = pose_cell_poses(cache_, keys, frames, schema.num_keypoints)
        if _uses_reid(cfg):
            stages.append(tracking.reid_train_stage(cfg, cache_, keys["reid"], device))

            def embed_stage(out: Path, _scratch: Path) -> None:
                model = tracking.load_reid_model(cfg, cache_, keys["reid"], device)
                boxes = [p.boxes for p in detected]
                tracking.save_features(out, tracking.embed_boxes(cfg, model, frames, boxes, device))

            stages.append(run_stage(cache_, "embed", keys["embed"], meta, embed_stage))

        def poses_stage(out: Path, _scratch: Path) -> None:
            # deferred: start-up (torch)
            from crowdbench.bench.stages.pose_training import Person, predict_poses

            features = tracking.load_features(cache_, keys["embed"], len(frames)) if _uses_reid(cfg) else None
            estimate = embed = None
            if pt.propagation:
                model, ensemble = pose.load_models(cfg, cache_, device)
                reid_model = None if features is None else tracking.load_reid_model(cfg, cache_, keys["reid"], device)

                def estimate(i: int, boxes: np.ndarray, scores: np.ndarray) -> FramePoses:
                    persons = [Person(i, -1, b, float(s)) for b, s in zip(boxes, scores, strict=True)]
                    kp = predict_poses(
                        model, cfg.pose, frames, persons, schema, device, progress=False, ensemble=ensemble
                    ).astype(np.float64)
                    kp = kp.reshape(len(persons), -1, 3)
                    score = np.atleast_1d(pose_score(scores, kp[..., 2], cfg.pose.test.kp_score_thr))
                    return FramePoses(kp, score, np.full(len(persons), -1, dtype=np.int64), boxes.reshape(-1, 4))

                def embed(i: int, boxes: np.ndarray) -> np.ndarray:
                    return tracking.embed_boxes(cfg, reid_model, [frames[i]], [boxes], device)[0]

            save_poses(out / "poses.npz", track_iou_reid(cfg, frames, detected, features, flow_root, estimate, embed))

    stages.append(run_stage(cache_, "poses", keys["poses"], meta, poses_stage))
    last = cache_.path("poses", keys["poses"]) / "poses.npz"

    if pt.smoothing is not None:

        def smooth_stage(out: Path, _scratch: Path) -> None:
            save_poses(out / "poses.npz", smooth_frames(cfg, frames, load_poses(last, len(frames)), flow_root))

        stages.append(run_stage(cache_, "smooth", keys["smooth"], meta, smooth_stage))
        last = cache_.path("smooth", keys["smooth"]) / "poses.npz"

    def evaluate(out: Path, _scratch: Path) -> None:
        tracked = load_poses(last, len(frames))
        e = cfg.evaluate
        metric = metric_for("pose_tracking", e.metric)
        if metric.scores == "poses":
            scored = metric.evaluate(frames, coco_results(frames, tracked), schema=schema, bootstrap=e.bootstrap > 0)
        else:
            options = {"kp_thr": pt.kp_thr, "out_dir": out, **poseval_options(cfg)}
            scored = metric.evaluate(frames, tracked, schema=schema, bootstrap=e.bootstrap > 0, **options)
        save_bootstrap(out, scored.resampler, e.bootstrap, e.bootstrap_seed)
        (out / "metrics.json").write_text(json.dumps(scored.values))

    stages.append(run_stage(cache_, "evaluate", keys["evaluate"], meta, evaluate))
    done = cache_.path("evaluate", keys["evaluate"])
    metrics = json.loads((done / "metrics.json").read_text())
    history = json.loads((cache_.path("train", keys["train"]) / "history.json").read_text())
    return CellOutcome(metrics, keys, stages, {"train": history}, load_bootstrap(done))
