"""Heatmap targets and decoders for top-down pose: Gaussian (MSRA / UDP), disk + offsets (G-RMI / OGN / UDP
CombinedTarget), argmax + quarter offset, DARK, OGN fusion, flip-back.

Spec: ``shared/reference/methods.md`` section 3 ("UDP essentials"), section 5 (OGN) and section 8 ("Flip test",
"Decoding"). Papers: offset-guided = paper 003 (Zhang et al., CVPRW 2019) section 3.1.2 eqs. (1)-(2) (targets) and
section 3.1.3 eqs. (3)-(4) (fusion); UDP (Huang et al., CVPR 2020); DARK (Zhang et al., "Distribution-Aware
Coordinate Representation for Human Pose Estimation", CVPR 2020).

Geometry: with ``udp=True`` the input crop spans ``[0, W-1]`` and the heatmap ``[0, w-1]`` (stride ``(W-1)/(w-1)``);
with ``udp=False`` (MSRA) they span ``[0, W]`` and ``[0, w]`` (stride ``W/w``), matching
:func:`crowdbench.methods.pose.transforms.crop_matrix`. Image coordinates of a decoded joint:
``apply_affine(heatmap_to_input(coords, ...), invert_affine(crop_matrix(..., input_wh, udp=udp)))``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

UDP_DISK_RADIUS_FACTOR = 0.0546875  # UDP CombinedTarget: R = factor * heatmap height (3.5 px for 64; methods.md §3)


def udp_stride(input_wh, heatmap_wh) -> np.ndarray:
    """UDP stride per axis, measured in pixel intervals: ``((W-1)/(w-1), (H-1)/(h-1))`` (191/47, 255/63)."""
    i, h = np.asarray(input_wh, dtype=np.float64), np.asarray(heatmap_wh, dtype=np.float64)
    return (i - 1.0) / (h - 1.0)


def _stride(input_wh, heatmap_wh, udp: bool) -> np.ndarray:
    if udp:
        return udp_stride(input_wh, heatmap_wh)
    return np.asarray(input_wh, dtype=np.float64) / np.asarray(heatmap_wh, dtype=np.float64)


def encode_gaussian(joints, input_wh, heatmap_wh, sigma: float = 2.0, *, udp: bool) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian heatmap targets ``(K x h x w float32, weights K float32)`` for joints ``K x 3`` in input-crop pixels.

    - MSRA (HRNet ``generate_target``): centre rounded to the heatmap pixel ``int(x / (W/w) + 0.5)``.
    - UDP (mmpose ``_udp_generate_target``): centre at the exact sub-pixel ``μ = x / ((W-1)/(w-1))``.

    Both truncate the Gaussian to the ``(6σ+1)`` window around the rounded centre, as the references. Weight 0 and an
    all-zero map when ``v == 0`` or when that window lies entirely outside the heatmap (the references' "outside"
    rule: a joint just outside the crop whose Gaussian tail still overlaps keeps weight 1).
    """
    j = np.asarray(joints, dtype=np.float64)
    w, h = int(heatmap_wh[0]), int(heatmap_wh[1])
    stride = _stride(input_wh, heatmap_wh, udp)
    tmp = 3.0 * sigma
    xs, ys = np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)
    heatmaps = np.zeros((len(j), h, w), dtype=np.float32)
    weights = (j[:, 2] > 0).astype(np.float32)
    for k in range(len(j)):
        if weights[k] == 0:
            continue
        mu_x, mu_y = int(j[k, 0] / stride[0] + 0.5), int(j[k, 1] / stride[1] + 0.5)  # int(): as the references
        ul, br = (mu_x - tmp, mu_y - tmp), (mu_x + tmp + 1, mu_y + tmp + 1)
        if ul[0] >= w or ul[1] >= h or br[0] < 0 or br[1] < 0:
            weights[k] = 0
            continue
        cx, cy = (j[k, 0] / stride[0], j[k, 1] / stride[1]) if udp else (mu_x, mu_y)
        gx = np.where((xs >= ul[0]) & (xs < br[0]), np.exp(-((xs - cx) ** 2) / (2 * sigma**2)), 0.0)
        gy = np.where((ys >= ul[1]) & (ys < br[1]), np.exp(-((ys - cy) ** 2) / (2 * sigma**2)), 0.0)
        heatmaps[k] = np.outer(gy, gx)
    return heatmaps, weights


