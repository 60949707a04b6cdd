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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crowdbench.bench.config import RunConfig
from crowdbench.bench.digest import keyed_dump
from crowdbench.bench.log import console
from crowdbench.bench.metrics.pose_tracks import FramePoses, indices_by_frame
from crowdbench.bench.metrics.registry import metric_for
from crowdbench.bench.stages import pose, tracking
from crowdbench.bench.stages.base import bootstrap_slice, save_bootstrap
from crowdbench.bench.stages.data import DATA_MODULES, data_slice
from crowdbench.bench.stages.pipeline import Artefact, Context, Stage, Task, Upstream, link, register, resolve
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


def poses_on_tracks(ctx: Context, frames: list[Frame]) -> list[FramePoses]:
    """Paper 004 section 4.3 (b): a pose in every DeepSORT box, carrying its id. Person score = the matched
    detection's score (a box the tracker predicted without a detection keeps its track's last one) x the mean of
    the joint scores above ``pose.test.kp_score_thr`` (``pose_score``)."""
    # deferred: start-up (torch)
    from crowdbench.bench.stages.pose_training import Person, predict_poses

    cfg = ctx.cfg
    schema = pose.schema_of(cfg)
    tracks = tracking.load_tracks(ctx.path("track") / "tracks.npz", len(frames))
    detections = tracking.tracked_boxes(ctx, frames)
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
    model, ensemble = pose.load_models(ctx)
    kps = predict_poses(model, cfg.pose, frames, persons, schema, ctx.device, ensemble=ensemble)
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


def pose_cell_poses(post: Path, frames: list[Frame], k: int) -> list[FramePoses]:
    """The pose cell's kept poses (after pose NMS, its ``postprocess`` output ``post``) per frame, with their boxes
    and scores, ids -1."""
    return pose_cell_people(post, len(frames), k)[0]


def pose_cell_people(post: Path, n: int, k: int) -> tuple[list[FramePoses], list[np.ndarray]]:
    """:func:`pose_cell_poses` for ``n`` frames, and per frame the detector score of each kept pose's box (FlowTrack
    propagation carries it, :func:`track_iou_reid`)."""
    results = json.loads((post / "results.json").read_text())
    people = json.loads((post / "people.json").read_text())
    poses, box_scores = [], []
    for idx in indices_by_frame([p["frame"] for p in people], n):
        poses.append(
            FramePoses(
                np.array([results[m]["keypoints"] for m in idx], dtype=np.float64).reshape(-1, k, 3),
                np.array([results[m]["score"] for m in idx], dtype=np.float64),
                np.full(len(idx), -1, dtype=np.int64),
                np.array([people[m]["box"] for m in idx], dtype=np.float64).reshape(-1, 4),
            )
        )
        box_scores.append(np.array([people[m]["score"] for m in idx], dtype=np.float64))
    return poses, box_scores


def _take(p: FramePoses, keep: np.ndarray) -> FramePoses:
    return FramePoses(p.keypoints[keep], p.scores[keep], p.ids[keep], p.boxes[keep])


def _cat(a: FramePoses, b: FramePoses) -> FramePoses:
    return FramePoses(
        np.concatenate([a.keypoints, b.keypoints]),
        np.concatenate([a.scores, b.scores]),
        np.concatenate([a.ids, b.ids]),
        np.concatenate([a.boxes, b.boxes]),
    )


@dataclass
class PropagationTally:
    """What FlowTrack propagation did over a run (``propagation.json`` beside the ``poses`` stage's output): poses
    moved by the flow, those with a box (2+ joints above ``propagation_kp_thr``), those added to the detections,
    those the tracker kept (scoring >= ``min_score``) and the highest joint score among the moved poses."""

    moved: int = 0
    boxed: int = 0
    added: int = 0
    kept: int = 0
    max_joint_score: float = 0.0

    def count(self, warped: np.ndarray, boxed: int, added: int) -> None:
        self.moved += len(warped)
        self.boxed += boxed
        self.added += added
        if len(warped):
            self.max_joint_score = max(self.max_joint_score, float(np.max(warped[..., 2])))

    def report(self, kp_thr: float, min_score: float) -> str:
        """One line for the log; it says so when propagation adds nothing or the tracker drops all it adds (a plugin
        that changes nothing must not pass unnoticed)."""
        line = (
            f"flow propagation: {self.moved} poses moved, {self.boxed} with 2+ joints > {kp_thr:g} "
            f"(pose_tracking.propagation_kp_thr), {self.added} added, {self.kept} kept by the tracker"
        )
        if self.moved and not self.boxed:
            line += (
                f"; WARNING: the highest joint score was {self.max_joint_score:.3f}, so no propagated pose made a box "
                "and propagation added nothing: lower pose_tracking.propagation_kp_thr"
            )
        elif self.added and not self.kept:
            line += f"; WARNING: every added pose scored under pose_tracking.min_score {min_score:g}"
        return line


