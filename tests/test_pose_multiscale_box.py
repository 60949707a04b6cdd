"""Multi-scale test, reading B (methods.md section 8; paper 000 section 4.3): heatmaps of a crop of the box scaled by
s are warped into the s = 1 crop's heatmap frame; plugin ``pose_postproc.multiscale_flip``."""

from __future__ import annotations

import numpy as np
import pytest

from crowdbench.methods.pose.codecs import decode_argmax, decode_dark
from crowdbench.methods.pose.postprocess import box_scale_matrix, warp_box_scale
from crowdbench.methods.pose.transforms import apply_affine, crop_matrix, invert_affine

HM = (48, 64)  # heatmap (w, h) of a 192 x 256 input
CENTER, SIZE = np.array([310.0, 205.0]), np.array([120.0, 160.0])


def _gaussian(at: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    ys, xs = np.mgrid[0 : HM[1], 0 : HM[0]]
    return np.exp(-((xs - at[0]) ** 2 + (ys - at[1]) ** 2) / (2 * sigma**2))[None, None].astype(np.float32)


@pytest.mark.parametrize("udp", [True, False])
@pytest.mark.parametrize("scale", [0.7, 1.3])
def test_box_scale_matrix_is_the_crop_matrices(scale, udp):
    one = crop_matrix(CENTER, SIZE, 0.0, HM, udp=udp)
    scaled = crop_matrix(CENTER, SIZE * scale, 0.0, HM, udp=udp)
    want = one @ np.vstack([invert_affine(scaled), [0, 0, 1]])
    np.testing.assert_allclose(box_scale_matrix(scale, HM, udp=udp), want, atol=1e-9)


@pytest.mark.parametrize("scale", [0.7, 1.3])
@pytest.mark.parametrize("joint", [(300.3, 190.6), (335.8, 240.2), (290.4, 178.3)])
def test_warped_heatmap_peaks_at_the_unit_scale_position(scale, joint):
    """A Gaussian at a joint, rendered in the s-crop's heatmap, warped back, decodes (DARK, UDP) at the joint's s = 1
    heatmap position within 0.1 px (joints well inside the 0.7 crop, so its Gaussian is not cut by the border)."""
    p = np.array([joint])
    at_s = apply_affine(p, crop_matrix(CENTER, SIZE * scale, 0.0, HM, udp=True))[0]
    at_1 = apply_affine(p, crop_matrix(CENTER, SIZE, 0.0, HM, udp=True))[0]
    back = warp_box_scale(_gaussian(at_s), scale, udp=True)
    coords, _ = decode_dark(back)
    assert np.abs(coords[0, 0] - at_1).max() < 0.1, (coords[0, 0], at_1)


def test_warp_keeps_stacks_and_msra_argmax_lands_on_the_pixel():
    joint = np.array([[316.0, 215.0]])
    one = crop_matrix(CENTER, SIZE, 0.0, HM, udp=False)
    at_1 = apply_affine(joint, one)[0]
    at_s = apply_affine(joint, crop_matrix(CENTER, SIZE * 1.3, 0.0, HM, udp=False))[0]
    stack = np.concatenate([_gaussian(at_s)] * 600, axis=1)  # many channels and people in one call
    stack = np.concatenate([stack, stack], axis=0)
    back = warp_box_scale(stack, 1.3, udp=False)
    assert back.shape == stack.shape
    coords, _ = decode_argmax(back, quarter_offset=False)
    assert np.all(np.abs(coords - np.round(at_1)) <= 0.5)
    np.testing.assert_array_equal(warp_box_scale(stack, 1.0, udp=False), stack)


def test_multiscale_flip_plugin_sets_box_mode_and_flip():
    from crowdbench.bench.config import RunConfig
    from crowdbench.bench.registry import get_plugin

    run = RunConfig(task="pose")
    get_plugin("pose_postproc.multiscale_flip").apply(run)
    t = run.pose.test
    assert t.multiscale == (0.7, 1.0, 1.3) and t.multiscale_mode == "box" and t.flip_test
    get_plugin("pose_postproc.multiscale").apply(run)
    assert run.pose.test.multiscale_mode == "input"
