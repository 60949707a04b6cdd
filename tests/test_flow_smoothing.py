"""Optical-flow box and pose smoothing (methods.md section 6; paper 000 eq. (1), paper 004 section 2.1)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from crowdbench.datasets.model import Frame
from crowdbench.methods.tracking import flow as flow_mod
from crowdbench.methods.tracking.flow import (
    FlowCache,
    compute_flow,
    propagate_box,
    propagate_points,
    sample_flow,
    smooth_boxes,
    smooth_poses,
)


def constant_flow(dx: float, dy: float, h: int = 64, w: int = 64) -> np.ndarray:
    flow = np.empty((h, w, 2), dtype=np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    return flow


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Random RGB texture blurred to a few-pixel correlation length (trackable by DIS)."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 1.5)


# --- pose smoothing, eq. (1), by hand -------------------------------------------------------------------------
# Three frames, one person (id 7), two joints; alpha = 0.25, conf_thr = 0.3.
# F_{k-1->k} = (2, 1) everywhere, F_{k+1->k} = (-1, 3) everywhere.
POSES = [
    {7: np.array([[7.0, 18.0, 0.9], [28.0, 38.0, 0.1]])},  # joint 1 below the threshold
    {7: np.array([[10.0, 20.0, 0.9], [30.0, 40.0, 0.8]]), 9: np.array([[5.0, 5.0, 1.0], [6.0, 6.0, 1.0]])},
    {7: np.array([[14.0, 16.0, 0.7], [32.0, 36.0, 0.9]])},
]
FLOW_PREV = [None, constant_flow(2, 1), constant_flow(2, 1)]
FLOW_NEXT = [constant_flow(-1, 3), constant_flow(-1, 3), None]


def test_pose_smoothing_keep_by_hand() -> None:
    out = smooth_poses(POSES, FLOW_PREV, FLOW_NEXT, alpha=0.25, conf_thr=0.3)  # default missing="keep"
    # frame 1, joint 0: prev (7,18)+(2,1) = (9,19); next (14,16)+(-1,3) = (13,19);
    # 0.25*(9,19) + 0.25*(13,19) + 0.5*(10,20) = (10.5, 19.5)
    np.testing.assert_allclose(out[1][7][0], [10.5, 19.5, 0.9])
    # joint 1: previous joint has score 0.1 <= 0.3 -> only one neighbour -> unchanged in "keep" mode
    np.testing.assert_allclose(out[1][7][1], [30.0, 40.0, 0.8])
    # id 9 has no neighbours; frames 0 and 2 lack a neighbour frame -> unchanged
    np.testing.assert_allclose(out[1][9], POSES[1][9])
    np.testing.assert_allclose(out[0][7], POSES[0][7])
    np.testing.assert_allclose(out[2][7], POSES[2][7])
    assert out[1][7] is not POSES[1][7]  # input not modified in place
    np.testing.assert_allclose(POSES[1][7][0], [10.0, 20.0, 0.9])


def test_pose_smoothing_renormalise_by_hand() -> None:
    out = smooth_poses(POSES, FLOW_PREV, FLOW_NEXT, alpha=0.25, conf_thr=0.3, missing="renormalise")
    np.testing.assert_allclose(out[1][7][0], [10.5, 19.5, 0.9])
    # joint 1: next (32,36)+(-1,3) = (31,39); weights 0.25 / 0.5 renormalised by 0.75:
    # x = (0.25*31 + 0.5*30) / 0.75 = 91/3, y = (0.25*39 + 0.5*40) / 0.75 = 119/3; score kept
    np.testing.assert_allclose(out[1][7][1], [91 / 3, 119 / 3, 0.8])
    # frame 2 (no next): prev = RAW frame-1 pose + (2,1): joint 0 (12,21), joint 1 (32,41)
    # joint 0: ((0.25*12 + 0.5*14)/0.75, (0.25*21 + 0.5*16)/0.75) = (40/3, 53/3)
    # joint 1: ((0.25*32 + 0.5*32)/0.75, (0.25*41 + 0.5*36)/0.75) = (32, 113/3)
    np.testing.assert_allclose(out[2][7], [[40 / 3, 53 / 3, 0.7], [32.0, 113 / 3, 0.9]])
    # frame 0 (no prev): next = frame-1 pose + (-1,3): (9,23) and (29,43); own joint 1 has score 0.1 but the
    # threshold applies to neighbour joints only
    np.testing.assert_allclose(
        out[0][7],
        [
            [(0.25 * 9 + 0.5 * 7) / 0.75, (0.25 * 23 + 0.5 * 18) / 0.75, 0.9],
            [(0.25 * 29 + 0.5 * 28) / 0.75, (0.25 * 43 + 0.5 * 38) / 0.75, 0.1],
        ],
    )
    np.testing.assert_allclose(out[1][9], POSES[1][9])


def test_pose_smoothing_threshold_lowered_uses_joint() -> None:
    """With conf_thr below 0.1 the low-score joint takes part: eq. (1) in full for joint 1 of frame 1."""
    out = smooth_poses(POSES, FLOW_PREV, FLOW_NEXT, alpha=0.25, conf_thr=0.05)
    # prev (28,38)+(2,1) = (30,39); next (31,39); 0.25*(30,39) + 0.25*(31,39) + 0.5*(30,40) = (30.25, 39.5)
    np.testing.assert_allclose(out[1][7][1], [30.25, 39.5, 0.8])
    with pytest.raises(ValueError):
        smooth_poses(POSES, FLOW_PREV, FLOW_NEXT, alpha=0.6)


# --- box smoothing, paper 004 section 2.1 ---------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["median", "corners"])
def test_box_smoothing(mode: str) -> None:
    tracks = [
        {1: np.array([0.0, 0.0, 10.0, 10.0])},
        {1: np.array([2.0, 4.0, 12.0, 14.0]), 2: np.array([30.0, 30.0, 40.0, 40.0])},
        {1: np.array([6.0, 6.0, 16.0, 16.0])},
    ]
    zero = smooth_boxes(tracks, [None, constant_flow(0, 0), constant_flow(0, 0)], weight=0.5, mode=mode)
    np.testing.assert_allclose(zero[0][1], [0, 0, 10, 10])  # first frame unchanged
    np.testing.assert_allclose(zero[1][1], [1, 2, 11, 12])  # average of the two boxes
    np.testing.assert_allclose(zero[1][2], [30, 30, 40, 40])  # new id unchanged
    np.testing.assert_allclose(zero[2][1], [4, 5, 14, 15])  # uses the RAW frame-1 box (2,4,12,14), not (1,2,11,12)
    shifted = smooth_boxes(tracks, [None, constant_flow(3, -1), constant_flow(3, -1)], weight=0.5, mode=mode)
    # previous box moved first: (3,-1,13,9); averaged with (2,4,12,14)
    np.testing.assert_allclose(shifted[1][1], [2.5, 1.5, 12.5, 11.5])
    w = smooth_boxes(tracks, [None, constant_flow(3, -1), None], weight=0.25, mode=mode)
    np.testing.assert_allclose(w[1][1], 0.75 * np.array([2, 4, 12, 14]) + 0.25 * np.array([3, -1, 13, 9]))
    np.testing.assert_allclose(w[2][1], [6, 6, 16, 16])  # no flow -> unchanged


def test_propagate_box_median_vs_corners() -> None:
    """Non-uniform flow: median translates the box rigidly, corners moves each corner by its own flow."""
    flow = np.zeros((40, 40, 2), dtype=np.float32)
    flow[:, :20, 0] = 1.0  # left half moves +1 in x
    flow[:, 20:, 0] = 5.0  # right half moves +5 in x
    box = np.array([2.0, 2.0, 30.0, 10.0])  # columns 2..30: 18 at +1, 11 at +5 -> median +1
    np.testing.assert_allclose(propagate_box(box, flow, "median"), [3, 2, 31, 10])
    np.testing.assert_allclose(propagate_box(box, flow, "corners"), [3, 2, 35, 10])


# --- flow sampling ----------------------------------------------------------------------------------------------
def test_propagation_bilinear_by_hand() -> None:
    h, w = 8, 10
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    flow = np.stack([xs**2, ys**2 + xs], axis=-1)  # non-linear: bilinear differs from the analytic value
    # point (2.25, 3.5): u between x=2 (4) and x=3 (9) -> 4 + 0.25*5 = 5.25 (analytic 5.0625)
    # v = y^2 + x: rows 3 (9) and 4 (16) -> 12.5, plus x bilinear 2.25 -> 14.75
    pts = np.array([[2.25, 3.5, 0.9], [-3.0, 100.0, 0.5]])
    np.testing.assert_allclose(sample_flow(flow, pts), [[5.25, 14.75], [0.0, 49.0]])  # 2nd clamped to (0, 7)
    np.testing.assert_allclose(propagate_points(pts, flow), [[7.5, 18.25], [-3.0, 149.0]])
    # agrees with cv2.remap's bilinear sampling inside the image
    rng = np.random.default_rng(1)
    inner = rng.uniform([0, 0], [w - 1, h - 1], size=(50, 2)).astype(np.float32)
    remapped = cv2.remap(flow, inner[:, :1], inner[:, 1:], cv2.INTER_LINEAR)[:, 0]
    np.testing.assert_allclose(sample_flow(flow, inner), remapped, atol=0.3)  # remap: 1/32 px coordinate grid
    assert sample_flow(flow, np.zeros((0, 3))).shape == (0, 2)


# --- compute_flow -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("scale", "tol"), [(1.0, 0.25), (0.5, 0.5)])
def test_compute_flow_recovers_shift(scale: float, tol: float) -> None:
    prev = texture(240, 320)
    dx, dy = -5, 3
    nxt = np.roll(prev, shift=(dy, dx), axis=(0, 1))  # nxt(x + d) = prev(x) -> flow = d
    flow = compute_flow(prev, nxt, "dis_medium", scale=scale)
    assert flow.shape == (240, 320, 2) and flow.dtype == np.float32
    median = np.median(flow[20:-20, 20:-20].reshape(-1, 2), axis=0)
    assert abs(median[0] - dx) < tol and abs(median[1] - dy) < tol, median
    # sign convention: prev(x) ≈ nxt(x + flow(x)) -> warping nxt by the flow reproduces prev
    grey_prev = cv2.cvtColor(prev, cv2.COLOR_RGB2GRAY).astype(np.float32)
    grey_next = cv2.cvtColor(nxt, cv2.COLOR_RGB2GRAY).astype(np.float32)
    ys, xs = np.mgrid[0:240, 0:320].astype(np.float32)
    warped = cv2.remap(grey_next, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR)
    inner = (slice(20, -20), slice(20, -20))
    assert np.abs(warped[inner] - grey_prev[inner]).mean() < 0.5 * np.abs(grey_next[inner] - grey_prev[inner]).mean()


def test_compute_flow_grey_input_and_errors() -> None:
    prev = cv2.cvtColor(texture(96, 128, seed=3), cv2.COLOR_RGB2GRAY)
    flow = compute_flow(prev, np.roll(prev, 2, axis=1), "dis_fast")
    assert flow.shape == (96, 128, 2)
    with pytest.raises(ValueError):
        compute_flow(prev, prev, "nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        compute_flow(prev, prev[:-1])


# --- FlowCache --------------------------------------------------------------------------------------------------
def test_flow_cache_reads_from_disk(tmp_path, monkeypatch) -> None:
    prev = texture(120, 160, seed=5)
    nxt = np.roll(prev, shift=(1, -2), axis=(0, 1))
    video = "../cam/a b"  # '/' and '..' must not escape the root
    frames = [Frame(video, 4, 160, 120, image=lambda: prev), Frame(video, 5, 160, 120, image=lambda: nxt)]
    fresh = compute_flow(prev, nxt, "dis_medium")

    calls = []
    real = flow_mod.compute_flow

    def counting(*args, **kwargs):
        calls.append(args[2:])
        return real(*args, **kwargs)

    monkeypatch.setattr(flow_mod, "compute_flow", counting)
    cache = FlowCache(tmp_path / "flows", method="dis_medium")
    first = cache.get(frames, 4, 5)
    second = cache.get(frames, 4, 5)
    again = FlowCache(tmp_path / "flows", method="dis_medium").get(frames, 4, 5)  # new instance, same disk
    assert len(calls) == 1
    path = cache.path(video, 4, 5)
    assert path.is_file() and path.name == "000004_000005_dis_medium_1.npy"
    assert path.resolve().is_relative_to((tmp_path / "flows").resolve())
    assert path.parent.parent == tmp_path / "flows"  # one folder level per video, whatever the id
    assert np.load(path).dtype == np.float16
    assert first.dtype == np.float32
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(second, fresh, rtol=2**-10, atol=1e-3)  # float16 precision
    assert not list(path.parent.glob("*.tmp"))
    # another direction is another entry
    cache.get(frames, 5, 4)
    assert len(calls) == 2
    with pytest.raises(KeyError):
        cache.get(frames, 4, 9)
