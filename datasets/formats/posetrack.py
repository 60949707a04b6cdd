"""PoseTrack 2017 (``annolist``) and 2018 (COCO-style) per-video JSON on the crowdbench data model.

One file per video (poseval pairs ground truth and predictions by file name). Keypoints are ``17 x 3`` in the
:data:`~crowdbench.datasets.keypoints.POSETRACK_17` order (PT18: nose, head_bottom, head_top, left_ear, right_ear,
then the COCO-order body joints; the ear slots are never labeled). PT17 points carry poseval joint ids 0..14
(:data:`~crowdbench.bench.metrics.posetrack.JOINT_NAMES`), mapped to these slots by name.

Reading (:func:`read_posetrack_frames`; the version is detected per file: ``annolist`` key -> 2017, else 2018):

- ``video`` is the file stem (``009473_mpii_test``), except in a PT18 file holding images of several ``vid_id``:
  there each image's folder in ``file_name`` (else ``str(vid_id)``) names its video.
- ``index``: PT18 ``frame_id`` when it has the official form ``1<vid_id><frame:04d>`` (``10094730000`` -> 0);
  otherwise (and for PT17) the digits of the image file stem (``images/val/000342_mpii_test/000012.jpg`` -> 12);
  otherwise PT17 ``imgnum - 1``; otherwise the rank of the image in the file.
- ``width`` / ``height`` from the PT18 image entry, 0 where absent (always for PT17). ``image`` is
  ``image_root/file_name`` as a ``str``, or ``file_name`` without ``image_root``; pixels are never read.
- Visibility (ground truth). PT18: the file's flag as-is (PT18 GT writes 1 for every labeled joint, 0 for
  unlabeled ones, so GT joints read as ``v = 1`` "labeled, occlusion unknown"; a 2 stays 2). PT17: a listed point
  is labeled; ``is_visible`` 1 -> ``v = 2``, 0 -> ``v = 1``, absent -> 2; unlisted joints are ``(0, 0, 0)``.
- Predictions: a PT18 annotation with non-empty ``scores``, or a PT17 rect whose points carry ``score``. The third
  keypoint value is the joint score and ``Instance.score`` the mean score over the 15 evaluated joints the file
  lists (PT18: every non-ear slot; PT17: the listed points); unlisted PT17 joints are ``(0, 0, 0)``.
- ``box``: PT18 ``bbox`` (xywh -> xyxy). PT17 has no person box and neither may a PT18 annotation: the box is
  then the extent of the labeled joints (``v > 0``, or any listed joint for predictions), else the head box, else
  zeros. ``head_box`` from ``bbox_head`` (xywh) / PT17 ``x1 y1 x2 y2``; ``track_id`` -1 where absent.
- ``ignore_polygons`` from ``ignore_regions_x/y`` (PT18) / ``ignore_regions`` (PT17); ``ignore_regions`` stay empty.
- A PT18 image with ``is_labeled: false`` is kept as a frame (its annotations, normally none, are kept too).

Malformed input raises a one-line :class:`FormatError` ``file: record: reason``. PT17 files are first validated by
:func:`crowdbench.bench.metrics.posetrack.read_posetrack17` (the metrics reader), whose helpers both versions share.

Writing (:func:`write_posetrack`, ``fmt`` "2017" or "2018"): ``<out_dir>/<video>.json`` per video, atomically,
integral numbers as ints. Frames must carry ``POSETRACK_17`` keypoints (17 per instance, or none: written as
unlabeled). Image names are ``<image_dir>/<video>/<index:06d><image_ext>``. ``Frame.ignore_regions`` boxes and the
boxes of ``Instance.ignore`` people are written as 4-corner ignore polygons (they read back as polygons, the people
are not written). A frame is written ``is_labeled`` when it has people or ignore areas. With ``predictions=True``
the third keypoint value is written as the joint score (PT18 ``scores``, flag 1 for listed joints; PT17 ``score``),
else as the visibility (PT18 flag as-is; PT17 ``is_visible`` 1 for ``v = 2``, 0 for ``v = 1``).
PT18 ``vid_id`` is the leading digits of the video name (the name itself when it has none) and ``frame_id`` /
image ``id`` is ``1<vid_id><index:04d>`` where that is a number (else a running number); annotation ids run 1, 2, ...
PT17 cannot carry the person box (read back as the joint extent), ``width``/``height`` nor ``Instance.score`` (read
back as the mean joint score); joints with ``v = 0`` are not listed. Round trip (ears unlabeled): boxes (PT18),
head boxes, keypoints, track ids, polygons, video and index come back identical.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crowdbench.datasets.formats.atomic import atomic_write_text
from crowdbench.datasets.formats.errors import FormatError, read_json
from crowdbench.datasets.formats.poseval import (
    JOINT_NAMES,
    _int,
    _num,
    _one,
    _polygons,
    read_posetrack17,
    read_posetrack18,
)
from crowdbench.datasets.keypoints import POSETRACK_17
from crowdbench.datasets.model import Frame, Instance

__all__ = [
    "PT17_JOINT_TO_SLOT",
    "PT18_CATEGORY",
    "read_posetrack_frames",
    "write_posetrack",
]

_NAMES = POSETRACK_17.keypoints
K = len(_NAMES)
PT17_JOINT_TO_SLOT: tuple[int, ...] = tuple(_NAMES.index(n) for n in JOINT_NAMES)
"""poseval joint id (0..14) -> slot in the ``POSETRACK_17`` keypoint order."""
_EVALUATED = np.array(sorted(PT17_JOINT_TO_SLOT))  # the 15 slots poseval evaluates (not the ears)

PT18_CATEGORY: dict[str, Any] = {
    "supercategory": "person",
    "id": 1,
    "name": "person",
    "keypoints": list(_NAMES),
    "skeleton": [[a + 1, b + 1] for a, b in POSETRACK_17.skeleton],
}
"""The one PT18 category (names in ``POSETRACK_17`` order, 1-based skeleton)."""

_DIGITS = re.compile(r"\d+")
_LEAD = re.compile(r"(\d+)")


# ---------------------------------------------------------------------------------------------------------- reader


def _index_from_name(name: str) -> int | None:
    stem = Path(name).stem
    return int(stem) if _DIGITS.fullmatch(stem) else None


def _image_path(name: str, image_root: Path | None) -> str:
    return str(image_root / name) if image_root is not None else name


def _extent(kpts: np.ndarray, labeled: np.ndarray, head: np.ndarray | None) -> np.ndarray:
    if labeled.any():
        xy = kpts[labeled, :2]
        return np.array([*xy.min(axis=0), *xy.max(axis=0)])
    return head.copy() if head is not None else np.zeros(4)


# Frame numbers beyond this are refused: writers and per-frame arrays are sized by the largest index.
MAX_FRAME = 10**7


def _fix_indices(frames: list[Frame], indices: list[int | None], path: Path | None = None) -> None:
    """Frames whose index could not be derived take their rank in the file; an index beyond :data:`MAX_FRAME` (from
    an image name or ``imgnum``) is a :class:`FormatError` naming the file, the image and the field."""
    for rank, (frame, idx) in enumerate(zip(frames, indices, strict=True)):
        if idx is not None and not 0 <= idx <= MAX_FRAME:
            where = f"{path}: image {rank}" if path is not None else f"image {rank}"
            raise FormatError(
                f"{where} ({frame.image}): frame number {idx} (from the file name / imgnum) must be in "
                f"[0, {MAX_FRAME:,}]"
            )
        frame.index = rank if idx is None else idx


def _read17(path: Path, data: Any, image_root: Path | None) -> list[Frame]:
    read_posetrack17(path, data)  # structure, numbers and one-element lists validated there
    video = path.stem
    frames: list[Frame] = []
    indices: list[int | None] = []
    for f, entry in enumerate(data["annolist"]):
        where = f"{path}: annolist[{f}]"
        name = str(entry["image"][0]["name"])
        idx = _index_from_name(name)
        if idx is None and "imgnum" in entry:
            idx = _int(_one(entry, "imgnum", where), f"{where}: imgnum") - 1
        polygons = []
        for reg in entry.get("ignore_regions") or []:
            pts = [(float(_one(p, "x", where)), float(_one(p, "y", where))) for p in reg["point"]]
            polygons.append(np.array(pts, dtype=np.float64).reshape(-1, 2))
        instances = []
        for r, rect in enumerate(entry["annorect"]):
            rw = f"{where}.annorect[{r}]"
            track = _int(_one(rect, "track_id", rw), f"{rw}: track_id") if "track_id" in rect else -1
            head = None
            if all(k in rect for k in ("x1", "y1", "x2", "y2")):
                head = np.array([float(_one(rect, k, rw)) for k in ("x1", "y1", "x2", "y2")])
            kpts = np.zeros((K, 3))
            listed = np.zeros(K, dtype=bool)
            pred = False
            ap = rect.get("annopoints")
            points = ap[0]["point"] if isinstance(ap, list) and ap and isinstance(ap[0], dict) else []
            points = points if isinstance(points, list) else []
            for p, pt in enumerate(points):
                pw = f"{rw}.point[{p}]"
                jid = _int(_one(pt, "id", pw), f"{pw}: id")
                if not 0 <= jid < len(JOINT_NAMES):
                    continue  # poseval keeps but never evaluates other ids
                slot = PT17_JOINT_TO_SLOT[jid]
                if listed[slot]:
                    raise FormatError(f"{pw}: joint id {jid} listed twice")
                listed[slot] = True
                x, y = _num(_one(pt, "x", pw), f"{pw}: x"), _num(_one(pt, "y", pw), f"{pw}: y")
                if "score" in pt:
                    pred = True
                    v = _num(_one(pt, "score", pw), f"{pw}: score")
                elif "is_visible" in pt:
                    raw = _one(pt, "is_visible", pw)
                    flag = int(raw) if isinstance(raw, str) and raw in ("0", "1") else raw
                    if isinstance(flag, bool) or flag not in (0, 1):
                        raise FormatError(f"{pw}: is_visible must be 0 or 1, got {raw!r}")
                    v = 2.0 if flag == 1 else 1.0
                else:
                    v = 2.0
                kpts[slot] = (x, y, v)
            if pred:
                missing = [p for p, pt in enumerate(points) if isinstance(pt, dict) and "score" not in pt]
                if missing:
                    raise FormatError(f"{rw}.point[{missing[0]}]: no 'score' while other points of the rect have one")
            score = float(kpts[listed, 2].mean()) if pred and listed.any() else 1.0
            box = _extent(kpts, listed if pred else kpts[:, 2] > 0, head)
            instances.append(Instance(box=box, keypoints=kpts, score=score, track_id=track, head_box=head))
        frames.append(
            Frame(video, 0, 0, 0, image=_image_path(name, image_root), instances=instances, ignore_polygons=polygons)
        )
        indices.append(idx)
    _fix_indices(frames, indices, path)
    return frames


def _box(value: Any, what: str, where: str) -> np.ndarray:
    if not isinstance(value, list) or len(value) != 4:
        raise FormatError(f"{where}: '{what}' must be [x, y, w, h], got {json.dumps(value)[:60]}")
    x, y, w, h = (_num(v, f"{where}: {what}") for v in value)
    if w < 0 or h < 0:
        raise FormatError(f"{where}: '{what}' has a negative width or height: {value}")
    return np.array([x, y, x + w, y + h])


def _frame_index18(img: dict, name: str) -> int | None:
    vid, fid = img.get("vid_id"), img.get("frame_id")
    if isinstance(vid, str | int) and not isinstance(vid, bool) and isinstance(fid, int) and not isinstance(fid, bool):
        prefix = f"1{vid}"
        text = str(fid)
        if _DIGITS.fullmatch(str(vid)) and len(text) == len(prefix) + 4 and text.startswith(prefix):
            return int(text[-4:])
    return _index_from_name(name)


def _categories18(path: Path, data: dict) -> list[int | None]:
    """Slot in ``POSETRACK_17`` of each keypoint the file's category lists."""
    cats = data["categories"]
    if len(cats) != 1 or not isinstance(cats[0], dict) or cats[0].get("name") != "person":
        raise FormatError(f"{path}: categories: expected exactly one category named 'person'")
    names = cats[0].get("keypoints")
    if not isinstance(names, list) or len(names) not in (15, 17) or not all(isinstance(n, str) for n in names):
        raise FormatError(f"{path}: categories[0]: 'keypoints' must list 15 or 17 names")
    missing = [n for n in JOINT_NAMES if n not in names]
    if missing:
        raise FormatError(f"{path}: categories[0]: keypoint {missing[0]!r} not found")
    if len(set(names)) != len(names):
        raise FormatError(f"{path}: categories[0]: duplicate keypoint names")
    return [_NAMES.index(n) if n in _NAMES else None for n in names]


