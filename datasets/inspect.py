"""Detect a dataset's format and summarise it: counts, crowding statistics and a visibility histogram.

Formats (:data:`KNOWN_FORMATS`): CrowdHuman ``.odgt``; COCO-style keypoint JSON (``coco_keypoints`` with 17 joints,
``crowdpose`` with 14 joints and ``crowdIndex``; OCHuman files are COCO-17 and reported as ``coco_keypoints``);
a MOTChallenge sequence folder, a folder of sequences or a ``gt.txt``; an HIE tree (``labels/`` folder); a folder of
PoseTrack 2018 per-video JSON files or 2017 ``annolist`` files.

Conventions: ``people`` counts non-ignored persons (COCO ``iscrowd=0``; CrowdHuman non-ignored gtboxes; MOT rows
with ``conf != 0`` and class 1, or any class when the file has no class column); ``crowded_share`` is the share of
people whose box overlaps another person's box in the same frame at IoU > 0.5 (COCO files: the unclipped full box
``fbox`` where an annotation has one, else the possibly image-clipped ``bbox``). PoseTrack (read by
:func:`~crowdbench.datasets.formats.posetrack.read_posetrack_frames`): people are persons with a labelled joint,
boxes are PT18 ``bbox`` (PT17 has none: the extent of the labelled joints), visibility counts the 15 evaluated
joints as that reader gives it (PT18 ground truth: 1 for every labelled joint; PT17: 2, or 1 for ``is_visible`` 0).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from crowdbench.datasets.formats.errors import FormatError, read_json

__all__ = ["KNOWN_FORMATS", "UnknownFormatError", "find_datasets", "inspect_path", "print_report"]

KNOWN_FORMATS = ("crowdhuman", "coco_keypoints", "crowdpose", "mot", "hie", "posetrack17", "posetrack18")


class UnknownFormatError(ValueError):
    """The path is none of :data:`KNOWN_FORMATS` (one-line message naming the path and the known formats)."""


def _crowded(boxes: np.ndarray) -> int:
    """How many of the ``N x 4`` (x1, y1, x2, y2) boxes overlap another at IoU > 0.5."""
    if len(boxes) < 2:
        return 0
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    lt = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    union = area[:, None] + area[None, :] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    np.fill_diagonal(iou, 0.0)
    return int((iou.max(axis=1) > 0.5).sum())


class _Stats:
    """Accumulates per-frame people, boxes and keypoint visibilities."""

    def __init__(self) -> None:
        self.frames = 0
        self.videos: set[str] = set()
        self.tracks: set[tuple[str, int]] = set()
        self.people = 0
        self.ignored = 0
        self.crowded = 0
        self.max_per_frame = 0
        self.vis: Counter[int] = Counter()

    def frame(
        self,
        video: str,
        boxes: Iterable[Iterable[float]],
        *,
        tracks: Iterable[int] = (),
        vis: Iterable[float] = (),
        ignored: int = 0,
    ) -> None:
        b = np.asarray(list(boxes), dtype=np.float64).reshape(-1, 4)
        self.frames += 1
        self.videos.add(video)
        self.tracks.update((video, int(t)) for t in tracks if t is not None and t >= 0)
        self.people += len(b)
        self.ignored += ignored
        self.crowded += _crowded(b)
        self.max_per_frame = max(self.max_per_frame, len(b))
        self.vis.update(int(v) for v in vis)

    def report(self, path: Path, fmt: str, **extra: Any) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": str(path),
            "format": fmt,
            "frames": self.frames,
            "videos": len(self.videos),
            "people": self.people,
            "ignored": self.ignored,
            "tracks": len(self.tracks),
            "labelled_keypoints": sum(n for v, n in self.vis.items() if v > 0),
            "people_per_frame": round(self.people / max(self.frames, 1), 3),
            "max_people_per_frame": self.max_per_frame,
            "crowded_share": round(self.crowded / max(self.people, 1), 4),
            "visibility": {str(v): self.vis.get(v, 0) for v in (0, 1, 2)},
        }
        out.update(extra)
        return out


def _xywh(b: Any) -> list[float]:
    x, y, w, h = (float(v) for v in b)
    return [x, y, x + w, y + h]


# ------------------------------------------------------------------------------------------------------ formats


def _odgt(path: Path) -> dict[str, Any]:
    from crowdbench.datasets.formats.crowdhuman import read_odgt

    st = _Stats()
    for f in read_odgt(path):
        st.frame(f.video, f.boxes(include_ignored=False), ignored=len(f.ignore_regions))
    return st.report(path, "crowdhuman")


def _coco(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """COCO-style ground truth, validated by :func:`~crowdbench.datasets.formats.coco_checks.check_coco_gt` (the
    checks ``crowdbench eval`` runs; ``area`` is not required here)."""
    from crowdbench.datasets.formats.coco_checks import check_coco_gt

    n_kpts = 0
    cats, anns = data.get("categories"), data.get("annotations")
    if isinstance(cats, list) and cats and isinstance(cats[0], dict) and isinstance(cats[0].get("keypoints"), list):
        n_kpts = len(cats[0]["keypoints"])
    elif isinstance(anns, list) and anns and isinstance(anns[0], dict) and isinstance(anns[0].get("keypoints"), list):
        n_kpts = len(anns[0]["keypoints"]) // 3
    kind = "keypoints" if n_kpts else "bbox"
    check_coco_gt(data, str(path), kind=kind, num_keypoints=n_kpts or None, need_area=False, evaluation=False)
    images, anns = data["images"], data["annotations"]
    by_image: dict[Any, list[dict[str, Any]]] = {}
    for a in anns:
        by_image.setdefault(a["image_id"], []).append(a)
    crowd_index = [img["crowdIndex"] for img in images if isinstance(img, dict) and "crowdIndex" in img]
    fmt = "crowdpose" if n_kpts == 14 and crowd_index else "coco_keypoints"
    st = _Stats()
    for img in images:
        people = [a for a in by_image.get(img["id"], []) if not a.get("iscrowd", 0)]
        boxes = [_xywh(a.get("fbox", a["bbox"])) for a in people]  # the unclipped full box when present
        vis = [v for a in people for v in a.get("keypoints", [])[2::3]]
        st.frame(
            str(img.get("vid_id", img["id"])),
            boxes,
            tracks=[a["track_id"] for a in people if "track_id" in a],
            vis=vis,
            ignored=len(by_image.get(img["id"], [])) - len(people),
        )
    with_kpts = sum(1 for a in anns if not a.get("iscrowd", 0) and any(v > 0 for v in a.get("keypoints", [])[2::3]))
    extra: dict[str, Any] = {"num_keypoints": n_kpts, "people_with_keypoints": with_kpts}
    if crowd_index:
        ci = np.asarray(crowd_index, dtype=np.float64)
        extra["crowd_index"] = {
            "mean": round(float(ci.mean()), 4),
            "easy": int((ci < 0.1).sum()),
            "medium": int(((ci >= 0.1) & (ci <= 0.8)).sum()),
            "hard": int((ci > 0.8).sum()),
        }
    return st.report(path, fmt, **extra)


def _mot_sequences(path: Path) -> list[tuple[str, Path, Path | None]]:
    """``(name, gt.txt, img1 folder or None)`` for a sequence folder, a folder of sequences or a gt file."""
    if path.is_file():
        return [(path.parent.parent.name if path.parent.name == "gt" else path.stem, path, None)]
    if (path / "gt" / "gt.txt").is_file():
        seqs = [path]
    else:
        seqs = sorted(p for p in path.iterdir() if (p / "gt" / "gt.txt").is_file())
    return [(s.name, s / "gt" / "gt.txt", s / "img1" if (s / "img1").is_dir() else None) for s in seqs]


def _mot(path: Path) -> dict[str, Any]:
    from crowdbench.datasets.formats.mot import read_mot, read_seqinfo

    st = _Stats()
    rows = 0
    for name, gt, img_dir in _mot_sequences(path):
        ini = gt.parent.parent / "seqinfo.ini" if gt.parent.name == "gt" else None
        info = read_seqinfo(ini, required=("seqLength",)) if ini is not None and ini.is_file() else {}
        length = info.get("seqLength")
        t = read_mot(gt, role="gt", seq_length=int(length) if length is not None else None)
        rows += len(t)
        keep = (t.conf != 0) & ((t.classes == 1) | (t.classes == -1))
        frame_ids = set(t.frames.tolist())
        if img_dir is not None:
            frame_ids |= {int(p.stem) for p in img_dir.iterdir() if p.stem.isdigit()}
        for fr in sorted(frame_ids):
            m = keep & (t.frames == fr)
            b = t.boxes[m]
            st.frame(name, np.column_stack([b[:, :2], b[:, :2] + b[:, 2:]]), tracks=t.ids[m].tolist())
            st.ignored += int(((t.frames == fr) & ~keep).sum())
    return st.report(path, "mot", rows=rows)


def _hie(path: Path) -> dict[str, Any]:
    from crowdbench.datasets.formats.hie import read_hie

    st = _Stats()
    for f in read_hie(path):
        kp = [v for i in f.instances if i.keypoints is not None for v in i.keypoints[:, 2]]
        st.frame(f.video, f.boxes(), tracks=[i.track_id for i in f.instances], vis=kp, ignored=len(f.ignore_regions))
    return st.report(path, "hie", num_keypoints=14)


def _posetrack(path: Path) -> dict[str, Any]:
    from crowdbench.datasets.formats.posetrack import PT17_JOINT_TO_SLOT, read_posetrack_frames

    files = sorted(p for p in path.glob("*.json") if p.is_file()) if path.is_dir() else [path]
    first = read_json(files[0])
    fmt = "posetrack17" if isinstance(first, dict) and "annolist" in first else "posetrack18"
    st = _Stats()
    for frame in read_posetrack_frames(path):
        people = [i for i in frame.instances if i.keypoints is not None and (i.keypoints[:, 2] > 0).any()]
        boxes = [i.box for i in people]
        vis = [v for i in people for v in i.keypoints[list(PT17_JOINT_TO_SLOT), 2]]
        st.frame(frame.video, boxes, tracks=[i.track_id for i in people], vis=vis, ignored=len(frame.ignore_polygons))
    return st.report(path, fmt, num_keypoints=15)


def _is_posetrack_dir(path: Path) -> bool:
    files = sorted(p for p in path.glob("*.json") if p.is_file())
    if not files:
        return False
    try:
        data = read_json(files[0])
    except FormatError:
        return False
    if isinstance(data, dict) and "annolist" in data:
        return True
    images = data.get("images") if isinstance(data, dict) else None
    return bool(images) and isinstance(images[0], dict) and "vid_id" in images[0] and "annotations" in data


def inspect_path(path: str | Path) -> dict[str, Any]:
    """Detect the format of ``path`` and return its statistics (see the module docstring for the keys' meaning).

    A folder that is none of the formats itself (a dataset's download folder: annotation files beside images) is
    searched (:func:`find_datasets`) and every ground-truth-like file or folder found in it is inspected: the report
    is then ``{"path", "format": "folder", "inspected": [...], "skipped": {path: reason}, "datasets": [report, ...]}``.

    Raises :class:`UnknownFormatError` when the format is not recognised (a folder: when nothing in it is),
    ``FileNotFoundError`` when ``path`` does not exist and :class:`FormatError` when a recognised file is malformed.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix == ".odgt":
            return _odgt(path)
        if path.suffix == ".txt":
            return _mot(path)
        if path.suffix == ".json":
            data = read_json(path)
            if isinstance(data, dict) and ("annolist" in data or _is_posetrack18(data)):
                return _posetrack_file(path)
            if isinstance(data, dict) and "images" in data and "annotations" in data:
                return _coco(path, data)
    elif path.is_dir():
        own = _dataset_kind(path)
        if own is not None:
            return own[1]()
        return _inspect_folder(path)
    raise UnknownFormatError(f"{path}: unknown dataset format; known: {', '.join(KNOWN_FORMATS)}")


# Folders never searched for annotations (images, masks, videos: possibly huge).
_SKIP_DIRS = frozenset({"images", "Images", "img1", "mask", "masks", "videos", "train2017", "val2017", "test2017"})
_MAX_DEPTH = 4
LOOKED_FOR = (
    "COCO-style *.json with 'images' and 'annotations', PoseTrack 2017 *.json with 'annolist', CrowdHuman *.odgt, "
    "a PoseTrack annotation folder of per-video *.json, MOTChallenge <seq>/seqinfo.ini with gt/gt.txt, HIE labels/"
)


def _dataset_kind(path: Path) -> tuple[str, Any] | None:
    """``(kind, inspect)`` when the folder ``path`` itself is a known dataset folder, else None."""
    if (path / "labels").is_dir():
        return "hie", lambda: _hie(path)
    if _mot_sequences(path):
        return "mot", lambda: _mot(path)
    if _is_posetrack_dir(path):
        return "posetrack", lambda: _posetrack(path)
    return None


def find_datasets(root: Path) -> tuple[list[Path], dict[str, str]]:
    """Annotation files and folders under ``root`` (depth <= 4; image folders pruned), and the JSON files skipped
    with the reason (results lists, other JSON). A dataset folder's own files are not listed separately."""
    found: list[Path] = []
    skipped: dict[str, str] = {}

    def walk(d: Path, depth: int) -> None:
        try:
            entries = sorted(d.iterdir(), key=lambda p: p.name)
        except OSError as exc:
            skipped[str(d)] = f"unreadable ({exc.strerror or exc})"
            return
        for e in entries:
            if e.name.startswith("."):
                continue
            if e.is_dir():
                if e.name in _SKIP_DIRS or depth >= _MAX_DEPTH:
                    continue
                if _dataset_kind(e) is not None:
                    found.append(e)
                else:
                    walk(e, depth + 1)
            elif e.suffix == ".odgt":
                found.append(e)
            elif e.suffix == ".json":
                data = read_json(e)
                if isinstance(data, dict) and ("annolist" in data or ("images" in data and "annotations" in data)):
                    found.append(e)
                elif isinstance(data, list):
                    skipped[str(e)] = "a results list (predictions), not ground truth"
                else:
                    skipped[str(e)] = "JSON without 'images' / 'annotations' / 'annolist'"

    walk(root, 1)
    return found, skipped


def _inspect_folder(path: Path) -> dict[str, Any]:
    found, skipped = find_datasets(path)
    if not found:
        raise UnknownFormatError(f"{path}: no dataset file found in this folder (looked for {LOOKED_FOR})")
    reports = [inspect_path(p) for p in found]
    return {
        "path": str(path),
        "format": "folder",
        "inspected": [str(p) for p in found],
        "skipped": skipped,
        "datasets": reports,
    }


def _is_posetrack18(data: dict[str, Any]) -> bool:
    """A PoseTrack 2018 / 2021 per-video file: COCO-style, its images carry ``vid_id`` and ``frame_id`` (our own
    COCO writer adds ``frame_index``, PoseTrack does not)."""
    images = data.get("images")
    first = images[0] if isinstance(images, list) and images else None
    return isinstance(first, dict) and "frame_id" in first and "vid_id" in first and "frame_index" not in first


def _posetrack_file(path: Path) -> dict[str, Any]:
    """A single PoseTrack 2017 ``annolist`` or PoseTrack 2018 per-video file."""
    return _posetrack(path)


def print_report(report: dict[str, Any]) -> None:
    """Print ``report`` (from :func:`inspect_path`) as a rich table."""
    from rich.console import Console
    from rich.table import Table

    if report.get("format") == "folder":
        print(f"{report['path']}: inspected {len(report['inspected'])} dataset file(s) / folder(s)")
        for p, why in report["skipped"].items():
            print(f"  skipped {p}: {why}")
        for sub in report["datasets"]:
            print_report(sub)
        return
    table = Table(title=f"{report['path']} ({report['format']})")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for key, value in report.items():
        if key in ("path", "format"):
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items())
        table.add_row(key, str(value))
    Console().print(table)
