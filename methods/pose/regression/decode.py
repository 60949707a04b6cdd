"""Inference of the pose regression network (paper 002 section 5.1 "Testing"; SMPR test config, methods.md 4).

Locations are screened by their classification score, each keeps the pose it regresses (eq. 3: location plus
offsets times stride), a **pseudo box** tightly around the pose's joints stands in for a detection box, the final
score is ``cls x scorer`` (PSM or centre-ness, Table 2) and **soft-NMS** on the pseudo boxes removes duplicates
(Bodla et al., ICCV 2017; linear: ``s <- s (1 - IoU)`` above ``iou_thr``, as SMPR's config).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor


def decode_poses(locations: Tensor, strides: Tensor, offsets: Tensor) -> Tensor:
    """Joints ``[N, K, 2]`` in pixels from locations ``[N, 2]``, their strides ``[N]`` and offsets ``[N, K, 2]`` in
    strides (eq. 3)."""
    return locations[:, None, :] + offsets * strides[:, None, None]


def pose_boxes(poses: np.ndarray) -> np.ndarray:
    """Pseudo boxes ``[N, 4]`` (x1, y1, x2, y2) tightly around the joints of poses ``[N, K, >=2]``."""
    xy = np.asarray(poses, dtype=np.float64)[..., :2]
    if not len(xy):
        return np.zeros((0, 4))
    return np.concatenate([xy.min(1), xy.max(1)], axis=1)


def _iou_one(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def soft_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    *,
    iou_thr: float = 0.3,
    method: Literal["linear", "gaussian"] = "linear",
    sigma: float = 0.5,
    min_score: float = 1e-3,
    max_dets: int | None = 20,
) -> tuple[np.ndarray, np.ndarray]:
    """Soft-NMS (Bodla et al. 2017): repeatedly take the highest-scored box and decay the others' scores,
    ``linear`` ``s <- s (1 - IoU)`` where ``IoU > iou_thr``, ``gaussian`` ``s <- s exp(-IoU^2 / sigma)``; boxes whose
    score falls below ``min_score`` are dropped. Returns kept indices (in the order taken) and their decayed scores."""
    if method not in ("linear", "gaussian"):
        raise ValueError(f"soft-NMS method must be 'linear' or 'gaussian', got {method!r}")
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    s = np.asarray(scores, dtype=np.float64).copy()
    alive = np.arange(len(s))
    keep: list[int] = []
    kept_scores: list[float] = []
    limit = len(s) if max_dets is None else max_dets
    while alive.size and len(keep) < limit:
        top = alive[np.argmax(s[alive])]
        if s[top] < min_score:
            break
        keep.append(int(top))
        kept_scores.append(float(s[top]))
        alive = alive[alive != top]
        if not alive.size:
            break
        iou = _iou_one(boxes[top], boxes[alive])
        if method == "linear":
            s[alive] = np.where(iou > iou_thr, s[alive] * (1 - iou), s[alive])
        else:
            s[alive] = s[alive] * np.exp(-(iou**2) / sigma)
        alive = alive[s[alive] >= min_score]
    return np.asarray(keep, dtype=np.intp), np.asarray(kept_scores, dtype=np.float64)


def hard_nms(boxes: np.ndarray, scores: np.ndarray, *, iou_thr: float, max_dets: int | None) -> np.ndarray:
    """Greedy NMS of the pseudo boxes (``torchvision.ops.nms``), at most ``max_dets`` kept."""
    from torchvision.ops import nms

    keep = nms(torch.as_tensor(boxes, dtype=torch.float32), torch.as_tensor(scores, dtype=torch.float32), iou_thr)
    return keep.numpy()[:max_dets] if max_dets is not None else keep.numpy()
