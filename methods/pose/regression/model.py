"""The single-stage pose regression network of paper 002 (section 4, Fig. 2; SMPR head, methods.md section 4).

Trunk (torchvision ResNet or timm HRNet) -> FPN P3-P7 (torchvision ``FeaturePyramidNetwork`` with P6/P7 from P5,
as FCOS; SMPR itself uses a PAFPN) -> one head shared by every level:

* two towers (classification, regression), each ``tower_convs`` x (3x3 conv, GroupNorm, ReLU);
* **initial pose**: 3x3 conv on the regression tower -> 2K offsets in units of the level's stride, times a learnable
  per-level scale; joint j of the pose at location p is ``p + stride * offset_j`` (eq. 3);
* **feature alignment** (``feature_align``; eqs. 6-7): a 1x1 conv maps the *detached* initial pose to the sampling
  offsets of a 3x3 deformable convolution (``torchvision.ops.deform_conv2d``, ``deform_groups`` offset groups) on each
  tower (on CPU the same function through ``grid_sample``, :func:`deform_conv2d_sampled`), so the second stage reads
  features where the pose's joints are; the **refined pose** is the initial pose
  plus a residual (3x3 conv on the aligned regression feature, second per-level scale). Without alignment the
  network's pose is the initial one, and the classification reads the classification tower directly;
* classification (person centre, focal loss; bias -log(99), prior 0.01), **PSM** pose score and FCOS **centre-ness**
  (3x3 convs on the (aligned) regression feature), each one channel;
* **heatmap auxiliary branch** (``heatmap_aux``, training only): on P3, 2 x (3x3 conv, GN, ReLU) -> K keypoint-class
  maps.

``forward`` returns every location of every level flattened in level order (``locations``, ``strides``, ``levels``
describe them), so targets and decoding are level-agnostic. Init as SMPR: towers N(0, 0.01), alignment-offset conv
N(0, 0.1) (offsets of poses measured in strides), deformable convs N(0, 0.01).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import DeformConv2d, FeaturePyramidNetwork, FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from crowdbench.bench.config import RegressionModelConfig
from crowdbench.methods.batchnorm import replace_batchnorm
from crowdbench.methods.pose.models import (
    RESNETS,
    ResNetBody,
    _cropping_fuse_forward,
    _hrnet_cfg,
    load_backbone_weights,
)

HRNETS = {"hrnet_w18_small": 18, "hrnet_w32": 32, "hrnet_w48": 48, "hrnet_tiny": 8}
"""HRNet trunks by name -> width of ``methods.pose.models._hrnet_cfg``."""
FPN_STRIDES = (8, 16, 32, 64, 128)


class Trunk(nn.Module):
    """C3, C4, C5 (strides 8, 16, 32) of a torchvision ResNet or of timm HRNet's stage-4 branches 2-4."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        if name in RESNETS:
            self.body: nn.Module = ResNetBody(name)
            self.out_channels = list(self.body.out_channels[1:])
        elif name in HRNETS:
            from timm.models.hrnet import HighResolutionModule, HighResolutionNet

            self.body = HighResolutionNet(_hrnet_cfg(HRNETS[name]), head="")
            for m in self.body.modules():
                if isinstance(m, HighResolutionModule):
                    m.forward = partial(_cropping_fuse_forward, m)
            self.out_channels = list(self.body.stage4_cfg["num_channels"][1:])
        else:
            raise ValueError(f"unknown pose-regression backbone {name!r}; valid: {[*RESNETS, *HRNETS]}")

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = self.body(x) if self.name in RESNETS else self.body.forward_features(x)
        return list(feats[1:])


def load_trunk_weights(trunk: Trunk, path: str | Path, setting: str = "regression.model.weights") -> None:
    """Load local ImageNet weights into the trunk's body (``methods.pose.models.load_backbone_weights``)."""
    load_backbone_weights(trunk.body, path, trunk.name, setting)


def freeze_batchnorm(module: nn.Module) -> None:
    """Replace every ``BatchNorm2d`` below ``module`` by torchvision's ``FrozenBatchNorm2d`` with its values."""
    replace_batchnorm(module, _frozen)


def _frozen(norm: nn.BatchNorm2d) -> FrozenBatchNorm2d:
    frozen = FrozenBatchNorm2d(norm.num_features, eps=norm.eps)
    for key in ("weight", "bias", "running_mean", "running_var"):
        getattr(frozen, key).copy_(getattr(norm, key).detach())
    return frozen


