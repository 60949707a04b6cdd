"""The single-stage pose regression pipeline (paper 002): ``train -> infer -> postprocess -> evaluate``.

* ``infer`` keeps every location whose classification score passes ``score_thr`` with its pose and the scores of
  all trained branches, so rows that differ only in the test-time scorer (paper 002 Table 2: "using centerness" /
  "using PSM") or the NMS share the trained model *and* the inference; only ``postprocess`` differs.
* ``postprocess`` scores each pose ``cls x scorer``, builds its pseudo box and runs soft-NMS (or NMS) on them.
* ``evaluate`` scores COCO keypoint AP (or CrowdPose AP) and adds ``time_s``: seconds per image at batch 1 on the
  device the ``infer`` stage ran on (its ``timing.json``), network + candidate selection + NMS.

SMPR ranks its 1000 candidates per level by ``cls x PSM``; here they are ranked by ``cls`` alone so that the
inference does not depend on the scorer (identical whenever a level has fewer than ``pre_nms_top_n`` locations above
``score_thr``, as on every smoke image).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from crowdbench.bench.config import RunConfig
from crowdbench.bench.device import cell_numerics
from crowdbench.bench.digest import keyed_dump
from crowdbench.bench.metrics.registry import metric_for
from crowdbench.bench.provenance import device_description
from crowdbench.bench.stages.base import bootstrap_slice, save_bootstrap
from crowdbench.bench.stages.data import DATA_MODULES, data_slice, load_frames
from crowdbench.bench.stages.pipeline import Artefact, Context, DataParallel, Stage, Task, register
from crowdbench.bench.stages.pose import (
    results_by_frame,
    schema_of,
    training_curves,
)

THIS = "crowdbench.bench.stages.pose_regression"
TRAIN_MODULES = (
    THIS,
    "crowdbench.bench.stages.pose_regression_training",
    "crowdbench.methods.pose.regression.model",
    "crowdbench.methods.pose.regression.targets",
    "crowdbench.methods.pose.regression.losses",
    "crowdbench.methods.pose.models",
    *DATA_MODULES,
)
INFER_MODULES = ("crowdbench.methods.pose.regression.decode", *TRAIN_MODULES)
POSTPROCESS_MODULES = ("crowdbench.methods.pose.regression.decode", THIS)
EVALUATE_MODULES = (THIS, "crowdbench.bench.metrics.registry", *DATA_MODULES)
POST_KEYS = ("scorer", "nms", "nms_iou", "soft_min_score", "max_dets")
"""Test options that act after inference: they key the postprocess stage only."""
SCORER_BRANCH = {"psm": "psm", "centerness": "centerness"}


def check_regression(cfg: RunConfig) -> None:
    """One-line errors for settings that cannot work together."""
    r = cfg.regression
    branch = SCORER_BRANCH.get(r.test.scorer)
    if branch is not None and not getattr(r.model, branch):
        raise ValueError(
            f"regression.test.scorer={r.test.scorer} needs the trained {branch} branch "
            f"(plugin pose_regression.{branch} or --set regression.model.{branch}=true)"
        )
    metric_for("pose_regression", cfg.evaluate.metric)  # one that scores this task's poses


def metric_keys(cfg: RunConfig) -> tuple[str, ...]:
    """The metrics a cell produces (checked before any work, with the settings of :func:`check_regression`)."""
    check_regression(cfg)
    return (*metric_for("pose_regression", cfg.evaluate.metric).keys, "time_s")


def final_poses(cfg: RunConfig, found: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Poses kept in one image and their scores: ``cls x scorer``, then soft-NMS / NMS on the pseudo boxes."""
    # deferred: start-up (torch)
    from crowdbench.methods.pose.regression.decode import hard_nms, pose_boxes, soft_nms

    t = cfg.regression.test
    scores = found["scores"].astype(np.float64)
    if t.scorer != "none":
        scores = scores * found[t.scorer].astype(np.float64)
    if not len(scores):
        return np.zeros((0, *found["poses"].shape[1:])), scores
    boxes = pose_boxes(found["poses"])
    if t.nms == "soft":
        keep, kept = soft_nms(boxes, scores, iou_thr=t.nms_iou, min_score=t.soft_min_score, max_dets=t.max_dets)
    else:
        keep = hard_nms(boxes, scores, iou_thr=t.nms_iou, max_dets=t.max_dets)
        kept = scores[keep]
    return found["poses"][keep], kept


def _train(ctx: Context, out: Path, scratch: Path) -> None:
    # deferred: start-up (torch, cv2)
    from crowdbench.bench.stages.pose_regression_training import train_regression

    cfg, schema = ctx.cfg, schema_of(ctx.cfg)
    frames = load_frames(cfg.data, cfg.data.train_split, schema.name)
    info = train_regression(cfg, frames, schema, ctx.device, out, scratch)
    (out / "train.json").write_text(json.dumps(info))


