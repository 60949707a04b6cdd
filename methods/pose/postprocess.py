"""Pose post-processing: OKS, pose score, OKS-NMS, soft-OKS-NMS, GBG boxes, post-pose NMS, heatmap averaging.

Spec: ``reference/methods.md`` §5 (OGN: Greedy Box Generation and post-pose NMS, paper ``offset-guided`` §3.1.1) and
§8 (HRNet / mmpose pose score, OKS-NMS, soft-OKS-NMS, multi-scale test readings A and B, heatmap fusion of two
models).
Everything is NumPy on one image's candidates (tens to thousands of rows); ties in scores are broken by the lower
index first (stable sort), which keeps results deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

__all__ = [
    "average_heatmaps",
    "box_iou",
    "box_scale_matrix",
    "gbg_boxes",
    "multiscale_inputs",
    "oks",
    "oks_nms",
    "pose_nms",
    "pose_score",
    "soft_oks_nms",
    "warp_box_scale",
]


def oks(
    pose: np.ndarray,
    poses: np.ndarray,
    area: float | np.ndarray,
    sigmas: Sequence[float] | np.ndarray,
    *,
    vis_thr: float | None = None,
) -> np.ndarray:
    """Object keypoint similarity of one pose (K×3) to each of N poses (N×K×3) → N.

    ``OKS = mean_{j in V} exp(-e_j)``, ``e_j = d_j² / (2σ_j)² / (area + eps) / 2`` (eps = ``np.spacing(1)``), the
    operation order of HRNet's ``oks_iou`` / mmpose ``oks_iou`` / pycocotools ``computeOks``.

    ``area`` is the scale used *as given* for every pair (a float, or one value per row of ``poses``):

    * pose-vs-pose NMS (HRNet, mmpose): the mean of the two box areas, ``(a_i + a_j) / 2`` — what :func:`oks_nms`,
      :func:`soft_oks_nms` and :func:`pose_nms` pass;
    * evaluation against a ground truth: the GT's area (with ``pose`` = the GT this equals pycocotools for GTs with
      all keypoints labelled; pycocotools' GT-visibility mask and doubled-box branch are not reproduced here).

    ``V``: all K keypoints, or, with ``vis_thr``, those whose scores (column 2) exceed ``vis_thr`` in *both* poses
    (mmpose 1.x; HRNet's ``list(a) and list(b)`` in effect only tests the second pose). No keypoint counted → 0.
    """
    g = np.asarray(pose, dtype=np.float64)
    d = np.asarray(poses, dtype=np.float64)
    if d.ndim == 2:
        d = d[None]
    variances = (np.asarray(sigmas, dtype=np.float64) * 2) ** 2
    scale = np.broadcast_to(np.asarray(area, dtype=np.float64), (d.shape[0],))[:, None] + np.spacing(1)
    dx = d[:, :, 0] - g[None, :, 0]
    dy = d[:, :, 1] - g[None, :, 1]
    e = (dx**2 + dy**2) / variances / scale / 2
    if vis_thr is None:
        return np.exp(-e).mean(axis=1) if e.shape[1] else np.zeros(d.shape[0])
    mask = (g[None, :, 2] > vis_thr) & (d[:, :, 2] > vis_thr)
    n = mask.sum(axis=1)
    total = np.where(mask, np.exp(-e), 0.0).sum(axis=1)
    return np.where(n > 0, total / np.maximum(n, 1), 0.0)


def pose_score(box_score: float | np.ndarray, kp_scores: np.ndarray, thr: float = 0.2) -> float | np.ndarray:
    """mmpose ``score_mode='bbox_keypoint'`` (HRNet the same): ``box_score × mean(kp scores > thr)``, 0 if none.

    ``kp_scores`` K (→ float) or N×K with ``box_score`` a float or N (→ N). The comparison is strict (``> thr``).
    """
    s = np.asarray(kp_scores, dtype=np.float64)
    valid = s > thr
    n = valid.sum(axis=-1)
    mean = np.where(n > 0, np.where(valid, s, 0.0).sum(axis=-1) / np.maximum(n, 1), 0.0)
    out = np.asarray(box_score, dtype=np.float64) * mean
    return float(out) if out.ndim == 0 else out


def _order(scores: np.ndarray) -> np.ndarray:
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def oks_nms(
    poses: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    sigmas: Sequence[float] | np.ndarray,
    thr: float = 0.9,
    vis_thr: float | None = None,
) -> np.ndarray:
    """Greedy OKS-NMS (HRNet / mmpose ``oks_nms``): keep the top-scored pose, drop the rest with OKS > ``thr`` to it.

    OKS area per pair = mean of the two ``areas`` (box areas). Returns kept indices in the order they were kept
    (descending score). Default thr 0.9 = COCO top-down configs.
    """
    poses = np.asarray(poses, dtype=np.float64)
    areas = np.asarray(areas, dtype=np.float64)
    order = _order(scores)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        o = oks(poses[i], poses[rest], (areas[i] + areas[rest]) / 2, sigmas, vis_thr=vis_thr)
        order = rest[o <= thr]
    return np.asarray(keep, dtype=np.intp)


def soft_oks_nms(
    poses: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    sigmas: Sequence[float] | np.ndarray,
    thr: float = 0.3,
    method: Literal["gaussian", "linear"] = "gaussian",
    max_dets: int = 20,
    vis_thr: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Soft-OKS-NMS (mmpose ``soft_oks_nms``): take the top pose, rescore the rest, re-sort, repeat ≤ ``max_dets``.

    Rescoring against the pose just taken: ``gaussian`` ``s ← s·exp(−OKS²/thr)`` (mmpose uses ``thr`` as the
    Gaussian parameter); ``linear`` ``s ← s·(1 − OKS)`` where ``OKS ≥ thr``. OKS area = mean of the two box areas.
    Returns ``(kept, new_scores)``: kept indices in the order taken and, aligned with them, each pose's score at
    the moment it was taken (mmpose returns only the indices; these are the scores to report with them).
    """
    if method not in ("gaussian", "linear"):
        raise ValueError(f"method must be 'gaussian' or 'linear', got {method!r}")
    poses = np.asarray(poses, dtype=np.float64)
    areas = np.asarray(areas, dtype=np.float64)
    s_all = np.asarray(scores, dtype=np.float64)
    order = _order(s_all)
    s = s_all[order]
    keep: list[int] = []
    kept_scores: list[float] = []
    while order.size and len(keep) < max_dets:
        i = int(order[0])
        keep.append(i)
        kept_scores.append(float(s[0]))
        order, s = order[1:], s[1:].copy()
        o = oks(poses[i], poses[order], (areas[i] + areas[order]) / 2, sigmas, vis_thr=vis_thr)
        if method == "linear":
            hit = o >= thr
            s[hit] = s[hit] * (1 - o[hit])
        else:
            s = s * np.exp(-(o**2) / thr)
        resort = np.argsort(-s, kind="stable")
        order, s = order[resort], s[resort]
    return np.asarray(keep, dtype=np.intp), np.asarray(kept_scores, dtype=np.float64)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of xyxy boxes, ``len(a) × len(b)`` (continuous coordinates, no +1)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    w = (np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])).clip(0)
    h = (np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])).clip(0)
    inter = w * h
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def gbg_boxes(
    boxes: np.ndarray,
    scores: np.ndarray,
    *,
    min_size: float = 0.0,
    egt_thr: float = 0.8,
    drop_iou: float = 0.5,
    group_iou: float = 0.7,
    top_n: int = 4,
    keep_between: bool = True,
) -> np.ndarray:
    """Greedy Box Generation (OGN, paper ``offset-guided`` §3.1.1; methods.md §5 steps 1–4) → kept indices, sorted.

    On one image's un-NMSed detector boxes (N×4 xyxy) with scores:

    1. drop boxes whose shorter side is < ``min_size`` px (the paper: "smaller than the minimum threshold"; the
       value and whether it is a side, an area or a height are *not stated* — shorter side is our choice, 0 = off);
    2. boxes with score > ``egt_thr`` (0.8) are the "equivalent ground truth" set EGT; every EGT box is kept;
    3. non-EGT boxes whose IoU with *every* EGT box is < ``drop_iou`` (0.5) are dropped (so with no EGT box in the
       image nothing survives — the literal reading);
    4. the rest are grouped around EGT boxes: a non-EGT box joins the group of the EGT box it overlaps most if that
       IoU ≥ ``group_iou`` (0.7); each group (its EGT box first — it has the highest score — then members by score)
       keeps its top ``top_n`` (4).

    *Not stated in the paper* (all options or documented choices here): the minimum size; how groups are formed —
    the paper says "divided into groups where every box has IoU ≥ 0.7 with each other", we anchor one group on each
    EGT box (methods.md) and assign a box to its best-overlapping EGT, so groups are disjoint and EGT boxes are never
    dropped even when two EGT boxes overlap ≥ 0.7; the fate of boxes with ``drop_iou ≤ IoU < group_iou`` to every
    EGT box — kept as singletons when ``keep_between`` (methods.md's assumption), dropped otherwise.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    s = np.asarray(scores, dtype=np.float64)
    if len(b) != len(s):
        raise ValueError(f"{len(b)} boxes but {len(s)} scores")
    side = np.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    alive = np.flatnonzero(side >= min_size)
    egt = alive[s[alive] > egt_thr]
    rest = alive[s[alive] <= egt_thr]
    if egt.size == 0 or rest.size == 0:
        return np.sort(egt).astype(np.intp)
    iou = box_iou(b[rest], b[egt])  # len(rest) × len(egt)
    best = iou.max(axis=1)
    owner = iou.argmax(axis=1)
    kept: list[int] = [int(i) for i in egt]
    grouped = best >= group_iou
    if keep_between:
        kept.extend(int(i) for i in rest[(best >= drop_iou) & ~grouped])
    for g in range(len(egt)):
        members = rest[grouped & (owner == g)]
        members = members[_order(s[members])]
        kept.extend(int(i) for i in members[: max(top_n - 1, 0)])
    return np.asarray(sorted(kept), dtype=np.intp)


def pose_nms(
    boxes: np.ndarray,
    poses: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    sigmas: Sequence[float] | np.ndarray,
    *,
    iou_thr: float = 0.6,
    oks_thr: float = 0.75,
    rule: Literal["and", "or", "sequential"] = "and",
    vis_thr: float | None = None,
) -> np.ndarray:
    """OGN post-pose NMS ("OKS+IoU NMS", paper ``offset-guided`` §3.1.1; methods.md §5) → kept indices by score.

    The paper gives IoU 0.6 and OKS 0.75 but not how they combine (methods.md §5 ambiguity), so all three readings:

    * ``"and"`` (default): greedy by score; a pose is suppressed by a kept one only if box IoU > ``iou_thr`` *and*
      OKS > ``oks_thr``. Default because GBG deliberately keeps several boxes per person *and* close neighbours: only
      a true duplicate agrees with a kept pose in both box and pose, while distinct people in a crowd often overlap
      in box (high IoU) with different poses, or have similar poses in low-IoU boxes;
    * ``"or"``: suppressed if either exceeds its threshold (would undo GBG's recall in crowds);
    * ``"sequential"``: greedy box NMS at ``iou_thr`` ranked by ``scores`` (the pose scores), then greedy OKS-NMS
      at ``oks_thr`` on the survivors. Differs from ``"or"`` because a box removed in the second stage has already
      suppressed others in the first.

    OKS area per pair = mean of the two ``areas``; IoU and OKS compare "strictly greater than", like box NMS and
    :func:`oks_nms`.
    """
    if rule not in ("and", "or", "sequential"):
        raise ValueError(f"rule must be 'and', 'or' or 'sequential', got {rule!r}")
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    p = np.asarray(poses, dtype=np.float64)
    a = np.asarray(areas, dtype=np.float64)
    if rule == "sequential":
        survivors = _greedy(b, p, a, scores, sigmas, iou_thr, None, "or", vis_thr)
        after = oks_nms(p[survivors], np.asarray(scores)[survivors], a[survivors], sigmas, oks_thr, vis_thr)
        return survivors[after]
    return _greedy(b, p, a, scores, sigmas, iou_thr, oks_thr, rule, vis_thr)


def _greedy(b, p, a, scores, sigmas, iou_thr, oks_thr, rule, vis_thr) -> np.ndarray:
    order = _order(scores)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        over_iou = box_iou(b[i], b[rest])[0] > iou_thr
        if oks_thr is None:
            suppress = over_iou
        else:
            over_oks = oks(p[i], p[rest], (a[i] + a[rest]) / 2, sigmas, vis_thr=vis_thr) > oks_thr
            suppress = (over_iou & over_oks) if rule == "and" else (over_iou | over_oks)
        order = rest[~suppress]
    return np.asarray(keep, dtype=np.intp)


def average_heatmaps(
    maps: Sequence[np.ndarray],
    weights: Sequence[float] | None = None,
    *,
    size: tuple[int, int] | None = None,
    align_corners: bool = True,
) -> np.ndarray:
    """Weighted mean of heatmap stacks (each N×K×h×w, float) after bilinear resizing to ``size`` = (height, width).

    Used by the multi-scale test, reading A (methods.md §8: heatmaps of the scaled inputs, flipped and not, resized
    back to the s = 1 heatmap size and averaged) and by heatmap fusion of two models (weights w, 1 − w). ``size``
    defaults to the first stack's h×w. Resizing is ``torch.nn.functional.interpolate(mode="bilinear")``;
    ``align_corners=True`` maps corner pixel centres onto each other (UDP's pixel-interval convention), ``False``
    maps pixel edges (the MSRA pipeline). Weights are normalised by their sum (default: equal).
    """
    if not maps:
        raise ValueError("no heatmaps to average")
    arrs = [np.asarray(m, dtype=np.float32) for m in maps]
    for m in arrs:
        if m.ndim != 4:
            raise ValueError(f"heatmaps must be N×K×h×w, got shape {m.shape}")
    w = np.ones(len(arrs)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(arrs),) or w.sum() == 0:
        raise ValueError(f"need {len(arrs)} weights with a non-zero sum, got {weights!r}")
    w = w / w.sum()
    h, wd = (arrs[0].shape[2], arrs[0].shape[3]) if size is None else (int(size[0]), int(size[1]))
    out = np.zeros((*arrs[0].shape[:2], h, wd), dtype=np.float64)
    for m, wi in zip(arrs, w, strict=True):
        if m.shape[:2] != arrs[0].shape[:2]:
            raise ValueError(f"heatmap stacks differ in N×K: {m.shape[:2]} vs {arrs[0].shape[:2]}")
        if m.shape[2:] != (h, wd):
            import torch
            import torch.nn.functional as F

            t = F.interpolate(torch.from_numpy(m), size=(h, wd), mode="bilinear", align_corners=align_corners)
            m = t.numpy()
        out += wi * m
    return out.astype(np.float32)


def box_scale_matrix(scale: float, heatmap_wh: tuple[int, int], *, udp: bool) -> np.ndarray:
    """2x3 affine from the heatmap of the crop of the box scaled by ``scale`` (same centre, same input size) to the
    heatmap of the ``scale = 1`` crop: ``u_1 = c + (u_s - c) * scale`` about the heatmap centre ``c``.

    ``c`` follows :func:`~crowdbench.methods.pose.transforms.crop_matrix` at heatmap size: ``((w-1)/2, (h-1)/2)``
    with UDP (the ROI maps onto pixel centres ``[0, w-1]``), ``(w/2, h/2)`` for MSRA (onto ``[0, w]``); it equals
    ``crop_matrix(c, size, 0, hm) @ inv(crop_matrix(c, scale * size, 0, hm))`` for any box (test).
    """
    w, h = float(heatmap_wh[0]), float(heatmap_wh[1])
    c = np.array([(w - 1.0) / 2.0, (h - 1.0) / 2.0]) if udp else np.array([w / 2.0, h / 2.0])
    lin = np.eye(2) * float(scale)
    return np.concatenate([lin, (c - lin @ c)[:, None]], axis=1)


def warp_box_scale(heatmaps: np.ndarray, scale: float, *, udp: bool) -> np.ndarray:
    """Multi-scale test, reading B (methods.md §8; paper 000 §4.3): warp ``N x C x h x w`` heatmaps predicted on the
    crop of the box scaled by ``scale`` into the ``scale = 1`` crop's heatmap frame (:func:`box_scale_matrix`;
    bilinear ``grid_sample``, zero outside the scaled crop: a 0.7 crop says nothing about its surroundings, and the
    plain average over scales then weighs them down, as averaging the paper's heatmaps does)."""
    import torch
    import torch.nn.functional as F

    hm = np.asarray(heatmaps, dtype=np.float32)
    if scale == 1.0:
        return hm.copy()
    n, _, h, w = hm.shape
    inverse = np.linalg.inv(np.vstack([box_scale_matrix(scale, (w, h), udp=udp), [0.0, 0.0, 1.0]]))[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    src = _apply_grid(inverse, xs, ys)  # each s = 1 pixel's position in the scaled crop's heatmap
    # grid_sample with align_corners=True: -1 and 1 are the centres of the first and last pixels (pixel index units)
    grid = np.stack([2.0 * src[0] / max(w - 1, 1) - 1.0, 2.0 * src[1] / max(h - 1, 1) - 1.0], axis=-1)
    g = torch.from_numpy(grid.astype(np.float32))[None].expand(n, h, w, 2)
    out = F.grid_sample(torch.from_numpy(hm), g, mode="bilinear", padding_mode="zeros", align_corners=True)
    return np.ascontiguousarray(out.numpy())


def _apply_grid(matrix: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(x', y')`` of a 2x3 affine applied to coordinate grids."""
    m = np.asarray(matrix, dtype=np.float64)
    return m[0, 0] * xs + m[0, 1] * ys + m[0, 2], m[1, 0] * xs + m[1, 1] * ys + m[1, 2]


def multiscale_inputs(
    scales: Sequence[float] = (0.7, 1.0, 1.3), input_wh: tuple[int, int] = (192, 256), *, multiple: int = 4
) -> list[tuple[int, int]]:
    """Network input sizes (w, h) for the multi-scale test, reading A (methods.md §8): ``s × input_wh`` per scale.

    Each side is rounded to the nearest multiple of ``multiple`` (halves up, at least ``multiple``): 4 = the heatmap
    stride of HRNet / SimpleBaseline, so heatmaps have whole sizes. (192, 256) × (0.7, 1.0, 1.3) →
    (136, 180), (192, 256), (248, 332). HRNet's multi-resolution fuse layers need sides divisible by 32
    (``multiple=32``); SimpleBaseline (no skip connections) accepts 4.
    """
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")

    def rnd(x: float) -> int:
        return max(multiple, math.floor(x / multiple + 0.5) * multiple)

    return [(rnd(s * input_wh[0]), rnd(s * input_wh[1])) for s in scales]
