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

from crowdbench.bench.config import PoseTestConfig, RunConfig
from crowdbench.bench.device import cell_numerics
from crowdbench.bench.digest import keyed_dump
from crowdbench.bench.metrics.registry import metric_for
from crowdbench.bench.stages.base import bootstrap_slice, save_bootstrap
from crowdbench.bench.stages.data import DATA_MODULES, data_slice, load_frames
from crowdbench.bench.stages.detection import detector_cell
from crowdbench.bench.stages.pipeline import Artefact, Context, Stage, Task, Upstream, link, register
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
EVALUATE_MODULES = (THIS, "crowdbench.bench.metrics.registry", *DATA_MODULES)
"""The metrics' code enters the evaluate key through the registry's import closure."""


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


def _validator(run: RunConfig, frames: list[Frame], schema: KeypointSchema, device: str):
    """The per-epoch validation of a training run: a fixed protocol (ground-truth boxes, flip test, one scale), so
    that test-time options of a row never change its train key and rows differing only at test time share the
    model."""
    # deferred: start-up (torch)
    from crowdbench.bench.stages.pose_training import coco_results, people, predict_poses

    protocol = run.pose.model_copy(deep=True)
    protocol.test = PoseTestConfig(flip_test=True, multiscale=(1.0,), batch_size=run.pose.test.batch_size)
    val_people = people(frames, 0)

    def validate(model) -> float:
        poses = predict_poses(model, protocol, frames, val_people, schema, device, progress=False)
        results = coco_results(frames, val_people, poses, protocol.test.kp_score_thr)
        metric = metric_for("pose", run.evaluate.metric)
        return metric.evaluate(frames, results, schema=schema).values[metric.keys[0]]  # AP, or w-AP for hie_wap

    return validate


# ---------------------------------------------------------------------------------------------------- the stages


def _train(ctx: Context, out: Path, scratch: Path) -> None:
    """Train the pose model; S3's second phase (its one input: phase 1) restarts S1 from phase 1's model with
    occlusion from epoch 0."""
    # deferred: start-up (torch)
    from crowdbench.bench.stages.pose_training import train_pose

    run, init, prior = ctx.cfg, None, None
    if ctx.inputs:
        phase1 = ctx.inputs[0]
        run = run.model_copy(deep=True)
        run.pose.train.schedule = "s1"
        init, prior = phase1 / "model.pt", json.loads((phase1 / "history.json").read_text())
    schema = schema_of(run)
    frames = load_frames(run.data, run.data.train_split, schema.name)
    validate = _validator(run, ctx.val_frames(), schema, ctx.device)
    info = train_pose(run, frames, schema, ctx.device, out, scratch, validate, init=init, prior=prior)
    (out / "train.json").write_text(json.dumps(info))


def _detector_people(ctx: Context, frames: list[Frame]) -> list[Any]:
    """Person boxes from the detector cell: its NMS output, or with GBG (paper 003 section 3.1.1) its raw pre-NMS
    boxes grouped around the confident ones."""
    # deferred: start-up (torch)
    from crowdbench.bench.stages.detector_training import load_per_frame
    from crowdbench.bench.stages.pose_training import Person

    t = ctx.cfg.pose.test
    _, per_frame = load_per_frame(ctx.path("detector") / ("raw.npz" if t.gbg else "detections.npz"))
    if len(per_frame) != len(frames):
        raise ValueError(f"detector gave boxes for {len(per_frame)} frames, the pose split has {len(frames)}")
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
    return found


def _test_people(ctx: Context) -> list[Any]:
    """The person boxes poses are estimated in: ground truth, a COCO results file or the detector cell's."""
    # deferred: start-up (torch)
    from crowdbench.bench.stages.pose_training import detected_people, people

    if "people" not in ctx.memo:
        t, frames = ctx.cfg.pose.test, ctx.val_frames()
        if t.boxes == "detections":
            assert t.detections is not None  # check_pose
            ctx.memo["people"] = detected_people(frames, Path(t.detections), t.det_score_thr)
        elif t.boxes == "detector":
            ctx.memo["people"] = _detector_people(ctx, frames)
        else:
            ctx.memo["people"] = people(frames, 0)
    return ctx.memo["people"]


