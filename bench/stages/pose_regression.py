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

from crowdbench.bench.cache import StageCache, stage_key
from crowdbench.bench.config import RunConfig
from crowdbench.bench.device import cell_numerics
from crowdbench.bench.digest import keyed_dump
from crowdbench.bench.metrics.registry import metric_for
from crowdbench.bench.provenance import device_description
from crowdbench.bench.stages.base import (
    CellOutcome,
    StageResult,
    bootstrap_slice,
    load_bootstrap,
    run_stage,
    save_bootstrap,
)
from crowdbench.bench.stages.data import DATA_MODULES, data_slice, load_frames
from crowdbench.bench.stages.pose import schema_of
from crowdbench.datasets.model import Frame

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
EVALUATE_MODULES = (
    THIS,
    "crowdbench.bench.metrics.registry",
    *DATA_MODULES,
)
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
    metric_for("pose_regression", cfg.evaluate.metric)


def metric_keys(cfg: RunConfig) -> tuple[str, ...]:
    """The metrics a cell produces (checked before any work, with the settings of :func:`check_regression`)."""
    check_regression(cfg)
    return (*metric_for("pose_regression", cfg.evaluate.metric).keys, "time_s")


def stage_keys(cfg: RunConfig) -> dict[str, str]:
    dump = keyed_dump(cfg.regression, "regression")  # model.weights: by content
    schema = schema_of(cfg).name
    val = data_slice(cfg.data, cfg.data.val_split, schema)
    keys = {
        "train": stage_key(
            "train",
            {
                "data": data_slice(cfg.data, cfg.data.train_split, schema),
                "model": dump["model"],
                "train": dump["train"],
                "seed": cfg.seed,
                "numerics": cell_numerics(cfg),
            },
            [],
            TRAIN_MODULES,
        )
    }
    test = {k: v for k, v in dump["test"].items() if k not in POST_KEYS}
    test["resize"] = [cfg.regression.train.min_size, cfg.regression.train.max_size]
    keys["infer"] = stage_key("infer", {"data": val, "test": test}, [keys["train"]], INFER_MODULES)
    post = {k: dump["test"][k] for k in POST_KEYS}
    keys["postprocess"] = stage_key("postprocess", post, [keys["infer"]], POSTPROCESS_MODULES)
    keys["evaluate"] = stage_key(
        "evaluate",
        {"data": val, "metric": cfg.evaluate.metric, "bootstrap": bootstrap_slice(cfg)},
        [keys["postprocess"]],
        EVALUATE_MODULES,
    )
    return keys


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


def follow_training(cfg: RunConfig, cache_: StageCache, device: str) -> None:
    """A non-zero rank of a ``torchrun`` launch (``bench/distributed.py``): join rank 0's training of the cell's model
    (nothing written; checkpoints read from rank 0's scratch folder)."""
    import tempfile

    # deferred: start-up (torch, cv2)
    from crowdbench.bench.stages.pose_regression_training import train_regression

    key = stage_keys(cfg)["train"]
    if cache_.is_done("train", key):
        return
    schema = schema_of(cfg)
    frames = load_frames(cfg.data, cfg.data.train_split, schema.name)
    with tempfile.TemporaryDirectory(prefix="crowdbench-follower-") as tmp:
        train_regression(cfg, frames, schema, device, Path(tmp), cache_.scratch("train", key))


def run_pose_regression_cell(cfg: RunConfig, cache_: StageCache, device: str) -> CellOutcome:
    """Run (or fetch from the cache) every stage of one pose-regression cell."""
    # deferred: start-up (torch, cv2)
    from crowdbench.bench.stages.detector_training import load_per_frame, save_per_frame
    from crowdbench.bench.stages.pose_regression_training import (
        infer_regression,
        load_regression_model,
        train_regression,
    )
    from crowdbench.bench.stages.pose_training import image_ids

    check_regression(cfg)
    keys = stage_keys(cfg)
    schema = schema_of(cfg)
    meta = {"config": cfg.model_dump(mode="json"), "device": device}
    val_frames: list[Frame] = load_frames(cfg.data, cfg.data.val_split, schema.name)

    def train(out: Path, scratch: Path) -> None:
        frames = load_frames(cfg.data, cfg.data.train_split, schema.name)
        info = train_regression(cfg, frames, schema, device, out, scratch)
        (out / "train.json").write_text(json.dumps(info))

    def infer(out: Path, _scratch: Path) -> None:
        model_path = cache_.path("train", keys["train"]) / "model.pt"
        model = load_regression_model(cfg, model_path, schema.num_keypoints, device)
        per_frame, timing = infer_regression(cfg, model, val_frames, device)
        save_per_frame(out / "candidates.npz", per_frame)
        (out / "timing.json").write_text(json.dumps({**timing, "device": device_description(device)}))

    def postprocess(out: Path, _scratch: Path) -> None:
        _, per_frame = load_per_frame(cache_.path("infer", keys["infer"]) / "candidates.npz")
        ids = image_ids(val_frames)
        results, seconds = [], 0.0
        for f, found in enumerate(per_frame):
            begin = time.perf_counter()
            poses, scores = final_poses(cfg, found)
            seconds += time.perf_counter() - begin
            for pose, score in zip(poses, scores, strict=True):
                flat = np.concatenate([pose, np.ones((len(pose), 1))], axis=1).reshape(-1)
                results.append(
                    {
                        "image_id": ids[f],
                        "category_id": 1,
                        "keypoints": [round(float(v), 3) for v in flat],
                        "score": float(score),
                    }
                )
        (out / "results.json").write_text(json.dumps(results))
        (out / "timing.json").write_text(json.dumps({"nms_seconds_per_image": seconds / max(1, len(per_frame))}))

    def evaluate(out: Path, _scratch: Path) -> None:
        post = cache_.path("postprocess", keys["postprocess"])
        results = json.loads((post / "results.json").read_text())
        e = cfg.evaluate
        scored = metric_for("pose_regression", e.metric).evaluate(
            val_frames, results, schema=schema, bootstrap=e.bootstrap > 0
        )
        save_bootstrap(out, scored.resampler, e.bootstrap, e.bootstrap_seed)
        metrics = scored.values
        forward = json.loads((cache_.path("infer", keys["infer"]) / "timing.json").read_text())
        nms = json.loads((post / "timing.json").read_text())
        if forward["seconds_per_image"] is not None:
            metrics["time_s"] = forward["seconds_per_image"] + nms["nms_seconds_per_image"]
        (out / "metrics.json").write_text(json.dumps(metrics))

    stages: list[StageResult] = [
        run_stage(cache_, "train", keys["train"], meta, train),
        run_stage(cache_, "infer", keys["infer"], meta, infer),
        run_stage(cache_, "postprocess", keys["postprocess"], meta, postprocess),
        run_stage(cache_, "evaluate", keys["evaluate"], meta, evaluate),
    ]
    done = cache_.path("evaluate", keys["evaluate"])
    metrics = json.loads((done / "metrics.json").read_text())
    history = json.loads((cache_.path("train", keys["train"]) / "history.json").read_text())
    kept = {k: metrics[k] for k in metric_keys(cfg) if k in metrics}
    return CellOutcome(kept, keys, stages, {"train": history}, load_bootstrap(done))
