"""Profiles: ``smoke`` (synthetic crowds, tiny model, CPU minutes) and ``full`` (the paper's recipe).

Same code path, different config: a profile is a set of dotted overrides on :class:`RunConfig` defaults. ``full`` is
the reviewed recipe of the task family (``results/recipes/<task>.yaml``, each setting with its source; table-specific
settings come from the spec's ``recipe:`` block in ``bench/matrix.py``) plus the infrastructure settings below, which
never change a number.
"""

from __future__ import annotations

from typing import Any

from crowdbench.bench.config import RunConfig, set_dotted
from crowdbench.bench.recipes import load_recipe

PROFILES = ("smoke", "full")

# Smoke detection: ResNet-18 FPN from scratch on 160 x 160 synthetic crowds. Narrow FPN and box head and fewer
# proposals keep one SGD step near 0.3 s on 2 CPU cores (figures in docs/architecture.md).
_SMOKE_DETECTION: dict[str, Any] = {
    "data.source": "synthetic",
    "data.preset": "small",
    "model.backbone": "resnet18",
    "model.fpn_channels": 64,
    "model.representation_size": 256,
    "model.min_size": 160,
    "model.max_size": 160,
    "model.anchor_sizes": (16, 32, 64, 128, 256),
    "model.rpn_pre_nms_top_n_train": 1000,
    "model.rpn_pre_nms_top_n_test": 500,
    "model.rpn_post_nms_top_n_train": 500,
    "model.rpn_post_nms_top_n_test": 300,
    "model.box_batch_size_per_image": 128,
    "model.detections_per_img": 300,
    "train.iterations": 300,
    "train.batch_size": 4,
    "train.lr": 0.02,
    "train.warmup_iters": 50,
    "train.checkpoint_every": 50,
    "infer.batch_size": 8,
}

# Smoke pose: small networks (plugins pick the smoke size of their model, methods/pose/plugins.py: HRNet-W18-small
# for HRNet-W32 and the same 1.5x wider for W48, ResNet-18 / 34 / "48" SimpleBaselines for ResNet-50 / 101 / 152,
# so wider stays wider and deeper stays deeper) on 48 x 64 crops
# of the synthetic crowds' ground-truth boxes; every schedule's epochs x 0.05 (S1: 210 -> 10), 1,024 crops per
# epoch, so E1-E5 keep their shape and train in minutes on 2 CPU cores.
_SMOKE_POSE: dict[str, Any] = {
    "data.source": "synthetic",
    "data.preset": "small",
    "evaluate.metric": "coco_keypoints",
    "pose.model.arch": "simplebaseline",
    "pose.model.backbone": "resnet18",
    "pose.model.deconv_channels": 64,
    "pose.model.hrnet_width": 18,
    "pose.model.input_size": (48, 64),
    "pose.train.sigma": 1.5,  # 16 x 12 heatmaps: sigma 1.5 learned faster than HRNet's 2 (2.5 vs 4.9 % AP, E1)
    "pose.train.epoch_scale": 0.05,
    "pose.train.samples_per_epoch": 1024,
    "pose.train.batch_size": 32,
    "pose.train.lr": 2e-3,
    # validation AP (ground-truth boxes, flip test) every 5 epochs, not every epoch: it changes no weight and was a
    # quarter of a smoke pose training (3.3 s per validation vs 10 s per epoch at 48 x 64, 2 CPU cores)
    "pose.train.eval_every": 5,
    "pose.test.batch_size": 128,
}

# Smoke tracking: the smoke detector (hie-pose Table 3's baseline, shared) on the synthetic crowd videos, a small
# ReID CNN on 64 x 32 crops trained on the training videos' identities, DeepSORT replayed on cached embeddings.
_SMOKE_TRACKING: dict[str, Any] = {
    "data.source": "synthetic",
    "data.preset": "small",
    "evaluate.metric": "mot",
    "tracking.reid.arch": "small",
    "tracking.reid.input_hw": (64, 32),
    "tracking.reid.iterations": 400,
    "tracking.reid.ids_per_batch": 8,
    "tracking.reid.lr": 2e-3,
}

# Smoke pose tracking: the smoke pose networks trained on the synthetic videos' PoseTrack-17 joints, on the smoke
# detector's boxes, tracked by the smoke DeepSORT / ReID above.
_SMOKE_POSE_TRACKING: dict[str, Any] = {
    **_SMOKE_POSE,
    **_SMOKE_TRACKING,
    "evaluate.metric": "posetrack",
    "pose.test.boxes": "detector",
}

# Smoke pose regression: a ResNet-18 trunk, 64-channel FPN and two-conv towers on the 160 x 160 synthetic crowds at
# their own size (no resize or crop). People are 40-85 px tall there, so the FCOS level bounds are halved (P3 up to 32
# px from a location to its pseudo box's far side, P4 up to 64, ...). LR 0.01 from scratch; every epoch count x 0.5.
_SMOKE_POSE_REGRESSION: dict[str, Any] = {
    "data.source": "synthetic",
    "data.preset": "small",
    "evaluate.metric": "coco_keypoints",
    "regression.model.backbone": "resnet18",
    "regression.model.fpn_channels": 64,
    "regression.model.tower_convs": 2,
    "regression.model.gn_groups": 16,
    "regression.model.heatmap_channels": 32,
    "regression.model.size_bounds": (32.0, 64.0, 128.0, 256.0),
    "regression.train.epoch_scale": 0.5,
    "regression.train.lr": 0.01,
    "regression.train.warmup_iters": 50,
    "regression.train.min_size": 0,
    "regression.train.crop": None,
    "regression.train.checkpoint_every": 50,
    "regression.test.batch_size": 16,
}

# Full infrastructure: image-loading workers (capped at the machine's CPUs when the loader starts, bench/device.py).
_FULL_INFRA: dict[str, Any] = {
    "train.num_workers": 4,
    "pose.train.num_workers": 4,
    "regression.train.num_workers": 4,
}

_SMOKE_OVERRIDES: dict[str, dict[str, Any]] = {
    "detection": _SMOKE_DETECTION,
    "pose": _SMOKE_POSE,
    "pose_regression": _SMOKE_POSE_REGRESSION,
    "tracking": _SMOKE_TRACKING,
    "pose_tracking": _SMOKE_POSE_TRACKING,
}


def base_config(profile: str, task: str) -> RunConfig:
    """Defaults of ``task`` under ``profile``; an unknown profile lists the valid ones."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; profiles: {', '.join(PROFILES)}")
    if task not in _SMOKE_OVERRIDES:
        raise ValueError(f"task {task!r} has no {profile!r} profile yet")
    if profile == "smoke":
        overrides = _SMOKE_OVERRIDES[task]
    else:
        overrides = {**{k: s.value for k, s in load_recipe(task).settings.items()}, **_FULL_INFRA}
    cfg = RunConfig(task=task, profile=profile)  # type: ignore[arg-type]
    for key, value in overrides.items():
        set_dotted(cfg, key, value)
    return cfg
