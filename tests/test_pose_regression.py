"""Pose regression parts (paper 002, methods.md section 4) on hand cases: decoding, centre sampling, OKSFilter, the PSM
target, soft-NMS, and that each plugin changes the computation it names."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from crowdbench.bench.config import RegressionModelConfig, RegressionTrainConfig
from crowdbench.datasets.keypoints import COCO_17
from crowdbench.methods.pose.postprocess import oks as oks_numpy
from crowdbench.methods.pose.regression.decode import decode_poses, pose_boxes, soft_nms
from crowdbench.methods.pose.regression.losses import oks_filter, oks_matrix, regression_losses
from crowdbench.methods.pose.regression.model import build_regression_model
from crowdbench.methods.pose.regression.targets import (
    People,
    assign,
    candidates,
    centerness_targets,
    heatmap_targets,
    level_ranges,
    pseudo_boxes,
)

SIGMAS = torch.tensor(COCO_17.sigmas, dtype=torch.float64)
K = 17


def grid(stride: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    ys, xs = torch.meshgrid(torch.arange(size // stride), torch.arange(size // stride), indexing="ij")
    points = torch.stack([xs, ys], -1).reshape(-1, 2).double() * stride + stride // 2
    return points, torch.full((len(points),), float(stride), dtype=torch.float64)


def person(x1: float, y1: float, x2: float, y2: float) -> torch.Tensor:
    """A pose whose labelled joints span exactly the box (corners first, the rest at its centre)."""
    kps = torch.zeros(K, 3, dtype=torch.float64)
    kps[:, 0], kps[:, 1], kps[:, 2] = (x1 + x2) / 2, (y1 + y2) / 2, 2
    kps[0, :2] = torch.tensor([x1, y1])
    kps[1, :2] = torch.tensor([x2, y2])
    return kps


def test_decode_location_plus_offsets_times_stride():
    locations = torch.tensor([[4.0, 4.0], [24.0, 8.0]])
    strides = torch.tensor([8.0, 16.0])
    offsets = torch.zeros(2, K, 2)
    offsets[0, 3] = torch.tensor([1.5, -0.5])
    offsets[1, 16] = torch.tensor([-1.0, 2.0])
    poses = decode_poses(locations, strides, offsets)
    assert poses[0, 3].tolist() == [16.0, 0.0]  # 4 + 1.5*8, 4 - 0.5*8
    assert poses[1, 16].tolist() == [8.0, 40.0]  # 24 - 16, 8 + 2*16
    assert poses[0, 0].tolist() == [4.0, 4.0]  # zero offset: the location itself
    assert pose_boxes(poses.numpy()).tolist() == [[4.0, 0.0, 16.0, 4.0], [8.0, 8.0, 24.0, 40.0]]


def test_pseudo_box_is_the_tight_box_of_labelled_joints():
    kps = person(10, 20, 50, 90)
    kps[5] = torch.tensor([500.0, -300.0, 0.0])  # unlabelled: ignored
    assert pseudo_boxes(kps[None])[0].tolist() == [10.0, 20.0, 50.0, 90.0]


def test_center_sampling_marks_exactly_the_rule_positions():
    points, strides = grid(8, 128)  # centres 4, 12, ..., 124
    box = torch.tensor([[20.0, 16.0, 84.0, 112.0]])  # centre (52, 64)
    levels = torch.zeros(len(points), dtype=torch.long)
    lo, hi = level_ranges((1000.0,), levels)
    got = candidates(points, strides, box, lo, hi, center_sampling=True, radius=1.5)[:, 0]
    # |x - 52| < 12 and |y - 64| < 12 on the 8-px grid: x in {44, 52, 60}, y in {60, 68} (52 and 76 are on the edge)
    expected = {(x, y) for x in (44, 52, 60) for y in (60, 68)}
    assert {tuple(int(v) for v in p) for p in points[got]} == expected
    everywhere = candidates(points, strides, box, lo, hi, center_sampling=False)[:, 0]
    inside = {(x, y) for x in range(28, 84, 8) for y in range(20, 112, 8)}  # strictly inside the box
    assert {tuple(int(v) for v in p) for p in points[everywhere]} == inside
    assert got.sum() < everywhere.sum()


def test_center_region_is_clipped_to_the_pseudo_box_and_levels_split_by_size():
    points, strides = grid(8, 64)
    box = torch.tensor([[30.0, 0.0, 34.0, 64.0]])  # 4 px wide, between the grid columns 28 and 36
    lo, hi = level_ranges((1000.0,), torch.zeros(len(points), dtype=torch.long))
    assert not candidates(points, strides, box, lo, hi, center_sampling=True)[:, 0].any()
    # level ranges: max(l, t, r, b) of a location must lie in (lo, hi] of its level
    small = People(person(40, 40, 60, 60)[None], torch.tensor([100.0], dtype=torch.float64))
    big = People(person(0, 0, 128, 128)[None], torch.tensor([100.0], dtype=torch.float64))
    p3, s3 = grid(8, 128)
    levels = torch.zeros(len(p3), dtype=torch.long)
    assert (assign(p3, s3, levels, small, (32.0,), center_sampling=False) == 0).any()
    assert (assign(p3, s3, levels, big, (32.0,), center_sampling=False) == -1).all()  # reach > 32: not on P3
    levels[:] = 1
    assert (assign(p3, s3, levels, big, (32.0,), center_sampling=False) == 0).any()


def test_overlapping_people_go_to_the_smaller_box():
    points, strides = grid(8, 128)
    kps = torch.stack([person(0, 0, 120, 120), person(40, 40, 80, 80)])
    people = People(kps, torch.tensor([1.0, 1.0], dtype=torch.float64))
    owner = assign(
        points, strides, torch.zeros(len(points), dtype=torch.long), people, (1000.0,), center_sampling=False
    )
    at = {tuple(int(v) for v in p): int(o) for p, o in zip(points, owner, strict=True)}
    assert at[(60, 60)] == 1 and at[(20, 20)] == 0 and at[(124, 124)] == -1


def shifted(gt: torch.Tensor, area: float, target_oks: float) -> torch.Tensor:
    """A pose whose every joint is moved so that each contributes exp(-c) = target_oks: OKS = target_oks."""
    c = -math.log(target_oks)
    d = torch.sqrt(2 * c * area * (2 * SIGMAS) ** 2)
    pose = gt[:, :2].clone()
    pose[:, 0] += d
    return pose


def test_oks_matrix_equals_the_pycocotools_order_numpy_oks():
    rng = np.random.default_rng(0)
    gts = torch.from_numpy(np.concatenate([rng.uniform(0, 100, (3, K, 2)), np.full((3, K, 1), 2.0)], -1))
    gts[1, :5, 2] = 0  # unlabelled joints do not count
    poses = gts[[0, 1, 2, 0], :, :2] + torch.from_numpy(rng.normal(0, 3, (4, K, 2)))
    areas = torch.tensor([900.0, 1600.0, 2500.0], dtype=torch.float64)
    ours = oks_matrix(poses, gts, areas, SIGMAS).numpy()
    for g in range(3):
        labelled = gts[g, :, 2].numpy() > 0
        ref = oks_numpy(
            gts[g, labelled].numpy(), poses[:, labelled].numpy(), areas[g].item(), np.asarray(COCO_17.sigmas)[labelled]
        )
        np.testing.assert_allclose(ours[:, g], ref, rtol=1e-12)


def test_oks_filter_keeps_and_drops_at_the_threshold():
    gt = person(10, 10, 60, 110)
    area = 2000.0
    people = People(gt[None], torch.tensor([area], dtype=torch.float64))
    poses = torch.stack([shifted(gt, area, v) for v in (0.9, 0.51, 0.49, 0.45, 0.2)])
    assert oks_matrix(poses, gt[None], people.areas, SIGMAS)[:, 0].tolist() == pytest.approx(
        [0.9, 0.51, 0.49, 0.45, 0.2]
    )
    f = oks_filter(poses, people, SIGMAS, pos=0.5, neg=0.5, keep_best=False)
    assert f.keep.tolist() == [True, True, False, False, False]
    assert not f.ignore.any()
    assert f.oks.tolist() == pytest.approx([0.9, 0.51, 0.49, 0.45, 0.2])
    banded = oks_filter(poses, people, SIGMAS, pos=0.5, neg=0.4, keep_best=False)  # SMPR: [0.4, 0.5) ignored
    assert banded.ignore.tolist() == [False, False, True, True, False]
    weak = torch.stack([shifted(gt, area, v) for v in (0.3, 0.1)])
    assert oks_filter(weak, people, SIGMAS, keep_best=False).keep.tolist() == [False, False]
    assert oks_filter(weak, people, SIGMAS, keep_best=True).keep.tolist() == [True, False]  # person's best kept


def test_oks_filter_matches_each_pose_to_its_best_person():
    a, b = person(0, 0, 40, 80), person(100, 0, 140, 80)
    people = People(torch.stack([a, b]), torch.tensor([1500.0, 1500.0], dtype=torch.float64))
    poses = torch.stack([shifted(b, 1500.0, 0.8), shifted(a, 1500.0, 0.7)])
    f = oks_filter(poses, people, SIGMAS, keep_best=False)
    assert f.person.tolist() == [1, 0] and f.keep.all()


def test_soft_nms_hand_cases():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 5], [0, 0, 10, 8.5], [20, 20, 30, 30]], dtype=float)
    scores = np.array([0.9, 0.8, 0.3, 0.5])
    keep, kept = soft_nms(boxes, scores, iou_thr=0.3, min_score=1e-3, max_dets=None)
    # box 1 overlaps box 0 with IoU 0.5 -> 0.8 * 0.5 = 0.4; box 2 IoU 0.85 -> 0.3 * 0.15 = 0.045, then vs box 1
    # (IoU 5/8.5 = 0.588 > 0.3) -> 0.045 * (1 - 0.588); box 3 is untouched
    assert keep.tolist() == [0, 3, 1, 2]
    np.testing.assert_allclose(kept, [0.9, 0.5, 0.4, 0.045 * (1 - 5 / 8.5)])
    keep, _ = soft_nms(boxes, scores, iou_thr=0.3, min_score=0.1, max_dets=None)
    assert keep.tolist() == [0, 3, 1]  # box 2 fell below min_score
    keep, _ = soft_nms(boxes, scores, iou_thr=0.6, max_dets=2)
    assert keep.tolist() == [0, 1]  # IoU 0.5 <= 0.6: box 1 keeps 0.8
    _, g = soft_nms(boxes[:2], scores[:2], method="gaussian", sigma=0.5)
    np.testing.assert_allclose(g, [0.9, 0.8 * math.exp(-0.25 / 0.5)])


def test_centerness_and_heatmap_targets():
    box = torch.tensor([[0.0, 0.0, 40.0, 80.0]])
    assert centerness_targets(torch.tensor([[20.0, 40.0]]), box).item() == pytest.approx(1.0)
    assert centerness_targets(torch.tensor([[10.0, 40.0]]), box).item() == pytest.approx(math.sqrt(10 / 30))
    kps = torch.zeros(1, K, 3)
    kps[0, 2] = torch.tensor([21.0, 35.0, 1.0])  # -> (round(17/8), round(31/8)) = (2, 4)
    kps[0, 4] = torch.tensor([500.0, 5.0, 2.0])  # outside the map
    hm = heatmap_targets(kps, 8, 10, 10)
    assert hm.sum() == 1 and hm[2, 4, 2] == 1


def tiny_model_cfg(**changes) -> RegressionModelConfig:
    base = dict(backbone="resnet18", fpn_channels=32, tower_convs=1, gn_groups=8, heatmap_channels=16,
                size_bounds=(32.0, 64.0, 128.0, 256.0))  # fmt: skip
    return RegressionModelConfig(**{**base, **changes})


def spread(x1: float, y1: float, x2: float, y2: float) -> torch.Tensor:
    """A pose whose joints spread over the box (a zig-zag from head to feet)."""
    j = torch.arange(K, dtype=torch.float64)
    return torch.stack([x1 + (x2 - x1) * (j % 4) / 3, y1 + (y2 - y1) * j / (K - 1), torch.full_like(j, 2.0)], -1)


def batch_people() -> list[People]:
    kps = torch.stack([spread(20, 10, 60, 90), spread(70, 30, 110, 120)]).float()
    return [People(kps, torch.tensor([1700.0, 1900.0]))]


def losses_of(model_cfg: RegressionModelConfig, train: RegressionTrainConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = build_regression_model(model_cfg, K)
    out = model(torch.randn(1, 3, 128, 128))
    return regression_losses(out, batch_people(), model_cfg, train, SIGMAS.float())


def test_plugins_switch_their_loss_terms():
    train = RegressionTrainConfig()
    base = losses_of(tiny_model_cfg(), train)
    assert set(base) == {"cls", "initial"}
    full = losses_of(tiny_model_cfg(feature_align=True, heatmap_aux=True, psm=True, centerness=True), train)
    assert set(full) == {"cls", "initial", "refined", "heatmap", "psm", "centerness"}
    assert all(torch.isfinite(v) for v in full.values())
    sampled = losses_of(tiny_model_cfg(), RegressionTrainConfig(center_sampling=True, center_radius=0.5))
    assert sampled["initial"] != base["initial"]  # fewer positives learn the poses


def test_oks_filter_changes_the_classification_targets():
    cfg = tiny_model_cfg(feature_align=True)
    plain = losses_of(cfg, RegressionTrainConfig())
    filtered = losses_of(cfg, RegressionTrainConfig(oks_filter=True, oks_keep_best=False))
    # an untrained network's initial poses are far from everyone: no final positives, so no refinement loss
    assert filtered["refined"] == 0 and plain["refined"] > 0
    assert filtered["cls"] != plain["cls"]


@pytest.mark.parametrize("target", ["refined", "initial"])
def test_psm_target_is_the_oks_of_the_prediction(target):
    """The PSM loss is minimal (zero gradient) exactly where sigmoid(psm) equals the OKS of the chosen pose with its
    person, computed independently with the pycocotools-order numpy OKS."""
    cfg = tiny_model_cfg(feature_align=True, psm=True)
    train = RegressionTrainConfig(psm_target=target)
    torch.manual_seed(0)
    model = build_regression_model(cfg, K)
    out = model(torch.randn(1, 3, 128, 128))
    people = batch_people()
    owner = assign(out["locations"], out["strides"], out["levels"], people[0], cfg.size_bounds, center_sampling=False)
    pos = (owner >= 0).nonzero(as_tuple=True)[0]
    chosen = out[target][0, pos].detach()
    poses = decode_poses(out["locations"][pos], out["strides"][pos], chosen).double()
    expected = torch.tensor(
        [
            oks_numpy(
                people[0].keypoints[g].double().numpy(), p[None].numpy(), people[0].areas[g].item(), COCO_17.sigmas
            )[0]
            for p, g in zip(poses, owner[pos].tolist(), strict=True)
        ]
    )
    assert expected.min() < expected.max()  # a real spread of targets, not all 0
    logits = torch.logit(expected.float().clamp(1e-6, 1 - 1e-6)).requires_grad_(True)
    psm = out["psm"].detach().clone()
    psm[0, pos] = logits
    psm.retain_grad()
    at_target = regression_losses({**out, "psm": psm}, people, cfg, train, SIGMAS.float())["psm"]
    grad = torch.autograd.grad(at_target, logits)[0]
    assert grad.abs().max() < 1e-5
    off = regression_losses({**out, "psm": psm.detach() + 0.5}, people, cfg, train, SIGMAS.float())["psm"]
    assert off > at_target


def test_grid_sample_deformable_conv_equals_torchvision():
    from torchvision.ops import deform_conv2d

    from crowdbench.methods.pose.regression.model import deform_conv2d_sampled

    torch.manual_seed(0)
    x = torch.randn(2, 8, 7, 5, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(6, 8, 3, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(6, dtype=torch.float64, requires_grad=True)
    offset = (torch.randn(2, 2 * 2 * 9, 7, 5, dtype=torch.float64) * 3).requires_grad_(True)  # 2 groups, far taps
    ours = deform_conv2d_sampled(x, offset, weight, bias)
    ref = deform_conv2d(x, offset, weight, bias, padding=1)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(ref)
    grads_ours = torch.autograd.grad(ours, (x, offset, weight, bias), g)
    grads_ref = torch.autograd.grad(ref, (x, offset, weight, bias), g)
    for a, b in zip(grads_ours, grads_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