def _tower(channels: int, n: int, groups: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(n):
        conv = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.normal_(conv.weight, std=0.01)
        nn.init.zeros_(conv.bias)
        layers += [conv, nn.GroupNorm(groups, channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def _conv(cin: int, cout: int, bias: float = 0.0) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 3, padding=1)
    nn.init.normal_(conv.weight, std=0.01)
    nn.init.constant_(conv.bias, bias)
    return conv


def deform_conv2d_sampled(x: Tensor, offset: Tensor, weight: Tensor, bias: Tensor | None, padding: int = 1) -> Tensor:
    """``torchvision.ops.deform_conv2d`` (DCNv1, stride 1, no mask) as bilinear ``grid_sample`` + a matrix product.

    The same function (``tests/test_pose_regression.py`` checks values and gradients against torchvision to 1e-12):
    sample ``x`` at ``p + k + offset_k`` for every kernel tap ``k`` and offset group (zero outside the image), then
    contract with the kernel. torchvision's CPU kernel is about 8x slower in forward + backward on the smoke
    feature maps (``benchmarks/pose_regression.py`` times both), so CPU runs use this one (``deform_impl``)."""
    b, c, h, w = x.shape
    kh, kw = weight.shape[-2:]
    groups = offset.shape[1] // (2 * kh * kw)
    ky, kx = torch.meshgrid(
        torch.arange(kh, dtype=x.dtype, device=x.device),
        torch.arange(kw, dtype=x.dtype, device=x.device),
        indexing="ij",
    )
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=x.dtype, device=x.device), torch.arange(w, dtype=x.dtype, device=x.device), indexing="ij"
    )
    off = offset.view(b, groups, kh * kw, 2, h, w)  # torchvision's layout: (dy, dx) per group and tap
    py = ys - padding + ky.reshape(-1, 1, 1) + off[:, :, :, 0]
    px = xs - padding + kx.reshape(-1, 1, 1) + off[:, :, :, 1]
    grid = torch.stack([(2 * px + 1) / w - 1, (2 * py + 1) / h - 1], -1).view(b * groups, kh * kw * h, w, 2)
    sampled = F.grid_sample(x.reshape(b * groups, c // groups, h, w), grid, align_corners=False, padding_mode="zeros")
    out = torch.einsum("bckhw,ock->bohw", sampled.view(b, c, kh * kw, h, w), weight.reshape(len(weight), c, kh * kw))
    return out if bias is None else out + bias.view(1, -1, 1, 1)


class AlignedFeatures(nn.Module):
    """Feature alignment (paper 002 eqs. 6-7): a deformable 3x3 conv whose sampling offsets are a learned 1x1 map of
    the detached initial pose (2K channels, stride units)."""

    def __init__(self, channels: int, num_joints: int, groups: int, impl: str = "auto") -> None:
        super().__init__()
        if channels % groups:
            raise ValueError(f"fpn_channels {channels} is not divisible by deform_groups {groups}")
        self.impl = impl
        self.offsets = nn.Conv2d(2 * num_joints, groups * 2 * 9, 1, bias=False)
        nn.init.normal_(self.offsets.weight, std=0.1)
        self.conv = DeformConv2d(channels, channels, 3, padding=1)
        nn.init.normal_(self.conv.weight, std=0.01)
        nn.init.zeros_(self.conv.bias)  # type: ignore[arg-type]

    def forward(self, feature: Tensor, pose: Tensor) -> Tensor:
        offsets = self.offsets(pose)
        impl = self.impl if self.impl != "auto" else ("torchvision" if feature.is_cuda else "grid_sample")
        if impl == "grid_sample":
            return torch.relu(deform_conv2d_sampled(feature, offsets, self.conv.weight, self.conv.bias))
        return torch.relu(self.conv(feature, offsets))


class PoseRegressionNet(nn.Module):
    """Images ``[B, 3, H, W]`` (normalised) -> dense poses (see the module docstring)."""

    def __init__(self, cfg: RegressionModelConfig, num_joints: int) -> None:
        super().__init__()
        if tuple(cfg.strides) != FPN_STRIDES[: len(cfg.strides)] or len(cfg.strides) < 3:
            raise ValueError(f"model.strides must be a prefix of {FPN_STRIDES} with at least P3-P5: {cfg.strides}")
        if len(cfg.size_bounds) != len(cfg.strides) - 1:
            raise ValueError(f"model.size_bounds needs {len(cfg.strides) - 1} values for {len(cfg.strides)} levels")
        self.cfg, self.num_joints = cfg, num_joints
        c, k = cfg.fpn_channels, num_joints
        self.trunk = Trunk(cfg.backbone)
        if cfg.weights is not None:
            load_trunk_weights(self.trunk, cfg.weights)
        if cfg.frozen_bn:  # SMPR's caffe-style trunk: BatchNorm statistics and affine fixed
            freeze_batchnorm(self.trunk.body)
        extra = LastLevelP6P7(c, c) if len(cfg.strides) == 5 else None
        if len(cfg.strides) == 4:
            raise ValueError("model.strides: use P3-P5 or P3-P7 (P6 without P7 is not built)")
        self.fpn = FeaturePyramidNetwork(self.trunk.out_channels, c, extra_blocks=extra)
        self.cls_tower = _tower(c, cfg.tower_convs, cfg.gn_groups)
        self.reg_tower = _tower(c, cfg.tower_convs, cfg.gn_groups)
        self.initial = _conv(c, 2 * k)
        self.initial_scales = nn.Parameter(torch.ones(len(cfg.strides)))
        self.align_cls = AlignedFeatures(c, k, cfg.deform_groups, cfg.deform_impl) if cfg.feature_align else None
        self.align_reg = AlignedFeatures(c, k, cfg.deform_groups, cfg.deform_impl) if cfg.feature_align else None
        self.refine = _conv(c, 2 * k) if cfg.feature_align else None
        self.refine_scales = nn.Parameter(torch.ones(len(cfg.strides))) if cfg.feature_align else None
        prior = -math.log((1 - 0.01) / 0.01)
        self.cls = _conv(c, 1, prior)
        self.psm = _conv(c, 1) if cfg.psm else None
        self.centerness = _conv(c, 1) if cfg.centerness else None
        self.heatmap: nn.Sequential | None = None
        if cfg.heatmap_aux:
            h = cfg.heatmap_channels
            first, second = nn.Conv2d(c, h, 3, padding=1), nn.Conv2d(h, h, 3, padding=1)
            for conv in (first, second):
                nn.init.normal_(conv.weight, std=0.01)
                nn.init.zeros_(conv.bias)
            self.heatmap = nn.Sequential(
                first,
                nn.GroupNorm(min(cfg.gn_groups, h), h),
                nn.ReLU(inplace=True),
                second,
                nn.GroupNorm(min(cfg.gn_groups, h), h),
                nn.ReLU(inplace=True),
                _conv(h, k, prior),
            )

    def pyramid(self, images: Tensor) -> list[Tensor]:
        feats = self.trunk(images)
        out = self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats)))
        return list(out.values())[: len(self.cfg.strides)]

    def forward(self, images: Tensor) -> dict[str, Tensor | None]:
        b, k = images.shape[0], self.num_joints
        levels = self.pyramid(images)
        outs: dict[str, list[Tensor]] = {n: [] for n in ("cls", "initial", "refined", "psm", "centerness")}
        points, strides, level_ids = [], [], []
        for i, (feat, stride) in enumerate(zip(levels, self.cfg.strides, strict=True)):
            h, w = feat.shape[-2:]
            cls_feat, reg_feat = self.cls_tower(feat), self.reg_tower(feat)
            initial = self.initial(reg_feat) * self.initial_scales[i]
            if self.refine is not None:
                pose = initial.detach()
                cls_feat = self.align_cls(cls_feat, pose)  # type: ignore[misc]
                reg_feat = self.align_reg(reg_feat, pose)  # type: ignore[misc]
                outs["refined"].append(_flat(pose + self.refine(reg_feat) * self.refine_scales[i], b, 2 * k))  # type: ignore[index]
            outs["initial"].append(_flat(initial, b, 2 * k))
            outs["cls"].append(_flat(self.cls(cls_feat), b, 1))
            if self.psm is not None:
                outs["psm"].append(_flat(self.psm(reg_feat), b, 1))
            if self.centerness is not None:
                outs["centerness"].append(_flat(self.centerness(reg_feat), b, 1))
            ys, xs = torch.meshgrid(
                torch.arange(h, device=feat.device), torch.arange(w, device=feat.device), indexing="ij"
            )
            points.append(torch.stack([xs, ys], -1).reshape(-1, 2).float() * stride + stride // 2)
            strides.append(torch.full((h * w,), float(stride), device=feat.device))
            level_ids.append(torch.full((h * w,), i, device=feat.device, dtype=torch.long))
        result: dict[str, Tensor | None] = {
            "cls": torch.cat(outs["cls"], 1)[..., 0],
            "initial": torch.cat(outs["initial"], 1).view(b, -1, k, 2),
            "refined": torch.cat(outs["refined"], 1).view(b, -1, k, 2) if outs["refined"] else None,
            "psm": torch.cat(outs["psm"], 1)[..., 0] if outs["psm"] else None,
            "centerness": torch.cat(outs["centerness"], 1)[..., 0] if outs["centerness"] else None,
            "locations": torch.cat(points),
            "strides": torch.cat(strides),
            "levels": torch.cat(level_ids),
            "heatmap": self.heatmap(levels[0]) if self.heatmap is not None and self.training else None,
        }
        return result


def _flat(x: Tensor, b: int, c: int) -> Tensor:
    """``[B, C, h, w] -> [B, h*w, C]`` (row-major locations, as ``locations``)."""
    return x.permute(0, 2, 3, 1).reshape(b, -1, c)


def build_regression_model(cfg: RegressionModelConfig, num_joints: int) -> PoseRegressionNet:
    return PoseRegressionNet(cfg, num_joints)
