"""The top-down pose pipeline: ``train -> infer (poses per person box) -> postprocess (pose NMS) -> evaluate``.

Keys follow DESIGN.md: rows that differ only in test-time options share ``train``; rows that differ only in pose NMS
share ``infer``. Schedule S3 (paper 001 section 4.3.1) is S1 without occlusion augmentation, then S1 again with it,
starting from that model: its first phase is the ``train`` stage of the same config with ``schedule = s1`` and no
occlusion, so an S3 row reuses the E1 row's model when both are in the table.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from crowdbench.bench.cache import StageCache, stage_key
from crowdbench.bench.config import PoseTestConfig, RunConfig
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
from crowdbench.datasets.keypoints import get_schema
from crowdbench.datasets.model import Frame, KeypointSchema
from crowdbench.methods.pose.postprocess import gbg_boxes, oks_nms, pose_nms, soft_oks_nms

THIS = "crowdbench.bench.stages.pose"
TRAIN_MODULES = (
    THIS,
    "crowdbench.bench.stages.pose_training",
    "crowdbench.methods.pose.models",
    "crowdbench.methods.pose.transforms",
    "crowdbench.methods.pose.codecs",
    "crowdbench.methods.pose.occlusion",
    "crowdbench.methods.pose.schedules",
    *DATA_MODULES,
)
INFER_MODULES = ("crowdbench.methods.pose.postprocess", *TRAIN_MODULES)
POSTPROCESS_MODULES = ("crowdbench.methods.pose.postprocess", THIS)
"""The pose NMS code lives in this module: its source keys the postprocess stage."""
EVALUATE_MODULES = (
    THIS,
    "crowdbench.bench.metrics.registry",
    *DATA_MODULES,
)


def metric_keys(cfg: RunConfig) -> tuple[str, ...]:
    return metric_for("pose", cfg.evaluate.metric).keys


def schema_of(cfg: RunConfig) -> KeypointSchema:
    """The keypoint schema of the cell: CrowdPose-14 for the CrowdPose metric, HIE-14 for HIE w-AP, PoseTrack-17
    for the PoseTrack metric (HIE-14 on HIE videos), else COCO-17 (synthetic data is annotated natively in it)."""
    if cfg.evaluate.metric == "posetrack":
        return get_schema("hie14" if cfg.data.source == "hie" else "posetrack17")
    return get_schema({"crowdpose": "crowdpose14", "hie_wap": "hie14"}.get(cfg.evaluate.metric, "coco17"))


POST_KEYS = (
    "oks_nms",
    "pose_nms",
    "pose_nms_iou",
    "pose_nms_oks",
    "soft_oks_nms",
    "soft_oks_method",
    "soft_oks_max_dets",
)
"""Test options that act after inference (pose NMS): they key the postprocess stage only."""


def member_config(cfg: RunConfig, index: int) -> RunConfig:
    """The cell of ensemble member ``index`` (``pose.test.ensemble``): the same data, training and seed with the
    member's model, so a table row that trains that model alone shares its ``train`` stage."""
    member = cfg.model_copy(deep=True)
    member.pose.model = cfg.pose.test.ensemble[index].model_copy(deep=True)
    member.pose.test.ensemble, member.pose.test.ensemble_weights = [], ()
    return member


def _pretrain_config(cfg: RunConfig) -> RunConfig | None:
    """Schedule S3's first phase: the same cell with ``schedule = s1`` and no occlusion augmentation."""
    if cfg.pose.train.schedule != "s3":
        return None
    first = cfg.model_copy(deep=True)
    first.pose.train.schedule = "s1"
    first.pose.train.occlusion = "none"
    return first


def detector_config(cfg: RunConfig) -> RunConfig:
    """The detection cell whose boxes a pose cell with ``pose.test.boxes = "detector"`` uses
    (:func:`~crowdbench.bench.stages.detection.detector_cell` with ``pose.test.detector_set``)."""
    return detector_cell(cfg, cfg.pose.test.detector_set)