def track_iou_reid(
    cfg: RunConfig,
    frames: list[Frame],
    poses: list[FramePoses],
    features: list[np.ndarray] | None,
    flow_root: Path,
    estimate: Any = None,
    embed: Any = None,
    tally: PropagationTally | None = None,
    box_scores: list[np.ndarray] | None = None,
) -> list[FramePoses]:
    """Paper 003 section 4.2 on every video: ids by IoU + ReID Hungarian matching with the previous frame's tracks;
    persons scoring below ``min_score`` are dropped. With ``propagation`` (FlowTrack): the previous frame's tracked
    poses moved by the flow give boxes (``pose_box``), those not overlapping a detection (``merge_propagated``) get a
    pose from ``estimate(frame index, boxes, box scores) -> FramePoses`` and features from ``embed(frame index,
    boxes)``, and the IoU term compares the tracks' flow-moved boxes. ``tally`` (when given) counts what propagation
    did.

    A propagated box carries the box score of the box its pose came from (``box_scores``: each detected pose's
    detector score; the poses' own scores when not given), and ``estimate`` scores its new pose as any detection's,
    box score x mean joint score. Passing the previous pose's score instead applied the joint factor twice, which
    put every propagated pose of a low-scoring model (the offset model's joints score <= 0.26) under ``min_score``."""
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
        prev_box = np.zeros(0)
        for k, i in enumerate(video):
            cur = poses[i]
            cur_box = np.asarray(cur.scores if box_scores is None else box_scores[i], dtype=np.float64)
            feats = None if features is None else features[i]
            moved, added = None, 0
            if pt.propagation and prev is not None and len(tracker.live_ids()):  # prev's ids are all live
                flow = flows.get(video_frames, video_frames[k - 1].index, video_frames[k].index)
                moved = np.array([propagate_box(b, flow) for b in tracker.live_boxes()]).reshape(-1, 4)
                warped = propagate_poses(prev.keypoints, flow)
                boxes = [pose_box(w, pt.propagation_kp_thr, pt.propagation_margin) for w in warped]
                has = [n for n, b in enumerate(boxes) if b is not None]
                if has:
                    prop_boxes = np.array([boxes[n] for n in has])
                    add = merge_propagated(cur.boxes, cur.scores, prop_boxes, prev_box[has], pt.propagation_nms)
                    added = len(add)
                    if added:
                        extra = estimate(i, prop_boxes[add], prev_box[has][add])
                        cur = _cat(cur, extra)
                        cur_box = np.concatenate([cur_box, prev_box[has][add]])
                        if feats is not None:
                            feats = np.concatenate([feats, embed(i, prop_boxes[add])])
                if tally is not None:
                    tally.count(warped, len(has), added)
            ids = tracker.step(cur.boxes, cur.scores, feats, prev_boxes=moved)
            kept = ids >= 0
            if tally is not None and added:
                tally.kept += int(kept[len(kept) - added :].sum())
            cur = _take(cur, kept)
            cur.ids = ids[kept]
            out[i] = prev = cur
            prev_box = cur_box[kept]
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


# ---------------------------------------------------------------------------------------------------- the stages


def _detected(ctx: Context) -> list[FramePoses]:
    return pose_cell_poses(ctx.path("postprocess"), ctx.val_frames(), pose.schema_of(ctx.cfg).num_keypoints)


def _embed(ctx: Context, out: Path, _scratch: Path) -> None:
    """ReID features of the pose cell's kept boxes."""
    boxes = [p.boxes for p in _detected(ctx)]
    model = tracking.trained_reid(ctx)
    tracking.save_features(out, tracking.embed_boxes(ctx.cfg, model, ctx.val_frames(), boxes, ctx.device))


