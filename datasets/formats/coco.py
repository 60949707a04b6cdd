"""COCO person-keypoints JSON reader and writer (with PoseTrack18-style video extras).

Output follows ``person_keypoints_<split>.json``: ``images``, ``annotations`` (``bbox`` xywh clipped to the
image, ``area``, ``num_keypoints``, flat ``keypoints`` with unlabeled points written as ``0, 0, 0``,
``iscrowd``), ``categories`` (one ``person`` category with the schema's names and 1-based skeleton).
Extras: images carry ``frame_id`` (= ``id``), ``vid_id`` (video name), ``frame_index``, ``nframes`` and
``is_labeled``; annotations carry ``track_id``, ``fbox`` (full box, unclipped, xywh) and ``vbox`` (visible
box, xywh). Ignore regions become ``iscrowd: 1`` annotations without keypoints. Ids start at 1 (an id of 0
can never be a true positive in pycocotools, metrics.md 1.6).

Reading (:func:`read_coco_keypoints`, also OCHuman and CrowdPose) returns :class:`CocoFrames`, a ``list`` of
:class:`Frame` that also carries the COCO image ids, per-image extras (CrowdPose ``crowdIndex``), the schema and
the count of skipped records; :func:`to_coco_keypoints` reuses those ids and extras, so a read file is written
back with the same image ids. Reading conventions:

- image with ``vid_id`` -> ``video = str(vid_id)``, ``index = frame_index`` (else its rank inside the video);
  otherwise a still image: ``video = str(id)``, ``index = 0``. ``image`` is the path ``image_root/file_name``
  as a ``str`` (just ``file_name`` without ``image_root``); pixels are never read while parsing.
- box = ``fbox`` when present (our writer's unclipped box), else ``bbox``; ``xywh -> xyxy``; ``vbox`` ->
  ``visible_box``; ``track_id`` -> ``Instance.track_id`` (-1 without).
- ``iscrowd: 1`` -> a ``Frame.ignore_regions`` row, except that one carrying ``fbox`` (written by us for an
  ``Instance.ignore``) is read back as an ignored instance.
- annotations of another category than the person one (the one with ``keypoints``) are left out.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crowdbench.datasets.formats.atomic import atomic_write_text
from crowdbench.datasets.formats.coco_checks import RecordError, check_coco_gt, check_coco_top
from crowdbench.datasets.formats.errors import FormatError, read_json
from crowdbench.datasets.keypoints import COCO_17, CROWDPOSE_14
from crowdbench.datasets.model import Frame, Instance, KeypointSchema

__all__ = [
    "AREA_FACTOR",
    "CocoFrames",
    "read_coco_keypoints",
    "read_coco_results",
    "to_coco_keypoints",
    "write_coco_keypoints",
]

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
    image_ids: Sequence[int] | None = None,
) -> dict[str, Any]:
    """The COCO keypoints dict of ``frames`` (annotation ids 1..).

    Image ids are ``image_ids`` if given, else those of a :class:`CocoFrames` (whose per-image extras such as
    ``crowdIndex`` are written too), else 1.. in the given order.
    """
    root = Path(image_root) if image_root is not None else None
    ids, extras = _image_ids(frames, image_ids)
    lengths: dict[str, int] = {}
    for f in frames:
        lengths[f.video] = max(lengths.get(f.video, 0), f.index + 1)
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    k = schema.num_keypoints
    for image_id, frame, extra in zip(ids, frames, extras, strict=True):
        images.append(
            {
                **extra,
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
            anns.append(_instance_annotation(inst, frame, len(anns) + 1, image_id, k, area_factor))
        for region in frame.ignore_regions:
            anns.append(_region_annotation(region, frame, len(anns) + 1, image_id, k))
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


def _image_ids(frames: Sequence[Frame], image_ids: Sequence[int] | None) -> tuple[list[int], Sequence[dict[str, Any]]]:
    """Image ids and per-image extras of :func:`to_coco_keypoints`."""
    extras: Sequence[dict[str, Any]] = [{}] * len(frames)
    if image_ids is None and isinstance(frames, CocoFrames):
        image_ids, extras = frames.image_ids, frames.image_extras
    ids = list(range(1, len(frames) + 1)) if image_ids is None else [int(i) for i in image_ids]
    if len(ids) != len(frames) or len(set(ids)) != len(ids):
        raise ValueError(f"need {len(frames)} distinct image ids, got {len(ids)} ({len(set(ids))} distinct)")
    return ids, extras


def _instance_annotation(
    inst: Instance, frame: Frame, ann_id: int, image_id: int, k: int, area_factor: float
) -> dict[str, Any]:
    """One person: ``bbox`` clipped to the image, ``area`` from it, the full box as ``fbox``."""
    box = _clip(inst.box, frame)
    w, h = box[2] - box[0], box[3] - box[1]
    flat, n = _keypoints(inst, k)
    ann: dict[str, Any] = {
        "id": ann_id,
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
    return ann


def _region_annotation(region: np.ndarray, frame: Frame, ann_id: int, image_id: int, k: int) -> dict[str, Any]:
    """One ignore region: an ``iscrowd: 1`` annotation without keypoints."""
    box = _clip(region, frame)
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "bbox": _xywh(box),
        "area": _r((box[2] - box[0]) * (box[3] - box[1])),
        "iscrowd": 1,
        "num_keypoints": 0,
        "keypoints": [0] * (3 * k),
        "track_id": -1,
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


# ----------------------------------------------------------------------------------------------------------- reading

_STANDARD_IMAGE_KEYS = frozenset(
    {"id", "file_name", "width", "height", "license", "coco_url", "flickr_url", "date_captured"}
    | {"frame_id", "vid_id", "frame_index", "nframes", "is_labeled"}
)
_SCHEMAS_BY_K = {COCO_17.num_keypoints: COCO_17, CROWDPOSE_14.num_keypoints: CROWDPOSE_14}


class _Bad(Exception):
    """Reason a record is malformed; the caller prefixes file and record."""


class CocoFrames(list[Frame]):
    """Frames read from a COCO file (a plain ``list`` of :class:`Frame`) with what the data model has no place for.

    ``image_ids[i]`` / ``image_extras[i]`` belong to ``self[i]``: the COCO image id and the image's non-standard
    keys (e.g. CrowdPose ``{"crowdIndex": 0.33}``). ``skipped`` counts annotations dropped by ``skip_bad=True``.
    """

    def __init__(
        self,
        frames: Iterable[Frame] = (),
        *,
        schema: KeypointSchema | None = None,
        image_ids: Sequence[int] = (),
        image_extras: Sequence[dict[str, Any]] = (),
        skipped: int = 0,
    ) -> None:
        super().__init__(frames)
        self.schema = schema
        self.image_ids = list(image_ids)
        self.image_extras = list(image_extras) or [{} for _ in self]
        self.skipped = skipped
        if not len(self.image_ids) == len(self.image_extras) == len(self):
            raise ValueError("CocoFrames needs one image id and one extras dict per frame")

    def crowd_index(self) -> np.ndarray:
        """CrowdPose ``crowdIndex`` per frame (NaN where the image has none)."""
        return np.array([float(e.get("crowdIndex", math.nan)) for e in self.image_extras])

    def index_of(self) -> dict[int, int]:
        """``{COCO image id: position in the list}``."""
        return {image_id: i for i, image_id in enumerate(self.image_ids)}


def _short(value: Any) -> str:
    return json.dumps(value)[:40]


def _int(value: Any, what: str) -> int:
    if type(value) is not int:
        raise _Bad(f"{what} must be an integer, got {_short(value)}")
    return value


def _size(value: Any, what: str) -> int:
    integral = type(value) is int or (type(value) is float and math.isfinite(value) and value.is_integer())
    if not integral or value < 0:
        raise _Bad(f"{what} must be a non-negative integer, got {_short(value)}")
    return int(value)


def _numbers(value: Any, n: int, what: str) -> None:
    """Slow exact check of a list of ``n`` finite JSON numbers (used to name the culprit after a fast check failed)."""
    if not isinstance(value, list) or len(value) != n:
        got = f"{len(value)} values" if isinstance(value, list) else _short(value)
        raise _Bad(f"{what} must be a list of {n} numbers, got {got}")
    for v in value:
        try:
            ok = type(v) in (int, float) and math.isfinite(v)
        except OverflowError:  # an integer beyond float range
            ok = False
        if not ok:
            raise _Bad(f"{what} must hold finite numbers, got {_short(v)}")


def _record(value: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """``value`` as a JSON object that has every one of ``keys``."""
    if not isinstance(value, dict):
        raise _Bad(f"must be a JSON object, got {type(value).__name__}")
    for key in keys:
        if key not in value:
            raise _Bad(f"has no {key!r}")
    return value


def _new_id(record: dict[str, Any], first: dict[int, int], kind: str) -> int:
    """The integer ``id`` of a record of ``kind`` (``image``, ``annotation``), not seen before."""
    rid = _int(record["id"], "'id'")
    if rid in first:
        raise _Bad(f"duplicate {kind} id (first at {kind}s[{first[rid]}])")
    return rid


def _categories(data: dict[str, Any], path: Path) -> tuple[int, int]:
    """The person category id and its keypoint count (0 without keypoints)."""
    cats = data["categories"]
    known: set[int] = set()
    person: tuple[int, int] | None = None
    for i, cat in enumerate(cats):
        try:
            if not isinstance(cat, dict):
                raise _Bad("must be a JSON object")
            cid = _int(cat.get("id"), "'id'")
            if cid in known:
                raise _Bad("duplicate id")
            known.add(cid)
            kps = cat.get("keypoints")
            if kps is not None and not isinstance(kps, list):
                raise _Bad("'keypoints' must be a list of names")
            if person is None and (kps or cat.get("name") == "person"):
                person = (cid, len(kps or ()))
        except _Bad as exc:
            raise FormatError(
                f"{path}: categories[{i}] (id {_short(cat.get('id')) if isinstance(cat, dict) else '?'}): {exc}"
            ) from None
    if person is None:
        raise FormatError(f"{path}: no person category (one named 'person' or with 'keypoints') in 'categories'")
    return person[0], person[1]


def _images(images: list[Any], path: Path, root: Path | None) -> tuple[list[Frame], list[int], list[dict[str, Any]]]:
    frames: list[Frame] = []
    ids: list[int] = []
    extras: list[dict[str, Any]] = []
    first: dict[int, int] = {}
    seen_frames: dict[tuple[str, int], int] = {}
    rank: dict[str, int] = {}
    for i, img in enumerate(images):
        iid = img.get("id") if isinstance(img, dict) else None
        try:
            _record(img, ("id", "file_name", "width", "height"))
            iid = _new_id(img, first, "image")
            name = img["file_name"]
            if not isinstance(name, str) or not name:
                raise _Bad(f"'file_name' must be a non-empty string, got {_short(name)}")
            width, height = _size(img["width"], "'width'"), _size(img["height"], "'height'")
            if "vid_id" in img:
                video = str(img["vid_id"])
                index = _size(img["frame_index"], "'frame_index'") if "frame_index" in img else rank.get(video, 0)
                rank[video] = rank.get(video, 0) + 1
            else:
                video, index = str(iid), 0
            if (video, index) in seen_frames:
                raise _Bad(f"same video {video!r} and frame index {index} as images[{seen_frames[(video, index)]}]")
        except _Bad as exc:
            raise FormatError(f"{path}: images[{i}] (id {_short(iid)}): {exc}") from None
        first[iid] = i
        seen_frames[(video, index)] = i
        image = os.path.join(root, name) if root is not None else name  # str: much cheaper than Path objects
        frames.append(Frame(video, index, width, height, image=image))
        ids.append(iid)
        extras.append({k: v for k, v in img.items() if k not in _STANDARD_IMAGE_KEYS})
    return frames, ids, extras


@dataclass
class _PersonRows:
    """The person annotations to convert, as parallel columns (``rows``: positions in the annotation list)."""

    rows: list[int] = field(default_factory=list)
    kps: list[Any] = field(default_factory=list)
    boxes: list[Any] = field(default_factory=list)
    where: list[int] = field(default_factory=list)  # image position
    vboxes: list[Any] = field(default_factory=list)
    tracks: list[int] = field(default_factory=list)
    regions: list[bool] = field(default_factory=list)


def _schema_of(path: Path, schema: KeypointSchema | None, k: int) -> KeypointSchema | None:
    """``schema``, else the one of the person category's ``k`` keypoints; a mismatch raises."""
    if schema is None and k:
        schema = _SCHEMAS_BY_K.get(k)
        if schema is None:
            raise FormatError(f"{path}: person category has {k} keypoints; pass schema= (known: 17, 14)")
    elif schema is not None and k and schema.num_keypoints != k:
        raise FormatError(
            f"{path}: person category has {k} keypoints, schema {schema.name!r} has {schema.num_keypoints}"
        )
    return schema


