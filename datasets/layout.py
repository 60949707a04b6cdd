"""Where each real dataset lives under ``--data-root`` (the ``full`` profile), and how a split is loaded.

One :class:`Layout` per dataset key (``crowdhuman``, ``coco``, ``crowdpose``, ``ochuman``, ``posetrack17``,
``posetrack18``, ``mot17``, ``hie``): the folder, the annotation path of each split as the official release names
it, and the reader. :func:`check_dataset` turns a missing file into one line that says what to put where, and
a missing image into one line naming it (:func:`check_images`: a ``stat`` per image the annotations reference, or
of an evenly spread sample for huge splits); :func:`load_split` returns the split as data-model :class:`Frame`
objects (images stay on disk, read lazily).

A layout may list several candidate paths; the first that exists wins. The second candidates are where
``crowdbench data synth`` writes the same format (a synthetic folder is a valid ``--data-root``; its results stay
``smoke``, see :data:`crowdbench.datasets.synthetic.SYNTHETIC_MARKER`). The table in ``docs/data.md`` is generated
from :data:`LAYOUTS` by :func:`layout_table` and checked by a test.

Video datasets can hold videos of a split out as the validation split (``holdout_videos``): HIE2020 has no public
validation labels, so the HIE papers (000 section 2.1, 004 section 4.1) validate on videos 3, 7, 8 and 17 of the
train set and train on the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crowdbench.datasets.formats.coco import read_coco_keypoints
from crowdbench.datasets.formats.crowdhuman import read_odgt
from crowdbench.datasets.formats.hie import read_hie
from crowdbench.datasets.formats.mot import read_mot_frames
from crowdbench.datasets.model import Frame

__all__ = [
    "LAYOUTS",
    "DataError",
    "ImageCheck",
    "Layout",
    "annotation_path",
    "check_dataset",
    "check_images",
    "dataset_status",
    "layout_table",
    "load_split",
    "select_videos",
    "split_inputs",
]


class DataError(ValueError):
    """The dataset a config names cannot be loaded (missing root, file or split)."""


@dataclass(frozen=True)
class Layout:
    """One dataset's place under ``--data-root``. Paths use ``{split}``; the first candidate is the official one."""

    key: str
    title: str
    annotations: tuple[str, ...]
    images: str
    splits: tuple[str, ...]
    kind: str  # "file" or "dir": what an annotation path is
    source: str  # where to get it (official page), for error messages
    reader: str  # name of the reader function, for docs

    def candidates(self, root: Path, split: str) -> list[Path]:
        return [root / pattern.format(split=split) for pattern in self.annotations]


LAYOUTS: dict[str, Layout] = {
    layout.key: layout
    for layout in (
        Layout(
            "crowdhuman",
            "CrowdHuman",
            ("crowdhuman/annotation_{split}.odgt", "annotation_{split}.odgt"),
            "crowdhuman/Images/<ID>.jpg",
            ("train", "val"),
            "file",
            "https://www.crowdhuman.org",
            "read_odgt",
        ),
        Layout(
            "coco",
            "COCO person keypoints 2017",
            ("coco/annotations/person_keypoints_{split}2017.json", "annotations/person_keypoints_{split}.json"),
            "coco/{split}2017/*.jpg",
            ("train", "val", "test-dev"),
            "file",
            "https://cocodataset.org",
            "read_coco_keypoints",
        ),
        Layout(
            "crowdpose",
            "CrowdPose",
            ("crowdpose/json/crowdpose_{split}.json",),
            "crowdpose/images/*.jpg",
            ("train", "val", "test", "trainval"),
            "file",
            "https://github.com/Jeff-sjtu/CrowdPose",
            "read_coco_keypoints",
        ),
        Layout(
            "ochuman",
            "OCHuman",
            ("ochuman/ochuman_coco_format_{split}_range_0.00_1.00.json",),
            "ochuman/images/*.jpg",
            ("val", "test"),
            "file",
            "https://github.com/liruilong940607/OCHumanApi",
            "read_coco_keypoints",
        ),
        Layout(
            "posetrack17",
            "PoseTrack 2017",
            ("posetrack17/annotations/{split}",),
            "posetrack17/images/{split}/<video>/*.jpg",
            ("train", "val"),
            "dir",
            "https://posetrack.net (annotations converted to per-video annolist JSON)",
            "read_posetrack_frames",
        ),
        Layout(
            "posetrack18",
            "PoseTrack 2018",
            ("posetrack18/annotations/{split}",),
            "posetrack18/images/{split}/<video>/*.jpg",
            ("train", "val"),
            "dir",
            "https://posetrack.net",
            "read_posetrack_frames",
        ),
        Layout(
            "mot17",
            "MOT17",
            ("mot17/{split}", "{split}"),
            "mot17/{split}/<seq>/img1/*.jpg",
            ("train", "test"),
            "dir",
            "https://motchallenge.net/data/MOT17",
            "read_mot_frames",
        ),
        Layout(
            "hie",
            "HIE2020",
            ("hie/{split}",),
            "hie/{split}/images/<video>/*.jpg",
            ("train", "test", "val"),
            "dir",
            "http://humaninevents.org",
            "read_hie",
        ),
    )
}