def encode_disk_offsets(
    joints, input_wh, heatmap_wh, radius: float, *, udp: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disk + offset targets (paper 003 §3.1.2 eqs. (1)-(2); G-RMI; UDP CombinedTarget; methods.md §5).

    ``radius`` R is in heatmap pixels (UDP: ``UDP_DISK_RADIUS_FACTOR * h``). For heatmap pixel ``x`` and joint
    ``μ = joint / stride``: disk ``= 1`` iff ``‖x - μ‖ ≤ R``; offsets ``= (μ - x) / R`` inside the disk, 0 outside.
    Returns ``(disk K x h x w, offsets 2K x h x w ordered [x_0, y_0, x_1, y_1, ...], weights K)``, all float32.
    Weight 0 (and empty maps) when ``v == 0`` or when the disk has no pixel on the heatmap.
    """
    j = np.asarray(joints, dtype=np.float64)
    w, h = int(heatmap_wh[0]), int(heatmap_wh[1])
    stride = _stride(input_wh, heatmap_wh, udp)
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    disk = np.zeros((len(j), h, w), dtype=np.float32)
    offsets = np.zeros((2 * len(j), h, w), dtype=np.float32)
    weights = np.zeros(len(j), dtype=np.float32)
    for k in range(len(j)):
        if j[k, 2] <= 0:
            continue
        ox, oy = (j[k, 0] / stride[0] - gx) / radius, (j[k, 1] / stride[1] - gy) / radius
        inside = ox**2 + oy**2 <= 1.0
        if not inside.any():
            continue
        weights[k] = 1.0
        disk[k] = inside
        offsets[2 * k] = np.where(inside, ox, 0.0)
        offsets[2 * k + 1] = np.where(inside, oy, 0.0)
    return disk, offsets, weights


def _argmax(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """HRNet ``get_max_preds``: integer argmax ``(N x K x 2)`` and max value; coords are 0 where max <= 0."""
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, h * w)
    idx = flat.argmax(axis=2)
    scores = flat.max(axis=2).astype(np.float64)
    coords = np.stack([idx % w, idx // w], axis=2).astype(np.float64)
    coords *= (scores > 0)[..., None]
    return coords, scores


def decode_argmax(heatmaps, *, quarter_offset: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """MSRA decoding (methods.md §8; HRNet ``get_final_preds``): per-channel argmax; if ``1 < p_x < w-1`` and
    ``1 < p_y < h-1`` (strict, as HRNet), move 0.25 px toward the higher neighbour on each axis (none on a tie).
    Returns ``(coords N x K x 2 in heatmap px, scores N x K = max value)``."""
    hm = np.asarray(heatmaps, dtype=np.float64)
    coords, scores = _argmax(hm)
    if not quarter_offset:
        return coords, scores
    _, _, h, w = hm.shape
    for n, k in np.ndindex(*coords.shape[:2]):
        px, py = int(np.floor(coords[n, k, 0] + 0.5)), int(np.floor(coords[n, k, 1] + 0.5))
        if 1 < px < w - 1 and 1 < py < h - 1:
            m = hm[n, k]
            diff = np.array([m[py, px + 1] - m[py, px - 1], m[py + 1, px] - m[py - 1, px]])
            coords[n, k] += np.sign(diff) * 0.25
    return coords, scores


def _dark_blur(hm: np.ndarray, kernel: int) -> np.ndarray:
    """DARK ``gaussian_blur``: zero-pad by ``(kernel-1)/2``, blur, crop, rescale to the original maximum."""
    border = (kernel - 1) // 2
    out = np.empty_like(hm)
    for n, k in np.ndindex(*hm.shape[:2]):
        orig_max = hm[n, k].max()
        padded = np.pad(hm[n, k], border)
        blurred = cv2.GaussianBlur(padded, (kernel, kernel), 0)[border:-border, border:-border]
        bmax = blurred.max()
        out[n, k] = blurred * (orig_max / bmax) if bmax > 0 else blurred
    return out


def decode_dark(heatmaps, *, blur_kernel: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """DARK decoding (Zhang et al. CVPR 2020, eqs. (2)-(5)/(9); HRNet-DARK ``taylor``): argmax, Gaussian-blur the
    map (kernel 11, rescaled to its max), ``log``, then one Newton step ``x = m - H⁻¹ ∇`` on the log-map with central
    differences (step 1 for the gradient, step 2 for the Hessian) when ``1 < p < size - 2``. Scores = raw max."""
    hm = np.asarray(heatmaps, dtype=np.float64)
    coords, scores = _argmax(hm)
    log_hm = np.log(np.maximum(_dark_blur(hm, blur_kernel), 1e-10))
    _, _, h, w = hm.shape
    for n, k in np.ndindex(*coords.shape[:2]):
        px, py = int(coords[n, k, 0]), int(coords[n, k, 1])
        if not (1 < px < w - 2 and 1 < py < h - 2):
            continue
        m = log_hm[n, k]
        dx = 0.5 * (m[py, px + 1] - m[py, px - 1])
        dy = 0.5 * (m[py + 1, px] - m[py - 1, px])
        dxx = 0.25 * (m[py, px + 2] - 2 * m[py, px] + m[py, px - 2])
        dxy = 0.25 * (m[py + 1, px + 1] - m[py - 1, px + 1] - m[py + 1, px - 1] + m[py - 1, px - 1])
        dyy = 0.25 * (m[py + 2, px] - 2 * m[py, px] + m[py - 2, px])
        det = dxx * dyy - dxy**2
        if det != 0:
            hess_inv = np.array([[dyy, -dxy], [-dxy, dxx]]) / det
            coords[n, k] -= hess_inv @ np.array([dx, dy])
    return coords, scores


def decode_disk_offsets(
    disk, offsets, radius: float, *, blur_kernel: int = 11, offset_blur_kernel: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """OGN fusion (paper 003 §3.1.3 eqs. (3)-(4); UDP CombinedTarget decoder): Gaussian-blur the disk heatmap
    (``cv2.GaussianBlur``, kernel ``blur_kernel``, σ from the kernel), ``T = argmax``, ``F = T + O(T)·R``.

    ``disk`` is ``N x K x h x w``, ``offsets`` ``N x 2K x h x w`` ordered ``[x_0, y_0, ...]``, ``radius`` R in heatmap
    px. mmpose's UDP decoder uses heatmap kernel ``2k+1`` and also blurs the offsets with kernel ``k`` (k = 11):
    pass ``blur_kernel=23, offset_blur_kernel=11`` for that; the default leaves offsets unblurred (paper 003 only
    smooths the heatmap). Scores = max of the blurred heatmap. Returns ``(coords N x K x 2, scores N x K)``.
    """
    d = np.asarray(disk, dtype=np.float32)
    o = np.asarray(offsets, dtype=np.float32)
    n, k, h, w = d.shape
    blurred = np.stack([cv2.GaussianBlur(d[i, c], (blur_kernel, blur_kernel), 0) for i in range(n) for c in range(k)])
    blurred = blurred.reshape(n, k, h, w)
    if offset_blur_kernel:
        ks = (offset_blur_kernel, offset_blur_kernel)
        o = np.stack([cv2.GaussianBlur(o[i, c], ks, 0) for i in range(n) for c in range(2 * k)]).reshape(o.shape)
    coords, scores = _argmax(blurred)
    xi, yi = coords[..., 0].astype(int), coords[..., 1].astype(int)
    ni, ki = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")
    off = np.stack([o[ni, 2 * ki, yi, xi], o[ni, 2 * ki + 1, yi, xi]], axis=-1).astype(np.float64)
    return coords + off * radius, scores


def heatmap_to_input(coords, input_wh, heatmap_wh, *, udp: bool) -> np.ndarray:
    """Heatmap px -> input-crop px: ``x · (W-1)/(w-1)`` (UDP) or ``x · W/w`` (MSRA). Exact inverse of the encoders'
    centre mapping, and consistent with :func:`~crowdbench.methods.pose.transforms.crop_matrix` at both sizes."""
    return np.asarray(coords, dtype=np.float64) * _stride(input_wh, heatmap_wh, udp)


def _swap_pairs(x: np.ndarray, flip_pairs: Sequence[tuple[int, int]], group: int = 1) -> np.ndarray:
    for a, b in flip_pairs:
        ia, ib = list(range(group * a, group * a + group)), list(range(group * b, group * b + group))
        x[:, ia + ib] = x[:, ib + ia]
    return x


def flip_back(heatmaps, flip_pairs: Sequence[tuple[int, int]], *, shift: bool) -> np.ndarray:
    """Flip test, second half (methods.md §8; HRNet ``flip_back`` + ``SHIFT_HEATMAP``): un-flip the width axis of
    ``N x K x h x w`` heatmaps predicted on the flipped crop, swap left/right channels, and with ``shift=True``
    (MSRA only; UDP: ``shift=False``) move them one pixel right (column j takes column j-1; column 0 is kept).

    Why: a joint at input x lands at ``(W-1-x)/s`` in the flipped crop. With UDP (``s = (W-1)/(w-1)``) that is
    ``(w-1) - x/s``, so un-flipping is exact. With MSRA (``s = W/w``) it comes back at ``x/s - 1 + 1/s``
    (``-0.75`` px for s = 4); the 1-px shift over-corrects to ``+0.25``.
    """
    out = np.ascontiguousarray(np.asarray(heatmaps)[..., ::-1]).copy()
    out = _swap_pairs(out, flip_pairs)
    if shift:
        out[..., 1:] = out[..., :-1].copy()
    return out


def flip_back_offsets(offsets, flip_pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """Flip-back for ``N x 2K x h x w`` offset maps ``[x_0, y_0, ...]`` predicted on the flipped crop (UDP
    geometry, no shift): un-flip the width axis, swap the (x, y) channel pairs of left/right joints, and negate the x
    offsets (a flip mirrors ``μ_x - x``). Exact for UDP targets: ``flip_back_offsets(enc(flip(j))) == enc(j)``."""
    out = np.ascontiguousarray(np.asarray(offsets)[..., ::-1]).copy()
    out = _swap_pairs(out, flip_pairs, group=2)
    out[:, 0::2] *= -1
    return out