def detector_people(cfg: RunConfig, cache_: StageCache, device: str, n_frames: int) -> tuple[list, list[StageResult]]:
    """Person boxes from the detection pipeline: its NMS output, or with GBG (paper 003 section 3.1.1) its raw
    pre-NMS boxes grouped around the confident ones. Runs (or reuses) the detection stages."""
    # deferred: start-up (torch)
    from crowdbench.bench.stages.detector_training import load_per_frame
    from crowdbench.bench.stages.pose_training import Person

    det = detector_config(cfg)
    outcome = run_detection_cell(det, cache_, device)
    stages = prefixed("detector", outcome.stages)
    t = cfg.pose.test
    if t.gbg:
        _, per_frame = load_per_frame(cache_.path("infer", outcome.stage_keys["infer"]) / "raw.npz")
    else:
        _, per_frame = load_per_frame(cache_.path("postprocess", outcome.stage_keys["postprocess"]) / "detections.npz")
    if len(per_frame) != n_frames:
        raise ValueError(f"detector gave boxes for {len(per_frame)} frames, the pose split has {n_frames}")
    found = []
    for f, d in enumerate(per_frame):
        boxes, scores = d["boxes"].astype(np.float64), d["scores"].astype(np.float64)
        keep = scores > t.det_score_thr
        boxes, scores = boxes[keep], scores[keep]
        if t.gbg and len(boxes):
            kept = gbg_boxes(
                boxes,
                scores,
                min_size=t.gbg_min_size,
                egt_thr=t.gbg_egt_thr,
                drop_iou=t.gbg_drop_iou,
                group_iou=t.gbg_group_iou,
                top_n=t.gbg_top_n,
            )
            boxes, scores = boxes[kept], scores[kept]
        found += [
            Person(f, -1, b, float(sc)) for b, sc in zip(boxes, scores, strict=True) if b[2] > b[0] and b[3] > b[1]
        ]
    return found, stages


def stage_keys(cfg: RunConfig) -> dict[str, str]:
    dump = keyed_dump(cfg.pose, "pose")  # weights, detections, ensemble weights: by content
    schema = schema_of(cfg).name
    val = data_slice(cfg.data, cfg.data.val_split, schema)
    train_slice = {
        "data": data_slice(cfg.data, cfg.data.train_split, schema),
        "val": val if cfg.pose.train.eval_every else None,
        "model": dump["model"],
        "train": dump["train"],
        "seed": cfg.seed,
        "numerics": cell_numerics(cfg),
    }
    first = _pretrain_config(cfg)
    inputs = [stage_keys(first)["train"]] if first is not None else []
    keys: dict[str, str] = {}
    if first is not None:
        keys["pretrain"] = inputs[0]
    keys["train"] = stage_key("train", train_slice, inputs, TRAIN_MODULES)
    test = {k: v for k, v in dump["test"].items() if k not in POST_KEYS}  # pose NMS options: postprocess only
    boxes_from: list[str] = []
    if cfg.pose.test.boxes == "detector":
        dkeys = detection_keys(detector_config(cfg))
        keys["detector"] = dkeys["infer"] if cfg.pose.test.gbg else dkeys["postprocess"]
        boxes_from = [keys["detector"]]
    members = [stage_keys(member_config(cfg, i))["train"] for i in range(len(cfg.pose.test.ensemble))]
    keys.update({f"ensemble{i}": k for i, k in enumerate(members)})
    keys["infer"] = stage_key(
        "infer", {"data": val, "test": test}, [keys["train"], *members, *boxes_from], INFER_MODULES
    )
    post = {k: dump["test"][k] for k in POST_KEYS}
    keys["postprocess"] = stage_key("postprocess", post, [keys["infer"]], POSTPROCESS_MODULES)
    keys["evaluate"] = stage_key(
        "evaluate",
        {"data": val, "metric": cfg.evaluate.metric, "bootstrap": bootstrap_slice(cfg)},
        [keys["postprocess"]],
        EVALUATE_MODULES,
    )
    return keys


def _validator(run: RunConfig, val_frames: list[Frame], schema: KeypointSchema, device: str):
    """The per-epoch validation of a training run: a fixed protocol (ground-truth boxes, flip test, one scale), so
    that test-time options of a row never change its train key and rows differing only at test time share the
    model."""
    # deferred: start-up (torch)
    from crowdbench.bench.stages.pose_training import coco_results, people, predict_poses

    protocol = run.pose.model_copy(deep=True)
    protocol.test = PoseTestConfig(flip_test=True, multiscale=(1.0,), batch_size=run.pose.test.batch_size)
    val_people = people(val_frames, 0)

    def validate(model) -> float:
        poses = predict_poses(model, protocol, val_frames, val_people, schema, device, progress=False)
        results = coco_results(val_frames, val_people, poses, protocol.test.kp_score_thr)
        metric = metric_for("pose", run.evaluate.metric)
        return metric.evaluate(val_frames, results, schema=schema).values[metric.keys[0]]  # AP, or w-AP for hie_wap

    return validate


