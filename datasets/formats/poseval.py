"""PoseTrack 2017 / 2018 files as poseval reads them, and the checks every entry point shares (issue 20).

``crowdbench eval posetrack`` (:mod:`crowdbench.bench.metrics.posetrack`), ``crowdbench data inspect`` and the
table pipeline (:func:`crowdbench.datasets.formats.posetrack.read_posetrack_frames`) read through
:func:`read_posetrack17` / :func:`read_posetrack18`; each failure is one :class:`FormatError` naming the file, the
record and the field. Checks (docs/validation.md): ids are integers within int64 (joint ids 0..14 in PoseTrack 17
files), numbers finite and within +-1e6 pixels, keypoint lists of the category's length, ignore regions polygons of
>= 3 points with as many x as y, annotations referring to listed images, no image id twice, no track id twice in a
frame, no joint id twice in a person; ground truth (``role="gt"``) also needs a head box (PCKh's scale) with
``x2 >= x1`` and ``y2 >= y1`` and, in PoseTrack 18, visibilities in {0, 1, 2}.

``lenient=True`` keeps poseval's behaviour where it computes a defined number: a head box with swapped corners
(poseval's head size is the norm of the diagonal, sign-free), joint ids beyond 14 (kept, never evaluated),
visibility values outside {0, 1, 2} (poseval only asks ``x == y == 0 and v == 0`` for an absent joint) and ids
written as integral floats (``3.0``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crowdbench.datasets.formats.errors import FormatError, read_json
from crowdbench.datasets.keypoints import POSETRACK_17

__all__ = [
    "JOINT_NAMES",
    "N_JOINTS",
    "PT18_KEYPOINT_NAMES",
    "PoseTrackFrame",
    "PoseTrackPerson",
    "PoseTrackPoint",
    "PoseTrackVideo",
    "read_posetrack",
    "read_posetrack17",
    "read_posetrack18",
    "read_posetrack_dir",
]

JOINT_NAMES: tuple[str, ...] = (
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "head_bottom",
    "nose",
    "head_top",
)
N_JOINTS = len(JOINT_NAMES)
#: PoseTrack18 keypoint order (``convert.POSETRACK18_LM_NAMES_COCO_ORDER``); the ears are unused.
PT18_KEYPOINT_NAMES: tuple[str, ...] = POSETRACK_17.keypoints


# ------------------------------------------------------------------------------------------------------ data model


@dataclass(frozen=True)
class PoseTrackPoint:
    """One annotated / predicted joint: poseval joint id (0..14; others are kept but never evaluated)."""

    id: int
    x: float
    y: float
    score: float | None = None


@dataclass
class PoseTrackPerson:
    """One ``annorect``. ``head_box`` is (x1, y1, x2, y2); ``has_annopoints`` is poseval's ``rectHasPoints``."""

    track_id: int | None
    points: list[PoseTrackPoint]
    head_box: tuple[float, float, float, float] | None = None
    has_annopoints: bool = True
    ref: str = ""  # "file: record", for error messages


@dataclass
class PoseTrackFrame:
    """One frame (``annolist`` entry); ``ignore_regions`` are polygons as ``K x 2`` arrays."""

    name: str
    persons: list[PoseTrackPerson]
    ignore_regions: list[np.ndarray] = field(default_factory=list)


@dataclass
class PoseTrackVideo:
    """One per-video file; ``name`` is the file name (GT and predictions are paired by it)."""

    name: str
    frames: list[PoseTrackFrame]


# --------------------------------------------------------------------------------------------------------- readers


MAX_COORD = 1e6  # a coordinate beyond this is a unit or parsing error (as coco_checks.MAX_SIZE)
INT64 = (-(2**63), 2**63 - 1)
MAX_FRAME = 10**7
_HINT = " (--lenient accepts it as poseval does)"