def _poses_on_tracks(ctx: Context, out: Path, _scratch: Path) -> None:
    save_poses(out / "poses.npz", poses_on_tracks(ctx, ctx.val_frames()))


def _propagation(ctx: Context, frames: list[Frame], reid: bool) -> tuple[Any, Any]:
    """FlowTrack's ``estimate(frame, boxes, scores)`` (the pose model(s)) and ``embed(frame, boxes)`` (the ReID
    network, None without ReID) for propagated boxes."""
    # deferred: start-up (torch)
    from crowdbench.bench.stages.pose_training import Person, predict_poses

    cfg, schema = ctx.cfg, pose.schema_of(ctx.cfg)
    model, ensemble = pose.load_models(ctx)
    reid_model = tracking.trained_reid(ctx) if reid else None

    def estimate(i: int, boxes: np.ndarray, scores: np.ndarray) -> FramePoses:
        persons = [Person(i, -1, b, float(s)) for b, s in zip(boxes, scores, strict=True)]
        kp = predict_poses(model, cfg.pose, frames, persons, schema, ctx.device, progress=False, ensemble=ensemble)
        kp = kp.astype(np.float64).reshape(len(persons), -1, 3)
        score = np.atleast_1d(pose_score(scores, kp[..., 2], cfg.pose.test.kp_score_thr))
        return FramePoses(kp, score, np.full(len(persons), -1, dtype=np.int64), boxes.reshape(-1, 4))

    def embed(i: int, boxes: np.ndarray) -> np.ndarray:
        return tracking.embed_boxes(cfg, reid_model, [frames[i]], [boxes], ctx.device)[0]

    return estimate, embed


def _poses_iou_reid(ctx: Context, out: Path, _scratch: Path) -> None:
    cfg, frames = ctx.cfg, ctx.val_frames()
    reid = _uses_reid(cfg)
    features = tracking.load_features(ctx.path("embed"), len(frames)) if reid else None
    pt = cfg.pose_tracking
    detected, box_scores = pose_cell_people(ctx.path("postprocess"), len(frames), pose.schema_of(cfg).num_keypoints)
    estimate = embed = tally = None
    if pt.propagation:
        estimate, embed = _propagation(ctx, frames, reid)
        tally = PropagationTally()
    tracked = track_iou_reid(
        cfg, frames, detected, features, ctx.cache.root / "flow", estimate, embed, tally, box_scores
    )
    save_poses(out / "poses.npz", tracked)
    if tally is not None:
        (out / "propagation.json").write_text(json.dumps(asdict(tally)))
        console.print(f"  {tally.report(pt.propagation_kp_thr, pt.min_score)}")


def _smooth(ctx: Context, out: Path, _scratch: Path) -> None:
    frames = ctx.val_frames()
    poses = load_poses(ctx.path("poses") / "poses.npz", len(frames))
    save_poses(out / "poses.npz", smooth_frames(ctx.cfg, frames, poses, ctx.cache.root / "flow"))


def _evaluate(ctx: Context, out: Path, _scratch: Path) -> None:
    cfg, frames, schema = ctx.cfg, ctx.val_frames(), pose.schema_of(ctx.cfg)
    last = "smooth" if cfg.pose_tracking.smoothing is not None else "poses"
    tracked = load_poses(ctx.path(last) / "poses.npz", len(frames))
    e = cfg.evaluate
    metric = metric_for("pose_tracking", e.metric)
    if metric.scores == "poses":  # hie_wap: the tracked poses as COCO results, ids unused
        scored = metric.evaluate(frames, coco_results(frames, tracked), schema=schema, bootstrap=e.bootstrap > 0)
    else:
        options = {"kp_thr": cfg.pose_tracking.kp_thr, "out_dir": out, **poseval_options(cfg)}
        scored = metric.evaluate(frames, tracked, schema=schema, bootstrap=e.bootstrap > 0, **options)
    save_bootstrap(out, scored.resampler, e.bootstrap, e.bootstrap_seed)
    (out / "metrics.json").write_text(json.dumps(scored.values))


