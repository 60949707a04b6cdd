"""torchvision Faster R-CNN (FPN or C4, optionally Cascade R-CNN heads) with the CrowdDet multi-instance R-CNN head
(methods.md section 1, "Building it on torchvision"). One code path for every K: K = 1 is the plain baseline (one
prediction per proposal), so table rows differ only by the plugins they switch on. Plugins ``detector.fpn`` and
``detector.c4`` (paper 000, hie-pose Table 1) are at the end; backbones in ``backbones.py``, Cascade in ``cascade.py``.

Built from scratch: nothing is ever downloaded. ``cfg.weights`` may name a local ImageNet checkpoint of the trunk
(a torchvision ResNet/ResNeXt ``state_dict``; timm's for SENet-154).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from crowdbench.bench.checkpoints import fit_state_dict, load_weights, read_state_dict
from crowdbench.bench.config import DetectorConfig, RunConfig
from crowdbench.bench.registry import Hook, Plugin, Stage, register
from crowdbench.methods.batchnorm import replace_batchnorm
from crowdbench.methods.declarative import SettingPlugin
from crowdbench.methods.detection.backbones import build_trunk, stage_channels
from crowdbench.methods.detection.cascade import CascadeRoIHeads
from crowdbench.methods.detection.crowddet import (
    IgnoreAwareTransform,
    MultiInstancePredictor,
    MultiInstanceRoIHeads,
    init_fc_kaiming,
)

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def load_backbone_weights(body: nn.Module, path: Path, arch: str, setting: str = "model.weights") -> None:
    """Load a local ImageNet checkpoint of the trunk (plain or ``{"state_dict": ...}``, optional ``module.``); extra
    keys (the classifier of another checkpoint) are ignored, a missing or differently shaped key is a one-line
    :class:`~crowdbench.bench.checkpoints.CheckpointError` naming ``setting``, ``path`` and ``arch``."""
    state = read_state_dict(path, setting)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    fit_state_dict(body, state, path, arch, setting=setting, allow_unexpected=lambda key: True)


def load_detector_weights(model: nn.Module, path: Path, cfg: DetectorConfig, setting: str | None = None) -> None:
    """Load a whole detector's state dict (a ``train`` stage's ``model.pt``, ``model.kd_teacher``) into ``model``,
    built from ``cfg``; every key must fit (one-line :class:`~crowdbench.bench.checkpoints.CheckpointError`)."""
    load_weights(model, path, f"the {cfg.backbone} detector", setting=setting)


def build_body(cfg: DetectorConfig) -> nn.Module:
    """The backbone's classifier trunk (``backbones.TRUNKS``) with ``cfg.weights`` loaded and early stages frozen.

    Frozen BatchNorm with pretrained weights, trainable BatchNorm from scratch (torchvision's convention);
    ``cfg.trainable_layers`` counts trainable stages from layer4 down (5 = all, as in torchvision).
    """
    if not 0 <= cfg.trainable_layers <= 5:
        raise ValueError(f"trainable_layers must be in 0..5, got {cfg.trainable_layers}")
    body = build_trunk(cfg.backbone, frozen_bn=cfg.weights is not None)
    if cfg.weights is not None:
        load_backbone_weights(body, Path(cfg.weights), cfg.backbone)
    trainable = ["layer4", "layer3", "layer2", "layer1", "conv1"][: cfg.trainable_layers]
    if cfg.trainable_layers == 5:
        trainable.append("bn1")
    for name, param in body.named_parameters():
        if not any(name.startswith(layer) for layer in trainable):
            param.requires_grad_(False)
    return body


def build_backbone(cfg: DetectorConfig) -> BackboneWithFPN:
    """Trunk + FPN (P2-P5, plus the max-pool level as P6 for the RPN) with ``cfg.fpn_channels`` channels.

    Same as ``resnet_fpn_backbone`` (which fixes 256 FPN channels), built here so smaller FPNs work for CPU smoke
    runs and timm trunks (SENet-154) plug in.
    """
    body = build_body(cfg)
    return BackboneWithFPN(
        body,
        return_layers={"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"},
        in_channels_list=stage_channels(body),
        out_channels=cfg.fpn_channels,
        extra_blocks=LastLevelMaxPool(),
    )


class C4Backbone(nn.Module):
    """Stem + layer1-3 of the trunk: one feature map ``'0'`` at stride 16 (Faster R-CNN "C4", He et al. 2016)."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = IntermediateLayerGetter(body, return_layers={"layer3": "0"})
        self.out_channels = stage_channels(body)[2]

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return self.body(x)


class C4BoxHead(nn.Module):
    """ResNet C4 box head: the trunk's layer4 (stride 2: 14 x 14 RoIs -> 7 x 7) + global average pooling."""

    def __init__(self, layer4: nn.Module, out_channels: int) -> None:
        super().__init__()
        self.layer4 = layer4
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        return self.layer4(x).mean(dim=(2, 3))


def build_c4(cfg: DetectorConfig) -> tuple[C4Backbone, C4BoxHead]:
    """The no-FPN detector's backbone (up to layer3) and box head (layer4), from one trunk.

    Trained from scratch (no ``cfg.weights``), the box head normalizes with GroupNorm instead of BatchNorm
    (:func:`group_norm_head`); with pretrained weights it keeps the trunk's frozen BatchNorm (Detectron2's C4 head).
    """
    body = build_body(cfg)
    if cfg.weights is None:
        group_norm_head(body.layer4)
    return C4Backbone(body), C4BoxHead(body.layer4, stage_channels(body)[3])


def group_norm_head(head: nn.Module, groups: int = 32) -> None:
    """Replace every BatchNorm of a RoI box head, in place, by GroupNorm (``groups`` groups, fewer if the channels do
    not divide). Wu & He (Group Normalization, ECCV 2018) put GroupNorm in Mask R-CNN's heads and train detectors
    from scratch with it, as do He et al. (Rethinking ImageNet Pre-training, ICCV 2019).

    BatchNorm in a box head normalizes over the RoIs of a batch. In training they are the sampled RoIs (a quarter
    positive); at inference, every proposal. Running statistics gathered on the first do not hold for the second: on
    the smoke C4 detector 8.6 % of people ranked among the 2N top boxes on running statistics, 25.1 % on batch ones
    (``benchmarks/detector_ranking.py``, issue 22). GroupNorm normalizes each RoI on its own, so training and
    inference agree. The FPN box head (two FC layers) has no normalization to replace. Each GroupNorm starts from its
    BatchNorm's scale and shift, so the trunk's initialisation (timm's zero-initialised last norm of a block) holds.
    """

    def group_norm(batch_norm: nn.BatchNorm2d) -> nn.GroupNorm:
        norm = nn.GroupNorm(math.gcd(groups, batch_norm.num_features), batch_norm.num_features)
        with torch.no_grad():
            norm.weight.copy_(batch_norm.weight)
            norm.bias.copy_(batch_norm.bias)
        return norm

    replace_batchnorm(head, group_norm)


def _fpn_parts(cfg: DetectorConfig) -> tuple[nn.Module, AnchorGenerator, MultiScaleRoIAlign, int, list[nn.Module]]:
    """FPN neck: backbone, one anchor size per level P2..P6, 7 x 7 RoIs from P2-P5 into two FCs (one head per
    Cascade stage); returns ``(backbone, anchors, pooler, head features, box heads)``."""
    if len(cfg.anchor_sizes) != 5:
        raise ValueError(f"anchor_sizes needs one size per FPN level P2..P6 (5), got {cfg.anchor_sizes}")
    backbone = build_backbone(cfg)
    anchors = AnchorGenerator(
        sizes=tuple((s,) for s in cfg.anchor_sizes), aspect_ratios=(tuple(cfg.aspect_ratios),) * 5
    )
    pooler = MultiScaleRoIAlign(featmap_names=["0", "1", "2", "3"], output_size=7, sampling_ratio=2)

    def box_head() -> nn.Module:
        head = TwoMLPHead(cfg.fpn_channels * 7 * 7, cfg.representation_size)
        init_fc_kaiming(head.fc6)
        init_fc_kaiming(head.fc7)
        return head

    heads = [box_head() for _ in range(len(cfg.cascade_ious) if cfg.cascade else 1)]
    return backbone, anchors, pooler, cfg.representation_size, heads


def _c4_parts(cfg: DetectorConfig) -> tuple[nn.Module, AnchorGenerator, MultiScaleRoIAlign, int, list[nn.Module]]:
    """C4: every anchor size on the one stride-16 map, 14 x 14 RoIs into layer4 (one copy per Cascade stage); returns
    ``(backbone, anchors, pooler, head features, box heads)``."""
    backbone, c4_head = build_c4(cfg)
    anchors = AnchorGenerator(sizes=(tuple(cfg.anchor_sizes),), aspect_ratios=(tuple(cfg.aspect_ratios),))
    # sampling_ratio 0 = adaptive, ceil(RoI size / 14) points per bin: Detectron2's C4 default
    # (POOLER_SAMPLING_RATIO 0). On a stride-16 map most RoIs then take 1 point per bin instead of 2 x 2, which
    # makes the CPU RoIAlign backward (single-threaded in torchvision) ~4x cheaper.
    pooler = MultiScaleRoIAlign(featmap_names=["0"], output_size=14, sampling_ratio=0)
    # Cascade stages each get their own copy of layer4 (same initial, e.g. ImageNet, weights).
    heads = [c4_head] + [copy.deepcopy(c4_head) for _ in range(len(cfg.cascade_ious) - 1 if cfg.cascade else 0)]
    return backbone, anchors, pooler, c4_head.out_channels, heads


def _roi_heads(
    cfg: DetectorConfig, pooler: MultiScaleRoIAlign, heads: list[nn.Module], predictors: list[nn.Module]
) -> nn.Module:
    """Cascade R-CNN stages (``cfg.cascade``) or the CrowdDet multi-instance R-CNN head."""
    if cfg.cascade:
        return CascadeRoIHeads(
            pooler,
            heads,
            predictors,
            ious=cfg.cascade_ious,
            stage_weights=cfg.cascade_weights,
            batch_size_per_image=cfg.box_batch_size_per_image,
            positive_fraction=cfg.box_positive_fraction,
            score_thresh=0.01,
            detections_per_img=cfg.detections_per_img,
        )
    return MultiInstanceRoIHeads(
        pooler,
        heads[0],
        predictors[0],
        batch_size_per_image=cfg.box_batch_size_per_image,
        positive_fraction=cfg.box_positive_fraction,
        fg_iou_thresh=0.5,
        bbox_reg_weights=(10.0, 10.0, 5.0, 5.0),
        score_thresh=0.01,
        detections_per_img=cfg.detections_per_img,
        emd=cfg.emd,
    )


def build_detector(cfg: DetectorConfig) -> FasterRCNN:
    """Faster R-CNN from ``cfg``: FPN or C4 (``cfg.fpn``), plain or Cascade R-CNN heads (``cfg.cascade``), with the
    CrowdDet multi-instance predictor (``cfg.k`` predictions per proposal).

    Anchors, FPN: one size per level from ``cfg.anchor_sizes`` (P2..P6); C4: every size on the one stride-16 map.
    Aspect ratios h/w ``cfg.aspect_ratios``. ``rpn_pre_nms_top_n_*`` is per level in torchvision (CrowdDet's is
    global). Box coder weights (10, 10, 5, 5) (Cascade: per stage). RoIs: 7 x 7 from the FPN levels into two FCs, or
    14 x 14 from C4 (adaptive sampling) into layer4. Inference returns raw pre-NMS dicts (``boxes``, ``scores``,
    ``groups``); set ``model.roi_heads.score_thresh`` from the infer config (default 0.01) and run
    :func:`crowddet.apply_nms` after.
    """
    backbone, anchors, pooler, features, heads = _fpn_parts(cfg) if cfg.fpn else _c4_parts(cfg)
    if cfg.cascade and (cfg.k > 1 or cfg.refine):
        raise ValueError(
            f"cascade_rcnn with crowddet k>1 is not supported: got k={cfg.k}, refine={cfg.refine} (one prediction "
            "per proposal and stage only)"
        )
    predictors = [MultiInstancePredictor(features, k=cfg.k, refine=cfg.refine) for _ in heads]
    model = FasterRCNN(
        backbone,
        num_classes=None,
        min_size=cfg.min_size,
        max_size=cfg.max_size,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=cfg.rpn_pre_nms_top_n_train,
        rpn_pre_nms_top_n_test=cfg.rpn_pre_nms_top_n_test,
        rpn_post_nms_top_n_train=cfg.rpn_post_nms_top_n_train,
        rpn_post_nms_top_n_test=cfg.rpn_post_nms_top_n_test,
        box_roi_pool=pooler,
        box_head=heads[0],
        box_predictor=predictors[0],
    )
    model.roi_heads = _roi_heads(cfg, pooler, heads, predictors)
    model.transform = IgnoreAwareTransform(cfg.min_size, cfg.max_size, IMAGENET_MEAN, IMAGENET_STD)
    return model


# ----------------------------------------------------------------------------------------------------------------
# Plugins: the detector's neck (paper 000, hie-pose Table 1: "+ FPN" or not)
# ----------------------------------------------------------------------------------------------------------------


@register("detector.fpn")
class FPNPlugin(SettingPlugin):
    """Feature Pyramid Network (Lin et al., CVPR 2017): RoIs pooled from P2-P5, anchors one size per level.
    Sets ``model.fpn = true`` (the default; the plugin names the switch hie-pose Table 1 toggles)."""

    hook: ClassVar[Hook] = "model"
    stage: ClassVar[Stage] = "train"
    sets: ClassVar[dict[str, Any]] = {"model.fpn": True}


class _C4Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    smoke_rois: int | None = Field(
        64,
        ge=1,
        description="smoke only: RoIs sampled per training image (model.box_batch_size_per_image); None keeps the "
        "profile's. The C4 head runs layer4 on every RoI and torchvision's CPU RoIAlign backward is single-threaded, "
        "so at the smoke profile's 128 a C4 step costs ~5x an FPN one (benchmarks/detector_backbones.py)",
    )


@register("detector.c4")
class C4Plugin(Plugin):
    """Faster R-CNN without FPN (Ren et al. 2015, ResNet "C4" variant of He et al. 2016): RPN and 14 x 14 RoIAlign on
    layer3 (stride 16), layer4 + average pooling as the box head. Sets ``model.fpn = false``; under ``smoke`` also
    samples fewer RoIs per image (option ``smoke_rois``)."""

    hook: ClassVar[Hook] = "model"
    stage: ClassVar[Stage] = "train"
    Config = _C4Options
    edits: ClassVar[tuple[str, ...]] = ("model.fpn", "model.box_batch_size_per_image")

    def apply(self, run: RunConfig) -> None:
        run.model.fpn = False
        rois = self.config.smoke_rois  # type: ignore[attr-defined]
        if run.profile == "smoke" and rois is not None:
            run.model.box_batch_size_per_image = rois
