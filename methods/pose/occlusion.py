"""Occlusion augmentation on the top-down crop (paper 001, Huang et al., "How to Train Your Robust Human Pose
Estimator: Pay Attention to the Constraint Cue", §3.1 keypoint-aware occlusion; methods.md section 3).

Applied to the warped crop (e.g. 192x256) before normalisation; dropped pixels are set to 0. Heatmap targets and
target weights are computed from the joints as usual and are **not** changed: occluded joints stay supervised, which
is the point ("constraint cue"). Each function returns ``(new_crop, info)``; the input crop is never modified and the
result depends only on the inputs and the state of ``rng``.

- :func:`keypoint_aware_occlusion`: paper 001 §3.1 (circle at an annotated keypoint, optionally shifted).
- :func:`cutout`: the AID/UDP public code's elliptic Cutout (methods.md §3).
- :func:`hide_and_seek`: the public code's sibling HideAndSeek transform (Singh & Lee, ICCV 2017).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _ellipse_mask(h: int, w: int, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """Pixel centres ``(x, y)`` (integer coordinates) with ``((x-cx)/rx)² + ((y-cy)/ry)² ≤ 1``."""
    ys, xs = np.ogrid[:h, :w]
    return ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1.0


def keypoint_aware_occlusion(
    crop: np.ndarray,
    joints,
    rng: np.random.Generator,
    *,
    radius_range: tuple[float, float] = (0.1, 0.2),
    shift_prob: float = 0.5,
    max_shift: float = 0.1,
    prob: float = 1.0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Keypoint-aware occlusion (paper 001 §3.1, Fig. 2): zero a circle around a random annotated keypoint.

    - Keypoint: uniform among joints with ``v > 0`` that lie inside the crop (``joints`` K x 3 in crop px). None:
      the crop is returned unchanged (a copy).
    - Radius ``r ~ U[radius_range] · W`` with W the network input (crop) width; paper: ``r ∈ [0.1w, 0.2w]``. (The
      ``[0.2W, 0.4W)`` proposal in methods.md §3 predates the v2 text and is superseded by it.)
    - Centre: the keypoint, shifted "by a random vector δ" with probability ``shift_prob`` (paper: 50 %). The
      paper does not state δ's range: ``δ ~ U[-max_shift·W, max_shift·W]²`` with ``max_shift = 0.1`` (methods.md §3
      default proposal) is an option of ours.
    - ``prob``: probability of applying at all; 1.0 (the public code applies its Cutout with probability 1).

    Draw order (fixed): U (apply), keypoint index, radius, U (shift), δ (only when shifting).
    ``info = {"center": (cx, cy) | None, "radius": r_px, "keypoint": k | None}``.
    """
    out = np.array(crop, copy=True)
    h, w = out.shape[:2]
    info: dict[str, Any] = {"center": None, "radius": 0.0, "keypoint": None}
    j = np.asarray(joints, dtype=np.float64)
    if rng.random() >= prob:
        return out, info
    valid = np.flatnonzero((j[:, 2] > 0) & (j[:, 0] >= 0) & (j[:, 0] <= w - 1) & (j[:, 1] >= 0) & (j[:, 1] <= h - 1))
    if len(valid) == 0:
        return out, info
    k = int(valid[rng.integers(len(valid))])
    radius = float(rng.uniform(*radius_range) * w)
    center = j[k, :2].copy()
    if rng.random() < shift_prob:
        center += rng.uniform(-max_shift * w, max_shift * w, size=2)
    out[_ellipse_mask(h, w, center[0], center[1], radius, radius)] = 0
    info.update(center=(float(center[0]), float(center[1])), radius=radius, keypoint=k)
    return out, info


def cutout(
    crop: np.ndarray, rng: np.random.Generator, *, radius_factor: float = 0.2, prob: float = 1.0
) -> tuple[np.ndarray, dict[str, Any]]:
    """AID public-code Cutout (methods.md §3): one ellipse, centre ``U[0, W) x U[0, H)``, radii
    ``r_x = f·(1+u₁)·W``, ``r_y = f·(1+u₂)·W`` with ``f = 0.2`` and both from the **width** (38.4-76.8 px for
    W = 192); pixels with ``((x-c_x)/r_x)² + ((y-c_y)/r_y)² ≤ 1`` are zeroed; probability 1.0.
    Draw order: U (apply), c_x, c_y, u₁, u₂. ``info = {"center", "radii"}`` (None when not applied)."""
    out = np.array(crop, copy=True)
    h, w = out.shape[:2]
    if rng.random() >= prob:
        return out, {"center": None, "radii": None}
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    rx, ry = radius_factor * (1 + rng.random()) * w, radius_factor * (1 + rng.random()) * w
    out[_ellipse_mask(h, w, cx, cy, rx, ry)] = 0
    return out, {"center": (float(cx), float(cy)), "radii": (float(rx), float(ry))}


def hide_and_seek(
    crop: np.ndarray, rng: np.random.Generator, grid_sizes: Sequence[int] = (0, 16, 32, 44, 56), p: float = 0.5
) -> tuple[np.ndarray, dict[str, Any]]:
    """Hide-and-Seek (Singh & Lee, ICCV 2017; the AID/UDP code's sibling transform, methods.md §3): pick a grid
    size from ``grid_sizes`` uniformly (0 = no hiding), tile the crop from the top-left corner, zero each cell
    independently with probability ``p``. Draw order: grid size, then one U per cell in row-major order.
    ``info = {"grid": s, "hidden": bool mask of cells}``."""
    out = np.array(crop, copy=True)
    h, w = out.shape[:2]
    s = int(grid_sizes[rng.integers(len(grid_sizes))])
    if s <= 0:
        return out, {"grid": 0, "hidden": np.zeros((0, 0), dtype=bool)}
    ny, nx = -(-h // s), -(-w // s)
    hidden = rng.random((ny, nx)) < p
    mask = np.repeat(np.repeat(hidden, s, axis=0), s, axis=1)[:h, :w]
    out[mask] = 0
    return out, {"grid": s, "hidden": hidden}