def _frames18(path: Path, images: list, image_root: Path | None) -> dict[Any, Frame]:
    """One empty frame per image, by image id, in the order of ``images`` (frame indices fixed up)."""
    vids = {str(img.get("vid_id")) for img in images if isinstance(img, dict) and "vid_id" in img}
    indices: list[int | None] = []
    by_image: dict[Any, Frame] = {}
    for k, img in enumerate(images):
        where = f"{path}: images[{k}]"
        if not isinstance(img, dict) or "id" not in img or not isinstance(img.get("file_name"), str):
            raise FormatError(f"{where}: needs 'id' and a string 'file_name'")
        if isinstance(img["id"], list | dict) or img["id"] in by_image:
            raise FormatError(f"{where}: duplicate or invalid image id {img['id']!r}")
        name = img["file_name"]
        video = path.stem
        if len(vids) > 1:
            parent = Path(name).parent.name
            video = parent or str(img.get("vid_id"))
        size = []
        for key in ("width", "height"):
            value = img.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise FormatError(f"{where}: '{key}' must be a non-negative integer, got {value!r}")
            size.append(value)
        polygons: list[np.ndarray] = []
        if "ignore_regions_x" in img or "ignore_regions_y" in img:
            polygons = _polygons(img.get("ignore_regions_x"), img.get("ignore_regions_y"), where)
        image = _image_path(name, image_root)
        by_image[img["id"]] = Frame(video, 0, size[0], size[1], image=image, ignore_polygons=polygons)
        indices.append(_frame_index18(img, name))
    _fix_indices(list(by_image.values()), indices, path)
    return by_image