def _num(value: Any, where: str, *, bound: bool = True) -> float:
    """A finite JSON number (a coordinate: within +-MAX_COORD; ``bound=False`` for scores)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FormatError(f"{where}: expected a finite number, got {value!r}")
    try:
        ok = math.isfinite(value) and (not bound or abs(value) <= MAX_COORD)
    except OverflowError:  # an integer beyond the float range
        ok = False
    if not ok:
        raise FormatError(
            f"{where}: expected a finite number{f' within ±{MAX_COORD:g}' if bound else ''}, got {value!r}"
        )
    return float(value)


def _int(value: Any, where: str, lenient: bool = True) -> int:
    """An integer within int64; an integral float (``3.0``) only with ``lenient`` (the readers' default, the
    evaluator's ``--lenient``)."""
    if type(value) is int:
        v = value
    elif lenient and isinstance(value, float) and value.is_integer():
        v = int(value)
    else:
        hint = _HINT if isinstance(value, float) and value.is_integer() else ""
        raise FormatError(f"{where}: expected an integer, got {value!r}{hint}")
    if not INT64[0] <= v <= INT64[1]:
        raise FormatError(f"{where}: {v} is not an integer within int64")
    return v


def _unique_tracks(persons: list[PoseTrackPerson], where: str) -> None:
    """No track id twice in one frame (poseval's accumulators would merge the two people)."""
    seen: dict[int, str] = {}
    for p in persons:
        if p.track_id is None:
            continue
        if p.track_id in seen:
            raise FormatError(f"{p.ref}: track_id {p.track_id} already used in this frame by {seen[p.track_id]}")
        seen[p.track_id] = p.ref.rsplit(": ", 1)[-1]


def _head(x1: float, y1: float, x2: float, y2: float, where: str, lenient: bool) -> tuple[float, ...]:
    if (x2 < x1 or y2 < y1) and not lenient:
        raise FormatError(f"{where}: head box has x2 < x1 or y2 < y1: {[x1, y1, x2, y2]}{_HINT}")
    return (x1, y1, x2, y2)


def _one(rec: Mapping, key: str, where: str) -> Any:
    """PT17 wraps scalars in one-element lists (``{"x": [3.0]}``)."""
    if key not in rec:
        raise FormatError(f"{where}: missing '{key}'")
    value = rec[key]
    if not isinstance(value, list) or len(value) != 1:
        raise FormatError(f"{where}: '{key}' must be a one-element list, got {value!r}")
    return value[0]


def _polygons(xs: Any, ys: Any, where: str) -> list[np.ndarray]:
    if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys):
        raise FormatError(f"{where}: ignore_regions_x / ignore_regions_y must be lists of equal length")
    out = []
    for k, (px, py) in enumerate(zip(xs, ys, strict=True)):
        if not isinstance(px, list) or not isinstance(py, list) or len(px) != len(py):
            raise FormatError(f"{where}: ignore region {k}: x and y must be lists of equal length")
        rw = f"{where}: ignore region {k}"
        if len(px) < 3:
            raise FormatError(f"{rw}: a polygon needs 3 or more points, got {len(px)}")
        pts = [(_num(a, rw), _num(b, rw)) for a, b in zip(px, py, strict=True)]
        out.append(np.array(pts, dtype=np.float64).reshape(-1, 2))
    return out


def _load(path: str | os.PathLike, data: Any) -> tuple[Path, Any]:
    """The path, and ``data`` (the parsed JSON when the caller has it) or the file read."""
    path = Path(path)
    return path, read_json(path) if data is None else data


