"""Top-down pose networks: SimpleBaseline, SimpleBaseline + FPN and HRNet, with an optional offset head.

Spec: ``shared/reference/methods.md`` sections 5 (offset head) and 8 (HRNet / SimpleBaseline configs).

* ``simplebaseline``: Xiao, Wu, Wei, "Simple Baselines for Human Pose Estimation and Tracking", ECCV 2018, Fig. 1(c):
  torchvision ResNet C5 (stride 32) -> ``deconv_layers`` x (ConvTranspose2d 4x4 stride 2, BN, ReLU) -> 1x1 conv to K.
  Heatmap stride = 32 / 2**deconv_layers (3 deconvs -> 4; the offset-guided paper compares 1/2/3).
* ``simplebaseline`` with ``fpn=True`` ("SimpleNet + FPN" in the HIE challenge reports): torchvision
  ``FeaturePyramidNetwork`` (1x1 laterals, nearest 2x top-down sum, 3x3 output conv, ``deconv_channels`` ch) over
  C_l..C5 with l = 5 - deconv_layers, and the heads on P_l (P2 stride 4, P3 stride 8, P4 stride 16); no deconvolutions.
  The 3x3 output convs of the coarser levels P_{l+1}..P5 are never used, so they are replaced by ``nn.Identity``
  (every parameter gets a gradient). This is our reading: the reports only name the combination.
* ``hrnet``: Sun, Xiao, Liu, Wang, "Deep High-Resolution Representation Learning for Human Pose Estimation",
  CVPR 2019, Sec. 3: timm's ``HighResolutionNet`` body (stem, stages 1-4, no classification increase/downsample
  blocks), last stage-4 module fusing into the highest-resolution branch only (``multi_scale_output=False`` as in
  the pose code), stride 4 with ``hrnet_width`` channels (``hrnet_w18_small``: 16) -> 1x1 conv to K.
* ``offsets=True`` (Zhang et al., offset-guided network, CVPRW 2019, Sec. 3.1.2; G-RMI): a 1x1 conv with 2K channels
  beside the heatmap conv on the same features. Channel order ``[x_0, y_0, x_1, y_1, ...]``, i.e.
  ``offsets.view(B, K, 2, h, w)[:, k, 0]`` is the x offset of joint k.

Input sides that are multiples of 32 (256x192, 384x288) give heatmaps of exactly ``(H/stride, W/stride)``. For other
sizes (the 64x48 smoke size: 48/32 = 1.5) the stride-2 layers round up, so SimpleBaseline's deconvs and HRNet's
upsampling fuse overshoot; both are cropped bottom/right to ``ceil(H/stride) x ceil(W/stride)`` (a no-op at multiples
of 32; the papers only use such sizes).

Init as the SimpleBaseline / HRNet pose code: deconvs and the final 1x1 convs normal(std 0.001), final-conv bias 0,
BN weight 1 / bias 0. Backbones keep their libraries' init (torchvision ResNet, timm HRNet: Kaiming normal); the
HRNet pose code re-inits them with std 0.001, then its configs load ImageNet weights over them (``weights=``).
"""

from __future__ import annotations

from collections import OrderedDict
from functools import partial
from pathlib import Path
from typing import Any

import torchvision
from torch import Tensor, nn
from torchvision.ops import FeaturePyramidNetwork

from crowdbench.bench.checkpoints import fit_state_dict, load_weights, read_state_dict

ARCHS = ("simplebaseline", "hrnet")
STANDIN_RESNETS: dict[str, tuple[int, int, int, int]] = {"resnet48": (3, 8, 9, 3)}
"""BasicBlock ResNets torchvision lacks, named by ResNet's own layer count (2 per block + stem conv + fc): ``resnet48``
is the smoke stand-in of ResNet-152. ResNet-34's blocks [3, 4, 6, 3] stand in for ResNet-101's [3, 4, 23, 3]; going
to ResNet-152's [3, 8, 36, 3] doubles stage 2 and multiplies stage 3 by 36/23, so ResNet-34's stages become
[3, 8, 9, 3] (6 x 36/23 = 9.4, rounded down). Chosen from the paper nets' block ratios, not from any result."""
RESNETS = ("resnet18", "resnet34", *STANDIN_RESNETS, "resnet50", "resnet101", "resnet152")


