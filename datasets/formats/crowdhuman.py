"""CrowdHuman ODGT annotations and CrowdDet-style detection files on the crowdbench data model.

ODGT (Shao et al. 2018, "CrowdHuman: A Benchmark for Detecting Human in a Crowd", arXiv:1805.00123) is one JSON object
per line: ``{"ID": ..., "gtboxes": [{"tag", "fbox", "vbox", "hbox", "extra", "head_attr"}, ...]}`` with boxes as
``[x, y, w, h]``. Our boxes are ``x1, y1, x2, y2`` (``x2 = x + w``, the same float operation CrowdDet uses).

Record id convention (:func:`record_id`): a still image is a :class:`Frame` with ``video = ID`` and ``index = 0``, so
its evaluation id is ``frame.video``. A frame of a real video (``index > 0``) is written with ``ID = frame.frame_id``
(``"<video>/<index:06d>"``), and the reader splits an ID of exactly that shape back into ``(video, index)``; CrowdHuman
IDs (``"283554,35288000868e92d4"``) never contain ``/``. Reader and writer round-trip every field the data model
holds: ``fbox`` -> ``Instance.box``, ``vbox`` -> ``Instance.visible_box``, ``hbox`` -> ``Instance.head_box`` (``None``
when the gtbox has no ``hbox``); ``head_attr``, ``extra.occ`` and ``extra.box_id`` have no place in it and are
dropped on reading.

Ignore rule (CrowdDet ``load_gt_boxes``, metrics.md 3.1): a gtbox is ignored if ``tag != "person"`` or
``extra.ignore != 0``. Ignored boxes become ``Frame.ignore_regions`` (their ``fbox``), in file order.

Validation (issue 20; the one layer that ``eval crowdhuman``, ``data inspect``, ``data check`` and the pipeline's
readers share). The readers refuse, with a one-line :class:`FormatError` such as ``gt.odgt:17: gtboxes[3]: 'fbox'
width -5 is negative`` (``file: record i`` / ``file: image_id X`` in a COCO results list, ``file: ID X`` in
``id_hw``):

* types: ``ID`` / ``image_id`` a non-empty string or an integer within int64; ``gtboxes`` / ``dtboxes`` lists of
  objects; ``tag`` a string; boxes lists of JSON numbers (``true`` is not a number); ``score`` a number;
  ``width`` / ``height`` integers; ``extra`` / ``head_attr`` objects;
* finiteness: no NaN / Infinity (or integer beyond float range) in a box or a score;
* ranges: box widths and heights >= 0; widths, heights, ``|x|``, ``|y|`` <= :data:`MAX_COORD`; image width and
  height in ``0..MAX_SIDE`` (0 = unknown); ``extra.ignore`` and ``head_attr.ignore`` 0 or 1;
* shape: ``fbox`` / ``vbox`` / ``hbox`` / ``box`` / ``bbox`` exactly 4 numbers ``[x, y, w, h]``; ``id_hw`` values
  ``[height, width]``;
* references: no duplicate ``ID`` in a file; with ``gt_ids`` (``eval``), every detection ID is in the ground truth;
* required: ``ID``, ``gtboxes``, each gtbox's ``tag`` and ``fbox``; ``dtboxes``, each detection's ``box`` (``bbox``)
  and ``score``; ``width`` together with ``height``; a detections file with at least one record (CrowdDet crashes
  on an empty one; a detector that found nothing writes each ID with ``"dtboxes": []``). An ``.odgt`` without
  records is an empty dataset, not an error (``eval`` still refuses it: no detection ID can be in it).

``lenient=True`` keeps parity with CrowdDet's evaluation code where it accepts a value and computes a defined number:
it relaxes only (a) box widths / heights < 0 (``x2 = x + w < x1``: CrowdDet's intersection with any box is 0, so
such a GT box is never matched, a miss, such an ignore region absorbs nothing, such a detection is a false positive),
(b) the :data:`MAX_COORD` bound on boxes (values are used as given, clipped to the image when its size is known),
(c) ``extra.ignore`` / ``head_attr.ignore`` any finite number (non-zero = ignore, CrowdDet's ``!= 0``). Everything
else is refused with ``lenient`` too (CrowdDet crashes on it or it is no data: NaN, missing keys, an empty file...).
:func:`box_problem` / :func:`check_boxes` apply the box rules to in-memory arrays (the evaluator's check).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crowdbench.datasets.formats.atomic import atomic_write_text
from crowdbench.datasets.formats.errors import FormatError, read_json
from crowdbench.datasets.model import Frame, Instance

__all__ = [
    "MAX_COORD",
    "MAX_SIDE",
    "DetectionRecord",
    "box_problem",
    "check_boxes",
    "read_detections",
    "read_id_hw",
    "read_odgt",
    "record_id",
    "split_record_id",
    "write_detections",
    "write_odgt",
]

_FRAME_ID = re.compile(r"(.+)/(\d{6})")
_NUM = (int, float)
# COCO-17 keypoint rows used to derive a head box when writing: nose, left/right eye, left/right ear.
_COCO17_HEAD = (0, 1, 2, 3, 4)


class _Bad(Exception):
    """Reason a record is malformed; the caller prefixes file and line."""


MAX_COORD = 1e6
"""Bound on a box's ``|x|``, ``|y|``, width and height, in pixels (relaxed by ``lenient``)."""
MAX_SIDE = 100_000
"""Bound on an image's ``width`` and ``height``, in pixels."""
_INT64 = 2**63