def _layout(key: str) -> Layout:
    try:
        return LAYOUTS[key]
    except KeyError:
        raise DataError(f"unknown dataset {key!r}; known: {', '.join(LAYOUTS)}") from None


def annotation_path(root: str | Path, key: str, split: str) -> Path | None:
    """The first existing annotation path of ``key``/``split`` under ``root``, else ``None``."""
    layout = _layout(key)
    for path in layout.candidates(Path(root), split):
        if path.is_file() if layout.kind == "file" else path.is_dir():
            return path
    return None


def check_dataset(root: str | Path | None, key: str, splits: Sequence[str], *, images: bool = True) -> None:
    """Raise :class:`DataError` (one line: what to put where) unless every split of ``key`` is under ``root``;
    with ``images`` also unless every image the annotations reference is there (:func:`check_images`)."""
    layout = _layout(key)
    if root is None:
        raise DataError(
            f"--data-root is required for {layout.title}: put {layout.annotations[0].format(split=splits[0])} "
            f"under it (layout: docs/data.md)"
        )
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: --data-root is not a folder")
    for split in splits:
        if annotation_path(root, key, split) is None:
            want = root / layout.annotations[0].format(split=split)
            what = "file" if layout.kind == "file" else "folder"
            raise DataError(
                f"{want}: {layout.title} {split} annotation {what} not found; put it there "
                f"(images under {root / layout.images.format(split=split)}; get it from {layout.source})"
            )
    if images:
        for split in splits:
            found = check_images(root, key, split)
            if found.missing:
                raise DataError(found.summary())


IMAGES_STAT_ALL = 10_000
"""Splits referencing at most this many images have every image checked; larger ones an evenly spread sample."""
IMAGES_SAMPLE = 200
"""Images checked in a split larger than :data:`IMAGES_STAT_ALL`."""


@dataclass(frozen=True)
class ImageCheck:
    """Which images the annotations of one split reference and how many of those checked are missing."""

    label: str  # dataset key and the split as the image folder names it, e.g. "coco val2017"
    annotations: Path
    total: int  # images the annotations reference
    checked: int  # images whose path was stat-ed (all, or a sample)
    missing: int
    first_missing: str | None

    @property
    def sampled(self) -> bool:
        return self.checked < self.total

    def summary(self) -> str:
        """One line: ``coco val2017: 3 of 5000 images missing (first: ...)``, ``coco val2017: all 5000 images found``,
        or for a sampled split ``coco train2017: 2 of 200 sampled images missing (118287 in the split; first: ...)``."""
        if not self.missing:
            if self.sampled:
                return f"{self.label}: {self.checked} sampled of {self.total} images checked, all found"
            return f"{self.label}: all {self.total} images found"
        where = f"first: {self.first_missing}, referenced by {self.annotations}"
        if self.sampled:
            n = f"{self.missing} of {self.checked} sampled images"
            return f"{self.label}: {n} missing ({self.total} in the split; {where})"
        return f"{self.label}: {self.missing} of {self.total} images missing ({where})"


_IMAGE_CHECKS: dict[tuple[str, str, str, str, int], ImageCheck] = {}


def _split_label(layout: Layout, split: str) -> str:
    """``coco val2017`` (the split as the image folder names it), else ``<key> <split>``."""
    named = next((part for part in layout.images.split("/") if "{split}" in part), "{split}")
    return f"{layout.key} {named.format(split=split)}"


def check_images(root: str | Path, key: str, split: str) -> ImageCheck:
    """``stat`` the images the annotations of ``key``/``split`` reference (every one up to
    :data:`IMAGES_STAT_ALL`, else :data:`IMAGES_SAMPLE` evenly spread over the list); no pixel is read.

    The annotations must be there (:func:`check_dataset` with ``images=False``); results are cached per root,
    dataset, split and annotation file modification time within the process.
    """
    root = Path(root)
    layout = _layout(key)
    ann = annotation_path(root, key, split)
    if ann is None:
        check_dataset(root, key, [split], images=False)  # raises the "put it there" line
    assert ann is not None
    cache_key = (str(root.resolve()), key, split, str(ann), ann.stat().st_mtime_ns)
    if cache_key in _IMAGE_CHECKS:
        return _IMAGE_CHECKS[cache_key]
    frames = _read_split(root, key, split, ann)
    expected = root / layout.images.format(split=split)
    paths: list[str | None] = list(dict.fromkeys(_image_path(f) for f in frames if not callable(f.image)))
    total = len(paths)
    if total > IMAGES_STAT_ALL:
        picks = np.unique(np.linspace(0, total - 1, IMAGES_SAMPLE).round().astype(int))
        paths = [paths[i] for i in picks]
    missing = [p for p in paths if p is None or not Path(p).is_file()]
    first = None
    if missing:
        first = missing[0] if missing[0] is not None else f"a frame without an image path (expected under {expected})"
    result = ImageCheck(_split_label(layout, split), ann, total, len(paths), len(missing), first)
    _IMAGE_CHECKS[cache_key] = result
    return result