def load_models(ctx: Context) -> tuple[Any, list[Any]]:
    """The trained pose model of the cell (its ``train`` stage) and its ensemble members, on the device."""
    # deferred: start-up (torch)
    from crowdbench.bench.stages.pose_training import build_model
    from crowdbench.methods.pose.models import load_pose_weights

    cfg, k = ctx.cfg, schema_of(ctx.cfg).num_keypoints

    def load(pose: Any, stage: str) -> Any:
        model = build_model(pose, k)
        load_pose_weights(model, ctx.path(stage) / "model.pt")
        return model.to(ctx.device)

    members = [load(member_config(cfg, i).pose, f"ensemble{i}") for i in range(len(cfg.pose.test.ensemble))]
    return load(cfg.pose, "train"), members


def _infer(ctx: Context, out: Path, _scratch: Path) -> None:
    # deferred: start-up (torch)
    from crowdbench.bench.stages.pose_training import coco_results, predict_poses

    cfg, frames, test_people = ctx.cfg, ctx.val_frames(), _test_people(ctx)
    model, ensemble = load_models(ctx)
    poses = predict_poses(model, cfg.pose, frames, test_people, schema_of(cfg), ctx.device, ensemble=ensemble)
    np.savez_compressed(out / "poses.npz", poses=poses.astype(np.float32))
    (out / "results.json").write_text(json.dumps(coco_results(frames, test_people, poses, cfg.pose.test.kp_score_thr)))