def record_id(frame: Frame) -> str:
    """The CrowdHuman ``ID`` (evaluation id) of a frame: ``video`` for a still image (index 0), else ``frame_id``."""
    return frame.video if frame.index == 0 else frame.frame_id


def split_record_id(rid: str) -> tuple[str, int]:
    """Inverse of :func:`record_id`: ``"vid/000012"`` -> ``("vid", 12)``, any other id -> ``(id, 0)``."""
    m = _FRAME_ID.fullmatch(rid)
    return (m.group(1), int(m.group(2))) if m else (rid, 0)


@dataclass
class DetectionRecord:
    """Detections of one image: ``boxes`` ``M x 4`` (x1, y1, x2, y2), ``scores`` ``M``; size 0 = unknown."""

    id: str
    boxes: np.ndarray
    scores: np.ndarray
    width: int = 0
    height: int = 0

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        if len(self.boxes) != len(self.scores):
            raise ValueError(f"detections of {self.id!r}: {len(self.boxes)} boxes but {len(self.scores)} scores")

    @classmethod
    def from_frame(cls, frame: Frame) -> DetectionRecord:
        boxes = frame.boxes()
        scores = np.array([inst.score for inst in frame.instances], dtype=np.float64)
        return cls(record_id(frame), boxes, scores, frame.width, frame.height)

    def to_frame(self) -> Frame:
        video, index = split_record_id(self.id)
        inst = [Instance(box=b, score=float(s)) for b, s in zip(self.boxes, self.scores, strict=True)]
        return Frame(video=video, index=index, width=self.width, height=self.height, instances=inst)


# ----------------------------------------------------------------------------------------------------------- reading