def _valid_annotations(data: dict[str, Any], src: str, k: int, skip_bad: bool) -> list[int]:
    """Positions of the annotations :func:`check_coco_gt` accepts (the checks every entry point shares).

    Strict, the first refused record raises. ``skip_bad`` drops each annotation it refuses and checks the rest
    again (one pass per bad annotation); refused images or categories still raise."""
    keep = list(range(len(data["annotations"])))
    while True:
        anns = data["annotations"]
        kept = data if len(keep) == len(anns) else {**data, "annotations": [anns[i] for i in keep]}
        try:
            check_coco_gt(
                kept, src, kind="keypoints" if k else "bbox", num_keypoints=k or None, need_area=False,
                image_keys=("file_name", "width", "height"), evaluation=False,
            )  # fmt: skip
            return keep
        except RecordError as exc:
            if not skip_bad or exc.what != "annotations":
                raise
            del keep[exc.index]


def _person_rows(anns: list[Any], keep: list[int], person: int, k: int, image_index: dict[int, int]) -> _PersonRows:
    """The validated person annotations of ``keep`` (other categories are left out); ``fbox`` is the box when
    present, and an ``iscrowd`` annotation without ``fbox`` an ignore region."""
    out = _PersonRows()
    for i in keep:
        ann = anns[i]
        if ann["category_id"] != person:
            continue
        out.rows.append(i)
        out.kps.append(ann.get("keypoints", [0] * (3 * k)) if k else [])
        out.boxes.append(ann.get("fbox", ann["bbox"]))
        out.where.append(image_index[ann["image_id"]])
        out.vboxes.append(ann.get("vbox"))
        out.tracks.append(ann.get("track_id", -1))
        out.regions.append(ann.get("iscrowd", 0) == 1 and "fbox" not in ann)
    return out