def _per_image(
    results: list[dict], boxes: np.ndarray, keep: list[int]
) -> Iterator[tuple[list[int], np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """``(result indices, boxes, poses, scores, box areas)`` of each image among ``keep``."""
    by_image: dict[int, list[int]] = {}
    for i in keep:
        by_image.setdefault(results[i]["image_id"], []).append(i)
    for idx in by_image.values():
        b = boxes[idx]
        poses = np.array([results[i]["keypoints"] for i in idx]).reshape(len(idx), -1, 3)
        scores = np.array([results[i]["score"] for i in idx])
        yield idx, b, poses, scores, (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def _postprocess(ctx: Context, out: Path, _scratch: Path) -> None:
    """Pose NMS, OKS-NMS and soft-OKS-NMS as configured. Besides ``results.json`` it writes ``people.json``: the
    frame, box and box score of each kept result (what pose tracking matches frame to frame)."""
    results = json.loads((ctx.path("infer") / "results.json").read_text())
    test_people = _test_people(ctx)
    boxes = np.array([p.box for p in test_people]).reshape(-1, 4)
    t, sigmas = ctx.cfg.pose.test, np.asarray(schema_of(ctx.cfg).sigmas)
    keep = list(range(len(results)))
    if t.pose_nms != "none":  # paper 003: box IoU 0.6 and OKS 0.75 after pose (rule: methods.md section 5)
        rule = {"iou_thr": t.pose_nms_iou, "oks_thr": t.pose_nms_oks, "rule": t.pose_nms}
        keep = sorted(
            idx[k]
            for idx, b, p, sc, a in _per_image(results, boxes, keep)
            for k in pose_nms(b, p, sc, a, sigmas, **rule)
        )
    if t.oks_nms is not None:  # HRNet / mmpose OKS-NMS (methods.md section 8)
        keep = sorted(
            idx[k]
            for idx, _, p, sc, a in _per_image(results, boxes, keep)
            for k in oks_nms(p, sc, a, sigmas, t.oks_nms)
        )
    if t.soft_oks_nms is not None:  # mmpose soft-OKS-NMS: rescore overlapping poses, keep max_dets per image
        kept_all = []
        for idx, _, p, sc, a in _per_image(results, boxes, keep):
            kept, new_scores = soft_oks_nms(
                p, sc, a, sigmas, t.soft_oks_nms, method=t.soft_oks_method, max_dets=t.soft_oks_max_dets
            )
            for k, score in zip(kept, new_scores, strict=True):
                results[idx[int(k)]] = {**results[idx[int(k)]], "score": float(score)}
                kept_all.append(idx[int(k)])
        keep = sorted(kept_all)
    (out / "results.json").write_text(json.dumps([results[i] for i in keep]))
    kept_people = [test_people[i] for i in keep]
    rows = [{"frame": q.frame, "box": [float(v) for v in q.box], "score": float(q.score)} for q in kept_people]
    (out / "people.json").write_text(json.dumps(rows))


def _evaluate(ctx: Context, out: Path, _scratch: Path) -> None:
    cfg = ctx.cfg
    results = json.loads((ctx.path("postprocess") / "results.json").read_text())
    e = cfg.evaluate
    scored = metric_for("pose", e.metric).evaluate(
        ctx.val_frames(), results, schema=schema_of(cfg), bootstrap=e.bootstrap > 0
    )
    save_bootstrap(out, scored.resampler, e.bootstrap, e.bootstrap_seed)
    (out / "metrics.json").write_text(json.dumps(scored.values))


def model_stages(cfg: RunConfig) -> list[Stage]:
    """The trained models a pose cell's inference reads: S3's first phase (``pretrain``, the same cell under S1
    without occlusion), the cell's ``train`` and each heatmap-fusion member's (paper 000 sections 3.1, 4.3)."""
    dump = keyed_dump(cfg.pose, "pose")  # weights, detections, ensemble weights: by content
    schema = schema_of(cfg).name
    train = {
        "data": data_slice(cfg.data, cfg.data.train_split, schema),
        "val": data_slice(cfg.data, cfg.data.val_split, schema) if cfg.pose.train.eval_every else None,
        "model": dump["model"],
        "train": dump["train"],
        "seed": cfg.seed,
        "numerics": cell_numerics(cfg),
    }
    first = _pretrain_config(cfg)
    graph = [link("pretrain", Upstream("pose", first, "train"))] if first is not None else []
    graph.append(Stage("train", train, TRAIN_MODULES, _train, ("pretrain",) if first is not None else ()))
    for i in range(len(cfg.pose.test.ensemble)):
        graph.append(link(f"ensemble{i}", Upstream("pose", member_config(cfg, i), "train", f"ensemble{i}")))
    return graph


def stages(cfg: RunConfig) -> list[Stage]:
    """[``detector``] -> [``pretrain``] -> ``train`` [-> ``ensemble<i>``] -> ``infer`` -> ``postprocess`` ->
    ``evaluate``."""
    t = cfg.pose.test
    graph = []
    if t.boxes == "detector":  # the detector cell's boxes (GBG groups its raw ones)
        det = Upstream("detection", detector_config(cfg), "infer" if t.gbg else "postprocess", "detector")
        graph.append(link("detector", det))
    models = model_stages(cfg)
    graph += models
    test_dump = keyed_dump(cfg.pose, "pose")["test"]  # detections, ensemble weights: by content
    val = data_slice(cfg.data, cfg.data.val_split, schema_of(cfg).name)
    test = {k: v for k, v in test_dump.items() if k not in POST_KEYS}  # pose NMS options: postprocess only
    boxes = ("detector",) if t.boxes == "detector" else ()
    inputs = ("train", *(s.name for s in models if s.name.startswith("ensemble")), *boxes)
    post = {k: test_dump[k] for k in POST_KEYS}
    evaluate = {"data": val, "metric": cfg.evaluate.metric, "bootstrap": bootstrap_slice(cfg)}
    return [
        *graph,
        Stage("infer", {"data": val, "test": test}, INFER_MODULES, _infer, inputs),
        Stage("postprocess", post, POSTPROCESS_MODULES, _postprocess, ("infer",)),
        Stage("evaluate", evaluate, EVALUATE_MODULES, _evaluate, ("postprocess",)),
    ]


def check_pose(cfg: RunConfig) -> None:
    """One-line errors for settings that cannot work together: ensemble members, a missing detections file."""
    # deferred: start-up (torch)
    from crowdbench.bench.stages.pose_training import check_ensemble

    check_ensemble(cfg.pose)
    if cfg.pose.test.boxes == "detections" and cfg.pose.test.detections is None:
        raise ValueError("pose.test.boxes=detections needs --set pose.test.detections=FILE (COCO results JSON)")


def training_curves(ctx: Context) -> dict[str, list[dict[str, Any]]]:
    """The per-epoch training history of the cell's ``train`` stage (the report's training curves)."""
    return {"train": json.loads((ctx.path("train") / "history.json").read_text())}


def results_by_frame(path: Path, frames: list[Frame]) -> list[list[dict]]:
    """A COCO keypoint results file per validation frame."""
    # deferred: start-up (torch)
    from crowdbench.bench.stages.pose_training import image_ids

    results = json.loads(path.read_text())
    index = {image_id: f for f, image_id in enumerate(image_ids(frames))}
    out: list[list[dict]] = [[] for _ in frames]
    for r in results:
        if r["image_id"] in index:
            out[index[r["image_id"]]].append(r)
    return out


TASK = register(
    Task(
        "pose",
        stages,
        metric_keys,
        artefacts={"poses": Artefact("postprocess", "results.json", results_by_frame)},
        figure="poses",
        schema=schema_of,
        check=check_pose,
        curves=training_curves,
    )
)