def train_models(cfg: RunConfig, cache_: StageCache, device: str, val_frames: list[Frame]) -> list[StageResult]:
    """Run (or fetch) the ``train`` stages of the cell's pose model and of each ensemble member (S3: two phases)."""
    # deferred: start-up (torch)
    from crowdbench.bench.stages.pose_training import train_pose

    schema = schema_of(cfg)
    meta = {"config": cfg.model_dump(mode="json"), "device": device}

    def train_stage(run: RunConfig, key: str, init: Path | None = None, prior: list | None = None) -> StageResult:
        def train(out: Path, scratch: Path) -> None:
            frames = load_frames(run.data, run.data.train_split, schema.name)
            validate = _validator(run, val_frames, schema, device)
            info = train_pose(run, frames, schema, device, out, scratch, validate, init=init, prior=prior)
            (out / "train.json").write_text(json.dumps(info))

        return run_stage(cache_, "train", key, {**meta, "config": run.model_dump(mode="json")}, train)

    def train_model(run: RunConfig) -> list[StageResult]:
        run_keys = stage_keys(run)
        first = _pretrain_config(run)
        if first is None:
            return [train_stage(run, run_keys["train"])]
        # S3: phase 1 = the S1 model without occlusion; phase 2 = S1 restarted from it, occlusion from epoch 0
        done = [train_stage(first, run_keys["pretrain"])]
        phase1 = cache_.path("train", run_keys["pretrain"])
        second = run.model_copy(deep=True)
        second.pose.train.schedule = "s1"
        prior = json.loads((phase1 / "history.json").read_text())
        return [*done, train_stage(second, run_keys["train"], phase1 / "model.pt", prior)]

    stages = train_model(cfg)
    for i in range(len(cfg.pose.test.ensemble)):  # heatmap-fusion members (paper 000 sections 3.1, 4.3)
        stages += prefixed(f"ensemble{i}", train_model(member_config(cfg, i)))
    return stages


def load_models(cfg: RunConfig, cache_: StageCache, device: str) -> tuple[Any, list[Any]]:
    """The trained pose model of the cell and its ensemble members, on ``device``."""
    import torch

    # deferred: start-up (torch)
    from crowdbench.bench.stages.pose_training import build_model
    from crowdbench.methods.pose.models import load_pose_weights

    schema = schema_of(cfg)

    def load(run: RunConfig) -> torch.nn.Module:
        model = build_model(run.pose, schema.num_keypoints)
        load_pose_weights(model, cache_.path("train", stage_keys(run)["train"]) / "model.pt")
        return model.to(device)

    return load(cfg), [load(member_config(cfg, i)) for i in range(len(cfg.pose.test.ensemble))]