def _read_lines(path: Path) -> list[str]:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().splitlines()
    except UnicodeDecodeError as exc:
        raise FormatError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _json_line(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Bad(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise _Bad("JSON nested deeper than the parser allows") from None


def _show(value: Any, n: int = 40) -> str:
    return json.dumps(value)[:n]


def _number(value: Any, what: str) -> float:
    try:
        ok = type(value) in _NUM and math.isfinite(value)
    except OverflowError:  # an integer beyond float range
        ok = False
    if not ok:
        raise _Bad(f"{what} must be a finite number, got {_show(value)}")
    return float(value)


def _box_ranges(x: float, y: float, w: float, h: float, what: str) -> None:
    """Widths and heights >= 0, everything within :data:`MAX_COORD` (the checks ``lenient`` relaxes)."""
    for name, v in (("width", w), ("height", h)):
        if v < 0:
            raise _Bad(f"{what} {name} {_show(v)} is negative")
        if v > MAX_COORD:
            raise _Bad(f"{what} {name} {_show(v)} exceeds {MAX_COORD:.0f} px")
    for name, v in (("x", x), ("y", y)):
        if abs(v) > MAX_COORD:
            raise _Bad(f"{what} {name} {_show(v)} is beyond +-{MAX_COORD:.0f} px")


def _in_bounds(x: float, y: float, w: float, h: float) -> bool:
    return 0 <= w <= MAX_COORD and 0 <= h <= MAX_COORD and abs(x) <= MAX_COORD and abs(y) <= MAX_COORD


def _xywh(value: Any, what: str, lenient: bool = False) -> list[float]:
    """``[x, y, w, h]`` -> ``[x1, y1, x2, y2]``: 4 finite JSON numbers (not ``true``), and unless ``lenient``
    widths and heights >= 0 and every value within :data:`MAX_COORD`."""
    if type(value) is list and len(value) == 4:  # fast path; JSON numbers are exactly int or float
        x, y, w, h = value
        if type(x) in _NUM and type(y) in _NUM and type(w) in _NUM and type(h) in _NUM:
            try:  # as CrowdDet: to float64 first, then x + w
                x, y, w, h = float(x), float(y), float(w), float(h)
            except OverflowError:  # an integer beyond float range: the slow path names it
                pass
            else:
                x2, y2 = x + w, y + h
                if math.isfinite(x2) and math.isfinite(y2) and (lenient or _in_bounds(x, y, w, h)):
                    return [x, y, x2, y2]
    if not isinstance(value, list) or len(value) != 4:
        raise _Bad(f"{what} must be a list of 4 numbers [x, y, w, h], got {_show(value, 60)}")
    x, y, w, h = (_number(v, what) for v in value)
    if not lenient:
        _box_ranges(x, y, w, h, what)
    if not (math.isfinite(x + w) and math.isfinite(y + h)):
        raise _Bad(f"{what} x + w or y + h overflows to infinity")
    return [x, y, x + w, y + h]


def _size(value: Any, what: str) -> int:
    integral = type(value) is int or (type(value) is float and math.isfinite(value) and value.is_integer())
    if not integral or value < 0:
        raise _Bad(f"{what} must be a non-negative integer, got {_show(value)}")
    if value > MAX_SIDE:
        raise _Bad(f"{what} {_show(value)} exceeds {MAX_SIDE} px")
    return int(value)


def _flag(container: dict[str, Any], key: str, what: str, lenient: bool) -> float:
    """An ignore flag: 0 or 1 (``lenient``: any finite number, non-zero meaning ignore, as CrowdDet's ``!= 0``)."""
    value = container.get(key, 0)
    if type(value) in _NUM:
        try:
            if value in (0, 1) or (lenient and math.isfinite(value)):
                return value
        except OverflowError:  # an integer beyond float range: CrowdDet's != 0 holds, but it is no flag
            pass
    raise _Bad(f"{what} must be 0 or 1, got {_show(value)}")


def _rid(record: Any, key: str = "ID") -> str:
    if not isinstance(record, dict):
        raise _Bad(f"expected a JSON object, got {type(record).__name__}")
    if key not in record:
        raise _Bad(f"record has no {key!r}")
    rid = record[key]
    if isinstance(rid, bool) or not isinstance(rid, str | int) or rid == "":
        raise _Bad(f"{key!r} must be a non-empty string or an integer, got {_show(rid)}")
    if isinstance(rid, int) and not -_INT64 <= rid < _INT64:
        raise _Bad(f"{key!r} {rid} is outside the int64 range")
    return str(rid)


def read_id_hw(path: str | Path) -> dict[str, tuple[int, int]]:
    """mmdet's CrowdHuman size file ``{ID: [height, width]}`` -> ``{ID: (height, width)}`` (non-negative integers
    up to :data:`MAX_SIDE`; 0 = unknown)."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise FormatError(f"{path}: expected a JSON object {{ID: [height, width]}}, got {type(data).__name__}")
    out: dict[str, tuple[int, int]] = {}
    for key, hw in data.items():
        try:
            if not isinstance(hw, list) or len(hw) != 2:
                raise _Bad(f"must be [height, width], got {_show(hw)}")
            out[key] = (_size(hw[0], "height"), _size(hw[1], "width"))
        except _Bad as exc:
            raise FormatError(f"{path}: ID {key!r}: {exc}") from None
    return out


def _gt_record(
    record: Any, id_hw: Mapping[str, tuple[int, int]] | None, image_root: Path | None, lenient: bool
) -> Frame:
    rid = _rid(record)
    if "gtboxes" not in record:
        raise _Bad(f"record {rid!r} has no 'gtboxes'")
    gtboxes = record["gtboxes"]
    if not isinstance(gtboxes, list):
        raise _Bad(f"'gtboxes' must be a list, got {type(gtboxes).__name__}")
    if "width" in record or "height" in record:
        for key in ("width", "height"):
            if key not in record:
                raise _Bad(f"record {rid!r} has {'width' if key == 'height' else 'height'!r} but no {key!r}")
        width = _size(record["width"], "'width'")
        height = _size(record["height"], "'height'")
    elif id_hw is not None and rid in id_hw:
        height, width = id_hw[rid]
    else:
        width = height = 0
    instances: list[Instance] = []
    ignore: list[list[float]] = []
    for j, gt in enumerate(gtboxes):
        where = f"gtboxes[{j}]"
        if type(gt) is not dict:
            raise _Bad(f"{where} must be a JSON object, got {type(gt).__name__}")
        if "fbox" not in gt:
            raise _Bad(f"{where} has no 'fbox'")
        if "tag" not in gt:
            raise _Bad(f"{where} has no 'tag'")
        tag = gt["tag"]
        if type(tag) is not str:
            raise _Bad(f"{where}: 'tag' must be a string, got {_show(tag)}")
        fbox = _xywh(gt["fbox"], f"{where}: 'fbox'", lenient)
        vbox = _xywh(gt["vbox"], f"{where}: 'vbox'", lenient) if "vbox" in gt else None
        hbox = _xywh(gt["hbox"], f"{where}: 'hbox'", lenient) if "hbox" in gt else None
        extra = gt.get("extra", {})
        if type(extra) is not dict:
            raise _Bad(f"{where}: 'extra' must be a JSON object, got {_show(extra)}")
        ignored = _flag(extra, "ignore", f"{where}: 'extra.ignore'", lenient) != 0
        if "head_attr" in gt:
            head = gt["head_attr"]
            if type(head) is not dict:
                raise _Bad(f"{where}: 'head_attr' must be a JSON object, got {_show(head)}")
            _flag(head, "ignore", f"{where}: 'head_attr.ignore'", lenient)
        if tag != "person" or ignored:
            ignore.append(fbox)
            continue
        instances.append(Instance(box=fbox, visible_box=vbox, head_box=hbox))
    video, index = split_record_id(rid)
    image = image_root / "Images" / f"{rid}.jpg" if image_root is not None else None
    return Frame(video, index, width, height, image=image, instances=instances, ignore_regions=ignore)


def read_odgt(
    path: str | Path,
    image_root: str | Path | None = None,
    id_hw: Mapping[str, Any] | None = None,
    *,
    lenient: bool = False,
) -> list[Frame]:
    """Read a CrowdHuman ``.odgt`` file: one :class:`Frame` per non-blank line, in file order.

    ``width``/``height`` come from the record's own ``width``/``height`` keys, else ``id_hw`` (mmdet's
    ``{ID: [h, w]}``), else 0 (unknown). ``image`` is ``image_root/Images/<ID>.jpg`` when ``image_root`` is given.
    Raises :class:`FormatError` (``file:line: gtboxes[j]: 'field' reason``) on the first malformed line: see
    the module docstring for what is checked and what ``lenient`` relaxes.
    """
    path = Path(path)
    root = Path(image_root) if image_root is not None else None
    hw = {str(k): (int(v[0]), int(v[1])) for k, v in id_hw.items()} if id_hw is not None else None
    frames: list[Frame] = []
    first_line: dict[str, int] = {}
    for lineno, text in enumerate(_read_lines(path), start=1):
        if not text.strip():
            continue
        try:
            frame = _gt_record(_json_line(text), hw, root, lenient)
            rid = record_id(frame)
            if rid in first_line:
                raise _Bad(f"duplicate ID {rid!r} (first on line {first_line[rid]})")
        except _Bad as exc:
            raise FormatError(f"{path}:{lineno}: {exc}") from None
        first_line[rid] = lineno
        frames.append(frame)
    return frames


def _det_boxes(dts: Any, box_key: str, where: str, lenient: bool) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(dts, list):
        raise _Bad(f"{where} must be a list, got {type(dts).__name__}")
    try:  # fast path, vectorised; on any problem the slow path below names the culprit
        xywh = np.array([d[box_key] for d in dts], dtype=np.float64).reshape(len(dts), 4)
        scores = np.array([d["score"] for d in dts], dtype=np.float64).reshape(len(dts))
        ok = bool(np.isfinite(xywh).all() and np.isfinite(scores).all())
        if ok and not lenient:
            ok = bool((xywh[:, 2:] >= 0).all() and (np.abs(xywh) <= MAX_COORD).all())
        # numpy would also accept "1" or true; JSON numbers parse to exactly int or float
        ok = ok and all(type(v) in _NUM for d in dts for v in (*d[box_key], d["score"]))
    except (KeyError, TypeError, ValueError, IndexError, OverflowError):
        ok = False
    if not ok:
        for i, d in enumerate(dts):
            if type(d) is not dict:
                raise _Bad(f"{where}[{i}] must be a JSON object, got {_show(d)}")
            for key in (box_key, "score"):
                if key not in d:
                    raise _Bad(f"{where}[{i}] has no {key!r}")
            _xywh(d[box_key], f"{where}[{i}]: {box_key!r}", lenient)
            _number(d["score"], f"{where}[{i}]: 'score'")
        raise _Bad(f"{where}: malformed boxes")  # pragma: no cover - the loop above always finds it
    boxes = xywh.copy()
    with np.errstate(over="ignore"):
        boxes[:, 2:4] += boxes[:, :2]
    if not np.isfinite(boxes).all():  # lenient only: x + w beyond float range
        i = int(np.flatnonzero(~np.isfinite(boxes).all(axis=1))[0])
        raise _Bad(f"{where}[{i}]: {box_key!r} x + w or y + h overflows to infinity")
    return boxes, scores


_EMPTY = "no detection records (a detector that found nothing writes each image's ID with an empty 'dtboxes')"


def _unknown(rid: str, gt_ids: Container[str] | None) -> None:
    if gt_ids is not None and rid not in gt_ids:
        raise _Bad(f"ID {rid!r} is not in the ground truth")


def _read_coco_results(path: Path, text: str, lenient: bool, gt_ids: Container[str] | None) -> list[DetectionRecord]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise FormatError(f"{path}: JSON nested deeper than the parser allows") from None
    if not items:
        raise FormatError(f"{path}: {_EMPTY}")
    groups: dict[str, list[dict[str, Any]]] = {}
    for i, item in enumerate(items):
        try:
            rid = _rid(item, "image_id")
            if "bbox" not in item:
                raise _Bad("has no 'bbox'")
            if "score" not in item:
                raise _Bad("has no 'score'")
        except _Bad as exc:
            raise FormatError(f"{path}: record {i}: {exc}") from None
        groups.setdefault(rid, []).append(item)
    out = []
    for rid, dts in groups.items():
        try:
            boxes, scores = _det_boxes(dts, "bbox", "detections", lenient)
        except _Bad as exc:
            raise FormatError(f"{path}: image_id {rid!r}: {exc}") from None
        out.append(DetectionRecord(rid, boxes, scores))
    if gt_ids is not None:
        for i, item in enumerate(items):
            try:
                _unknown(str(item["image_id"]), gt_ids)
            except _Bad as exc:
                raise FormatError(f"{path}: record {i}: {exc}") from None
    return out


def read_detections(
    path: str | Path, *, lenient: bool = False, gt_ids: Container[str] | None = None
) -> list[DetectionRecord]:
    """Read detections: CrowdDet JSON lines ``{"ID", "height", "width", "dtboxes": [{"box", "score", "tag"}]}``
    or a COCO results list ``[{"image_id", "bbox", "score"}, ...]`` (boxes ``[x, y, w, h]`` in both).

    Returns one :class:`DetectionRecord` per image (file order; COCO entries grouped by ``image_id``, ids as strings,
    size unknown = 0; ``category_id`` and ``tag`` are not looked at). ``gt_ids``: the ground truth's IDs; a record
    of another ID is an error. Raises :class:`FormatError` naming file, line / record and field (see
    the module docstring); a file without any record is an error too.
    """
    path = Path(path)
    lines = _read_lines(path)
    text = "\n".join(lines)
    if text.lstrip().startswith("["):
        return _read_coco_results(path, text, lenient, gt_ids)
    out: list[DetectionRecord] = []
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = _json_line(line)
            rid = _rid(record)
            if rid in first_line:
                raise _Bad(f"duplicate ID {rid!r} (first on line {first_line[rid]})")
            if "dtboxes" not in record:
                raise _Bad(f"record {rid!r} has no 'dtboxes'")
            boxes, scores = _det_boxes(record["dtboxes"], "box", "dtboxes", lenient)
            width = _size(record.get("width", 0), "'width'")
            height = _size(record.get("height", 0), "'height'")
            _unknown(rid, gt_ids)
        except _Bad as exc:
            raise FormatError(f"{path}:{lineno}: {exc}") from None
        first_line[rid] = lineno
        out.append(DetectionRecord(rid, boxes, scores, width, height))
    if not out:
        raise FormatError(f"{path}: {_EMPTY}")
    return out


# ---------------------------------------------------------------------------------------------- in-memory checks


def box_problem(boxes: np.ndarray, *, lenient: bool = False) -> tuple[int, str] | None:
    """First row of ``boxes`` (``N x 4``, x1 y1 x2 y2) that the readers would refuse, with the reason; else None.

    Vectorised: non-finite values always; unless ``lenient``, ``x2 < x1`` / ``y2 < y1`` (negative width / height)
    and widths, heights, ``|x1|``, ``|y1|`` beyond :data:`MAX_COORD`.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    bad = ~np.isfinite(b).all(axis=1)
    if not lenient:
        with np.errstate(invalid="ignore", over="ignore"):
            wh = b[:, 2:] - b[:, :2]
            bad |= (wh < 0).any(axis=1) | (wh > MAX_COORD).any(axis=1) | (np.abs(b[:, :2]) > MAX_COORD).any(axis=1)
    rows = np.flatnonzero(bad)
    if not len(rows):
        return None
    r = int(rows[0])
    x1, y1, x2, y2 = (float(v) for v in b[r])
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        return r, f"box [{x1}, {y1}, {x2}, {y2}] is not finite"
    try:
        _box_ranges(x1, y1, x2 - x1, y2 - y1, "box")
    except _Bad as exc:
        return r, str(exc).removeprefix("box ")
    return r, "box out of range"  # pragma: no cover


def check_boxes(
    what: str,
    ids: Sequence[str],
    counts: Sequence[int],
    boxes: np.ndarray,
    scores: np.ndarray | None = None,
    *,
    lenient: bool = False,
) -> None:
    """Raise :class:`FormatError` ``"<what>: image '<id>': box <k>: <reason>"`` for the first box (of images ``ids``
    with ``counts`` boxes each, concatenated in ``boxes``) that :func:`box_problem` refuses, or a non-finite score.
    The evaluator's check of in-memory data (frames not read from files)."""
    problem = box_problem(boxes, lenient=lenient)
    if scores is not None:
        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        bad = np.flatnonzero(~np.isfinite(s))
        if len(bad) and (problem is None or bad[0] < problem[0]):
            problem = int(bad[0]), f"score {float(s[bad[0]])} is not finite"
    if problem is None:
        return
    row, reason = problem
    ends = np.cumsum(np.asarray(counts, dtype=np.int64))
    i = int(np.searchsorted(ends, row, side="right"))
    k = row - (int(ends[i - 1]) if i else 0)
    raise FormatError(f"{what}: image {ids[i]!r}: box {k}: {reason}")


# ----------------------------------------------------------------------------------------------------------- writing


def _num(v: float) -> int | float:
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"non-finite box coordinate or score {v}")
    return int(v) if v.is_integer() and abs(v) < 2**53 else v


