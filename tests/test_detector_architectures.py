"""Detector architectures of paper 000 Table 1 (issue 7 A): backbones, C4 (no FPN), Cascade R-CNN."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torchvision.ops import box_iou

from crowdbench.bench.config import DetectorConfig
from crowdbench.bench.profiles import base_config
from crowdbench.bench.registry import get_plugin
from crowdbench.methods.detection.backbones import build_trunk
from crowdbench.methods.detection.cascade import CascadeRoIHeads
from crowdbench.methods.detection.faster_rcnn import C4Backbone, C4BoxHead, build_detector

BACKBONE_PLUGINS = ("resnet50", "resnet101", "resnet152", "resnext101", "senet154")
GT = torch.tensor([[20.0, 20.0, 60.0, 140.0], [70.0, 30.0, 110.0, 150.0]])


def smoke_model(*plugins: str) -> DetectorConfig:
    run = base_config("smoke", "detection")
    for name in plugins:
        get_plugin(name).apply(run)
    return run.model


def targets(n: int = 2) -> list[dict[str, torch.Tensor]]:
    return [{"boxes": GT.clone(), "labels": torch.ones(2, dtype=torch.int64), "ignore_boxes": torch.zeros(0, 4)}] * n


def train_step(cfg: DetectorConfig) -> dict[str, float]:
    torch.manual_seed(0)
    model = build_detector(cfg).train()
    losses = model([torch.rand(3, 160, 160) for _ in range(2)], targets())
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        (out,) = model([torch.rand(3, 160, 160)])
    assert out["boxes"].shape[1] == 4 and len(out["scores"]) == len(out["groups"])
    return {k: float(v.detach()) for k, v in losses.items()}


@pytest.mark.parametrize("name", BACKBONE_PLUGINS)
def test_backbone_plugin_trains_at_smoke_size(name):
    cfg = smoke_model(f"backbone.{name}")
    assert cfg.backbone == f"tiny_{name}"
    losses = train_step(cfg)
    assert {"loss_emd", "loss_objectness", "loss_rpn_box_reg"} <= set(losses)
    assert all(math.isfinite(v) for v in losses.values())


def test_backbone_plugin_full_profile_names_the_paper_network():
    run = base_config("full", "detection")
    get_plugin("backbone.senet154").apply(run)
    assert run.model.backbone == "senet154"
    with torch.device("meta"):  # timm's SENet-154 (nothing downloaded), no memory or init time
        senet = build_trunk("senet154")
    assert senet.layer1[0].se is not None and senet.layer1[0].conv2.groups == 64 and len(senet.layer3) == 36
    with pytest.raises(ValueError, match=r"unknown backbone 'resnet7'.*tiny_senet154"):
        build_trunk("resnet7")


def stage_params(name: str) -> int:
    with torch.device("meta"):
        trunk = build_trunk(name)
    return sum(p.numel() for n, p in trunk.named_parameters() if not n.startswith("fc"))


def test_smoke_stand_ins_differ_and_keep_the_depth_order():
    params = {name: stage_params(f"tiny_{name}") for name in BACKBONE_PLUGINS}
    assert len(set(params.values())) == len(params)
    assert params["resnet50"] < params["resnet101"] < params["resnet152"] < params["senet154"]
    full = {name: stage_params(name) for name in ("resnet50", "resnet101", "resnet152")}
    assert full["resnet50"] < full["resnet101"] < full["resnet152"]
    # families keep their blocks: grouped 3x3 convs for ResNeXt/SENet, SE modules for SENet only
    with torch.device("meta"):
        resnext, senet, resnet = (build_trunk(f"tiny_{n}") for n in ("resnext101", "senet154", "resnet50"))
    assert resnext.layer1[0].conv2.groups > 1 and senet.layer1[0].conv2.groups > 1
    assert senet.layer1[0].se is not None and resnet.layer1[0].se is None


def test_c4_has_one_stride_16_map_and_layer4_box_head():
    cfg = smoke_model("backbone.resnet50", "detector.c4")
    assert cfg.fpn is False
    model = build_detector(cfg)
    assert isinstance(model.backbone, C4Backbone) and isinstance(model.roi_heads.box_head, C4BoxHead)
    feats = model.backbone(torch.rand(1, 3, 160, 160))
    assert list(feats) == ["0"] and feats["0"].shape[-2:] == (10, 10)  # stride 16
    head = model.roi_heads.box_head.layer4
    assert [type(m).__name__ for m in head] == ["Bottleneck"]
    assert "layer4" not in dict(model.backbone.body.named_children())
    assert model.rpn.anchor_generator.num_anchors_per_location() == [len(cfg.anchor_sizes) * len(cfg.aspect_ratios)]
    assert model.roi_heads.box_roi_pool.output_size == (14, 14)
    assert all(math.isfinite(v) for v in train_step(cfg).values())


def test_c4_box_head_from_scratch_uses_group_norm_and_pretrained_keeps_frozen_batchnorm(tmp_path):
    """Issue 22 item 2: BatchNorm over RoIs learns training's sampled-RoI statistics, which do not hold for the
    proposals scored at inference, so a from-scratch C4 head uses GroupNorm (faster_rcnn.group_norm_head); a
    pretrained trunk keeps frozen BatchNorm, and the backbone (layer1-3) keeps the trunk's norm either way."""
    cfg = smoke_model("backbone.resnet50", "detector.c4")
    model = build_detector(cfg)
    head_norms = [m for m in model.roi_heads.box_head.modules() if "Norm" in type(m).__name__]
    assert head_norms and all(isinstance(m, torch.nn.GroupNorm) for m in head_norms)
    assert {m.num_groups for m in head_norms} == {32}
    trunk = build_trunk(cfg.backbone)  # BatchNorm's scale and shift start deterministic (timm zeroes a block's last)
    bottleneck = trunk.layer4[0]
    assert torch.equal(model.roi_heads.box_head.layer4[0].bn3.weight, bottleneck.bn3.weight)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.backbone.modules())
    # the output of a RoI no longer depends on the other RoIs of its batch
    head = model.roi_heads.box_head.eval()
    rois = torch.rand(5, head.layer4[0].conv1.in_channels, 14, 14)
    head.train()
    assert torch.allclose(head(rois)[:1], head(rois[:1]), atol=1e-5)
    fpn = build_detector(smoke_model("backbone.resnet50"))
    assert not any("Norm" in type(m).__name__ for m in fpn.roi_heads.box_head.modules())  # two FC layers
    weights = tmp_path / "r50.pth"
    torch.save(torchvision.models.resnet50().state_dict(), weights)
    pretrained = build_detector(DetectorConfig(backbone="resnet50", fpn=False, weights=weights))
    norms = {type(m).__name__ for m in pretrained.roi_heads.box_head.modules() if "Norm" in type(m).__name__}
    assert norms == {"FrozenBatchNorm2d"}


