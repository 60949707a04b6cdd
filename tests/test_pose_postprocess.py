"""Pose post-processing (OKS, OKS-NMS, soft-OKS-NMS, GBG, post-pose NMS, heatmap averaging) and S1/S2/S3 schedules."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from crowdbench.methods.pose.postprocess import (
    average_heatmaps,
    gbg_boxes,
    multiscale_inputs,
    oks,
    oks_nms,
    pose_nms,
    pose_score,
    soft_oks_nms,
)
from crowdbench.methods.pose.schedules import SCHEDULES, Schedule, lr_at, make_scheduler, oa_active, restarts_at

SIG4 = np.full(4, 0.1)
POSE = np.array([[50.0, 50, 1], [50, 100, 1], [30, 150, 1], [70, 150, 1]])


def shifted(pose: np.ndarray, dx: float, dy: float) -> np.ndarray:
    return pose + np.array([dx, dy, 0.0])


# --- OKS ---------------------------------------------------------------------------------------------------------


def test_oks_hand_value():
    # one keypoint moved by 2 px: e = 4 / (2·0.1)² / 100 / 2 = 0.5; the other three coincide
    d = POSE.copy()
    d[0, 0] += 2
    got = oks(POSE, d[None], 100.0, SIG4)
    assert got == pytest.approx([(3 + math.exp(-0.5)) / 4], rel=1e-12)


def test_oks_matches_coco_evaluator():
    from crowdbench.bench.metrics.coco_keypoints import run_cocoeval

    rng = np.random.default_rng(0)
    k = 17
    g = np.c_[rng.uniform(0, 100, (k, 2)), np.full(k, 2)]
    d = np.c_[g[:, :2] + rng.normal(0, 5, (k, 2)), np.ones(k)]
    area = 3000.0
    gt = {
        "images": [{"id": 1, "width": 200, "height": 200}],
        "categories": [{"id": 1, "name": "person", "keypoints": [str(i) for i in range(k)], "skeleton": []}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 100, 100], "area": area, "iscrowd": 0}
            | {"num_keypoints": k, "keypoints": g.ravel().tolist()}
        ],
    }
    preds = [{"image_id": 1, "category_id": 1, "keypoints": d.ravel().tolist(), "score": 0.9}]
    ev = run_cocoeval(gt, preds, "keypoints", engine="faster_coco_eval")  # our vectorised OKS
    ref = next(iter(ev._oks.values()))[0, 0]
    assert oks(g, d[None], area, np.asarray(ev.params.kpt_oks_sigmas))[0] == pytest.approx(ref, rel=1e-12)


def test_oks_vis_thr_counts_keypoints_visible_in_both():
    g = POSE.copy()
    d = shifted(POSE, 0, 0)
    d[0, :2] += 1000  # far off, but hidden in d
    d[0, 2] = 0.1
    assert oks(g, d[None], 100.0, SIG4, vis_thr=0.5)[0] == pytest.approx(1.0)
    assert oks(g, d[None], 100.0, SIG4)[0] == pytest.approx(0.75)
    d[:, 2] = 0.0
    assert oks(g, d[None], 100.0, SIG4, vis_thr=0.5)[0] == 0.0


def test_pose_score_bbox_keypoint():
    assert pose_score(0.5, np.array([0.9, 0.3, 0.2, 0.1])) == pytest.approx(0.5 * 0.6)  # 0.2 is not > 0.2
    assert pose_score(0.9, np.array([0.1, 0.2])) == 0.0
    s = pose_score(np.array([1.0, 0.5]), np.array([[0.4, 0.6], [0.1, 1.0]]))
    assert s == pytest.approx([0.5, 0.5])


# --- OKS-NMS -----------------------------------------------------------------------------------------------------


def test_oks_nms_near_identical_poses_keep_one():
    poses = np.stack([POSE, shifted(POSE, 1, 1)])
    assert oks_nms(poses, np.array([0.8, 0.9]), np.full(2, 10000.0), SIG4).tolist() == [1]


def test_oks_nms_far_poses_keep_both():
    poses = np.stack([POSE, shifted(POSE, 100, 0)])
    assert oks_nms(poses, np.array([0.8, 0.9]), np.full(2, 10000.0), SIG4).tolist() == [1, 0]


def test_oks_nms_threshold_boundary_is_strict():
    poses = np.stack([POSE, shifted(POSE, 3, 0)])
    areas = np.array([900.0, 1100.0])
    o = oks(POSE, poses[1:], 1000.0, SIG4)[0]  # mean of the two areas
    assert 0.5 < o < 1
    assert oks_nms(poses, np.array([0.9, 0.8]), areas, SIG4, thr=o).tolist() == [0, 1]  # OKS == thr: kept
    assert oks_nms(poses, np.array([0.9, 0.8]), areas, SIG4, thr=np.nextafter(o, 0)).tolist() == [0]


# --- soft-OKS-NMS ------------------------------------------------------------------------------------------------

ONE_SIG = np.array([0.1])
D_HALF = math.sqrt(8 * math.log(2))  # with area 100: e = d² / 0.04 / 100 / 2 = ln 2, OKS = 0.5


def soft_case():
    poses = np.array([[[0.0, 0, 1]], [[D_HALF, 0, 1]], [[500.0, 0, 1]]])
    return poses, np.array([0.9, 0.85, 0.5]), np.full(3, 100.0)


def test_soft_oks_nms_gaussian_by_hand():
    poses, scores, areas = soft_case()
    assert oks(poses[0], poses[1:2], 100.0, ONE_SIG)[0] == pytest.approx(0.5)
    keep, new = soft_oks_nms(poses, scores, areas, ONE_SIG, thr=0.3)
    # B: 0.85·exp(−0.5²/0.3) = 0.369 falls below C (0.5, untouched), so C is taken second
    assert keep.tolist() == [0, 2, 1]
    assert new == pytest.approx([0.9, 0.5, 0.85 * math.exp(-0.25 / 0.3)])


def test_soft_oks_nms_linear_and_max_dets():
    poses, scores, areas = soft_case()
    keep, new = soft_oks_nms(poses, scores, areas, ONE_SIG, thr=0.3, method="linear")
    assert keep.tolist() == [0, 2, 1] and new == pytest.approx([0.9, 0.5, 0.425])
    keep, new = soft_oks_nms(poses, scores, areas, ONE_SIG, thr=0.6, method="linear")  # OKS 0.5 < 0.6: untouched
    assert keep.tolist() == [0, 1, 2] and new == pytest.approx([0.9, 0.85, 0.5])
    keep, _ = soft_oks_nms(poses, scores, areas, ONE_SIG, thr=0.3, max_dets=2)
    assert keep.tolist() == [0, 2]


# --- GBG ---------------------------------------------------------------------------------------------------------


def gbg_case():
    boxes = [[0, 0, 100, 100]]  # 0: EGT
    boxes += [[s, 0, 100 + s, 100] for s in (2, 4, 6, 8, 10)]  # 1-5: IoU 0.96 … 0.82 with box 0
    boxes += [[30, 0, 130, 100]]  # 6: IoU 70/130 = 0.54 with box 0 — between 0.5 and 0.7
    boxes += [[300, 300, 400, 400]]  # 7: IoU 0 with every EGT
    boxes += [[0, 0, 5, 5]]  # 8: tiny, but would be an EGT box
    boxes += [[500, 500, 600, 600]]  # 9: second EGT, alone
    scores = [0.95, 0.7, 0.6, 0.5, 0.4, 0.3, 0.5, 0.7, 0.9, 0.85]
    return np.asarray(boxes, float), np.asarray(scores)


def test_gbg_keeps_and_drops_per_paper():
    boxes, scores = gbg_case()
    # group of 6 around EGT 0 keeps top 4 (0, 1, 2, 3); 4, 5 dropped; 6 singleton; 7 dropped; 8 too small; 9 EGT
    assert gbg_boxes(boxes, scores, min_size=10).tolist() == [0, 1, 2, 3, 6, 9]
    assert gbg_boxes(boxes, scores, min_size=10, keep_between=False).tolist() == [0, 1, 2, 3, 9]
    assert gbg_boxes(boxes, scores).tolist() == [0, 1, 2, 3, 6, 8, 9]  # min_size off: box 8 is an EGT box
    assert gbg_boxes(boxes, scores, min_size=10, top_n=2).tolist() == [0, 1, 6, 9]


def test_gbg_without_egt_keeps_nothing():
    boxes, scores = gbg_case()
    assert gbg_boxes(boxes, np.minimum(scores, 0.8)).tolist() == []  # score 0.8 is not > 0.8


# --- post-pose NMS -----------------------------------------------------------------------------------------------


def test_pose_nms_three_rules_differ():
    boxes = np.array(
        [
            [0, 0, 100, 200],  # A
            [10, 0, 110, 200],  # B: IoU 0.82 with A, another person (pose 60 px lower)
            [0, 0, 100, 400],  # C: IoU 0.5 with A, same pose as A (a too-tall box)
            [0, 150, 100, 400],  # D: IoU 0.625 with C, 0.125 with A, another person
        ],
        float,
    )
    poses = np.stack([POSE, shifted(POSE, 0, 60), POSE, shifted(POSE, 0, 200)])
    scores = np.array([0.9, 0.85, 0.8, 0.7])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    sig = np.full(4, 0.05)

    def run(rule):
        return pose_nms(boxes, poses, scores, areas, sig, rule=rule).tolist()

    assert run("and") == [0, 1, 2, 3]  # B differs in pose, C in box: nothing is a duplicate in both
    assert run("or") == [0, 3]  # A suppresses B (IoU) and C (OKS); D overlaps only the suppressed C
    assert run("sequential") == [0]  # box NMS: C survives and removes D; OKS-NMS then removes C


# --- heatmaps ----------------------------------------------------------------------------------------------------


def test_average_heatmaps_identical_and_weighted():
    rng = np.random.default_rng(1)
    m = rng.random((2, 3, 8, 6)).astype(np.float32)
    assert np.allclose(average_heatmaps([m, m, m]), m)
    assert np.allclose(average_heatmaps([m, 3 * m], weights=[0.75, 0.25]), 1.5 * m)
    assert np.allclose(average_heatmaps([m, m], size=(8, 6)), m)


def test_average_heatmaps_resize_keeps_peak_aligned():
    big = np.zeros((1, 1, 9, 9), np.float32)
    big[0, 0, 6, 2] = 1.0  # align_corners: 9 → 5 maps pixel 2k onto k
    small = np.zeros((1, 1, 5, 5), np.float32)
    small[0, 0, 3, 1] = 1.0
    out = average_heatmaps([small, big], size=(5, 5), align_corners=True)
    assert np.unravel_index(out[0, 0].argmax(), (5, 5)) == (3, 1)
    assert out[0, 0, 3, 1] == pytest.approx(1.0)
    up = average_heatmaps([small], size=(9, 9), align_corners=True)
    assert np.unravel_index(up[0, 0].argmax(), (9, 9)) == (6, 2) and up[0, 0, 6, 2] == pytest.approx(1.0)


def test_multiscale_inputs_rounding():
    assert multiscale_inputs() == [(136, 180), (192, 256), (248, 332)]
    assert multiscale_inputs((0.7, 1.3), multiple=32) == [(128, 192), (256, 320)]


# --- schedules ---------------------------------------------------------------------------------------------------

BASE = 1e-3


@pytest.mark.parametrize(
    ("name", "epoch", "lr"),
    [
        *[("s1", e, lr) for e, lr in [(0, 1e-3), (169, 1e-3), (170, 1e-4), (199, 1e-4), (200, 1e-5), (209, 1e-5)]],
        *[("s2", e, lr) for e, lr in [(0, 1e-3), (379, 1e-3), (380, 1e-4), (409, 1e-4), (410, 1e-5)]],
        *[("s3", e, lr) for e, lr in [(169, 1e-3), (170, 1e-4), (209, 1e-5), (210, 1e-3), (379, 1e-3)]],
        *[("s3", e, lr) for e, lr in [(380, 1e-4), (410, 1e-5), (419, 1e-5)]],
        ("baseline", 200, 1e-5),
    ],
)
def test_schedule_lr(name, epoch, lr):
    assert lr_at(SCHEDULES[name], epoch, BASE) == pytest.approx(lr, rel=1e-12)


def test_schedule_oa_and_restart_flags():
    s1, s2, s3, base = (SCHEDULES[k] for k in ("s1", "s2", "s3", "baseline"))
    assert s1.epochs == 210 and s2.epochs == 420 and s3.epochs == 420
    assert oa_active(s1, 0) and oa_active(s2, 0) and not any(oa_active(base, e) for e in range(210))
    assert not oa_active(s3, 209) and oa_active(s3, 210) and oa_active(s3, 419)
    assert [e for e in range(420) if restarts_at(s3, e)] == [210]
    assert not any(restarts_at(s, e) for s in (s1, s2, base) for e in range(420))
    assert s2.without_oa().milestones == s2.milestones and not oa_active(s2.without_oa(), 0)


def test_schedule_scaled_keeps_shape():
    s1 = SCHEDULES["s1"].scaled(0.05)
    assert (s1.epochs, s1.milestones, s1.oa_from_epoch) == (11, (9, 10), 0)
    s3 = SCHEDULES["s3"].scaled(0.05)
    assert (s3.epochs, s3.milestones, s3.oa_from_epoch, s3.restart_epoch) == (22, (9, 10, 20, 21), 11, 11)
    for key, sched in SCHEDULES.items():
        for f in (0.001, 0.01, 0.05, 0.3, 1.0):
            s = sched.scaled(f)
            points = [0, *s.milestones, s.epochs]
            assert all(b > a for a, b in itertools.pairwise(points)), (key, f, s)
            assert (s.oa_from_epoch is None) == (sched.oa_from_epoch is None)
            if key == "s3":  # two identical stages, OA on exactly for the second
                assert s.restart_epoch == s.oa_from_epoch and s.epochs == 2 * s.restart_epoch
                assert tuple(m - s.restart_epoch for m in s.milestones[2:]) == s.milestones[:2]
    assert SCHEDULES["s2"].scaled(1.0) == Schedule("s2@1", 420, (380, 410), oa_from_epoch=0)


def test_make_scheduler_matches_lr_at():
    torch = pytest.importorskip("torch")
    for key in ("s1", "s3"):
        sched = SCHEDULES[key]
        opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=BASE)
        lr_s = make_scheduler(opt, sched)
        for epoch in range(sched.epochs):
            assert opt.param_groups[0]["lr"] == pytest.approx(lr_at(sched, epoch, BASE), rel=1e-9), (key, epoch)
            opt.step()
            lr_s.step()


def test_make_scheduler_warmup_per_iteration():
    torch = pytest.importorskip("torch")
    sched = SCHEDULES["s3"].scaled(0.05)  # restart at 11, 22 epochs
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=BASE)
    lr_s = make_scheduler(opt, sched, iters_per_epoch=10, warmup_iters=5, warmup_factor=0.001)
    lrs = []
    for _ in range(sched.epochs * 10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        lr_s.step()
    assert lrs[0] == pytest.approx(BASE * 0.001) and lrs[5] == pytest.approx(BASE)
    assert lrs[2] == pytest.approx(BASE * (1 - 0.999 * 0.6))
    assert lrs[110] == pytest.approx(BASE * 0.001) and lrs[115] == pytest.approx(BASE)  # warm-up again at restart
    assert lrs[109] == pytest.approx(lr_at(sched, 10, BASE))
