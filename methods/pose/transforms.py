"""Top-down crop geometry and augmentation: box -> crop affine (MSRA and UDP), flip, half-body, scale/rotation.

Spec: ``shared/reference/methods.md`` section 3 ("UDP essentials") and section 8 ("Half-body augmentation",
"Configs"). References: HRNet (Sun et al., CVPR 2019) / SimpleBaseline (Xiao et al., ECCV 2018)
``lib/utils/transforms.py`` and ``lib/dataset/JointsDataset.py`` (the "MSRA" pipeline); UDP (Huang et al., "The Devil
is in the Details: Delving into Unbiased Data Processing for Human Pose Estimation", CVPR 2020) as in mmpose
``get_warp_matrix``.

Conventions:

- Sizes are in pixels: ``size_wh`` is the ROI size in the source image (HRNet's ``scale * 200``).
- ``out_wh`` / ``input_wh`` / ``heatmap_wh`` are ``(width, height)``; arrays are ``H x W (x C)``.
- Joints are ``K x 3`` arrays ``(x, y, v)``; ``v > 0`` means annotated.
- Every function returns new arrays; inputs are never modified.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

PIXEL_STD = 200.0  # HRNet's box "scale" unit: size_wh = scale * PIXEL_STD


def box_to_center_scale(box_xyxy, aspect_wh: float, padding: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """Box ``(x1, y1, x2, y2)`` -> ``(center, size_wh)``: enlarge the smaller side to ``aspect_wh = W_in / H_in``,
    then multiply both sides by ``padding`` (HRNet ``_box2cs``; methods.md section 8: "box padding 1.25")."""
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    w, h = x2 - x1, y2 - y1
    center = np.array([x1 + 0.5 * w, y1 + 0.5 * h], dtype=np.float64)
    if w > aspect_wh * h:
        h = w / aspect_wh
    elif w < aspect_wh * h:
        w = h * aspect_wh
    return center, np.array([w, h], dtype=np.float64) * padding


def _rotation(rot_deg: float) -> np.ndarray:
    t = np.deg2rad(rot_deg)
    c, s = np.cos(t), np.sin(t)
    return np.array([[c, -s], [s, c]], dtype=np.float64)


def crop_matrix(center, size_wh, rot_deg: float, out_wh: tuple[int, int], *, udp: bool) -> np.ndarray:
    """2x3 affine from source-image pixels to the ``out_wh`` crop (or heatmap) of the ROI ``(center, size_wh)``.

    - ``udp=True`` (UDP, methods.md section 3): ``x' = S R(θ)(x - c) + ((W-1)/2, (H-1)/2)`` with
      ``S = diag((W-1)/w_roi, (H-1)/h_roi)``: the ROI maps onto ``[0, W-1] x [0, H-1]`` (mmpose ``get_warp_matrix``).
    - ``udp=False`` (MSRA, HRNet ``get_affine_transform``): ``x' = (W/w_roi) R(-θ)(x - c) + (W/2, H/2)``: the ROI
      maps onto ``[0, W] x [0, H]``; one isotropic scale from the widths only (HRNet ignores ``h_roi``; the
      aspect ratio is fixed beforehand by :func:`box_to_center_scale`).

    The rotation sign differs between the two references (HRNet's three-point construction rotates by ``-θ`` in the
    matrix, mmpose's UDP matrix by ``+θ``); it is kept as in each reference so either can be parity-checked. Random
    rotations are symmetric, so training is unaffected; joints always use the same matrix as the image.
    """
    c = np.asarray(center, dtype=np.float64).reshape(2)
    w_roi, h_roi = (float(v) for v in np.asarray(size_wh, dtype=np.float64).reshape(2))
    out_w, out_h = float(out_wh[0]), float(out_wh[1])
    if udp:
        lin = np.diag([(out_w - 1.0) / w_roi, (out_h - 1.0) / h_roi]) @ _rotation(rot_deg)
        dst_c = np.array([(out_w - 1.0) / 2.0, (out_h - 1.0) / 2.0])
    else:
        lin = (out_w / w_roi) * _rotation(-rot_deg)
        dst_c = np.array([out_w / 2.0, out_h / 2.0])
    return np.concatenate([lin, (dst_c - lin @ c)[:, None]], axis=1)


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix (crop -> source image)."""
    m = np.asarray(m, dtype=np.float64)
    lin_inv = np.linalg.inv(m[:, :2])
    return np.concatenate([lin_inv, (-lin_inv @ m[:, 2])[:, None]], axis=1)


def apply_affine(points, m: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine to ``N x 2`` points (extra columns, e.g. visibility, are not accepted: slice them off)."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return p @ np.asarray(m, dtype=np.float64)[:, :2].T + np.asarray(m, dtype=np.float64)[:, 2]


def warp_crop(image: np.ndarray, m: np.ndarray, out_wh: tuple[int, int]) -> np.ndarray:
    """Warp ``image`` with ``m`` to an ``out_wh`` crop (``cv2.warpAffine``, bilinear, constant 0 border: both refs)."""
    return cv2.warpAffine(
        image, np.asarray(m, dtype=np.float64), (int(out_wh[0]), int(out_wh[1])),
        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )  # fmt: skip


def flip_image(img: np.ndarray) -> np.ndarray:
    """Horizontal flip (pixel x -> W - 1 - x), as a new contiguous array."""
    return np.ascontiguousarray(np.asarray(img)[:, ::-1])


def flip_joints(joints, width: int, flip_pairs: Sequence[tuple[int, int]], *, udp: bool = True) -> np.ndarray:
    """Flip ``K x 3`` joints in an image of ``width`` pixels: ``x' = width - 1 - x`` and swap left/right pairs.

    Both references use ``W - 1 - x`` (HRNet ``fliplr_joints``, mmpose UDP ``flip``), so ``udp`` does not change the
    result; it is accepted for symmetry with the rest of the API. The MSRA bias lives in the heatmap (stride ``W/w``,
    see :func:`crowdbench.methods.pose.codecs.flip_back`), not here. Visibility is carried along unchanged.
    """
    del udp
    out = np.array(joints, dtype=np.float64, copy=True)
    out[:, 0] = width - 1 - out[:, 0]
    for a, b in flip_pairs:
        out[[a, b]] = out[[b, a]]
    return out


def half_body(
    joints,
    upper_ids: Sequence[int],
    rng: np.random.Generator,
    aspect_wh: float,
    *,
    min_joints: int = 8,
    prob: float = 0.3,
    upper_prob: float | None = None,
    padding: float = 1.5,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Half-body augmentation (HRNet ``half_body_transform``; methods.md section 8). Returns ``(center, size_wh)``
    of the new ROI, or ``None`` when it does not apply (the caller keeps its box).

    Applies when more than ``min_joints`` (8) joints are annotated and ``U < prob`` (0.3). Upper body when the
    "upper" draw succeeds and it has more than 2 annotated joints, else lower body if it has more than 2, else upper;
    at least 2 selected joints are needed. Upper draw: ``upper_prob=None`` = HRNet's ``randn() < 0.5`` (≈ 0.69);
    a float = mmpose 1.x's ``U < upper_prob`` (0.7 there). Centre = mean of the selected joints; size = their extent
    with the smaller side enlarged to ``aspect_wh``, times ``padding`` (1.5). Draw order: gate U (only when enough
    joints), then the upper draw.
    """
    j = np.asarray(joints, dtype=np.float64)
    annotated = j[:, 2] > 0
    if annotated.sum() <= min_joints or rng.random() >= prob:
        return None
    is_upper = np.zeros(len(j), dtype=bool)
    is_upper[list(upper_ids)] = True
    upper, lower = j[annotated & is_upper, :2], j[annotated & ~is_upper, :2]
    draw = rng.standard_normal() < 0.5 if upper_prob is None else rng.random() < upper_prob
    selected = upper if draw and len(upper) > 2 else (lower if len(lower) > 2 else upper)
    if len(selected) < 2:
        return None
    center = selected.mean(axis=0)
    w, h = selected.max(axis=0) - selected.min(axis=0)
    if w > aspect_wh * h:
        h = w / aspect_wh
    elif w < aspect_wh * h:
        w = h * aspect_wh
    return center, np.array([w, h], dtype=np.float64) * padding


def random_scale_rotation(
    rng: np.random.Generator, scale_factor: float = 0.35, rot_factor: float = 45.0, rot_prob: float = 0.6
) -> tuple[float, float]:
    """HRNet's random scale and rotation (``JointsDataset.__getitem__``): ``scale = clip(1 + sf·N(0,1), 1-sf, 1+sf)``
    (multiplies ``size_wh``); ``rot = clip(rf·N(0,1), -2rf, 2rf)`` degrees when ``U <= rot_prob`` else 0.
    Defaults: HRNet COCO config (sf 0.35, rf 45, p 0.6; methods.md section 8). Draw order: N (scale), U, N (rot)."""
    scale = float(np.clip(rng.standard_normal() * scale_factor + 1.0, 1.0 - scale_factor, 1.0 + scale_factor))
    rot = 0.0
    if rng.random() <= rot_prob:
        rot = float(np.clip(rng.standard_normal() * rot_factor, -2.0 * rot_factor, 2.0 * rot_factor))
    return scale, rot
