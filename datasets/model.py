"""The common data model every reader, writer, stage and metric speaks (DESIGN.md, "Data model").

Boxes are ``(x1, y1, x2, y2)`` float pixels; keypoints are ``K x 3`` arrays of ``(x, y, v)`` where ``v`` is
the COCO visibility flag for ground truth (0 unlabeled, 1 occluded, 2 visible) and a confidence for predictions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ImageSource = str | Path | Callable[[], np.ndarray] | None


@dataclass
class Instance:
    """One person in one frame (ground truth or prediction). ``head_box`` (x1, y1, x2, y2): CrowdHuman ``hbox``,
    PoseTrack ``bbox_head`` / head rectangle (the PCKh normaliser), ``None`` where the source has none."""

    box: np.ndarray
    visible_box: np.ndarray | None = None
    keypoints: np.ndarray | None = None
    score: float = 1.0
    track_id: int = -1
    ignore: bool = False
    head_box: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.box = np.asarray(self.box, dtype=np.float64).reshape(4)
        if self.visible_box is not None:
            self.visible_box = np.asarray(self.visible_box, dtype=np.float64).reshape(4)
        if self.head_box is not None:
            self.head_box = np.asarray(self.head_box, dtype=np.float64).reshape(4)
        if self.keypoints is not None:
            self.keypoints = np.asarray(self.keypoints, dtype=np.float64).reshape(-1, 3)


@dataclass
class Frame:
    """One image of a video (or a still image: a video of one frame).

    Ignore areas: ``ignore_regions`` are boxes (CrowdHuman ``mask``/ignored boxes, COCO ``iscrowd``, tiny synthetic
    people); ``ignore_polygons`` are ``P x 2`` polygons (PoseTrack ``ignore_regions``).
    """

    video: str
    index: int
    width: int
    height: int
    image: ImageSource = None
    instances: list[Instance] = field(default_factory=list)
    ignore_regions: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    ignore_polygons: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ignore_regions = np.asarray(self.ignore_regions, dtype=np.float64).reshape(-1, 4)
        self.ignore_polygons = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in self.ignore_polygons]

    @property
    def frame_id(self) -> str:
        """Unique id of the frame inside its dataset split (``video/index``)."""
        return f"{self.video}/{self.index:06d}"

    def load_image(self) -> np.ndarray:
        """The image as an ``H x W x 3`` uint8 RGB array."""
        if self.image is None:
            raise FileNotFoundError(f"frame {self.frame_id} has no image")
        if callable(self.image):
            return self.image()
        import cv2

        path = Path(self.image)
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"{path}: image missing or unreadable (frame {self.frame_id})")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def boxes(self, *, include_ignored: bool = True) -> np.ndarray:
        """``N x 4`` array of the instances' full boxes."""
        rows = [i.box for i in self.instances if include_ignored or not i.ignore]
        return np.stack(rows) if rows else np.zeros((0, 4))


@dataclass(frozen=True)
class KeypointSchema:
    """Keypoint names, left/right flip pairs, skeleton and OKS sigmas of one dataset convention."""

    name: str
    keypoints: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...]

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoints)


@dataclass
class Dataset:
    """Named splits of frames, grouped by video, with one keypoint schema."""

    name: str
    schema: KeypointSchema
    splits: dict[str, list[Frame]]
    summary: dict[str, float | int | str] = field(default_factory=dict)

    def frames(self, split: str) -> list[Frame]:
        try:
            return self.splits[split]
        except KeyError:
            raise KeyError(f"dataset {self.name!r} has no split {split!r}; splits: {sorted(self.splits)}") from None

    def videos(self, split: str) -> dict[str, list[Frame]]:
        """Frames of a split grouped by video, each list ordered by frame index."""
        out: dict[str, list[Frame]] = {}
        for frame in self.frames(split):
            out.setdefault(frame.video, []).append(frame)
        for frames in out.values():
            frames.sort(key=lambda f: f.index)
        return out

    def __iter__(self) -> Iterator[tuple[str, list[Frame]]]:
        return iter(self.splits.items())