def _instance18(ann: Any, where: str, table: list[int | None], by_image: Mapping[Any, Frame]) -> Instance:
    """One annotation: keypoints moved to their ``POSETRACK_17`` slots (joint scores as the third value)."""
    if not isinstance(ann, dict):
        raise FormatError(f"{where}: expected an object")
    for key in ("image_id", "keypoints"):
        if key not in ann:
            raise FormatError(f"{where}: missing '{key}'")
    if isinstance(ann["image_id"], list | dict) or ann["image_id"] not in by_image:
        raise FormatError(f"{where}: image_id {ann['image_id']!r} not in images")
    n_kp = len(table)
    raw = ann["keypoints"]
    if not isinstance(raw, list) or len(raw) != 3 * n_kp:
        raise FormatError(f"{where}: 'keypoints' must have {3 * n_kp} numbers, got {_len(raw)}")
    flat = np.array([_num(v, f"{where}: keypoints") for v in raw]).reshape(n_kp, 3)
    scores = ann.get("scores") or []
    if not isinstance(scores, list) or len(scores) not in (0, n_kp):
        raise FormatError(f"{where}: 'scores' must be empty or have {n_kp} numbers")
    scores = [_num(v, f"{where}: scores") for v in scores]
    kpts = np.zeros((K, 3))
    for slot, dst in enumerate(table):
        if dst is not None:
            kpts[dst] = flat[slot]
            if scores:
                kpts[dst, 2] = scores[slot]
    head = _box(ann["bbox_head"], "bbox_head", where) if "bbox_head" in ann else None
    track = _int(ann["track_id"], f"{where}: track_id") if "track_id" in ann else -1
    if scores:
        listed = np.array([dst is not None and not (flat[s] == 0).all() for s, dst in enumerate(table)])
        lab = np.zeros(K, dtype=bool)
        lab[[d for s, d in enumerate(table) if d is not None and listed[s]]] = True
        score = float(kpts[_EVALUATED, 2].mean())
    else:
        lab, score = kpts[:, 2] > 0, 1.0
    box = _box(ann["bbox"], "bbox", where) if "bbox" in ann else _extent(kpts, lab, head)
    return Instance(box=box, keypoints=kpts, score=score, track_id=track, head_box=head)