def test_fpn_plugin_is_the_default():
    assert smoke_model("detector.c4", "detector.fpn").fpn is True
    assert DetectorConfig().fpn is True and DetectorConfig().cascade is False


def test_cascade_trains_three_weighted_stages():
    cfg = smoke_model("backbone.resnet50", "detector.cascade_rcnn")
    assert cfg.cascade and cfg.cascade_ious == (0.5, 0.6, 0.7) and cfg.cascade_weights == (1.0, 0.5, 0.25)
    model = build_detector(cfg)
    assert isinstance(model.roi_heads, CascadeRoIHeads) and len(model.roi_heads.box_head) == 3
    weights = [c.weights for c in model.roi_heads.box_coders]
    assert weights == [(10.0, 10.0, 5.0, 5.0), (20.0, 20.0, 10.0, 10.0), (30.0, 30.0, 15.0, 15.0)]
    losses = train_step(cfg)
    assert {"loss_stage1", "loss_stage2", "loss_stage3"} <= set(losses)
    assert all(math.isfinite(v) for v in losses.values())


def test_c4_samples_fewer_rois_in_smoke_only():
    """The C4 head runs layer4 per RoI: smoke samples 64 per image (option smoke_rois); full keeps the config's."""
    assert smoke_model("detector.fpn").box_batch_size_per_image == 128
    assert smoke_model("detector.c4").box_batch_size_per_image == 64
    run = base_config("smoke", "detection")
    get_plugin("detector.c4", {"smoke_rois": None}).apply(run)
    assert run.model.box_batch_size_per_image == 128
    full = base_config("full", "detection")
    get_plugin("detector.c4").apply(full)
    assert full.model.box_batch_size_per_image == base_config("full", "detection").model.box_batch_size_per_image


