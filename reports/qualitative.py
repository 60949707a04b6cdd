"""Qualitative frames for the report: one validation frame of a cell with what the cell predicted drawn on it (OpenCV).

Read from the run folder's cache (the record's stage keys), never recomputed: the best-scored detection boxes (as
many as there are people) over the ground truth, pose skeletons, tracked boxes with their track ids, and pose tracks
before / after optical-flow smoothing side by side. Synthetic frames re-render from their seed; a missing cache
output gives no figure.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from crowdbench.bench.config import RunConfig
from crowdbench.bench.store import Record
from crowdbench.bench.tasks import load_artefact, task_of, validation_frames
from crowdbench.datasets.model import Frame, KeypointSchema

SCALE = 3
GT = (60, 170, 60)
PRED = (230, 120, 20)


def _palette(i: int) -> tuple[int, int, int]:
    hue = (i * 47) % 180
    bgr = cv2.cvtColor(np.uint8([[[hue, 200, 230]]]), cv2.COLOR_HSV2RGB)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def _canvas(frame: Frame) -> np.ndarray:
    image = frame.load_image()
    return cv2.resize(image, (image.shape[1] * SCALE, image.shape[0] * SCALE), interpolation=cv2.INTER_NEAREST)


def _box(img: np.ndarray, box: np.ndarray, color: tuple[int, int, int], label: str | None = None) -> None:
    x1, y1, x2, y2 = (round(float(v) * SCALE) for v in box[:4])
    cv2.rectangle(img, (x1, y1), (x2, y2), color, 2)
    if label:
        cv2.putText(img, label, (x1 + 2, max(y1 - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1, cv2.LINE_AA)


def _skeleton(
    img: np.ndarray, kps: np.ndarray, schema: KeypointSchema, color: tuple[int, int, int], thr: float
) -> None:
    pts = [(round(float(x) * SCALE), round(float(y) * SCALE), s) for x, y, s in kps]
    for a, b in schema.skeleton:
        if pts[a][2] > thr and pts[b][2] > thr:
            cv2.line(img, pts[a][:2], pts[b][:2], color, 2, cv2.LINE_AA)
    for x, y, s in pts:
        if s > thr:
            cv2.circle(img, (x, y), 3, color, -1, cv2.LINE_AA)


def _png(img: np.ndarray) -> str:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return base64.b64encode(buf.tobytes()).decode() if ok else ""


def _pick(frames: list[Frame]) -> int:
    """The most crowded of the first 20 validation frames (ties: the first)."""
    counts = [sum(not i.ignore for i in f.instances) for f in frames[:20]]
    return int(np.argmax(counts)) if counts else 0


def frame_figure(record: Record, cache_root: Path) -> dict[str, Any] | None:
    """``{"png": base64, "caption": text}`` for one cell, or None when its outputs are not in ``cache_root``."""
    try:
        return draw_cell(RunConfig.model_validate(record.config), record.stage_keys, Path(cache_root))
    except (FileNotFoundError, KeyError, ValueError, OSError):
        return None


@dataclass
class Shown:
    """What a drawer reads: the cell, its validation frames, the frame shown, its artefacts and the canvas."""

    cfg: RunConfig
    keys: dict[str, str]
    root: Path
    frames: list[Frame]
    index: int
    img: np.ndarray

    def artefact(self, name: str) -> Any:
        """Artefact ``name`` of the cell for the frame shown."""
        return load_artefact(self.cfg, self.keys, name, self.root, self.frames)[self.index]

    @property
    def people(self) -> int:
        return sum(not i.ignore for i in self.frames[self.index].instances)


def _detections(shown: Shown) -> tuple[np.ndarray, str]:
    """The best-scored detection boxes, as many as there are people."""
    per, img, n_gt = shown.artefact("detections"), shown.img, shown.people
    best = np.argsort(-per["scores"], kind="stable")[:n_gt]
    for i in best:
        _box(img, per["boxes"][i], PRED)
    low = float(per["scores"][best].min()) if len(best) else 0.0
    return img, f"green: the {n_gt} people; orange: the {len(best)} best-scored detections (scores >= {low:.2f})"


def _poses(shown: Shown) -> tuple[np.ndarray, str]:
    """The best-scored pose skeletons, as many as there are people."""
    mine = sorted(shown.artefact("poses"), key=lambda r: -r["score"])
    schema, n_gt = task_of(shown.cfg.task).schema(shown.cfg), shown.people
    for r in mine[:n_gt]:
        _skeleton(shown.img, np.asarray(r["keypoints"]).reshape(-1, 3), schema, PRED, 0.0)
    return shown.img, f"green: ground-truth boxes; orange: the {min(len(mine), n_gt)} best-scored poses"


def _tracks(shown: Shown) -> tuple[np.ndarray, str]:
    """Tracked boxes coloured and labelled by track id."""
    tracks = shown.artefact("tracks")
    for x1, y1, x2, y2, tid, _det in tracks:
        _box(shown.img, np.array([x1, y1, x2, y2]), _palette(int(tid)), f"#{int(tid)}")
    return shown.img, f"green: ground truth; coloured: {len(tracks)} tracked boxes with their track ids"


def _pose_tracks(shown: Shown) -> tuple[np.ndarray, str]:
    """Pose tracks coloured by id, before / after optical-flow smoothing side by side."""
    cfg = shown.cfg
    panels = [("tracked poses", shown.artefact("poses"))]
    if "smooth" in shown.keys:
        panels.append(("after flow smoothing", shown.artefact("smoothed")))
    images = []
    for title, poses in panels:
        canvas = shown.img.copy()
        for kps, tid in zip(poses.keypoints, poses.ids, strict=True):
            _skeleton(canvas, kps, task_of(cfg.task).schema(cfg), _palette(int(tid)), cfg.pose_tracking.kp_thr)
        cv2.putText(canvas, title, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        images.append(canvas)
    caption = "poses coloured by track id, joints above the submission threshold" + (
        "; left before, right after optical-flow smoothing" if len(panels) == 2 else ""
    )
    return np.concatenate(images, axis=1), caption


DRAWERS: dict[str, Callable[[Shown], tuple[np.ndarray, str]]] = {
    "detections": _detections,
    "poses": _poses,
    "tracks": _tracks,
    "pose_tracks": _pose_tracks,
}
"""The drawing of each kind of task figure (``Task.figure``)."""


def draw_cell(cfg: RunConfig, keys: dict[str, str], root: Path) -> dict[str, Any] | None:
    """The figure of one cell from its stage outputs under ``root`` (raises if they are missing)."""
    draw = DRAWERS.get(task_of(cfg.task).figure)
    frames = validation_frames(cfg)
    if draw is None or not frames:
        return None
    f = _pick(frames)
    frame = frames[f]
    img = _canvas(frame)
    for inst in frame.instances:
        if not inst.ignore:
            _box(img, inst.box, GT)
    img, caption = draw(Shown(cfg, keys, root, frames, f, img))
    return {"png": _png(img), "caption": f"{frame.frame_id} (×{SCALE}): {caption}"}