def build_resnet(name: str) -> nn.Module:
    """torchvision ResNet ``name`` or a :data:`STANDIN_RESNETS` BasicBlock ResNet (random init, nothing downloaded)."""
    if name in STANDIN_RESNETS:
        return torchvision.models.resnet.ResNet(torchvision.models.resnet.BasicBlock, list(STANDIN_RESNETS[name]))
    return getattr(torchvision.models, name)(weights=None)


DECONV_LAYERS = (1, 2, 3)


def _tiny_hrnet_cfg(w: int) -> dict[str, Any]:
    """CPU smoke-test HRNet: HRNet-W32's layout (widths w, 2w, 4w, 8w) with one module and one block per branch."""

    def stage(n: int, block: str, num_channels: tuple[int, ...]) -> dict[str, Any]:
        return dict(
            num_modules=1,
            num_branches=n,
            block_type=block,
            num_blocks=(1,) * n,
            num_channels=num_channels,
            fuse_method="SUM",
        )

    return dict(
        stem_width=64,
        stage1=stage(1, "BOTTLENECK", (w,)),
        stage2=stage(2, "BASIC", (w, 2 * w)),
        stage3=stage(3, "BASIC", (w, 2 * w, 4 * w)),
        stage4=stage(4, "BASIC", (w, 2 * w, 4 * w, 8 * w)),
    )


SMALL_HRNET_WIDTHS = (18, 27)
"""Widths built as timm's ``hrnet_w18_small`` layout scaled by ``width / 18``: 18 is that net itself (branches 16, 32,
64, 128), 27 its 1.5x widening (branches 24, 48, 96, 192), the smoke stand-in of HRNet-W48 (48 / 32 = 1.5)."""
HRNET_WIDTHS = (8, *SMALL_HRNET_WIDTHS, 32, 48)