def _image_path(frame: Frame) -> str | None:
    return None if frame.image is None else str(frame.image)


def dataset_status(root: str | Path, key: str) -> dict[str, str | None]:
    """``{split: found annotation path or None}`` for every split of ``key``."""
    found = {s: annotation_path(root, key, s) for s in _layout(key).splits}
    return {s: str(p) if p is not None else None for s, p in found.items()}


def select_videos(frames: list[Frame], videos: Sequence[str], *, keep: bool, where: str) -> list[Frame]:
    """Frames of ``videos`` (``keep=True``) or of every other video; unknown video names raise :class:`DataError`."""
    names = {f.video for f in frames}
    unknown = sorted(set(videos) - names)
    if unknown:
        raise DataError(f"{where}: holdout videos {unknown} not found; videos: {', '.join(sorted(names)[:20])}")
    chosen = set(videos)
    return [f for f in frames if (f.video in chosen) == keep]


def _image_root(root: Path, layout: Layout, ann: Path, split: str) -> Path:
    # deferred: start-up (cv2)
    from crowdbench.datasets.synthetic import SYNTHETIC_MARKER

    if layout.key in ("posetrack17", "posetrack18"):
        return root / layout.key  # file names are "images/<split>/<video>/<frame>.jpg"
    if (root / SYNTHETIC_MARKER).is_file():  # synthetic COCO-style exports name files relative to the data root
        return root
    if layout.key == "crowdhuman":
        return ann.parent
    return root / layout.images.format(split=split).split("/*")[0].split("/<")[0]


def _readers() -> dict[str, Callable[[Path, Path], list[Frame]]]:
    # deferred: start-up (scipy)
    from crowdbench.datasets.formats.posetrack import read_posetrack_frames

    def mot(path: Path, images: Path) -> list[Frame]:
        return read_mot_frames(path)

    return {
        "crowdhuman": lambda p, i: read_odgt(p, image_root=i),
        "coco": lambda p, i: list(read_coco_keypoints(p, image_root=i)),
        "crowdpose": lambda p, i: list(read_coco_keypoints(p, image_root=i)),
        "ochuman": lambda p, i: list(read_coco_keypoints(p, image_root=i)),
        "posetrack17": lambda p, i: read_posetrack_frames(p, image_root=i),
        "posetrack18": lambda p, i: read_posetrack_frames(p, image_root=i),
        "mot17": mot,
        "hie": lambda p, i: read_hie(p),
    }


def load_split(root: str | Path | None, key: str, split: str) -> list[Frame]:
    """Split ``split`` of dataset ``key`` under ``root`` as frames (annotations checked first, see
    :func:`check_dataset`; images are checked by the callers that start work, not on every load)."""
    check_dataset(root, key, [split], images=False)
    assert root is not None
    path = annotation_path(root, key, split)
    assert path is not None
    return _read_split(Path(root), key, split, path)


def _read_split(root: Path, key: str, split: str, path: Path) -> list[Frame]:
    return _readers()[key](path, _image_root(root, _layout(key), path, split))


IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
"""Files with these suffixes under an annotation folder are images (keyed by a folder signature, not read)."""


def split_inputs(root: str | Path | None, key: str, split: str) -> tuple[list[Path], list[Path]]:
    """What :func:`load_split` reads for ``split``: the annotation files (an annotation folder: every file under it
    that is not an image, sorted) and the folder(s) its images lie in. Checked first (:func:`check_dataset`)."""
    check_dataset(root, key, [split], images=False)  # images: checked once before any work (check_data)
    assert root is not None
    root = Path(root)
    layout = _layout(key)
    path = annotation_path(root, key, split)
    assert path is not None
    if layout.kind == "file":
        files = [path]
    else:
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() not in IMAGE_SUFFIXES and p.is_file())
    return files, [_image_root(root, layout, path, split)]


def layout_table() -> str:
    """The Markdown table of :data:`LAYOUTS` (what ``docs/data.md`` shows)."""
    lines = [
        "| key | dataset | annotations (first = official; `{split}` in the splits column) | images | splits |",
        "|---|---|---|---|---|",
    ]
    for layout in LAYOUTS.values():
        anns = " or ".join(f"`{a}`" for a in layout.annotations)
        lines.append(f"| `{layout.key}` | {layout.title} | {anns} | `{layout.images}` | {', '.join(layout.splits)} |")
    return "\n".join(lines)
