"""torchvision Faster R-CNN + FPN with the CrowdDet multi-instance R-CNN head (methods.md section 1,
"Building it on torchvision"). One code path for every K: K = 1 is the plain baseline (one prediction per
proposal), so table rows differ only by the plugins they switch on.

Built from scratch: nothing is ever downloaded. ``cfg.weights`` may name a local ImageNet checkpoint (a
torchvision ResNet ``state_dict``) for the backbone.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

from crowdbench.bench.config import DetectorConfig
from crowdbench.methods.detection.crowddet import (
    IgnoreAwareTransform,
    MultiInstancePredictor,
    MultiInstanceRoIHeads,
    init_fc_kaiming,
)

BACKBONES: tuple[str, ...] = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def _load_backbone_weights(body: resnet.ResNet, path: Path) -> None:
    """Load a local ImageNet ResNet checkpoint (plain or ``{"state_dict": ...}``, optional ``module.`` prefix)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    state = {k.removeprefix("module."): v for k, v in state.items()}
    missing, _ = body.load_state_dict(state, strict=False)
    if missing:
        raise ValueError(f"{path}: not a {type(body).__name__} checkpoint; missing e.g. {missing[:3]}")


def build_backbone(cfg: DetectorConfig) -> BackboneWithFPN:
    """ResNet + FPN (P2-P5, plus the max-pool level as P6 for the RPN) with ``cfg.fpn_channels`` channels.

    Same as ``resnet_fpn_backbone`` (which fixes 256 FPN channels), built here so smaller FPNs work for CPU smoke
    runs. Frozen BatchNorm with pretrained weights, trainable BatchNorm from scratch (torchvision's convention);
    ``cfg.trainable_layers`` counts trainable stages from layer4 down (5 = all, as in torchvision).
    """
    if cfg.backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {cfg.backbone!r}; valid: {', '.join(BACKBONES)}")
    if not 0 <= cfg.trainable_layers <= 5:
        raise ValueError(f"trainable_layers must be in 0..5, got {cfg.trainable_layers}")
    norm_layer = FrozenBatchNorm2d if cfg.weights is not None else nn.BatchNorm2d
    body: resnet.ResNet = getattr(resnet, cfg.backbone)(weights=None, norm_layer=norm_layer)
    if cfg.weights is not None:
        _load_backbone_weights(body, Path(cfg.weights))
    trainable = ["layer4", "layer3", "layer2", "layer1", "conv1"][: cfg.trainable_layers]
    if cfg.trainable_layers == 5:
        trainable.append("bn1")
    for name, param in body.named_parameters():
        if not any(name.startswith(layer) for layer in trainable):
            param.requires_grad_(False)
    stage2 = body.inplanes // 8  # 64 (basic blocks) or 256 (bottlenecks)
    return BackboneWithFPN(
        body,
        return_layers={"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"},
        in_channels_list=[stage2, stage2 * 2, stage2 * 4, stage2 * 8],
        out_channels=cfg.fpn_channels,
        extra_blocks=LastLevelMaxPool(),
    )


def build_detector(cfg: DetectorConfig) -> FasterRCNN:
    """Faster R-CNN + FPN with :class:`MultiInstanceRoIHeads` (``cfg.k`` predictions per proposal).

    Anchors: one size per FPN level from ``cfg.anchor_sizes`` (P2..P6), aspect ratios h/w ``cfg.aspect_ratios``.
    ``rpn_pre_nms_top_n_*`` is per level in torchvision (CrowdDet's is global). Box coder weights (10, 10, 5, 5).
    Inference returns raw pre-NMS dicts (``boxes``, ``scores``, ``groups``); set ``model.roi_heads.score_thresh``
    from the infer config (default 0.01) and run :func:`crowddet.apply_nms` afterwards.
    """
    backbone = build_backbone(cfg)
    if len(cfg.anchor_sizes) != 5:
        raise ValueError(f"anchor_sizes needs one size per FPN level P2..P6 (5), got {cfg.anchor_sizes}")
    anchors = AnchorGenerator(
        sizes=tuple((s,) for s in cfg.anchor_sizes), aspect_ratios=(tuple(cfg.aspect_ratios),) * len(cfg.anchor_sizes)
    )
    pooler = MultiScaleRoIAlign(featmap_names=["0", "1", "2", "3"], output_size=7, sampling_ratio=2)
    box_head = TwoMLPHead(cfg.fpn_channels * 7 * 7, cfg.representation_size)
    init_fc_kaiming(box_head.fc6)
    init_fc_kaiming(box_head.fc7)
    predictor = MultiInstancePredictor(cfg.representation_size, k=cfg.k, refine=cfg.refine)
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
        box_head=box_head,
        box_predictor=predictor,
    )
    model.roi_heads = MultiInstanceRoIHeads(
        pooler,
        box_head,
        predictor,
        batch_size_per_image=cfg.box_batch_size_per_image,
        positive_fraction=cfg.box_positive_fraction,
        fg_iou_thresh=0.5,
        bbox_reg_weights=(10.0, 10.0, 5.0, 5.0),
        score_thresh=0.01,
        detections_per_img=cfg.detections_per_img,
        emd=cfg.emd,
    )
    model.transform = IgnoreAwareTransform(cfg.min_size, cfg.max_size, IMAGENET_MEAN, IMAGENET_STD)
    return model