def _to_xywh(box: np.ndarray) -> list[int | float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return [_num(x1), _num(y1), _num(x2 - x1), _num(y2 - y1)]


def _head_box(inst: Instance) -> np.ndarray:
    """``inst.head_box`` when set, else an approximation: around the visible nose/eyes/ears of COCO-17 keypoints,
    else the top 1/6 of the box."""
    if inst.head_box is not None:
        return inst.head_box
    x1, y1, x2, y2 = inst.box
    kp = inst.keypoints
    if kp is not None and len(kp) == 17:
        pts = kp[list(_COCO17_HEAD)]
        pts = pts[pts[:, 2] > 0, :2]
        if len(pts) >= 2:
            lo, hi = pts.min(axis=0), pts.max(axis=0)
            cx, cy = (lo + hi) / 2
            side = max(float((hi - lo).max()) * 1.5, 1.0)
            return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])
    return np.array([x1, y1, x2, y1 + (y2 - y1) / 6])


def _atomic_write_lines(lines: Iterable[str], path: Path) -> None:
    atomic_write_text(path, "".join(f"{line}\n" for line in lines))


def _odgt_record(frame: Frame) -> dict[str, Any]:
    rec: dict[str, Any] = {"ID": record_id(frame)}
    if frame.width > 0 and frame.height > 0:  # unknown sizes are omitted: 0 would make CrowdDet clip to nothing
        rec["width"], rec["height"] = int(frame.width), int(frame.height)
    gtboxes = []
    for i, inst in enumerate(frame.instances):
        vbox = inst.visible_box if inst.visible_box is not None else inst.box
        extra: dict[str, int] = {"box_id": i}
        if inst.ignore:
            extra["ignore"] = 1
        gtboxes.append(
            {
                "tag": "person",
                "fbox": _to_xywh(inst.box),
                "vbox": _to_xywh(vbox),
                "hbox": _to_xywh(_head_box(inst)),
                "head_attr": {"ignore": 0, "occ": 0, "unsure": 0},
                "extra": extra,
            }
        )
    for region in frame.ignore_regions:
        box = _to_xywh(region)
        gtboxes.append({"tag": "mask", "fbox": box, "vbox": box, "hbox": box, "head_attr": {}, "extra": {"ignore": 1}})
    rec["gtboxes"] = gtboxes
    return rec