def _read18(path: Path, data: Any, image_root: Path | None) -> list[Frame]:
    read_posetrack18(path, data)  # the checks eval runs (datasets/formats/poseval.py), then the conversion
    if not isinstance(data, dict):
        raise FormatError(f"{path}: expected a JSON object, got {type(data).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise FormatError(f"{path}: missing list '{key}'")
    table = _categories18(path, data)
    by_image = _frames18(path, data["images"], image_root)
    for k, ann in enumerate(data["annotations"]):
        inst = _instance18(ann, f"{path}: annotations[{k}]", table, by_image)
        by_image[ann["image_id"]].instances.append(inst)
    return list(by_image.values())


def _len(value: Any) -> str:
    return str(len(value)) if isinstance(value, list) else type(value).__name__


def read_posetrack_frames(path: str | os.PathLike, image_root: str | os.PathLike | None = None) -> list[Frame]:
    """Frames of one PoseTrack 2017/2018 per-video JSON file, or of every ``*.json`` of a folder (sorted by name).

    Frames keep the file's image order; see the module docstring for the conventions. Raises
    :class:`FormatError` (one line: file, record, reason) on malformed input, ``FileNotFoundError`` when ``path``
    does not exist.
    """
    path = Path(path)
    root = Path(image_root) if image_root is not None else None
    if path.is_dir():
        files = sorted(p for p in path.glob("*.json") if p.is_file())
    elif path.is_file():
        files = [path]
    else:
        raise FileNotFoundError(f"{path}: no such file or folder")
    frames: list[Frame] = []
    for file in files:
        data = read_json(file)
        if isinstance(data, dict) and "annolist" in data:
            frames.extend(_read17(file, data, root))
        else:
            frames.extend(_read18(file, data, root))
    return frames


# ---------------------------------------------------------------------------------------------------------- writers


def _n(x: float) -> int | float:
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"non-finite number {x}")
    return int(x) if x.is_integer() and abs(x) < 1e15 else x