def run_pose_cell(cfg: RunConfig, cache_: StageCache, device: str) -> CellOutcome:
    """Run (or fetch from the cache) every stage of one pose cell.

    Besides ``results.json`` the postprocess stage writes ``people.json``: the frame, box and box score of each kept
    result (what pose tracking matches frame to frame)."""
    # deferred: start-up (torch)
    from crowdbench.bench.stages.pose_training import (
        check_ensemble,
        coco_results,
        detected_people,
        people,
        predict_poses,
    )

    check_ensemble(cfg.pose)
    keys = stage_keys(cfg)
    schema = schema_of(cfg)
    meta = {"config": cfg.model_dump(mode="json"), "device": device}
    val_frames: list[Frame] = load_frames(cfg.data, cfg.data.val_split, schema.name)
    stages: list[StageResult] = []
    test_people = people(val_frames, 0)  # ground-truth boxes unless detections
    if cfg.pose.test.boxes == "detections":
        if cfg.pose.test.detections is None:
            raise ValueError("pose.test.boxes=detections needs --set pose.test.detections=FILE (COCO results JSON)")
        test_people = detected_people(val_frames, Path(cfg.pose.test.detections), cfg.pose.test.det_score_thr)
    elif cfg.pose.test.boxes == "detector":
        test_people, det_stages = detector_people(cfg, cache_, device, len(val_frames))
        stages += det_stages

    stages += train_models(cfg, cache_, device, val_frames)

    def infer(out: Path, _scratch: Path) -> None:
        model, ensemble = load_models(cfg, cache_, device)
        poses = predict_poses(model, cfg.pose, val_frames, test_people, schema, device, ensemble=ensemble)
        np.savez_compressed(out / "poses.npz", poses=poses.astype(np.float32))
        (out / "results.json").write_text(
            json.dumps(coco_results(val_frames, test_people, poses, cfg.pose.test.kp_score_thr))
        )

    def postprocess(out: Path, _scratch: Path) -> None:
        results = json.loads((cache_.path("infer", keys["infer"]) / "results.json").read_text())
        boxes = np.array([p.box for p in test_people]).reshape(-1, 4)
        t, sigmas = cfg.pose.test, np.asarray(schema.sigmas)

        def per_image(keep: list[int]) -> Iterator[tuple[list[int], np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
            """``(result indices, boxes, poses, scores, box areas)`` of each image among ``keep``."""
            by_image: dict[int, list[int]] = {}
            for i in keep:
                by_image.setdefault(results[i]["image_id"], []).append(i)
            for idx in by_image.values():
                b = boxes[idx]
                poses = np.array([results[i]["keypoints"] for i in idx]).reshape(len(idx), -1, 3)
                scores = np.array([results[i]["score"] for i in idx])
                yield idx, b, poses, scores, (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])

        keep = list(range(len(results)))
        if t.pose_nms != "none":  # paper 003: box IoU 0.6 and OKS 0.75 after pose (rule: methods.md section 5)
            rule = {"iou_thr": t.pose_nms_iou, "oks_thr": t.pose_nms_oks, "rule": t.pose_nms}
            keep = sorted(idx[k] for idx, b, p, sc, a in per_image(keep) for k in pose_nms(b, p, sc, a, sigmas, **rule))
        if t.oks_nms is not None:  # HRNet / mmpose OKS-NMS (methods.md section 8)
            keep = sorted(idx[k] for idx, _, p, sc, a in per_image(keep) for k in oks_nms(p, sc, a, sigmas, t.oks_nms))
        if t.soft_oks_nms is not None:  # mmpose soft-OKS-NMS: rescore overlapping poses, keep max_dets per image
            kept_all = []
            for idx, _, p, sc, a in per_image(keep):
                kept, new_scores = soft_oks_nms(
                    p, sc, a, sigmas, t.soft_oks_nms, method=t.soft_oks_method, max_dets=t.soft_oks_max_dets
                )
                for k, score in zip(kept, new_scores, strict=True):
                    results[idx[int(k)]] = {**results[idx[int(k)]], "score": float(score)}
                    kept_all.append(idx[int(k)])
            keep = sorted(kept_all)
        (out / "results.json").write_text(json.dumps([results[i] for i in keep]))
        kept = [test_people[i] for i in keep]
        people_rows = [{"frame": q.frame, "box": [float(v) for v in q.box], "score": float(q.score)} for q in kept]
        (out / "people.json").write_text(json.dumps(people_rows))

    def evaluate(out: Path, _scratch: Path) -> None:
        results = json.loads((cache_.path("postprocess", keys["postprocess"]) / "results.json").read_text())
        e = cfg.evaluate
        scored = metric_for("pose", e.metric).evaluate(val_frames, results, schema=schema, bootstrap=e.bootstrap > 0)
        save_bootstrap(out, scored.resampler, e.bootstrap, e.bootstrap_seed)
        (out / "metrics.json").write_text(json.dumps(scored.values))

    stages += [
        run_stage(cache_, "infer", keys["infer"], meta, infer),
        run_stage(cache_, "postprocess", keys["postprocess"], meta, postprocess),
        run_stage(cache_, "evaluate", keys["evaluate"], meta, evaluate),
    ]
    done = cache_.path("evaluate", keys["evaluate"])
    metrics = json.loads((done / "metrics.json").read_text())
    history = json.loads((cache_.path("train", keys["train"]) / "history.json").read_text())
    return CellOutcome(metrics, keys, stages, {"train": history}, load_bootstrap(done))