def _add_instances(frames: list[Frame], anns: list[Any], rows: _PersonRows, k: int) -> None:
    """Add each row to its frame: an instance, or an ignore region."""
    xyxy = np.array(rows.boxes, dtype=np.float64).reshape(-1, 4)
    xyxy[:, 2:] += xyxy[:, :2]
    kps3 = np.array(rows.kps, dtype=np.float64).reshape(len(rows.rows), k, 3)
    region_rows: dict[int, list[np.ndarray]] = {}
    for j, pos in enumerate(rows.where):
        if rows.regions[j]:
            region_rows.setdefault(pos, []).append(xyxy[j])
            continue
        vbox = rows.vboxes[j]
        if vbox is not None:
            v = np.array(vbox, dtype=np.float64)
            vbox = np.array([v[0], v[1], v[0] + v[2], v[1] + v[3]])
        inst = Instance(
            box=xyxy[j],
            visible_box=vbox,
            keypoints=kps3[j] if k else None,
            track_id=rows.tracks[j],
            ignore=bool(anns[rows.rows[j]].get("iscrowd", 0)),
        )
        frames[pos].instances.append(inst)
    for pos, regs in region_rows.items():
        frames[pos].ignore_regions = np.stack(regs)


def read_coco_keypoints(
    path: str | Path,
    *,
    image_root: str | Path | None = None,
    schema: KeypointSchema | None = None,
    skip_bad: bool = False,
) -> CocoFrames:
    """Read a COCO person-keypoints file (COCO, OCHuman, CrowdPose, our own exports) into :class:`CocoFrames`.

    One frame per image in file order, instances in annotation order; keypoints are ``K x 3`` with ``K`` from
    the person category (schema inferred: 17 -> COCO-17, 14 -> CrowdPose-14, unless ``schema`` is given).
    Malformed input raises :class:`FormatError` (``"<file>: annotations[17] (id 123): <reason>"``, the checks of
    :func:`~crowdbench.datasets.formats.coco_checks.check_coco_gt`); with ``skip_bad=True`` malformed
    *annotations* are dropped instead and counted in ``CocoFrames.skipped`` (file-level, image and category
    errors still raise).
    """
    path = Path(path)
    root = Path(image_root) if image_root is not None else None
    data = read_json(path)
    check_coco_top(data, str(path))
    person, k = _categories(data, path)
    keep = [] if skip_bad else _valid_annotations(data, str(path), k, skip_bad=False)
    schema = _schema_of(path, schema, k)
    frames, image_ids, extras = _images(data["images"], path, root)
    if skip_bad:  # after the reader's own image checks, which name the image
        keep = _valid_annotations(data, str(path), k, skip_bad=True)
    image_index = {iid: j for j, iid in enumerate(image_ids)}
    anns = data["annotations"]
    _add_instances(frames, anns, _person_rows(anns, keep, person, k, image_index), k)
    skipped = len(anns) - len(keep)
    return CocoFrames(frames, schema=schema, image_ids=image_ids, image_extras=extras, skipped=skipped)


