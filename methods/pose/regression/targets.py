"""Location targets of the pose regression network (paper 002 section 4 "Center Sampling"; FCOS assignment as SMPR).

Each person is represented by its **pseudo box**, the tight box of its labelled joints. A location ``p`` (the
centre of its receptive field, ``s * i + floor(s / 2)``) is a candidate for a person when

* it lies strictly inside the pseudo box, or with ``center_sampling`` inside the box of half-side
  ``radius * s`` around the pseudo box's centre, clipped to the pseudo box (FCOS / SMPR radius 1.5);
* ``max(l, t, r, b)``, its distances to the pseudo box's sides, lies in its level's range ``(lo, hi]``.

A location with several candidates goes to the smallest pseudo box. Pose targets are ``(joint - p) / s`` for every
joint, masked by the joint being labelled; centre-ness is FCOS's ``sqrt(min(l,r)/max(l,r) * min(t,b)/max(t,b))``.
Heatmap targets (auxiliary branch, P3) mark one pixel per labelled joint, ``round((x - s/2) / s)``, with its class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class People:
    """The people of one image that the network learns: joints ``[G, K, 3]`` (x, y, v > 0 = labelled), areas
    ``[G]`` (the OKS scale) and pseudo boxes ``[G, 4]``."""

    keypoints: Tensor
    areas: Tensor

    @property
    def boxes(self) -> Tensor:
        return pseudo_boxes(self.keypoints)

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])


def pseudo_boxes(keypoints: Tensor) -> Tensor:
    """Tight box ``[.., 4]`` (x1, y1, x2, y2) of the labelled joints of ``[.., K, 3]`` poses (zeros without any)."""
    labelled = keypoints[..., 2] > 0
    big = torch.finfo(keypoints.dtype).max
    x, y = keypoints[..., 0], keypoints[..., 1]
    x1 = torch.where(labelled, x, big).amin(-1)
    y1 = torch.where(labelled, y, big).amin(-1)
    x2 = torch.where(labelled, x, -big).amax(-1)
    y2 = torch.where(labelled, y, -big).amax(-1)
    boxes = torch.stack([x1, y1, x2, y2], -1)
    return torch.where(labelled.any(-1, keepdim=True), boxes, torch.zeros_like(boxes))


def level_ranges(bounds: tuple[float, ...], levels: Tensor) -> tuple[Tensor, Tensor]:
    """Per location ``(lo, hi]`` of its level from the inner bounds (FCOS: 64, 128, 256, 512): ``(-1, 64]``, ...,
    ``(512, inf)``."""
    lo = torch.tensor([-1.0, *bounds], device=levels.device)[levels]
    hi = torch.tensor([*bounds, float("inf")], device=levels.device)[levels]
    return lo, hi


def side_distances(points: Tensor, boxes: Tensor) -> Tensor:
    """``[N, G, 4]``: (l, t, r, b) distances of each location to each box's sides."""
    x, y = points[:, None, 0], points[:, None, 1]
    return torch.stack([x - boxes[None, :, 0], y - boxes[None, :, 1], boxes[None, :, 2] - x, boxes[None, :, 3] - y], -1)


def candidates(
    points: Tensor,
    strides: Tensor,
    boxes: Tensor,
    lo: Tensor,
    hi: Tensor,
    *,
    center_sampling: bool,
    radius: float = 1.5,
) -> Tensor:
    """``[N, G]`` bool: location n may learn person g (the rule of the module docstring)."""
    dist = side_distances(points, boxes)
    region = boxes
    if center_sampling:
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        r = radius * strides[:, None]  # [N, 1]
        region = torch.stack(
            [
                torch.maximum(cx[None] - r, boxes[None, :, 0]),
                torch.maximum(cy[None] - r, boxes[None, :, 1]),
                torch.minimum(cx[None] + r, boxes[None, :, 2]),
                torch.minimum(cy[None] + r, boxes[None, :, 3]),
            ],
            -1,
        )  # [N, G, 4]
        x, y = points[:, None, 0], points[:, None, 1]
        inside = (x > region[..., 0]) & (y > region[..., 1]) & (x < region[..., 2]) & (y < region[..., 3])
    else:
        inside = dist.amin(-1) > 0
    reach = dist.amax(-1)
    return inside & (reach > lo[:, None]) & (reach <= hi[:, None])


def assign(
    points: Tensor,
    strides: Tensor,
    levels: Tensor,
    people: People,
    bounds: tuple[float, ...],
    *,
    center_sampling: bool,
    radius: float = 1.5,
) -> Tensor:
    """``[N]`` the person each location learns (-1: negative); ties go to the smallest pseudo box (FCOS)."""
    n = points.shape[0]
    if len(people) == 0:
        return torch.full((n,), -1, dtype=torch.long, device=points.device)
    boxes = people.boxes
    lo, hi = level_ranges(bounds, levels)
    ok = candidates(points, strides, boxes, lo, hi, center_sampling=center_sampling, radius=radius)
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).expand(n, -1)
    area = torch.where(ok, area, torch.full_like(area, float("inf")))
    best_area, best = area.min(1)
    return torch.where(torch.isfinite(best_area), best, torch.full_like(best, -1))


def pose_targets(points: Tensor, strides: Tensor, keypoints: Tensor) -> tuple[Tensor, Tensor]:
    """Offsets ``[N, K, 2]`` in strides from each location to its person's joints ``[N, K, 3]``, and the mask
    ``[N, K]`` of labelled joints."""
    offsets = (keypoints[..., :2] - points[:, None, :]) / strides[:, None, None]
    return offsets, keypoints[..., 2] > 0


def centerness_targets(points: Tensor, boxes: Tensor) -> Tensor:
    """FCOS centre-ness of each location inside its own box ``[N, 4]`` -> ``[N]`` in [0, 1]."""
    x, y = points[:, 0], points[:, 1]
    left, top = (x - boxes[:, 0]).clamp(min=0), (y - boxes[:, 1]).clamp(min=0)
    right, bottom = (boxes[:, 2] - x).clamp(min=0), (boxes[:, 3] - y).clamp(min=0)
    lr = torch.minimum(left, right) / torch.maximum(left, right).clamp(min=1e-6)
    tb = torch.minimum(top, bottom) / torch.maximum(top, bottom).clamp(min=1e-6)
    return torch.sqrt(lr * tb)


def heatmap_targets(keypoints: Tensor, stride: int, height: int, width: int) -> Tensor:
    """``[K, h, w]``: 1 at ``round((x - s/2) / s), round((y - s/2) / s)`` for each labelled joint of each person (SMPR:
    sparse one-hot maps trained as independent sigmoids, not Gaussians)."""
    k = keypoints.shape[1]
    target = torch.zeros(k, height, width, device=keypoints.device)
    labelled = keypoints[..., 2] > 0
    if not labelled.any():
        return target
    g, j = labelled.nonzero(as_tuple=True)
    xs = torch.round((keypoints[g, j, 0] - stride / 2) / stride).long()
    ys = torch.round((keypoints[g, j, 1] - stride / 2) / stride).long()
    inside = (xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)
    target[j[inside], ys[inside], xs[inside]] = 1.0
    return target