def _joint_table18(path: Path, data: Any) -> list[int | None]:
    """The poseval joint of each keypoint slot of the one ``person`` category (None: a joint poseval ignores)."""
    if not isinstance(data, dict):
        raise FormatError(f"{path}: expected a JSON object, got {type(data).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise FormatError(f"{path}: missing list '{key}'")
    cats = data["categories"]
    if len(cats) != 1 or not isinstance(cats[0], dict) or cats[0].get("name") != "person":
        raise FormatError(f"{path}: categories: expected exactly one category named 'person'")
    names = cats[0].get("keypoints")
    if not isinstance(names, list) or len(names) not in (15, 17):
        raise FormatError(f"{path}: categories[0]: 'keypoints' must list 15 or 17 names")
    table = [JOINT_NAMES.index(n) if n in JOINT_NAMES else None for n in names]
    missing = [n for j, n in enumerate(JOINT_NAMES) if j not in table]
    if missing:
        raise FormatError(f"{path}: categories[0]: keypoint {missing[0]!r} not found")
    return table


def _frames18(path: Path, images: list, lenient: bool) -> dict[Any, PoseTrackFrame]:
    """One empty frame per image (with its ignore polygons), by image id, in the order of ``images``."""
    by_image: dict[Any, PoseTrackFrame] = {}
    for k, img in enumerate(images):
        where = f"{path}: images[{k}]"
        if not isinstance(img, dict) or "id" not in img or not isinstance(img.get("file_name"), str):
            raise FormatError(f"{where}: needs 'id' and a string 'file_name'")
        _int(img["id"], f"{where}: id", lenient)
        if img["id"] in by_image:
            raise FormatError(f"{where}: duplicate image id {img['id']!r}")
        regions: list[np.ndarray] = []
        if "ignore_regions_x" in img and "ignore_regions_y" in img:
            regions = _polygons(img["ignore_regions_x"], img["ignore_regions_y"], where)
        by_image[img["id"]] = PoseTrackFrame(name=img["file_name"], persons=[], ignore_regions=regions)
    return by_image


def _keypoints18(ann: dict, where: str, n_kp: int, role: str | None, lenient: bool) -> tuple[list, list]:
    """The flat ``keypoints`` (3 x ``n_kp`` numbers) and ``scores`` (empty or ``n_kp``) of an annotation."""
    kps = ann["keypoints"]
    if not isinstance(kps, list) or len(kps) != 3 * n_kp:
        raise FormatError(f"{where}: 'keypoints' must have {3 * n_kp} numbers")
    kps = [_num(v, f"{where}: keypoints") for v in kps]
    if role == "gt" and not lenient:
        bad = [v for v in kps[2::3] if v not in (0, 1, 2)]
        if bad:
            raise FormatError(f"{where}: keypoints: visibility {bad[0]!r} is not 0, 1 or 2{_HINT}")
    scores = ann.get("scores") or []
    if not isinstance(scores, list) or len(scores) not in (0, n_kp):
        raise FormatError(f"{where}: 'scores' must be empty or have {n_kp} numbers")
    return kps, [_num(v, f"{where}: scores", bound=False) for v in scores]


def _person18(
    ann: Any, where: str, table: list[int | None], image_ids: Mapping, role: str | None, lenient: bool
) -> PoseTrackPerson:
    """One annotation as poseval's ``Person.to_old`` sees it (``x == y == 0`` with visibility 0: absent)."""
    if not isinstance(ann, dict):
        raise FormatError(f"{where}: expected an object")
    for key in ("image_id", "keypoints", "track_id"):
        if key not in ann:
            raise FormatError(f"{where}: missing '{key}'")
    if ann["image_id"] not in image_ids:
        raise FormatError(f"{where}: image_id {ann['image_id']!r} not in images")
    kps, scores = _keypoints18(ann, where, len(table), role, lenient)
    head = None
    if "bbox_head" in ann:
        hb = ann["bbox_head"]
        if not isinstance(hb, list) or len(hb) != 4:
            raise FormatError(f"{where}: 'bbox_head' must be [x, y, w, h]")
        x, y, w, h = (_num(v, f"{where}: bbox_head") for v in hb)
        head = _head(x, y, x + w, y + h, f"{where}: bbox_head", lenient)
    points = []
    for slot, jid in enumerate(table):
        if jid is None:
            continue
        x, y, vis = kps[3 * slot : 3 * slot + 3]
        if x == 0 and y == 0 and vis == 0:
            continue
        points.append(PoseTrackPoint(jid, x, y, scores[slot] if scores else None))
    track = _int(ann["track_id"], f"{where}: track_id", lenient)
    if role == "gt" and head is None and points:
        raise FormatError(f"{where}: missing 'bbox_head' (PCKh's scale) in ground truth")
    return PoseTrackPerson(track, points, head, True, where)


def read_posetrack18(
    path: str | os.PathLike, data: Any = None, *, role: str | None = None, lenient: bool = False
) -> PoseTrackVideo:
    """Read one PoseTrack18 per-video file (``images``, ``annotations``, ``categories``) as poseval sees it.

    Mirrors ``convert.Video.from_new`` / ``Person.to_old``: keypoints are mapped by the category's keypoint names
    (15 or 17 of them, all 15 poseval names present); a keypoint with ``x == y == 0`` and visibility 0 is absent;
    ``scores`` (empty = none) give the joint scores; ``bbox_head`` [x, y, w, h] is the head box. Frames keep the
    order of ``images``, persons the order of ``annotations``. Raises :class:`FormatError` naming file and record.
    """
    path, data = _load(path, data)
    table = _joint_table18(path, data)
    by_image = _frames18(path, data["images"], lenient)
    for k, ann in enumerate(data["annotations"]):
        person = _person18(ann, f"{path}: annotations[{k}]", table, by_image, role, lenient)
        by_image[ann["image_id"]].persons.append(person)
    frames = list(by_image.values())
    for frame in frames:
        _unique_tracks(frame.persons, str(path))
    return PoseTrackVideo(name=path.name, frames=frames)


def _entry17(entry: Any, where: str, lenient: bool) -> str:
    """Check an ``annolist`` entry's ``image``, ``annorect`` and ``imgnum``; the image name."""
    if not isinstance(entry, dict):
        raise FormatError(f"{where}: expected an object")
    img = entry.get("image")
    if not isinstance(img, list) or len(img) != 1 or not isinstance(img[0], dict) or "name" not in img[0]:
        raise FormatError(f"{where}: 'image' must be [{{'name': ...}}]")
    if not isinstance(entry.get("annorect"), list):
        raise FormatError(f"{where}: missing list 'annorect'")
    if "imgnum" in entry:
        num = _int(_one(entry, "imgnum", where), f"{where}: imgnum", lenient)
        if not 1 <= num <= MAX_FRAME:
            raise FormatError(f"{where}: imgnum {num} is outside [1, {MAX_FRAME:,}]")
    return str(img[0]["name"])


def _regions17(entry: dict, where: str) -> list[np.ndarray]:
    """``ignore_regions: [{point: [{x: [..], y: [..]}, ...]}]`` as polygons."""
    regions = []
    for k, reg in enumerate(entry.get("ignore_regions") or []):
        pts = reg.get("point") if isinstance(reg, dict) else None
        if not isinstance(pts, list):
            raise FormatError(f"{where}: ignore_regions[{k}]: missing list 'point'")
        if len(pts) < 3:
            raise FormatError(f"{where}: ignore_regions[{k}]: a polygon needs 3 or more points, got {len(pts)}")
        xy = []
        for q, pt in enumerate(pts):
            qw = f"{where}: ignore_regions[{k}].point[{q}]"
            if not isinstance(pt, dict) or "x" not in pt or "y" not in pt:
                raise FormatError(f"{qw}: expected an object with 'x' and 'y'")
            xy.append((_num(_one(pt, "x", qw), qw), _num(_one(pt, "y", qw), qw)))
        regions.append(np.array(xy, dtype=np.float64).reshape(-1, 2))
    return regions


def _points17(point_list: Any, rw: str, lenient: bool) -> list[PoseTrackPoint]:
    """``annopoints[0].point``: joint ids in ``0..N_JOINTS-1``, each at most once."""
    if not isinstance(point_list, list):
        raise FormatError(f"{rw}: annopoints[0]['point'] must be a list")
    points: list[PoseTrackPoint] = []
    for p, pt in enumerate(point_list):
        pw = f"{rw}.point[{p}]"
        if not isinstance(pt, dict):
            raise FormatError(f"{pw}: expected an object")
        score = _num(_one(pt, "score", pw), f"{pw}: score", bound=False) if "score" in pt else None
        jid = _int(_one(pt, "id", pw), f"{pw}: id", lenient)
        if not 0 <= jid < N_JOINTS and not (lenient and jid >= 0):
            raise FormatError(f"{pw}: joint id {jid} is not in 0..{N_JOINTS - 1}" + (_HINT if jid >= 0 else ""))
        if any(q.id == jid for q in points):
            raise FormatError(f"{pw}: joint id {jid} listed twice")
        if "is_visible" in pt and not lenient:
            raw = _one(pt, "is_visible", pw)
            if isinstance(raw, bool) or raw not in (0, 1, "0", "1"):
                raise FormatError(f"{pw}: is_visible must be 0 or 1, got {raw!r}{_HINT}")
        points.append(
            PoseTrackPoint(jid, _num(_one(pt, "x", pw), f"{pw}: x"), _num(_one(pt, "y", pw), f"{pw}: y"), score)
        )
    return points


def _person17(rect: Any, rw: str, role: str | None, lenient: bool) -> PoseTrackPerson:
    """One ``annorect``: optional ``track_id``, head box ``x1 y1 x2 y2`` and ``annopoints``."""
    if not isinstance(rect, dict):
        raise FormatError(f"{rw}: expected an object")
    try:
        track = _int(_one(rect, "track_id", rw), f"{rw}: track_id", lenient) if "track_id" in rect else None
        head = None
        if all(k in rect for k in ("x1", "y1", "x2", "y2")):
            corners = (_num(_one(rect, k, rw), f"{rw}: {k}") for k in ("x1", "y1", "x2", "y2"))
            head = _head(*corners, rw, lenient)
        ap = rect.get("annopoints")
        has = isinstance(ap, list) and len(ap) > 0 and isinstance(ap[0], dict) and "point" in ap[0]
        points = _points17(ap[0]["point"], rw, lenient) if has else []
    except KeyError as exc:
        raise FormatError(f"{rw}: missing {exc}") from None
    if role == "gt" and has and head is None:
        raise FormatError(f"{rw}: missing head box x1, y1, x2, y2 (PCKh's scale) in ground truth")
    return PoseTrackPerson(track, points, head, has, rw)  # type: ignore[arg-type]


def read_posetrack17(
    path: str | os.PathLike, data: Any = None, *, role: str | None = None, lenient: bool = False
) -> PoseTrackVideo:
    """Read one PoseTrack17 ``annolist`` file (GT or predictions) as ``eval_helpers.load_data_dir`` uses it.

    Each entry needs ``image: [{name}]`` and ``annorect``; a rect has optional ``track_id: [int]``, head box
    ``x1 y1 x2 y2`` (one-element lists) and ``annopoints: [{point: [{id, x, y[, score, is_visible]}]}]``.
    ``ignore_regions: [{point: [{x, y}]}]``. Raises :class:`FormatError` naming file and record.
    """
    path, data = _load(path, data)
    if not isinstance(data, dict) or not isinstance(data.get("annolist"), list):
        raise FormatError(f"{path}: expected an object with an 'annolist' list")
    frames = []
    for f, entry in enumerate(data["annolist"]):
        where = f"{path}: annolist[{f}]"
        name = _entry17(entry, where, lenient)
        regions = _regions17(entry, where)
        persons = [_person17(rect, f"{where}.annorect[{r}]", role, lenient) for r, rect in enumerate(entry["annorect"])]
        _unique_tracks(persons, str(path))
        frames.append(PoseTrackFrame(name=name, persons=persons, ignore_regions=regions))
    return PoseTrackVideo(name=path.name, frames=frames)


def read_posetrack(
    path: str | os.PathLike, fmt: str | None = None, *, role: str | None = None, lenient: bool = False
) -> PoseTrackVideo:
    """Read a per-video file; ``fmt`` "2017" / "2018" or ``None`` to detect it as poseval does ("annolist" key)."""
    path = Path(path)
    data = read_json(path)
    if fmt is None:
        fmt = "2017" if isinstance(data, dict) and "annolist" in data else "2018"
    if fmt == "2017":
        return read_posetrack17(path, data, role=role, lenient=lenient)
    if fmt == "2018":
        return read_posetrack18(path, data, role=role, lenient=lenient)
    raise ValueError(f"unknown PoseTrack format {fmt!r} (use '2017' or '2018')")


def read_posetrack_dir(
    directory: str | os.PathLike, fmt: str | None = None, *, role: str | None = None, lenient: bool = False
) -> dict[str, PoseTrackVideo]:
    """All ``*.json`` files of a folder (poseval's ``--groundTruth`` / ``--predictions``), keyed by file name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such directory")
    files = sorted(p for p in directory.glob("*.json") if p.is_file())
    return {p.name: read_posetrack(p, fmt, role=role, lenient=lenient) for p in files}