def read_coco_results(
    path: str | Path,
    gt_frames_or_image_ids: Sequence[Frame] | Sequence[int],
    *,
    schema: KeypointSchema | None = None,
) -> CocoFrames:
    """Read a COCO results list (``image_id``, ``score`` and ``keypoints`` and/or ``bbox`` xywh) into prediction frames.

    One frame per ground-truth image, in the ground truth's order and with its video, index, size and image
    (a :class:`CocoFrames` from :func:`read_coco_keypoints`), or ``video = str(id)``, size 0 for plain image ids.
    Instances: ``box`` from ``bbox`` (else the extent of the keypoints), ``keypoints`` ``K x 3`` (third value =
    keypoint score), ``score``. Other keys (``category_id``, ``center``, ``scale``) are not looked at.
    """
    path = Path(path)
    gt = gt_frames_or_image_ids
    if isinstance(gt, CocoFrames):
        ids = list(gt.image_ids)
        frames = [Frame(f.video, f.index, f.width, f.height, image=f.image) for f in gt]
        schema = schema or gt.schema
    elif all(isinstance(x, Frame) for x in gt) and len(gt) > 0:
        raise TypeError("read_coco_results needs the CocoFrames of read_coco_keypoints (to know the image ids)")
    else:
        ids = [int(x) for x in gt]  # type: ignore[arg-type]
        frames = [Frame(str(i), 0, 0, 0) for i in ids]
    index = {iid: j for j, iid in enumerate(ids)}
    items = read_json(path)
    if not isinstance(items, list):
        raise FormatError(f"{path}: expected a JSON list of results, got {type(items).__name__}")
    k = schema.num_keypoints if schema is not None else None
    for i, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise _Bad(f"must be a JSON object, got {type(item).__name__}")
            image_id = _int(item.get("image_id"), "'image_id'")
            if image_id not in index:
                raise _Bad(f"image_id {image_id} is not in the ground truth")
            if "score" not in item:
                raise _Bad("has no 'score'")
            _numbers([item["score"]], 1, "'score'")
            kps = None
            if "keypoints" in item:
                raw = item["keypoints"]
                if k is None:
                    if not isinstance(raw, list) or len(raw) % 3 or len(raw) // 3 not in _SCHEMAS_BY_K:
                        raise _Bad(f"cannot infer the schema from 'keypoints' of {_short(raw)[:20]}; pass schema=")
                    schema = _SCHEMAS_BY_K[len(raw) // 3]
                    k = schema.num_keypoints
                _numbers(raw, 3 * k, "'keypoints'")
                kps = np.array(raw, dtype=np.float64).reshape(k, 3)
            if "bbox" in item:
                _numbers(item["bbox"], 4, "'bbox'")
                x, y, w, h = item["bbox"]
                if w < 0 or h < 0:
                    raise _Bad(f"'bbox' has a negative size {[w, h]}")
                box = np.array([x, y, x + w, y + h], dtype=np.float64)
            elif kps is not None:
                box = np.concatenate([kps[:, :2].min(axis=0), kps[:, :2].max(axis=0)])
            else:
                raise _Bad("has neither 'bbox' nor 'keypoints'")
        except _Bad as exc:
            raise FormatError(
                f"{path}: [{i}] (image_id {_short(item.get('image_id')) if isinstance(item, dict) else '?'}): {exc}"
            ) from None
        frames[index[image_id]].instances.append(Instance(box=box, keypoints=kps, score=float(item["score"])))
    extras = list(gt.image_extras) if isinstance(gt, CocoFrames) else None
    return CocoFrames(frames, schema=schema, image_ids=ids, image_extras=extras or ())
