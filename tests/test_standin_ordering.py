"""Smoke stand-ins keep the ordering their full models have within each ablated family (issue 22 part 2).

Registry style: every pose-network, pose-regression trunk and detector backbone plugin is applied to the smoke and
the full base config; the network each names is built (the full one on the ``meta`` device, no weights) and its
parameters counted. Within a family (HRNet W32 < W48, ResNet-50 < 101 < 152) the stand-ins must be ordered as the
full models are, and strictly, so two rows never train the same network.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from crowdbench.bench.profiles import base_config
from crowdbench.bench.registry import get_plugin
from crowdbench.methods.detection.backbones import build_trunk
from crowdbench.methods.pose.models import build_pose_model
from crowdbench.methods.pose.regression.model import Trunk

FAMILIES: dict[str, tuple[str, list[str]]] = {  # family: (task, plugins in the full models' order)
    "pose HRNet width": ("pose", ["pose_model.hrnet_w32", "pose_model.hrnet_w48"]),
    "pose ResNet depth": (
        "pose",
        ["pose_model.simplebaseline_r50", "pose_model.simplebaseline_r101", "pose_model.simplebaseline_r152"],
    ),
    "regression ResNet depth": ("pose_regression", ["pose_regression.resnet50", "pose_regression.resnet101"]),
    "detector ResNet depth": ("detection", ["backbone.resnet50", "backbone.resnet101", "backbone.resnet152"]),
}


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def network_params(plugin: str, task: str, profile: str) -> int:
    """Parameters of the network ``plugin`` selects under ``profile`` (full ones built on the meta device)."""
    run = base_config(profile, task)
    get_plugin(plugin).apply(run)
    with torch.device("meta" if profile == "full" else "cpu"):
        if task == "pose":
            m = run.pose.model
            net = build_pose_model(m.arch, num_joints=17, backbone=m.backbone, hrnet_width=m.hrnet_width, fpn=m.fpn)
            return _count(net.features)
        if task == "pose_regression":
            return _count(Trunk(run.regression.model.backbone))
        return _count(build_trunk(run.model.backbone))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_standins_keep_the_full_models_order(family: str) -> None:
    task, plugins = FAMILIES[family]
    full = [network_params(p, task, "full") for p in plugins]
    smoke = [network_params(p, task, "smoke") for p in plugins]
    assert full == sorted(full) and len(set(full)) == len(full), (family, full)
    assert all(a < b for a, b in itertools.pairwise(smoke)), (family, dict(zip(plugins, smoke, strict=True)))
    assert all(s < f for s, f in zip(smoke, full, strict=True)), (family, smoke, full)