def _rect_polygon(box: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = box
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]])


def _check(frames_by_video: Mapping[str, Sequence[Frame]]) -> dict[str, list[Frame]]:
    out: dict[str, list[Frame]] = {}
    for video, frames in frames_by_video.items():
        if not video or "/" in video or "\\" in video:
            raise ValueError(f"video name {video!r} cannot be a file name")
        ordered = sorted(frames, key=lambda f: f.index)
        for frame in ordered:
            if frame.video != video:
                raise ValueError(f"frame {frame.frame_id} listed under video {video!r}")
            if frame.index < 0:
                raise ValueError(f"frame {frame.frame_id}: negative frame index")
            for j, inst in enumerate(frame.instances):
                if inst.keypoints is not None and inst.keypoints.shape != (K, 3):
                    raise ValueError(
                        f"frame {frame.frame_id} instance {j}: expected {K} {POSETRACK_17.name} keypoints, "
                        f"got {inst.keypoints.shape[0]}"
                    )
        indices = [f.index for f in ordered]
        if len(set(indices)) != len(indices):
            raise ValueError(f"video {video!r}: duplicate frame index")
        out[video] = ordered
    return out


def _people(frame: Frame) -> list[Instance]:
    return [i for i in frame.instances if not i.ignore]


def _ignore_polygons(frame: Frame) -> list[np.ndarray]:
    boxes = [*frame.ignore_regions, *(i.box for i in frame.instances if i.ignore)]
    return [*frame.ignore_polygons, *(_rect_polygon(b) for b in boxes)]


def _kpts(inst: Instance) -> np.ndarray:
    return inst.keypoints if inst.keypoints is not None else np.zeros((K, 3))


def _labeled(frame: Frame) -> bool:
    return bool(frame.instances) or bool(_ignore_polygons(frame))


def _vid_id(video: str) -> str:
    m = _LEAD.match(video)
    return m.group(1) if m else video


@dataclass(frozen=True)
class _Layout:
    """What :func:`write_posetrack` writes besides the frames: image names, and keypoint scores or visibility."""

    image_dir: str
    image_ext: str
    predictions: bool

    def image_name(self, video: str, frame: Frame) -> str:
        return f"{self.image_dir}/{video}/{frame.index:06d}{self.image_ext}"


def _image18(frame: Frame, video: str, vid: str, image_id: int, nframes: int, layout: _Layout) -> dict[str, Any]:
    polys = _ignore_polygons(frame)
    return {
        "id": image_id,
        "file_name": layout.image_name(video, frame),
        "frame_id": image_id,
        "vid_id": vid,
        "nframes": nframes,
        "is_labeled": _labeled(frame),
        "width": int(frame.width),
        "height": int(frame.height),
        "ignore_regions_x": [[_n(v) for v in p[:, 0]] for p in polys],
        "ignore_regions_y": [[_n(v) for v in p[:, 1]] for p in polys],
    }


def _annotation18(inst: Instance, ann_id: int, image_id: int, predictions: bool) -> dict[str, Any]:
    kp = _kpts(inst).copy()
    scores: list[int | float] = []
    if predictions:
        scores = [_n(s) for s in kp[:, 2]]
        kp[:, 2] = ~(kp == 0).all(axis=1)
    x1, y1, x2, y2 = inst.box
    ann: dict[str, Any] = {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "track_id": int(inst.track_id),
        "bbox": [_n(x1), _n(y1), _n(x2 - x1), _n(y2 - y1)],
        "keypoints": [_n(v) for v in kp.reshape(-1)],
        "scores": scores,
        "iscrowd": 0,
        "num_keypoints": int((kp[:, 2] > 0).sum()),
    }
    if inst.head_box is not None:
        hx1, hy1, hx2, hy2 = inst.head_box
        ann["bbox_head"] = [_n(hx1), _n(hy1), _n(hx2 - hx1), _n(hy2 - hy1)]
    if predictions:
        ann["score"] = _n(inst.score)
    return ann


