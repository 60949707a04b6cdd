"""COCO person-keypoints JSON writer (with PoseTrack18-style video extras).

Output follows ``person_keypoints_<split>.json``: ``images``, ``annotations`` (``bbox`` xywh clipped to the
image, ``area``, ``num_keypoints``, flat ``keypoints`` with unlabeled points written as ``0, 0, 0``,
``iscrowd``), ``categories`` (one ``person`` category with the schema's names and 1-based skeleton).
Extras: images carry ``frame_id`` (= ``id``), ``vid_id`` (video name), ``frame_index``, ``nframes`` and
``is_labeled``; annotations carry ``track_id``, ``fbox`` (full box, unclipped, xywh) and ``vbox`` (visible
box, xywh). Ignore regions become ``iscrowd: 1`` annotations without keypoints. Ids start at 1 (an id of 0
can never be a true positive in pycocotools, metrics.md 1.6).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crowdbench.datasets.formats.atomic import atomic_write_text
from crowdbench.datasets.model import Frame, Instance, KeypointSchema

__all__ = ["AREA_FACTOR", "to_coco_keypoints", "write_coco_keypoints"]

AREA_FACTOR = 0.53
"""``area = AREA_FACTOR * w * h`` of the (clipped) box: the CrowdPose convention standing in for a COCO
segmentation area, which synthetic and box-only data do not have (metrics.md 2.2)."""


def _r(x: float) -> float:
    return round(float(x), 2)


def _xywh(box: np.ndarray) -> list[float]:
    return [_r(box[0]), _r(box[1]), _r(box[2] - box[0]), _r(box[3] - box[1])]


def _clip(box: np.ndarray, frame: Frame) -> np.ndarray:
    return np.clip(box, 0, [frame.width, frame.height, frame.width, frame.height])


def _file_name(frame: Frame, image_root: Path | None) -> str:
    if isinstance(frame.image, str | Path):
        path = Path(frame.image)
        if image_root is not None:
            try:
                return path.relative_to(image_root).as_posix()
            except ValueError:
                pass
        return path.as_posix()
    return f"{frame.video}/{frame.index + 1:06d}.jpg"


def _keypoints(inst: Instance, k: int) -> tuple[list[float], int]:
    if inst.keypoints is None:
        return [0.0] * (3 * k), 0
    if inst.keypoints.shape != (k, 3):
        raise ValueError(f"instance has {inst.keypoints.shape[0]} keypoints, the schema has {k}")
    flat: list[float] = []
    for x, y, v in inst.keypoints:
        flat.extend((_r(x), _r(y), round(v)) if v > 0 else (0, 0, 0))
    return flat, int((inst.keypoints[:, 2] > 0).sum())


def to_coco_keypoints(
    frames: Sequence[Frame],
    schema: KeypointSchema,
    *,
    image_root: str | Path | None = None,
    area_factor: float = AREA_FACTOR,
) -> dict[str, Any]:
    """The COCO keypoints dict of ``frames`` (image ids 1.. in the given order; annotation ids 1..)."""
    root = Path(image_root) if image_root is not None else None
    lengths: dict[str, int] = {}
    for f in frames:
        lengths[f.video] = max(lengths.get(f.video, 0), f.index + 1)
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    k = schema.num_keypoints
    for image_id, frame in enumerate(frames, start=1):
        images.append(
            {
                "id": image_id,
                "file_name": _file_name(frame, root),
                "width": frame.width,
                "height": frame.height,
                "frame_id": image_id,
                "vid_id": frame.video,
                "frame_index": frame.index,
                "nframes": lengths[frame.video],
                "is_labeled": True,
            }
        )
        for inst in frame.instances:
            box = _clip(inst.box, frame)
            w, h = box[2] - box[0], box[3] - box[1]
            flat, n = _keypoints(inst, k)
            ann: dict[str, Any] = {
                "id": len(anns) + 1,
                "image_id": image_id,
                "category_id": 1,
                "bbox": _xywh(box),
                "area": _r(area_factor * max(w, 0.0) * max(h, 0.0)),
                "iscrowd": int(inst.ignore),
                "num_keypoints": n,
                "keypoints": flat,
                "track_id": int(inst.track_id),
                "fbox": _xywh(inst.box),
            }
            if inst.visible_box is not None:
                ann["vbox"] = _xywh(inst.visible_box)
            anns.append(ann)
        for region in frame.ignore_regions:
            box = _clip(region, frame)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": _xywh(box),
                    "area": _r((box[2] - box[0]) * (box[3] - box[1])),
                    "iscrowd": 1,
                    "num_keypoints": 0,
                    "keypoints": [0] * (3 * k),
                    "track_id": -1,
                }
            )
    category = {
        "id": 1,
        "name": "person",
        "supercategory": "person",
        "keypoints": list(schema.keypoints),
        "skeleton": [[a + 1, b + 1] for a, b in schema.skeleton],
    }
    return {
        "info": {"description": f"crowdbench export ({schema.name})"},
        "images": images,
        "annotations": anns,
        "categories": [category],
    }


def write_coco_keypoints(
    frames: Sequence[Frame],
    path: str | Path,
    schema: KeypointSchema,
    *,
    image_root: str | Path | None = None,
    area_factor: float = AREA_FACTOR,
) -> Path:
    """Write :func:`to_coco_keypoints` to ``path`` atomically; ``file_name`` is relative to ``image_root``."""
    data = to_coco_keypoints(frames, schema, image_root=image_root, area_factor=area_factor)
    return atomic_write_text(path, json.dumps(data, separators=(",", ":")))