def _tracker_stages(cfg: RunConfig, val: dict[str, Any], test: dict[str, Any], models: list[str]) -> list[Stage]:
    """IoU + ReID: the pose cell's kept poses, [``reid`` -> ``embed`` of their boxes] -> ``poses``."""
    pt = cfg.pose_tracking
    inputs = ["postprocess"]
    graph = []
    if _uses_reid(cfg):
        r = cfg.tracking.reid
        embed = {"flip": r.flip, "scales": list(r.scales), "data": val}
        graph += [
            link("reid", Upstream("tracking", cfg, "reid")),
            Stage("embed", embed, tracking.REID_MODULES, _embed, ("postprocess", "reid")),
        ]
        inputs += ["embed", "reid"]
    options = pt.model_dump(mode="json")
    tracker = {k: options[k] for k in ("appearance_weight", "max_cost", "max_age", "min_score", "propagation")}
    if pt.propagation:  # propagated poses are re-estimated by the model: its test options and the flow matter
        tracker.update({k: options[k] for k in options if k.startswith("propagation_")})
        tracker.update(test=test, flow=[cfg.tracking.flow, cfg.tracking.flow_scale])
        inputs += models
    poses = {"data": val, "tracker": "iou_reid", **tracker}
    return [*graph, Stage("poses", poses, POSES_MODULES, _poses_iou_reid, tuple(inputs))]


def stages(cfg: RunConfig) -> list[Stage]:
    """DeepSORT: the box-tracking cell's stages (recorded ``boxes.*``) and the pose models -> ``poses``; IoU + ReID:
    the pose cell's stages (``pose.*``) -> [``reid`` -> ``embed``] -> ``poses``; then [``smooth``] -> ``evaluate``."""
    pt = cfg.pose_tracking
    val = data_slice(cfg.data, cfg.data.val_split, pose.schema_of(cfg).name)
    pose_keys = resolve(pose.TASK, cfg).keys
    models = ["train", *(k for k in pose_keys if k.startswith("ensemble"))]
    test = {k: v for k, v in keyed_dump(cfg.pose.test, "pose.test").items() if k not in pose.POST_KEYS}
    if pt.tracker == "deepsort":
        boxes = [k for k in resolve(tracking.TASK, cfg).keys if k != "evaluate"]
        graph = [link(k, Upstream("tracking", cfg, k, "boxes")) for k in boxes]
        graph += [link(k, Upstream("pose", cfg, k)) for k in pose_keys if k == "pretrain" or k in models]
        test = {k: v for k, v in test.items() if k not in BOX_CHOICE_KEYS and not k.startswith("gbg")}
        poses = {"data": val, "tracker": "deepsort", "test": test}
        graph.append(Stage("poses", poses, POSES_MODULES, _poses_on_tracks, ("track", *models)))
    else:
        graph = [link(k, Upstream("pose", cfg, k, "pose")) for k in pose_keys if k != "evaluate"]
        graph += _tracker_stages(cfg, val, test, models)
    last = "poses"
    if pt.smoothing is not None:
        smooth = {
            "alpha": pt.smoothing,
            "thr": pt.smoothing_thr,
            "missing": pt.smoothing_missing,
            "flow": [cfg.tracking.flow, cfg.tracking.flow_scale],
        }
        graph.append(Stage("smooth", smooth, SMOOTH_MODULES, _smooth, ("poses",)))
        last = "smooth"
    scoring = (
        {"metric": "posetrack", "kp_thr": pt.kp_thr, **poseval_options(cfg)}
        if cfg.evaluate.metric == "posetrack"
        else {"metric": "hie_wap"}
    )
    scoring["bootstrap"] = bootstrap_slice(cfg)
    graph.append(Stage("evaluate", {"data": val, **scoring}, EVALUATE_MODULES, _evaluate, (last,)))
    return graph


def _load_poses(path: Path, frames: list[Frame]) -> list[FramePoses]:
    return load_poses(path, len(frames))


TASK = register(
    Task(
        "pose_tracking",
        stages,
        metric_keys,
        artefacts={
            "poses": Artefact("poses", "poses.npz", _load_poses),
            "smoothed": Artefact("smooth", "poses.npz", _load_poses),
        },
        figure="pose_tracks",
        schema=pose.schema_of,
        check=pose.check_pose,
        curves=pose.training_curves,
    )
)
