"""The detection pipeline: ``train -> infer (raw, pre-NMS) -> postprocess (NMS variant) -> evaluate``.

Keys follow DESIGN.md: a row that differs from another only in post-processing (``crowddet.set_nms``) shares
the ``train`` and ``infer`` keys and so reuses that row's model and raw predictions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from crowdbench.bench.cache import StageCache, stage_key
from crowdbench.bench.config import RunConfig, set_dotted
from crowdbench.bench.device import cell_numerics
from crowdbench.bench.digest import keyed_dump
from crowdbench.bench.metrics.registry import metric_for
from crowdbench.bench.stages.base import CellOutcome, StageResult, load_bootstrap, prefixed, run_stage, save_bootstrap
from crowdbench.bench.stages.data import DATA_MODULES, data_slice, load_frames
from crowdbench.datasets.formats.crowdhuman import DetectionRecord, write_detections
from crowdbench.datasets.model import Frame
from crowdbench.methods.detection.fusion import member_config, weighted_box_fusion

THIS = "crowdbench.bench.stages.detection"
TRAIN_MODULES = (
    THIS,
    "crowdbench.methods.detection.faster_rcnn",
    "crowdbench.methods.detection.backbones",
    "crowdbench.methods.detection.cascade",
    "crowdbench.methods.detection.crowddet",
    "crowdbench.methods.detection.kd",
    "crowdbench.bench.stages.detector_training",
    *DATA_MODULES,
)
POSTPROCESS_MODULES = (THIS, "crowdbench.methods.detection.crowddet")
FUSION_MODULES = (THIS, "crowdbench.methods.detection.fusion")
EVALUATE_MODULES = (
    THIS,
    "crowdbench.bench.metrics.registry",
    "crowdbench.bench.metrics.crowdhuman",
    *DATA_MODULES,
)
"""Entry points of the stages' code hashes: a key hashes the source of their whole import closure
(:func:`crowdbench.bench.cache.import_closure`); this module itself holds the stage functions and their slices."""


def metric_keys(cfg: RunConfig) -> tuple[str, ...]:
    """The metric values the evaluate stage of ``cfg`` produces (a table's columns must be among them)."""
    return metric_for("detection", cfg.evaluate.metric).keys


def detector_cell(cfg: RunConfig, detector_set: dict[str, Any]) -> RunConfig:
    """The detection cell another pipeline (pose, tracking) takes its person boxes from: the profile's detector on
    the same data and device, seed 0 (every seed of the caller shares one detector; under ``smoke`` it is the
    baseline detector of hie-pose Table 3, so a run folder holding both trains it once), with ``detector_set``
    dotted overrides. It infers on the caller's ``data.val_split``."""
    # deferred: start-up (yaml)
    from crowdbench.bench.profiles import base_config

    det = base_config(cfg.profile, "detection")
    det.data = cfg.data.model_copy(deep=True)
    det.device = cfg.device
    det.runtime = cfg.runtime.model_copy()  # the caller's numerics: the detector trains in the caller's process
    for key, value in detector_set.items():
        set_dotted(det, key, value)
    return det


def stage_keys(cfg: RunConfig) -> dict[str, str]:
    """Cache keys of the four stages of ``cfg`` (cheap: hashes configs and source files, runs nothing)."""
    # deferred: start-up (torch)
    from crowdbench.methods.detection.kd import teacher_config

    dump = cfg.model_dump(mode="json")
    dump["model"] = keyed_dump(cfg.model, "model")  # weights, kd_teacher: by content
    teacher = teacher_config(cfg)  # Tf-KD self: the baseline cell's trained model is an input of this training
    train = stage_key(
        "train",
        {
            "data": data_slice(cfg.data, cfg.data.train_split),
            "model": dump["model"],
            "train": dump["train"],
            "seed": cfg.seed,
            "numerics": cell_numerics(cfg),
        },
        [stage_keys(teacher)["train"]] if teacher is not None else [],
        TRAIN_MODULES,
    )
    infer = stage_key(
        "infer", {"data": data_slice(cfg.data, cfg.data.val_split), "infer": dump["infer"]}, [train], TRAIN_MODULES
    )
    own_post = {k: v for k, v in dump["postprocess"].items() if not k.startswith("fusion")}
    post = stage_key("postprocess", own_post, [infer], POSTPROCESS_MODULES)
    keys = {"train": train, "infer": infer, "postprocess": post}
    fused = post
    if cfg.postprocess.fusion:  # model fusion: WBF of this cell's and each member's post-processed boxes
        members = [stage_keys(member_config(cfg, m))["postprocess"] for m in cfg.postprocess.fusion]
        fusion = {
            "weights": [1.0, *(m.weight for m in cfg.postprocess.fusion)],
            "iou": cfg.postprocess.fusion_iou,
            "skip": cfg.postprocess.fusion_skip,
        }
        # the fused boxes are this cell's "postprocess" output (what pose and tracking read); "nms" its own boxes
        keys["nms"] = post
        fused = keys["postprocess"] = stage_key("postprocess", {"fusion": fusion}, [post, *members], FUSION_MODULES)
    keys["evaluate"] = stage_key(
        "evaluate", {"data": data_slice(cfg.data, cfg.data.val_split), **dump["evaluate"]}, [fused], EVALUATE_MODULES
    )
    return keys


def _records(frames: list[dict[str, Any]], dets: list[dict[str, Any]]) -> list[DetectionRecord]:
    return [
        DetectionRecord(f["id"], d["boxes"], d["scores"], f["width"], f["height"])
        for f, d in zip(frames, dets, strict=True)
    ]


def _train_fn(cfg: RunConfig, device: str, teacher: Path | None = None) -> Callable[[Path, Path], None]:
    """The ``train`` stage of ``cfg`` (``teacher``: the Tf-KD self teacher's trained model)."""

    def train(out: Path, scratch: Path) -> None:
        # deferred: start-up (torch)
        from crowdbench.bench.stages.detector_training import train_detector

        info = train_detector(cfg, load_frames(cfg.data, cfg.data.train_split), device, out, scratch, teacher=teacher)
        (out / "train.json").write_text(json.dumps(info))

    return train


def follow_training(cfg: RunConfig, cache: StageCache, device: str) -> None:
    """A non-zero rank of a ``torchrun`` launch (``bench/distributed.py``): join the training of every ``train`` stage
    rank 0 is about to compute (the Tf-KD self teacher's, then the cell's own), in the same order, writing nothing.
    Checkpoints are read from rank 0's scratch folder, so a resumed run resumes on every rank."""
    import tempfile

    # deferred: start-up (torch)
    from crowdbench.bench.stages.detector_training import train_detector
    from crowdbench.methods.detection.kd import teacher_config

    teacher_cfg = teacher_config(cfg)
    plan: list[tuple[RunConfig, Path | None]] = []
    if teacher_cfg is not None:
        plan.append((teacher_cfg, None))
    tkey = stage_keys(teacher_cfg)["train"] if teacher_cfg is not None else None
    plan.append((cfg, cache.path("train", tkey) / "model.pt" if tkey else None))
    for run, teacher in plan:
        key = stage_keys(run)["train"]
        if cache.is_done("train", key):
            continue
        with tempfile.TemporaryDirectory(prefix="crowdbench-follower-") as tmp:
            frames = load_frames(run.data, run.data.train_split)
            train_detector(run, frames, device, Path(tmp), cache.scratch("train", key), teacher=teacher)


def run_detection_cell(cfg: RunConfig, cache: StageCache, device: str) -> CellOutcome:
    """Run (or fetch from the cache) every stage of one detection cell (with a Tf-KD self teacher's training and
    the fused detectors' cells when the config has them)."""
    # deferred: start-up (torch)
    from crowdbench.bench.stages.detector_training import infer_raw, load_per_frame, save_per_frame
    from crowdbench.methods.detection.crowddet import apply_nms
    from crowdbench.methods.detection.kd import teacher_config

    keys = stage_keys(cfg)
    meta = {"config": cfg.model_dump(mode="json"), "device": device}
    val_frames: list[Frame] | None = None

    def val() -> list[Frame]:
        nonlocal val_frames
        if val_frames is None:
            val_frames = load_frames(cfg.data, cfg.data.val_split)
        return val_frames

    stages: list[StageResult] = []
    teacher_cfg = teacher_config(cfg)
    teacher_path = None
    if teacher_cfg is not None:  # Tf-KD self: train (or fetch) the baseline cell's model first
        tkey = stage_keys(teacher_cfg)["train"]
        tmeta = {"config": teacher_cfg.model_dump(mode="json"), "device": device}
        stages += prefixed("kd_teacher", [run_stage(cache, "train", tkey, tmeta, _train_fn(teacher_cfg, device))])
        teacher_path = cache.path("train", tkey) / "model.pt"

    def infer(out: Path, _scratch: Path) -> None:
        info = infer_raw(cfg, cache.path("train", keys["train"]) / "model.pt", val(), device, out)
        (out / "infer.json").write_text(json.dumps(info))

    def postprocess(out: Path, _scratch: Path) -> None:
        frames, raw = load_per_frame(cache.path("infer", keys["infer"]) / "raw.npz")
        p = cfg.postprocess
        dets = [
            {k: v.numpy() for k, v in apply_nms(r, p.nms, p.nms_iou, p.score_thresh, p.max_dets).items()} for r in raw
        ]
        save_per_frame(out / "detections.npz", dets)
        (out / "frames.json").write_text(json.dumps(frames))
        write_detections(_records(frames, dets), out / "detections.json")

    def fuse(out: Path, _scratch: Path) -> None:
        paths = [cache.path("postprocess", keys["nms"]), *member_posts]
        frames, dets = load_per_frame(paths[0] / "detections.npz")
        others = [load_per_frame(p / "detections.npz")[1] for p in paths[1:]]
        weights = [1.0, *(m.weight for m in cfg.postprocess.fusion)]
        fused = []
        for i, own in enumerate(dets):
            sets = [own, *(o[i] for o in others)]
            boxes, scores = weighted_box_fusion(
                [d["boxes"] for d in sets],
                [d["scores"] for d in sets],
                weights,
                cfg.postprocess.fusion_iou,
                cfg.postprocess.fusion_skip,
            )
            fused.append({"boxes": boxes, "scores": scores, "groups": np.arange(len(scores), dtype=np.int64)})
        save_per_frame(out / "detections.npz", fused)
        (out / "frames.json").write_text(json.dumps(frames))
        write_detections(_records(frames, fused), out / "detections.json")

    def evaluate(out: Path, _scratch: Path) -> None:
        post = cache.path("postprocess", keys["postprocess"])
        frames, dets = load_per_frame(post / "detections.npz")
        e = cfg.evaluate
        scored = metric_for("detection", e.metric).evaluate(val(), _records(frames, dets), bootstrap=e.bootstrap > 0)
        save_bootstrap(out, scored.resampler, e.bootstrap, e.bootstrap_seed)
        (out / "metrics.json").write_text(json.dumps(scored.values))
        (out / "curves.json").write_text(json.dumps(scored.curves))

    stages += [
        run_stage(cache, "train", keys["train"], meta, _train_fn(cfg, device, teacher_path)),
        run_stage(cache, "infer", keys["infer"], meta, infer),
        run_stage(cache, "postprocess", keys.get("nms", keys["postprocess"]), meta, postprocess),
    ]
    member_posts: list[Path] = []
    for i, member in enumerate(cfg.postprocess.fusion, start=1):  # each fused detector runs as its own cell
        sub = member_config(cfg, member)
        stages += prefixed(f"fusion{i}", run_detection_cell(sub, cache, device).stages)
        member_posts.append(cache.path("postprocess", stage_keys(sub)["postprocess"]))
    if "nms" in keys:  # WBF of the NMS outputs, cached as this cell's postprocess output
        stages.append(replace(run_stage(cache, "postprocess", keys["postprocess"], meta, fuse), name="fusion"))
    stages.append(run_stage(cache, "evaluate", keys["evaluate"], meta, evaluate))
    done = cache.path("evaluate", keys["evaluate"])
    metrics = json.loads((done / "metrics.json").read_text())
    curves = json.loads((done / "curves.json").read_text()) if (done / "curves.json").exists() else {}
    return CellOutcome(metrics, keys, stages, curves, load_bootstrap(done))