def _infer(ctx: Context, out: Path, _scratch: Path) -> None:
    # deferred: start-up (torch, cv2)
    from crowdbench.bench.stages.detector_training import save_per_frame
    from crowdbench.bench.stages.pose_regression_training import infer_regression, load_regression_model

    cfg = ctx.cfg
    model = load_regression_model(cfg, ctx.path("train") / "model.pt", schema_of(cfg).num_keypoints, ctx.device)
    per_frame, timing = infer_regression(cfg, model, ctx.val_frames(), ctx.device)
    save_per_frame(out / "candidates.npz", per_frame)
    (out / "timing.json").write_text(json.dumps({**timing, "device": device_description(ctx.device)}))


def _postprocess(ctx: Context, out: Path, _scratch: Path) -> None:
    # deferred: start-up (torch)
    from crowdbench.bench.stages.detector_training import load_per_frame
    from crowdbench.bench.stages.pose_training import image_ids

    _, per_frame = load_per_frame(ctx.path("infer") / "candidates.npz")
    ids = image_ids(ctx.val_frames())
    results, seconds = [], 0.0
    for f, found in enumerate(per_frame):
        begin = time.perf_counter()
        poses, scores = final_poses(ctx.cfg, found)
        seconds += time.perf_counter() - begin
        for pose, score in zip(poses, scores, strict=True):
            flat = np.concatenate([pose, np.ones((len(pose), 1))], axis=1).reshape(-1)
            keypoints = [round(float(v), 3) for v in flat]
            results.append({"image_id": ids[f], "category_id": 1, "keypoints": keypoints, "score": float(score)})
    (out / "results.json").write_text(json.dumps(results))
    (out / "timing.json").write_text(json.dumps({"nms_seconds_per_image": seconds / max(1, len(per_frame))}))


def _evaluate(ctx: Context, out: Path, _scratch: Path) -> None:
    """COCO keypoint (or CrowdPose) AP of the kept poses, and ``time_s``: network + candidate selection + NMS."""
    cfg, post = ctx.cfg, ctx.path("postprocess")
    results = json.loads((post / "results.json").read_text())
    e = cfg.evaluate
    scored = metric_for("pose_regression", e.metric).evaluate(
        ctx.val_frames(), results, schema=schema_of(cfg), bootstrap=e.bootstrap > 0
    )
    save_bootstrap(out, scored.resampler, e.bootstrap, e.bootstrap_seed)
    metrics = scored.values
    forward = json.loads((ctx.path("infer") / "timing.json").read_text())
    nms = json.loads((post / "timing.json").read_text())
    if forward["seconds_per_image"] is not None:
        metrics["time_s"] = forward["seconds_per_image"] + nms["nms_seconds_per_image"]
    (out / "metrics.json").write_text(json.dumps(metrics))


def stages(cfg: RunConfig) -> list[Stage]:
    """``train -> infer -> postprocess -> evaluate``."""
    dump = keyed_dump(cfg.regression, "regression")  # model.weights: by content
    schema = schema_of(cfg).name
    val = data_slice(cfg.data, cfg.data.val_split, schema)
    train = {
        "data": data_slice(cfg.data, cfg.data.train_split, schema),
        "model": dump["model"],
        "train": dump["train"],
        "seed": cfg.seed,
        "numerics": cell_numerics(cfg),
    }
    test = {k: v for k, v in dump["test"].items() if k not in POST_KEYS}
    test["resize"] = [cfg.regression.train.min_size, cfg.regression.train.max_size]
    post = {k: dump["test"][k] for k in POST_KEYS}
    evaluate = {"data": val, "metric": cfg.evaluate.metric, "bootstrap": bootstrap_slice(cfg)}
    return [
        Stage("train", train, TRAIN_MODULES, _train, data_parallel=True),
        Stage("infer", {"data": val, "test": test}, INFER_MODULES, _infer, ("train",)),
        Stage("postprocess", post, POSTPROCESS_MODULES, _postprocess, ("infer",)),
        Stage("evaluate", evaluate, EVALUATE_MODULES, _evaluate, ("postprocess",)),
    ]


def _data_parallel(cfg: RunConfig) -> tuple[int, float, bool]:
    t = cfg.regression.train
    return t.batch_size, t.lr, not cfg.regression.model.frozen_bn


TASK = register(
    Task(
        "pose_regression",
        stages,
        metric_keys,
        artefacts={"poses": Artefact("postprocess", "results.json", results_by_frame)},
        figure="poses",
        schema=schema_of,
        check=check_regression,
        curves=training_curves,
        data_parallel=DataParallel(_data_parallel),
    )
)
