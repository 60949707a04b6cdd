"""Top-down pose transforms, codecs and occlusion augmentation (methods.md sections 3, 5, 8; papers 001 §3.1 and
003 §3.1.2-3.1.3)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from crowdbench.methods.pose.codecs import (
    UDP_DISK_RADIUS_FACTOR,
    decode_argmax,
    decode_dark,
    decode_disk_offsets,
    encode_disk_offsets,
    encode_gaussian,
    flip_back,
    flip_back_offsets,
    heatmap_to_input,
    udp_stride,
)
from crowdbench.methods.pose.occlusion import cutout, hide_and_seek, keypoint_aware_occlusion
from crowdbench.methods.pose.transforms import (
    apply_affine,
    box_to_center_scale,
    crop_matrix,
    flip_image,
    flip_joints,
    half_body,
    invert_affine,
    random_scale_rotation,
    warp_crop,
)

IN_WH, HM_WH = (192, 256), (48, 64)
W, H = IN_WH


def _joints(rng: np.random.Generator, k: int = 5, margin: float = 40.0) -> np.ndarray:
    xy = rng.uniform([margin, margin], [W - 1 - margin, H - 1 - margin], size=(k, 2))
    return np.concatenate([xy, np.ones((k, 1))], axis=1)


# ---------------------------------------------------------------------------------------------------------------
# crop geometry


def test_box_to_center_scale_fixes_aspect_and_pads():
    c, s = box_to_center_scale((10, 20, 70, 60), aspect_wh=0.75)  # w 60 > 0.75*40 -> h = 80
    np.testing.assert_allclose(c, [40, 40])
    np.testing.assert_allclose(s, [75, 100])
    c, s = box_to_center_scale((0, 0, 30, 100), aspect_wh=0.75, padding=1.0)  # w 30 < 75 -> w = 75
    np.testing.assert_allclose(s, [75, 100])


@pytest.mark.parametrize("udp", [True, False])
def test_crop_matrix_round_trip_and_roi_corners(udp):
    center, size, rot = np.array([300.5, 210.25]), np.array([150.0, 200.0]), 17.0
    m = crop_matrix(center, size, rot, IN_WH, udp=udp)
    pts = np.random.default_rng(0).uniform(0, 600, size=(20, 2))
    np.testing.assert_allclose(apply_affine(apply_affine(pts, m), invert_affine(m)), pts, atol=1e-9)
    m0 = crop_matrix(center, size, 0.0, IN_WH, udp=udp)
    corners = center + np.array([[-0.5, -0.5], [0.5, 0.5]]) * size
    hi = np.array([W - 1, H - 1]) if udp else np.array([W, H])
    np.testing.assert_allclose(apply_affine(corners, m0), [[0, 0], hi], atol=1e-9)


def _hrnet_get_affine_transform(center, size_w, rot, out_wh):
    """HRNet ``get_affine_transform`` (three-point construction), for parity."""
    rad = np.pi * rot / 180
    sn, cs = np.sin(rad), np.cos(rad)
    src_dir = np.array([0 * cs - (-0.5 * size_w) * sn, 0 * sn + (-0.5 * size_w) * cs])
    dst_dir = np.array([0, out_wh[0] * -0.5])
    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0], src[1] = center, center + src_dir
    dst[0] = [out_wh[0] * 0.5, out_wh[1] * 0.5]
    dst[1] = dst[0] + dst_dir
    for a in (src, dst):
        d = a[0] - a[1]
        a[2] = a[1] + np.array([-d[1], d[0]])
    return cv2.getAffineTransform(src, dst)


def test_crop_matrix_msra_matches_hrnet_and_warp():
    center, size = np.array([120.0, 90.0]), np.array([96.0, 128.0])
    m = crop_matrix(center, size, -30.0, IN_WH, udp=False)
    np.testing.assert_allclose(m, _hrnet_get_affine_transform(center, 96.0, -30.0, IN_WH), atol=1e-4)
    img = np.full((200, 260, 3), 255, np.uint8)
    crop = warp_crop(img, crop_matrix(center, size * 4, 0.0, IN_WH, udp=True), IN_WH)
    assert crop.shape == (H, W, 3) and crop[0, 0].sum() == 0 and crop[H // 2, W // 2].min() == 255


def test_crop_matrix_udp_matches_mmpose_formula():
    c, size, rot = np.array([210.0, 140.0]), np.array([120.0, 160.0]), 25.0
    t, sx, sy = np.deg2rad(rot), (W - 1) / size[0], (H - 1) / size[1]
    ref = np.array(
        [
            [np.cos(t) * sx, -np.sin(t) * sx, sx * (-c[0] * np.cos(t) + c[1] * np.sin(t) + 0.5 * size[0])],
            [np.sin(t) * sy, np.cos(t) * sy, sy * (-c[0] * np.sin(t) - c[1] * np.cos(t) + 0.5 * size[1])],
        ]
    )  # mmpose get_warp_matrix(theta, size_input=2c, size_dst=input-1, size_target=size)
    np.testing.assert_allclose(crop_matrix(c, size, rot, IN_WH, udp=True), ref, atol=1e-9)


@pytest.mark.parametrize("udp", [True, False])
def test_image_to_heatmap_and_back(udp):
    """Image joint -> crop (crop_matrix) -> targets -> decode -> heatmap_to_input -> image (inverse crop)."""
    center, size, rot = np.array([210.0, 140.0]), np.array([120.0, 160.0]), -12.0
    img_j = np.array([[200.3, 120.6], [230.9, 170.2]])
    m = crop_matrix(center, size, rot, IN_WH, udp=udp)
    crop_j = np.c_[apply_affine(img_j, m), np.ones(2)]
    disk, off, _ = encode_disk_offsets(crop_j, IN_WH, HM_WH, 3.5, udp=udp)
    coords, _ = decode_disk_offsets(disk[None], off[None], 3.5)
    back = apply_affine(heatmap_to_input(coords[0], IN_WH, HM_WH, udp=udp), invert_affine(m))
    np.testing.assert_allclose(back, img_j, atol=1e-5)
    if not udp:  # MSRA: the heatmap-size matrix is the input-size one scaled by w/W (HRNet transform_preds)
        m_hm = crop_matrix(center, size, rot, HM_WH, udp=False)
        np.testing.assert_allclose(m_hm, m * (HM_WH[0] / IN_WH[0]), atol=1e-9)


def test_flip_joints_and_image():
    img = np.arange(12, dtype=np.uint8).reshape(3, 4)
    flipped = flip_image(img)
    assert flipped[0, 0] == img[0, 3] and img[0, 0] == 0  # input untouched
    j = np.array([[1.0, 2.0, 1.0], [3.0, 0.0, 2.0], [0.5, 1.0, 0.0]])
    out = flip_joints(j, 4, [(0, 1)])
    np.testing.assert_allclose(out, [[0.0, 0.0, 2.0], [2.0, 2.0, 1.0], [2.5, 1.0, 0.0]])
    assert j[0, 0] == 1.0


def test_half_body_rule():
    upper_ids = list(range(11))  # COCO-17: 0-10 upper, 11-16 lower
    j = np.zeros((17, 3))
    j[:, 0], j[:, 1], j[:, 2] = np.arange(17) * 2.0, np.arange(17) * 10.0, 1.0
    # gate: needs > 8 annotated joints and U < prob
    assert half_body(j, upper_ids, np.random.default_rng(0), 0.75, prob=0.0) is None
    few = j.copy()
    few[8:, 2] = 0
    assert half_body(few, upper_ids, np.random.default_rng(0), 0.75, prob=1.0) is None
    # upper_prob = 1 -> upper body; 0 -> lower body
    c, s = half_body(j, upper_ids, np.random.default_rng(0), 0.75, prob=1.0, upper_prob=1.0)
    np.testing.assert_allclose(c, j[:11, :2].mean(0))
    np.testing.assert_allclose(s, [75.0, 100.0] * np.array(1.5))  # extent 20 x 100 -> w = 75
    c, _ = half_body(j, upper_ids, np.random.default_rng(0), 0.75, prob=1.0, upper_prob=0.0)
    np.testing.assert_allclose(c, j[11:, :2].mean(0))
    # lower body with <= 2 annotated joints falls back to upper
    j2 = j.copy()
    j2[13:, 2] = 0
    c, _ = half_body(j2, upper_ids, np.random.default_rng(0), 0.75, prob=1.0, upper_prob=0.0)
    np.testing.assert_allclose(c, j[:11, :2].mean(0))
    # HRNet draw (randn < 0.5) with a seeded rng: reproduce its choice by replaying the stream
    rng = np.random.default_rng(7)
    replay = np.random.default_rng(7)
    replay.random()
    want = j[:11] if replay.standard_normal() < 0.5 else j[11:]
    c, _ = half_body(j, upper_ids, rng, 0.75, prob=1.0)
    np.testing.assert_allclose(c, want[:, :2].mean(0))


def test_random_scale_rotation_ranges():
    rng = np.random.default_rng(0)
    draws = np.array([random_scale_rotation(rng, 0.35, 45, 0.6) for _ in range(2000)])
    assert draws[:, 0].min() >= 0.65 and draws[:, 0].max() <= 1.35
    assert np.abs(draws[:, 1]).max() <= 90
    assert 0.33 < np.mean(draws[:, 1] == 0) < 0.47


# ---------------------------------------------------------------------------------------------------------------
# targets and decoding


def test_encode_gaussian_udp_subpixel_and_weights():
    j = np.array([[100.3, 57.9, 2], [10.0, 10.0, 0], [-60.0, 10.0, 1], [-5.0, 30.0, 1]])
    hm, wt = encode_gaussian(j, IN_WH, HM_WH, udp=True)
    assert hm.shape == (4, 64, 48) and hm.dtype == np.float32
    np.testing.assert_array_equal(wt, [1, 0, 0, 1])  # v = 0; window fully outside; tail overlaps -> kept
    assert not hm[1].any() and not hm[2].any() and hm[3].any()
    mu = j[0, :2] / udp_stride(IN_WH, HM_WH)
    py, px = np.unravel_index(hm[0].argmax(), hm[0].shape)
    assert (px, py) == tuple(np.round(mu).astype(int))
    np.testing.assert_allclose(hm[0, py, px], np.exp(-np.sum((mu - [px, py]) ** 2) / 8), rtol=1e-6)
    hm_m, _ = encode_gaussian(j, IN_WH, HM_WH, udp=False)
    assert hm_m[0].max() == 1.0  # MSRA: integer centre


def test_gaussian_round_trip_udp_dark_and_quarter():
    rng = np.random.default_rng(3)
    j = _joints(rng, 8)
    hm, _ = encode_gaussian(j, IN_WH, HM_WH, udp=True)
    for decode, tol in ((decode_dark, 0.05), (decode_argmax, 0.26)):
        coords, scores = decode(hm[None])
        err = coords[0] - j[:, :2] / udp_stride(IN_WH, HM_WH)
        assert np.abs(err).max() < tol, (decode.__name__, np.abs(err).max())
        back = heatmap_to_input(coords[0], IN_WH, HM_WH, udp=True)
        assert np.abs(back - j[:, :2]).max() < tol * 4.1
        assert np.all(scores > 0.8)


def test_decode_argmax_quarter_rule():
    hm = np.zeros((1, 2, 8, 8))
    hm[0, 0, 4, 4], hm[0, 0, 4, 5], hm[0, 0, 3, 4] = 1.0, 0.5, 0.2  # right and up neighbours higher
    hm[0, 1, 1, 4] = 1.0  # p_y = 1: on the excluded border (strict 1 < p)
    coords, scores = decode_argmax(hm)
    np.testing.assert_allclose(coords[0], [[4.25, 3.75], [4.0, 1.0]])
    np.testing.assert_allclose(scores[0], [1.0, 1.0])
    np.testing.assert_allclose(decode_argmax(hm, quarter_offset=False)[0][0], [[4, 4], [4, 1]])


def test_disk_offsets_encode_and_exact_decode():
    rng = np.random.default_rng(5)
    j = _joints(rng, 6)
    j[4, 2] = 0
    radius = UDP_DISK_RADIUS_FACTOR * HM_WH[1]
    disk, off, wt = encode_disk_offsets(j, IN_WH, HM_WH, radius)
    assert disk.shape == (6, 64, 48) and off.shape == (12, 64, 48)
    np.testing.assert_array_equal(wt, [1, 1, 1, 1, 0, 1])
    assert not disk[4].any() and not off[8:10].any()
    mu = j[:, :2] / udp_stride(IN_WH, HM_WH)
    # offsets point from each disk pixel to mu, normalised by R, zero outside the disk
    ys, xs = np.nonzero(disk[0])
    np.testing.assert_allclose(off[0, ys, xs], (mu[0, 0] - xs) / radius, atol=1e-6)
    np.testing.assert_allclose(off[1, ys, xs], (mu[0, 1] - ys) / radius, atol=1e-6)
    assert not off[0][disk[0] == 0].any()
    assert 0.7 * math.pi * radius**2 < disk[0].sum() < 1.3 * math.pi * radius**2
    coords, scores = decode_disk_offsets(disk[None], off[None], radius)
    valid = wt > 0
    assert np.abs(coords[0][valid] - mu[valid]).max() < 1e-6  # exact up to float32 rounding of the offsets
    assert np.abs(heatmap_to_input(coords[0], IN_WH, HM_WH, udp=True)[valid] - j[valid, :2]).max() < 1e-6
    # mmpose's variant (heatmap kernel 2k+1, offsets blurred with k) is close but no longer exact
    approx, _ = decode_disk_offsets(disk[None], off[None], radius, blur_kernel=23, offset_blur_kernel=11)
    assert np.abs(approx[0][valid] - mu[valid]).max() < 1.0
    assert scores[0][valid].min() > 0


# ---------------------------------------------------------------------------------------------------------------
# flip test


def test_flip_back_udp_is_exact_and_swaps_channels():
    pairs = [(1, 2)]
    j = np.array([[95.3, 120.7, 1], [60.2, 80.9, 1], [130.6, 82.1, 1]])
    hm, _ = encode_gaussian(j, IN_WH, HM_WH, udp=True)
    hm_f, _ = encode_gaussian(flip_joints(j, W, pairs), IN_WH, HM_WH, udp=True)  # "net output" on flipped crop
    back = flip_back(hm_f[None], pairs, shift=False)
    np.testing.assert_allclose(back[0], hm, atol=1e-6)
    coords, _ = decode_dark(back)
    np.testing.assert_allclose(coords[0], j[:, :2] / udp_stride(IN_WH, HM_WH), atol=0.05)
    assert np.abs(coords[0, 1] - j[1, :2] / udp_stride(IN_WH, HM_WH)).max() < 0.05  # left channel = left joint


def test_flip_back_msra_shift():
    pairs = [(1, 2)]
    j = np.array([[96.0, 120.0, 1], [60.0, 80.0, 1], [132.0, 80.0, 1]])  # on the heatmap grid (stride 4)
    hm_f, _ = encode_gaussian(flip_joints(j, W, pairs), IN_WH, HM_WH, udp=False)
    mu = j[:, :2] / 4
    no_shift, _ = decode_argmax(flip_back(hm_f[None], pairs, shift=False), quarter_offset=False)
    shifted, _ = decode_argmax(flip_back(hm_f[None], pairs, shift=True), quarter_offset=False)
    np.testing.assert_allclose(no_shift[0], mu - [1, 0])  # W-1-x lands 0.75 px left, rounded to 1
    np.testing.assert_allclose(shifted[0], mu)


def test_flip_back_offsets_udp_exact():
    pairs = [(0, 1)]
    j = np.array([[60.2, 80.9, 1], [130.6, 82.1, 1], [95.3, 120.7, 1]])
    radius = 3.5
    disk, off, _ = encode_disk_offsets(j, IN_WH, HM_WH, radius)
    disk_f, off_f, _ = encode_disk_offsets(flip_joints(j, W, pairs), IN_WH, HM_WH, radius)
    np.testing.assert_allclose(flip_back(disk_f[None], pairs, shift=False)[0], disk)
    np.testing.assert_allclose(flip_back_offsets(off_f[None], pairs)[0], off, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# occlusion augmentation


def test_keypoint_aware_occlusion_disk_near_keypoint():
    j = np.array([[50.0, 60.0, 1], [100.0, 150.0, 2], [10.0, 10.0, 0], [500.0, 10.0, 1]])
    j_before = j.copy()
    hm_before, wt_before = encode_gaussian(j, IN_WH, HM_WH, udp=True)
    crop = np.full((H, W, 3), 255, np.uint8)
    seen_shift = seen_plain = False
    for seed in range(40):
        out, info = keypoint_aware_occlusion(crop, j, np.random.default_rng(seed))
        assert info["keypoint"] in (0, 1)  # annotated and inside the crop only
        r = info["radius"]
        assert 0.1 * W <= r <= 0.2 * W
        kp = j[info["keypoint"], :2]
        d = np.asarray(info["center"]) - kp
        assert np.abs(d).max() <= 0.1 * W + 1e-9
        seen_shift |= bool(np.any(d != 0))
        seen_plain |= bool(np.all(d == 0))
        zeroed = np.all(out == 0, axis=2)
        assert np.all((out == 0) | (out == 255)) and np.all(out.min(axis=2) == out.max(axis=2))
        assert abs(zeroed.sum() - math.pi * r**2) < 0.06 * math.pi * r**2  # whole disk inside the crop here
        ys, xs = np.nonzero(zeroed)
        np.testing.assert_allclose([xs.mean(), ys.mean()], info["center"], atol=1.0)
        assert np.linalg.norm([xs.mean(), ys.mean()] - kp) <= math.sqrt(2) * 0.1 * W + 1
        # determinism for a given rng state
        out2, _ = keypoint_aware_occlusion(crop, j, np.random.default_rng(seed))
        np.testing.assert_array_equal(out, out2)
    assert seen_shift and seen_plain
    assert crop.min() == 255  # input untouched
    np.testing.assert_array_equal(j, j_before)  # joints untouched -> targets unchanged
    hm_after, wt_after = encode_gaussian(j, IN_WH, HM_WH, udp=True)
    np.testing.assert_array_equal(hm_after, hm_before)
    np.testing.assert_array_equal(wt_after, wt_before)


def test_keypoint_aware_occlusion_no_keypoint_and_prob():
    crop = np.full((H, W, 3), 255, np.uint8)
    j = np.array([[10.0, 10.0, 0], [-5.0, 20.0, 1]])
    out, info = keypoint_aware_occlusion(crop, j, np.random.default_rng(0))
    np.testing.assert_array_equal(out, crop)
    assert out is not crop and info["keypoint"] is None
    out, info = keypoint_aware_occlusion(crop, _joints(np.random.default_rng(0)), np.random.default_rng(0), prob=0.0)
    np.testing.assert_array_equal(out, crop)


def test_cutout_fraction_and_ellipse():
    crop = np.full((H, W, 3), 255, np.uint8)
    for seed in range(30):
        out, info = cutout(crop, np.random.default_rng(seed))
        rx, ry = info["radii"]
        assert 0.2 * W <= rx < 0.4 * W and 0.2 * W <= ry < 0.4 * W
        frac = np.all(out == 0, axis=2).mean()
        assert 0.02 < frac < math.pi * (0.4 * W) ** 2 / (W * H) + 0.01
        np.testing.assert_array_equal(out, cutout(crop, np.random.default_rng(seed))[0])
    assert crop.min() == 255


def test_hide_and_seek_fraction():
    crop = np.full((H, W, 3), 255, np.uint8)
    fracs = []
    for seed in range(20):
        out, info = hide_and_seek(crop, np.random.default_rng(seed), grid_sizes=(16,), p=0.5)
        zeroed = np.all(out == 0, axis=2)
        fracs.append(zeroed.mean())
        np.testing.assert_allclose(zeroed.mean(), info["hidden"].mean())  # 16 divides 192 and 256
    assert min(fracs) > 0.35 and max(fracs) < 0.65 and abs(np.mean(fracs) - 0.5) < 0.05
    out, info = hide_and_seek(crop, np.random.default_rng(0), grid_sizes=(0,))
    np.testing.assert_array_equal(out, crop)
    out, _ = hide_and_seek(crop, np.random.default_rng(0), grid_sizes=(44,), p=1.0)
    assert not out.any()  # partial border cells are hidden too
    assert crop.min() == 255
