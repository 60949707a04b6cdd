"""HIE2020 / HiEve-style pose-tracking annotations on the crowdbench data model.

Layout of one split (``root``)::

    <root>/labels/<video>/<index:06d>.json   one annotation record per frame (0-based frame index)
    <root>/tracks/<video>.txt                 MOT-style track file (``frame,id,x,y,w,h,1,1,vis``, frame = index + 1)
    <root>/images/<video>/<index:06d>.jpg     images (optional; written by the synthetic generator as hard links)

Known from the challenge format page (metrics.md 4): one file per frame per video, an ``annotation`` record with
``folder``, ``filename``, ``size`` {width, height, depth} and a list of objects; each object has ``name`` ``"P-<id>"``
(the track id), ``action``, ``pose``, ``truncated``, ``difficult``, a ``bndbox`` {xmin, ymin, xmax, ymax} and one
``"x,y,flag"`` string per joint, 14 joints in the :data:`~crowdbench.datasets.keypoints.HIE_14` order. Flags are
**0 = visible, 1 = invisible (occluded), -1 = not annotated**, converted explicitly to COCO ``v`` by
:data:`HIE_TO_COCO_VIS` (-1 -> 0, 1 -> 1, 0 -> 2) and back by :data:`COCO_TO_HIE_VIS`.

ASSUMPTIONS (no real HIE file was available; these are NOT confirmed by any official sample):

- A1. Each per-frame file is JSON (``.json``), not the XML the format page names (``000000.xml``); the JSON object
  mirrors the described record: ``{"folder", "filename", "size": {"width", "height", "depth"}, "object": [...]}``.
  The reader also accepts the record wrapped as ``{"annotation": {...}}``.
- A2. Joint keys in an object are the :data:`HIE_14` keypoint names (``nose``, ``chest``, ``right_shoulder``, ...).
- A3. A joint string is ``"x,y,flag"`` with decimal ``x``, ``y`` and integer ``flag`` in {-1, 0, 1}; a not-annotated
  joint keeps whatever coordinates the file has (the writer writes them as stored, usually ``0,0``).
- A4. File names are the 0-based frame index, zero-padded to 6 digits (``000000.json`` = ``Frame.index`` 0).
- A5. ``bndbox`` values are pixel corners ``x1, y1, x2, y2`` (same convention as :class:`Instance.box`).
- A6. crowdbench extension, not part of HIE: an optional ``"ignore_regions": [[x1, y1, x2, y2], ...]`` key in a frame
  record carries :attr:`Frame.ignore_regions` (so synthetic data keeps its ignore regions).

Not represented: ``visible_box`` (HIE has none), ``action``/``pose``/``truncated``/``difficult`` (written as
``""``/``"Unspecified"``/0/0, ignored on reading).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crowdbench.datasets.formats.atomic import atomic_write_text
from crowdbench.datasets.formats.errors import FormatError
from crowdbench.datasets.formats.mot import mot_lines, read_mot
from crowdbench.datasets.keypoints import COCO_17, HIE_14, convert_keypoints, get_schema
from crowdbench.datasets.model import Frame, Instance

__all__ = [
    "COCO_TO_HIE_VIS",
    "HIE_JOINTS",
    "HIE_TO_COCO_VIS",
    "coco_to_hie_flags",
    "hie_to_coco_flags",
    "read_hie",
    "to_hie_frames",
    "write_hie",
]

HIE_JOINTS: tuple[str, ...] = HIE_14.keypoints
"""Joint keys of an object (assumption A2), in HIE order."""

HIE_TO_COCO_VIS: dict[int, int] = {-1: 0, 1: 1, 0: 2}
"""HIE flag -> COCO visibility: not annotated -> 0, invisible -> 1, visible -> 2."""

COCO_TO_HIE_VIS: dict[int, int] = {v: k for k, v in HIE_TO_COCO_VIS.items()}
"""COCO visibility -> HIE flag (inverse of :data:`HIE_TO_COCO_VIS`)."""

_NAME = re.compile(r"P-(\d+)")
_FILE = re.compile(r"(\d{6})\.json")


class _Bad(Exception):
    """Reason an object or record is malformed; the caller prefixes the file (and object index)."""


def hie_to_coco_flags(flags: np.ndarray | Sequence[int]) -> np.ndarray:
    """HIE flags (-1/0/1) -> COCO ``v`` (0/2/1); raises ``ValueError`` on any other value."""
    flags = np.asarray(flags)
    out = np.full(flags.shape, -1, dtype=np.int64)
    for h, c in HIE_TO_COCO_VIS.items():
        out[flags == h] = c
    if (out < 0).any():
        raise ValueError(f"HIE flags must be -1, 0 or 1, got {sorted(set(flags[out < 0].tolist()))}")
    return out


def coco_to_hie_flags(v: np.ndarray | Sequence[float]) -> np.ndarray:
    """COCO ``v`` (0/1/2) -> HIE flags (-1/1/0); raises ``ValueError`` on any other value."""
    v = np.asarray(v, dtype=np.float64)
    out = np.full(v.shape, -2, dtype=np.int64)
    for c, h in COCO_TO_HIE_VIS.items():
        out[v == c] = h
    if (out == -2).any():
        raise ValueError(f"COCO visibility must be 0, 1 or 2, got {sorted(set(v[out == -2].tolist()))}")
    return out


def to_hie_frames(frames: Iterable[Frame], src: str = COCO_17.name, *, derive: bool = False) -> list[Frame]:
    """Copies of ``frames`` with keypoints converted to HIE-14 (``convert_keypoints``; ``src`` schema name); the
    ``chest`` a COCO source lacks is unlabeled unless ``derive=True`` (shoulder midpoint)."""
    from dataclasses import replace

    schema = get_schema(src)
    out = []
    for f in frames:
        insts = [
            replace(
                i,
                keypoints=None
                if i.keypoints is None
                else convert_keypoints(i.keypoints, schema, HIE_14, derive=derive),
            )
            for i in f.instances
        ]
        out.append(replace(f, instances=insts))
    return out


# ------------------------------------------------------------------------------------------------------- writer


def _coord(x: float) -> str:
    x = float(x)
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)


def _num(x: float) -> int | float:
    x = float(x)
    return int(x) if x.is_integer() and abs(x) < 1e15 else x


def _object(inst: Instance, where: str) -> dict[str, Any]:
    if inst.track_id < 0:
        raise ValueError(f"{where}: HIE objects need a track id >= 0, got {inst.track_id}")
    x1, y1, x2, y2 = inst.box
    obj: dict[str, Any] = {
        "name": f"P-{inst.track_id}",
        "action": "",
        "pose": "Unspecified",
        "truncated": 0,
        "difficult": 0,
        "bndbox": {"xmin": _num(x1), "ymin": _num(y1), "xmax": _num(x2), "ymax": _num(y2)},
    }
    kpts = inst.keypoints if inst.keypoints is not None else np.zeros((HIE_14.num_keypoints, 3))
    if kpts.shape != (HIE_14.num_keypoints, 3):
        raise ValueError(f"{where}: expected {HIE_14.num_keypoints} HIE-14 keypoints, got {kpts.shape}")
    flags = coco_to_hie_flags(kpts[:, 2])
    for name, (x, y, _v), flag in zip(HIE_JOINTS, kpts, flags, strict=True):
        obj[name] = f"{_coord(x)},{_coord(y)},{int(flag)}"
    return obj


def write_hie(frames_by_video: Mapping[str, Sequence[Frame]], out_dir: str | Path, image_ext: str = ".jpg") -> Path:
    """Write ``labels/<video>/<index:06d>.json`` and ``tracks/<video>.txt`` under ``out_dir``; return ``out_dir``.

    Keypoints must already be HIE-14 with COCO visibility (see :func:`to_hie_frames`); ignored instances
    are not representable and raise ``ValueError``.
    """
    out_dir = Path(out_dir)
    for video, frames in frames_by_video.items():
        frames = sorted(frames, key=lambda f: f.index)
        for frame in frames:
            if frame.video != video:
                raise ValueError(f"frame {frame.frame_id} listed under video {video!r}")
            objects = []
            for j, inst in enumerate(frame.instances):
                if inst.ignore:
                    raise ValueError(f"frame {frame.frame_id}: instance {j} is ignored; HIE has no ignore flag")
                objects.append(_object(inst, f"frame {frame.frame_id} instance {j}"))
            record: dict[str, Any] = {
                "folder": video,
                "filename": f"{frame.index:06d}{image_ext}",
                "size": {"width": frame.width, "height": frame.height, "depth": 3},
                "object": objects,
            }
            if len(frame.ignore_regions):
                record["ignore_regions"] = [[_num(v) for v in r] for r in frame.ignore_regions]
            atomic_write_text(out_dir / "labels" / video / f"{frame.index:06d}.json", json.dumps(record, indent=1))
        lines = mot_lines(_shift_ids(frames), gt=True)
        atomic_write_text(out_dir / "tracks" / f"{video}.txt", "".join(f"{line}\n" for line in lines))
    return out_dir


def _shift_ids(frames: Sequence[Frame]) -> list[Frame]:
    """MOT ids must be >= 1: track files carry ``track_id + 1`` when a video uses id 0 (``P-0``)."""
    from dataclasses import replace

    if all(i.track_id >= 1 for f in frames for i in f.instances):
        return list(frames)
    return [replace(f, instances=[replace(i, track_id=i.track_id + 1) for i in f.instances]) for f in frames]


# ------------------------------------------------------------------------------------------------------- reader


MAX_COORD = 1e6  # a coordinate or image side beyond this is a unit or parsing error (as coco_checks.MAX_SIZE)
INT64_MAX = 2**63 - 1


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Bad(f"{what} must be a finite number, got {json.dumps(value)[:40]}")
    try:
        ok = math.isfinite(value) and abs(value) <= MAX_COORD
    except OverflowError:  # an integer beyond the float range
        ok = False
    if not ok:
        raise _Bad(f"{what} must be a finite number within ±{MAX_COORD:g}, got {json.dumps(value)[:40]}")
    return float(value)


def _size(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COORD:
        raise _Bad(f"{what} must be an integer in [0, {MAX_COORD:g}], got {json.dumps(value)[:40]}")
    return value


def _joint(value: Any, name: str) -> tuple[float, float, float]:
    if not isinstance(value, str):
        raise _Bad(f"joint {name!r} must be an 'x,y,flag' string, got {json.dumps(value)[:40]}")
    parts = value.split(",")
    if len(parts) != 3:
        raise _Bad(f"joint {name!r} must be 'x,y,flag', got {value!r}")
    try:
        x, y = float(parts[0]), float(parts[1])
        flag = int(parts[2])
    except ValueError:
        raise _Bad(f"joint {name!r} must be 'x,y,flag' with numbers, got {value!r}") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise _Bad(f"joint {name!r} has a non-finite coordinate: {value!r}")
    if abs(x) > MAX_COORD or abs(y) > MAX_COORD:
        raise _Bad(f"joint {name!r} lies beyond ±{MAX_COORD:g} pixels: {value!r}")
    if flag not in HIE_TO_COCO_VIS:
        raise _Bad(f"joint {name!r} flag must be -1, 0 or 1, got {flag}")
    return x, y, float(HIE_TO_COCO_VIS[flag])


def _parse_object(obj: Any) -> Instance:
    if not isinstance(obj, dict):
        raise _Bad(f"must be a JSON object, got {type(obj).__name__}")
    name = obj.get("name")
    m = _NAME.fullmatch(name) if isinstance(name, str) else None
    if m is None:
        raise _Bad(f"'name' must be 'P-<id>', got {json.dumps(name)[:40]}")
    if int(m.group(1)) > INT64_MAX:
        raise _Bad(f"'name' {name[:40]!r}: the track id is not an integer within int64")
    bb = obj.get("bndbox")
    if not isinstance(bb, dict):
        raise _Bad("has no 'bndbox' object")
    box = [_number(bb.get(k), f"bndbox {k!r}") for k in ("xmin", "ymin", "xmax", "ymax")]
    if box[2] < box[0] or box[3] < box[1]:
        raise _Bad(f"bndbox has xmax < xmin or ymax < ymin: {box}")
    missing = [j for j in HIE_JOINTS if j not in obj]
    if missing:
        raise _Bad(f"missing joint(s) {', '.join(missing)}")
    kpts = np.array([_joint(obj[j], j) for j in HIE_JOINTS])
    return Instance(box=np.array(box), keypoints=kpts, track_id=int(m.group(1)))


def _parse_record(data: Any, video: str, index: int, image_root: Path | None, skip: list[int], path: Path) -> Frame:
    if isinstance(data, dict) and set(data) == {"annotation"}:
        data = data["annotation"]
    if not isinstance(data, dict):
        raise _Bad(f"expected a JSON object, got {type(data).__name__}")
    size = data.get("size")
    if not isinstance(size, dict):
        raise _Bad("record has no 'size' object")
    width, height = _size(size.get("width"), "size 'width'"), _size(size.get("height"), "size 'height'")
    objects = data.get("object", [])
    if not isinstance(objects, list):
        raise _Bad(f"'object' must be a list, got {type(objects).__name__}")
    ignore = data.get("ignore_regions", [])
    if not isinstance(ignore, list) or any(not isinstance(r, list) or len(r) != 4 for r in ignore):
        raise _Bad("'ignore_regions' must be a list of [x1, y1, x2, y2]")
    regions = [[_number(v, "ignore region") for v in r] for r in ignore]
    instances: list[Instance] = []
    seen: dict[int, int] = {}
    for j, obj in enumerate(objects):
        try:
            inst = _parse_object(obj)
            if inst.track_id in seen:
                raise _Bad(f"track P-{inst.track_id} already used by object {seen[inst.track_id]}")
        except _Bad as exc:
            if skip:
                skip[0] += 1
                continue
            raise FormatError(f"{path}: object {j}: {exc}") from None
        seen[inst.track_id] = j
        instances.append(inst)
    filename = data.get("filename")
    fname = filename if isinstance(filename, str) and filename else f"{index:06d}.jpg"
    image = image_root / video / fname if image_root is not None else None
    return Frame(video, index, width, height, image=image, instances=instances, ignore_regions=regions)


def _check_tracks(path: Path, frames: list[Frame]) -> None:
    table = read_mot(path)
    labels = {(f.index + 1, i.track_id) for f in frames for i in f.instances}
    shifted = {(fr, t + 1) for fr, t in labels}
    tracks = set(zip(table.frames.tolist(), table.ids.tolist(), strict=True))
    if tracks not in (labels, shifted):
        diff = sorted(tracks ^ (shifted if any(t == 0 for _, t in labels) else labels))[:3]
        raise FormatError(f"{path}: (frame, id) pairs differ from the labels, e.g. {diff}")


def read_hie(
    root: str | Path,
    *,
    image_root: str | Path | None = None,
    skip_bad: bool = False,
    stats: dict[str, int] | None = None,
) -> list[Frame]:
    """Read an HIE-style tree (see the module docstring): frames ordered by video name, then frame index.

    Keypoints are HIE-14 with COCO visibility. ``image`` is ``image_root/<video>/<filename>`` (default
    ``root/images`` when it exists). Malformed input raises a one-line :class:`FormatError` (file, object index,
    reason); with ``skip_bad=True`` malformed objects and files are skipped and counted in ``stats``
    (``skipped_objects``, ``skipped_files``), and track files are not cross-checked.
    """
    root = Path(root)
    labels = root / "labels"
    if not labels.is_dir():
        raise FormatError(f"{root}: no 'labels' folder (not an HIE tree)")
    if image_root is None and (root / "images").is_dir():
        image_root = root / "images"
    img_root = Path(image_root) if image_root is not None else None
    counts = {"skipped_objects": 0, "skipped_files": 0}
    frames: list[Frame] = []
    for vdir in sorted(p for p in labels.iterdir() if p.is_dir()):
        video_frames: list[Frame] = []
        for path in sorted(vdir.iterdir(), key=lambda p: p.name):
            if path.name.startswith("."):
                continue
            m = _FILE.fullmatch(path.name)
            try:
                if m is None:
                    raise _Bad("file name must be <index:06d>.json")
                try:
                    data = json.loads(path.read_text(encoding="utf-8"))
                except json.JSONDecodeError as exc:
                    raise _Bad(f"invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
                except RecursionError:
                    raise _Bad("JSON nested deeper than the parser allows") from None
                except UnicodeDecodeError as exc:
                    raise _Bad(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
                skip = [0] if skip_bad else []
                frame = _parse_record(data, vdir.name, int(m.group(1)), img_root, skip, path)
                if skip:
                    counts["skipped_objects"] += skip[0]
            except _Bad as exc:
                if skip_bad:
                    counts["skipped_files"] += 1
                    continue
                raise FormatError(f"{path}: {exc}") from None
            video_frames.append(frame)
        tracks = root / "tracks" / f"{vdir.name}.txt"
        if not skip_bad and tracks.is_file():
            _check_tracks(tracks, video_frames)
        frames.extend(video_frames)
    if stats is not None:
        stats.update(counts)
    return frames