def _small_hrnet_cfg(width: int) -> dict[str, Any]:
    """timm's ``hrnet_w18_small`` (one module per stage, two blocks per branch) with every channel count scaled by
    ``width / 18``; ``width=18`` gives timm's config exactly."""
    from timm.models.hrnet import cfg_cls

    base = cfg_cls["hrnet_w18_small"]
    scaled = {k: v for k, v in base.items() if not k.startswith("stage")}
    for key in ("stage1", "stage2", "stage3", "stage4"):
        channels = tuple(c * width // 18 for c in base[key]["num_channels"])
        scaled[key] = {**base[key], "num_channels": channels}
    return scaled


def _hrnet_cfg(width: int) -> dict[str, Any]:
    """``hrnet_width`` -> timm config: 32 ``hrnet_w32``, 48 ``hrnet_w48``, 18 ``hrnet_w18_small``, 27 that small
    layout 1.5x wider (:func:`_small_hrnet_cfg`), 8 tiny."""
    from timm.models.hrnet import cfg_cls

    if width == 8:
        return _tiny_hrnet_cfg(8)
    if width in SMALL_HRNET_WIDTHS:
        return _small_hrnet_cfg(width)
    if width not in HRNET_WIDTHS:
        raise ValueError(
            f"unknown hrnet_width {width!r}; valid: {list(HRNET_WIDTHS)} (8 = tiny, 18/27 = small CPU sizes)"
        )
    return cfg_cls[f"hrnet_w{width}"]


def load_backbone_weights(module: nn.Module, path: str | Path, arch: str, setting: str = "pose.model.weights") -> None:
    """Load a local state dict (plain or ``{"state_dict": ...}``) into ``module``; extra keys (classifier heads) are
    ignored, a missing or differently shaped key is a one-line
    :class:`~crowdbench.bench.checkpoints.CheckpointError` naming ``setting``, ``path`` and ``arch``."""
    state = read_state_dict(path, setting)
    fit_state_dict(module, state, path, arch, setting=setting, allow_unexpected=lambda key: True)


def load_pose_weights(model: nn.Module, path: str | Path, setting: str | None = None) -> None:
    """Load a whole pose network's state dict (a ``train`` stage's ``model.pt``) into ``model``; every key must fit
    (one-line :class:`~crowdbench.bench.checkpoints.CheckpointError`)."""
    load_weights(model, path, f"the {type(model).__name__} pose network", setting=setting)


class ResNetBody(nn.Module):
    """torchvision ResNet without avgpool/fc; same state-dict keys, so torchvision checkpoints load."""

    def __init__(self, name: str) -> None:
        super().__init__()
        resnet = build_resnet(name)
        for key in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            setattr(self, key, getattr(resnet, key))
        blocks = [getattr(resnet, f"layer{i}")[-1] for i in range(1, 5)]
        self.out_channels = [(b.bn3 if hasattr(b, "bn3") else b.bn2).num_features for b in blocks]

    def forward(self, x: Tensor) -> list[Tensor]:
        """C2..C5 (strides 4, 8, 16, 32)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        return [c2, c3, c4, self.layer4(c4)]


class DeconvFeatures(nn.Module):
    """SimpleBaseline body: ResNet C5 -> n x (ConvTranspose2d(4, stride 2, pad 1, no bias), BN, ReLU)."""

    def __init__(self, backbone: str, n: int, channels: int) -> None:
        super().__init__()
        self.backbone = ResNetBody(backbone)
        layers: list[nn.Module] = []
        in_ch = self.backbone.out_channels[-1]
        for _ in range(n):
            deconv = nn.ConvTranspose2d(in_ch, channels, kernel_size=4, stride=2, padding=1, bias=False)
            nn.init.normal_(deconv.weight, std=0.001)
            layers += [deconv, nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
            in_ch = channels
        self.deconv = nn.Sequential(*layers)
        self.out_channels = in_ch
        self.stride = 32 // 2**n

    def forward(self, x: Tensor) -> Tensor:
        return self.deconv(self.backbone(x)[-1])


class FPNFeatures(nn.Module):
    """SimpleBaseline + FPN: top-down FPN over C_l..C5, output P_l (l = 5 - n, stride 2**l)."""

    def __init__(self, backbone: str, n: int, channels: int) -> None:
        super().__init__()
        self.backbone = ResNetBody(backbone)
        self.first = 3 - n  # index into [C2, C3, C4, C5] of the predicted level
        self.fpn = FeaturePyramidNetwork(self.backbone.out_channels[self.first :], channels)
        for i in range(1, len(self.fpn.layer_blocks)):
            self.fpn.layer_blocks[i] = nn.Identity()  # output convs of unused coarser levels
        self.out_channels = channels
        self.stride = 32 // 2**n

    def forward(self, x: Tensor) -> Tensor:
        feats = self.backbone(x)[self.first :]
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats)))["0"]


def _cropping_fuse_forward(module: nn.Module, x: list[Tensor]) -> list[Tensor]:
    """timm ``HighResolutionModule.forward`` with upsampled branches cropped to the target branch's size.

    A no-op when the input sides are multiples of 32 (e.g. 256x192); for other sizes (64x48: the stride-32 branch is
    2x2 from 1.5) the stride-2 convs round up, so x2**k nearest upsampling overshoots and is cropped bottom/right.
    """
    if module.num_branches == 1:
        return [module.branches[0](x[0])]
    x = [branch(xi) for branch, xi in zip(module.branches, x, strict=True)]
    out = []
    for i, fuse_outer in enumerate(module.fuse_layers):
        h, w = x[i].shape[-2:]
        y = x[i]  # fuse_outer[i] is nn.Identity
        for j, f in enumerate(fuse_outer):
            if j != i:
                y = y + f(x[j])[..., :h, :w]
        out.append(module.fuse_act(y))
    return out


class HRNetFeatures(nn.Module):
    """timm HRNet body; output = stage 4's highest-resolution branch (stride 4)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        try:
            from timm.models.hrnet import HighResolutionModule, HighResolutionNet
        except ImportError as e:
            raise ImportError("arch='hrnet' needs timm (pip install timm)") from e

        self.body = HighResolutionNet(_hrnet_cfg(width), head="")  # head="": no incre/downsample/classifier
        last = self.body.stage4[-1]
        last.multi_scale_output = False
        last.fuse_layers = last.fuse_layers[:1]  # fuse into branch 0 only, as the pose HRNet's final module
        for m in self.body.modules():
            if isinstance(m, HighResolutionModule):
                m.forward = partial(_cropping_fuse_forward, m)
        self.out_channels = self.body.stage4_cfg["num_channels"][0]
        self.stride = 4

    def forward(self, x: Tensor) -> Tensor:
        return self.body.forward_features(x)[0]


class PoseNet(nn.Module):
    """Top-down pose network: ``forward(x [B,3,H,W]) -> {"heatmaps": [B,K,H/s,W/s], "offsets": [B,2K,H/s,W/s]}``.

    ``stride`` = input pixels per heatmap pixel; ``"offsets"`` only when built with ``offsets=True``, channels
    ``[x_0, y_0, x_1, y_1, ...]``.
    """

    def __init__(self, features: nn.Module, num_joints: int, offsets: bool = False) -> None:
        super().__init__()
        self.features = features
        self.num_joints = num_joints
        self.stride: int = features.stride
        self.final_layer = nn.Conv2d(features.out_channels, num_joints, kernel_size=1)
        self.offset_layer = nn.Conv2d(features.out_channels, 2 * num_joints, kernel_size=1) if offsets else None
        for conv in (self.final_layer, self.offset_layer):
            if conv is not None:
                nn.init.normal_(conv.weight, std=0.001)
                nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        f = self.features(x)
        f = f[..., : -(-x.shape[-2] // self.stride), : -(-x.shape[-1] // self.stride)]  # see module docstring
        out = {"heatmaps": self.final_layer(f)}
        if self.offset_layer is not None:
            out["offsets"] = self.offset_layer(f)
        return out


def build_pose_model(
    arch: str,
    *,
    num_joints: int,
    backbone: str = "resnet50",
    hrnet_width: int = 32,
    deconv_layers: int = 3,
    deconv_channels: int = 256,
    fpn: bool = False,
    offsets: bool = False,
    weights: str | Path | None = None,
) -> PoseNet:
    """Build a top-down pose net (see the module docstring). ``weights``: optional local backbone state dict
    (torchvision ResNet or timm HRNet keys; classifier keys are ignored). Nothing is downloaded."""
    if arch == "simplebaseline":
        if backbone not in RESNETS:
            raise ValueError(f"unknown backbone {backbone!r}; valid: {list(RESNETS)}")
        if deconv_layers not in DECONV_LAYERS:
            raise ValueError(f"deconv_layers must be one of {list(DECONV_LAYERS)} (stride 16/8/4), got {deconv_layers}")
        features = (FPNFeatures if fpn else DeconvFeatures)(backbone, deconv_layers, deconv_channels)
        if weights is not None:
            load_backbone_weights(features.backbone, weights, backbone)
    elif arch == "hrnet":
        if fpn:
            raise ValueError("fpn=True is only defined for arch='simplebaseline'")
        features = HRNetFeatures(hrnet_width)
        if weights is not None:
            load_backbone_weights(
                features.body,
                weights,
                {18: "hrnet_w18_small", 27: "hrnet_w27_small", 8: "hrnet_tiny"}.get(
                    hrnet_width, f"hrnet_w{hrnet_width}"
                ),
            )
    else:
        raise ValueError(f"unknown arch {arch!r}; valid: {list(ARCHS)}")
    return PoseNet(features, num_joints, offsets=offsets)