def write_odgt(frames: Iterable[Frame], path: str | Path) -> None:
    """Write frames as a CrowdHuman ``.odgt`` file (atomically: temp file + ``os.replace``).

    Per frame: ``ID`` = :func:`record_id`, ``width``/``height`` (omitted when unknown), each instance as
    ``tag: "person"`` with ``fbox`` (box), ``vbox`` (visible box, else box), ``hbox`` (see below) and
    ``extra.ignore: 1`` if ``Instance.ignore``; each ignore region as ``tag: "mask"``, ``extra.ignore: 1``.
    ``hbox`` is ``Instance.head_box`` when set (e.g. read from an ``.odgt``); otherwise it is approximate (CrowdDet's
    full-body evaluation never reads it): a square of 1.5x the extent of the visible nose/eyes/ears when the
    instance has COCO-17 keypoints with at least two of them, else the top 1/6 of the full box. Integral
    coordinates are written as JSON integers.
    """
    recs = []
    for frame in frames:
        try:
            recs.append(json.dumps(_odgt_record(frame)))
        except ValueError as exc:
            raise ValueError(f"frame {frame.frame_id}: {exc}") from None
    _atomic_write_lines(recs, Path(path))


def write_detections(frames_or_dets: Iterable[Frame | DetectionRecord], path: str | Path) -> None:
    """Write detections as CrowdDet JSON lines (atomically), one line per :class:`Frame` / :class:`DetectionRecord`.

    Line: ``{"ID", "height", "width", "dtboxes": [{"box": [x, y, w, h], "score", "tag": 1}]}``; a frame's
    instances are its detections (``Instance.score``). Values are written at full precision (CrowdDet's own
    ``tools/test.py`` rounds boxes to 0.1 px and scores to 5 decimals; we do not).
    """
    lines = []
    for item in frames_or_dets:
        if isinstance(item, Frame):
            item = DetectionRecord.from_frame(item)
        elif not isinstance(item, DetectionRecord):
            raise TypeError(f"write_detections takes Frame or DetectionRecord items, got {type(item).__name__}")
        try:
            dts = [
                {"box": _to_xywh(b), "score": _num(s), "tag": 1} for b, s in zip(item.boxes, item.scores, strict=True)
            ]
        except ValueError as exc:
            raise ValueError(f"detections of {item.id!r}: {exc}") from None
        rec = {"ID": item.id, "height": int(item.height), "width": int(item.width), "dtboxes": dts}
        lines.append(json.dumps(rec))
    _atomic_write_lines(lines, Path(path))