def test_cascade_with_c4_and_crowddet_k2():
    cfg = smoke_model("detector.c4", "detector.cascade_rcnn")
    model = build_detector(cfg)
    heads = model.roi_heads.box_head
    assert heads[0].layer4 is not heads[1].layer4  # one layer4 per stage
    get_plugin("crowddet.emd_loss").apply(run := base_config("smoke", "detection"))
    get_plugin("detector.cascade_rcnn").apply(run)
    with pytest.raises(ValueError, match=r"^cascade_rcnn with crowddet k>1 is not supported: "):
        build_detector(run.model)


def cascade_heads(ious: tuple[float, ...]) -> CascadeRoIHeads:
    cfg = smoke_model("detector.cascade_rcnn")
    cfg.cascade_ious, cfg.cascade_weights = ious, (1.0,) * len(ious)
    return build_detector(cfg).roi_heads


def test_cascade_stage_iou_threshold_changes_its_sampled_positives():
    """Acceptance criterion of issue 7: same proposals and targets, stage matcher at 0.5 vs 0.7."""
    heads = cascade_heads((0.5, 0.7))
    # proposals shifted right from GT box 0 (40 x 120) by dx: IoU = (40 - dx) / (40 + dx)
    shifts = torch.tensor([4.0, 8.0, 12.0, 16.0, 60.0])  # IoU 0.82, 0.67, 0.54, 0.43, bg
    props = GT[0].repeat(5, 1) + torch.stack([shifts, torch.zeros(5), shifts, torch.zeros(5)], 1)
    props[-1] = torch.tensor([120.0, 0.0, 150.0, 20.0])  # background
    ious = box_iou(props, GT).max(1).values
    assert torch.allclose(ious[:4], torch.tensor([36 / 44, 32 / 48, 28 / 52, 24 / 56]))
    positives = []
    for stage in (0, 1):
        _, labels, deltas = heads.label_stage([props], targets(1), stage)
        positives.append(int(labels[0].sum()))
        assert deltas[0].shape == (len(labels[0]), 1, 4)
    # + the two GT boxes appended as proposals: 0.5 -> 3 shifted + 2 GT, 0.7 -> 1 shifted + 2 GT
    assert positives == [5, 3]


def test_cascade_inference_averages_the_stage_scores():
    heads = cascade_heads((0.5, 0.6, 0.7)).eval()
    probs = (0.9, 0.6, 0.3)
    for predictor, p in zip(heads.box_predictor, probs, strict=True):
        for layer in (predictor.cls[0], predictor.delta[0]):
            torch.nn.init.zeros_(layer.weight)
            torch.nn.init.zeros_(layer.bias)
        predictor.cls[0].bias.data[1] = math.log(p / (1 - p))  # constant logits: softmax person prob = p
    feats = {str(i): torch.rand(1, 64, 40 // 2**i, 40 // 2**i) for i in range(4)}
    props = [GT.clone()]
    with torch.no_grad():
        (out,), _ = heads(feats, props, [(160, 160)])
    assert torch.allclose(out["scores"], torch.full((2,), sum(probs) / 3))
    assert torch.allclose(out["boxes"], GT)  # zero deltas: every stage keeps the boxes
    assert out["groups"].tolist() == [0, 1]