def _video18(video: str, frames: list[Frame], layout: _Layout) -> dict[str, Any]:
    """One video as a PoseTrack18 document (``images``, ``annotations``, ``categories``)."""
    vid = _vid_id(video)
    numeric = _DIGITS.fullmatch(vid) is not None and all(f.index < 10000 for f in frames)
    nframes = max([len(frames), *(f.index + 1 for f in frames)])
    images, annotations = [], []
    for rank, frame in enumerate(frames):
        image_id = int(f"1{vid}{frame.index:04d}") if numeric else rank + 1
        images.append(_image18(frame, video, vid, image_id, nframes, layout))
        for inst in _people(frame):
            annotations.append(_annotation18(inst, len(annotations) + 1, image_id, layout.predictions))
    return {"images": images, "annotations": annotations, "categories": [PT18_CATEGORY]}


def _rect17(inst: Instance, predictions: bool) -> dict[str, Any]:
    """One person as a PoseTrack17 ``annorect`` (points in poseval joint ids)."""
    kp = _kpts(inst)
    points = []
    for jid, slot in enumerate(PT17_JOINT_TO_SLOT):
        x, y, v = kp[slot]
        if predictions:
            if x == 0 and y == 0 and v == 0:
                continue
            points.append({"id": [jid], "x": [_n(x)], "y": [_n(y)], "score": [_n(v)]})
        elif v > 0:
            vis = 1 if v >= 2 else 0
            points.append({"id": [jid], "x": [_n(x)], "y": [_n(y)], "is_visible": [vis]})
    rect: dict[str, Any] = {"track_id": [int(inst.track_id)], "annopoints": [{"point": points}]}
    if inst.track_id < 0:
        del rect["track_id"]
    if inst.head_box is not None:
        for key, value in zip(("x1", "y1", "x2", "y2"), inst.head_box, strict=True):
            rect[key] = [_n(value)]
    if predictions:
        rect["score"] = [_n(inst.score)]
    return rect


def _video17(video: str, frames: list[Frame], layout: _Layout) -> dict[str, Any]:
    """One video as a PoseTrack17 ``annolist`` document."""
    annolist = []
    for frame in frames:
        rects = [_rect17(inst, layout.predictions) for inst in _people(frame)]
        polys = _ignore_polygons(frame)
        annolist.append(
            {
                "image": [{"name": layout.image_name(video, frame)}],
                "imgnum": [frame.index + 1],
                "is_labeled": [1 if _labeled(frame) else 0],
                "ignore_regions": [{"point": [{"x": [_n(x)], "y": [_n(y)]} for x, y in poly]} for poly in polys],
                "annorect": rects,
            }
        )
    return {"annolist": annolist}


_VIDEO_DOCS = {"2017": _video17, "2018": _video18}


def write_posetrack(
    frames_by_video: Mapping[str, Sequence[Frame]],
    out_dir: str | os.PathLike,
    fmt: str,
    *,
    image_dir: str = "images",
    image_ext: str = ".jpg",
    predictions: bool = False,
) -> list[Path]:
    """Write ``<out_dir>/<video>.json`` per video in native PoseTrack ``fmt`` layout ("2017": ``annolist``,
    "2018": COCO-style, as :func:`~crowdbench.datasets.formats.poseval.read_posetrack` reads them); return the
    paths (module docstring).

    Raises ``ValueError`` for an unknown ``fmt`` and for keypoints not in the ``POSETRACK_17`` schema (17 per
    instance).
    """
    if fmt not in _VIDEO_DOCS:
        raise ValueError(f"unknown PoseTrack format {fmt!r} (use '2017' or '2018')")
    videos = _check(frames_by_video)
    out_dir = Path(out_dir)
    layout = _Layout(image_dir, image_ext, predictions)
    return [
        atomic_write_text(out_dir / f"{video}.json", json.dumps(_VIDEO_DOCS[fmt](video, frames, layout)))
        for video, frames in videos.items()
    ]
