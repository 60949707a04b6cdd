"""The detection pipeline: ``train -> infer (raw, pre-NMS) -> postprocess (NMS variant) -> evaluate``.

Keys follow DESIGN.md: a row that differs from another only in post-processing (``crowddet.set_nms``) shares
the ``train`` and ``infer`` keys and so reuses that row's model and raw predictions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from crowdbench.bench.config import RunConfig, set_dotted
from crowdbench.bench.device import cell_numerics
from crowdbench.bench.digest import keyed_dump
from crowdbench.bench.metrics.registry import metric_for
from crowdbench.bench.stages.base import save_bootstrap
from crowdbench.bench.stages.data import DATA_MODULES, data_slice, load_frames
from crowdbench.bench.stages.pipeline import Artefact, Context, DataParallel, Stage, Task, Upstream, register
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


def _records(frames: list[dict[str, Any]], dets: list[dict[str, Any]]) -> list[DetectionRecord]:
    return [
        DetectionRecord(f["id"], d["boxes"], d["scores"], f["width"], f["height"])
        for f, d in zip(frames, dets, strict=True)
    ]


def _train(ctx: Context, out: Path, scratch: Path) -> None:
    """Train the detector (its one input, when present: the Tf-KD self teacher's ``train`` output)."""
    # deferred: start-up (torch)
    from crowdbench.bench.stages.detector_training import train_detector

    cfg = ctx.cfg
    teacher = ctx.inputs[0] / "model.pt" if ctx.inputs else None
    info = train_detector(cfg, load_frames(cfg.data, cfg.data.train_split), ctx.device, out, scratch, teacher=teacher)
    (out / "train.json").write_text(json.dumps(info))


def _infer(ctx: Context, out: Path, _scratch: Path) -> None:
    # deferred: start-up (torch)
    from crowdbench.bench.stages.detector_training import infer_raw

    info = infer_raw(ctx.cfg, ctx.path("train") / "model.pt", ctx.val_frames(), ctx.device, out)
    (out / "infer.json").write_text(json.dumps(info))


def _save_detections(out: Path, frames: list[dict[str, Any]], dets: list[dict[str, Any]]) -> None:
    # deferred: start-up (torch)
    from crowdbench.bench.stages.detector_training import save_per_frame

    save_per_frame(out / "detections.npz", dets)
    (out / "frames.json").write_text(json.dumps(frames))
    write_detections(_records(frames, dets), out / "detections.json")


def _nms(ctx: Context, out: Path, _scratch: Path) -> None:
    # deferred: start-up (torch)
    from crowdbench.bench.stages.detector_training import load_per_frame
    from crowdbench.methods.detection.crowddet import apply_nms

    frames, raw = load_per_frame(ctx.path("infer") / "raw.npz")
    p = ctx.cfg.postprocess
    dets = [{k: v.numpy() for k, v in apply_nms(r, p.nms, p.nms_iou, p.score_thresh, p.max_dets).items()} for r in raw]
    _save_detections(out, frames, dets)


def _fuse(ctx: Context, out: Path, _scratch: Path) -> None:
    """Weighted box fusion of this cell's NMS boxes (first input) and each member's (the other inputs)."""
    # deferred: start-up (torch)
    from crowdbench.bench.stages.detector_training import load_per_frame

    own, *members = ctx.inputs
    frames, dets = load_per_frame(own / "detections.npz")
    others = [load_per_frame(p / "detections.npz")[1] for p in members]
    p = ctx.cfg.postprocess
    weights = [1.0, *(m.weight for m in p.fusion)]
    fused = []
    for i, mine in enumerate(dets):
        sets = [mine, *(o[i] for o in others)]
        boxes, scores = weighted_box_fusion(
            [d["boxes"] for d in sets], [d["scores"] for d in sets], weights, p.fusion_iou, p.fusion_skip
        )
        fused.append({"boxes": boxes, "scores": scores, "groups": np.arange(len(scores), dtype=np.int64)})
    _save_detections(out, frames, fused)


def _evaluate(ctx: Context, out: Path, _scratch: Path) -> None:
    # deferred: start-up (torch)
    from crowdbench.bench.stages.detector_training import load_per_frame

    cfg = ctx.cfg
    frames, dets = load_per_frame(ctx.path("postprocess") / "detections.npz")
    e = cfg.evaluate
    scored = metric_for("detection", e.metric).evaluate(
        ctx.val_frames(), _records(frames, dets), bootstrap=e.bootstrap > 0
    )
    save_bootstrap(out, scored.resampler, e.bootstrap, e.bootstrap_seed)
    (out / "metrics.json").write_text(json.dumps(scored.values))
    (out / "curves.json").write_text(json.dumps(scored.curves))


def stages(cfg: RunConfig) -> list[Stage]:
    """``train`` (after the Tf-KD self teacher's, when ``kd = self``) -> ``infer`` -> ``postprocess`` (NMS; with
    model fusion this NMS is keyed ``nms`` and ``postprocess`` is the WBF of it and each member cell's) ->
    ``evaluate``."""
    # deferred: start-up (torch)
    from crowdbench.methods.detection.kd import teacher_config

    dump = cfg.model_dump(mode="json")
    dump["model"] = keyed_dump(cfg.model, "model")  # weights, kd_teacher: by content
    teacher = teacher_config(cfg)  # Tf-KD self: the baseline cell's trained model is an input of this training
    train = {
        "data": data_slice(cfg.data, cfg.data.train_split),
        "model": dump["model"],
        "train": dump["train"],
        "seed": cfg.seed,
        "numerics": cell_numerics(cfg),
    }
    val = data_slice(cfg.data, cfg.data.val_split)
    p = cfg.postprocess
    nms = "nms" if p.fusion else "postprocess"
    graph = [
        Stage(
            "train",
            train,
            TRAIN_MODULES,
            _train,
            (Upstream("detection", teacher, "train", "kd_teacher"),) if teacher is not None else (),
            data_parallel=True,
        ),
        Stage("infer", {"data": val, "infer": dump["infer"]}, TRAIN_MODULES, _infer, ("train",)),
        Stage(
            nms,
            {k: v for k, v in dump["postprocess"].items() if not k.startswith("fusion")},
            POSTPROCESS_MODULES,
            _nms,
            ("infer",),
            folder="postprocess",
        ),
    ]
    if p.fusion:  # model fusion: each member is a detection cell of its own
        members = [
            Upstream("detection", member_config(cfg, m), "postprocess", f"fusion{i}") for i, m in enumerate(p.fusion, 1)
        ]
        fusion = {"weights": [1.0, *(m.weight for m in p.fusion)], "iou": p.fusion_iou, "skip": p.fusion_skip}
        graph.append(Stage("postprocess", {"fusion": fusion}, FUSION_MODULES, _fuse, ("nms", *members), label="fusion"))
    evaluate = {"data": val, **dump["evaluate"]}
    graph.append(Stage("evaluate", evaluate, EVALUATE_MODULES, _evaluate, ("postprocess",)))
    return graph


def _curves(ctx: Context) -> dict[str, list[dict[str, Any]]]:
    path = ctx.path("evaluate") / "curves.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _per_frame_detections(path: Path, _frames: list[Frame]) -> list[dict[str, np.ndarray]]:
    # deferred: start-up (torch)
    from crowdbench.bench.stages.detector_training import load_per_frame

    return load_per_frame(path)[1]


TASK = register(
    Task(
        "detection",
        stages,
        metric_keys,
        artefacts={"detections": Artefact("postprocess", "detections.npz", _per_frame_detections)},
        figure="detections",
        curves=_curves,
        data_parallel=DataParallel(lambda c: (c.train.batch_size, c.train.lr, c.model.weights is None)),
    )
)
