"""One validation layer for COCO-style files: ground truth (COCO keypoints / boxes, CrowdPose, OCHuman, HIE w-AP)
and results lists. ``crowdbench eval``, ``crowdbench data inspect``, the table pipeline's reader
(:func:`~crowdbench.datasets.formats.coco.read_coco_keypoints`) and the evaluators all go through it; evaluators
receive the validated :class:`CocoGt` / :class:`CocoResults` and never look at raw JSON again.

Every failure is one :class:`FormatError` line naming the file, the record and the field, e.g.
``gt.json: annotations[3] (id 17): 'keypoints'[7]: NaN is not a finite number``. Checks, by category:

* required: a JSON object with ``images``, ``annotations`` and ``categories`` lists; annotations with ``id``,
  ``image_id``, ``category_id``, ``bbox`` (and ``area`` where the protocol scales by it; ``keypoints`` and
  ``num_keypoints`` for keypoint AP, as pycocotools reads them); results with ``image_id``, ``category_id``,
  ``score`` and ``keypoints`` (keypoint AP) or ``bbox`` (box AP).
* types: ids are JSON integers (not floats, strings or ``true``) within int64; boxes, areas, keypoints, scores,
  ``crowdIndex``, ``width`` and ``height`` are JSON numbers; ``iscrowd`` is 0 or 1; ``num_keypoints`` an integer.
* finiteness: no NaN or +-inf (nor an integer beyond the float range) in any of those numbers.
* ranges: box width and height in [0, 1e6]; ``area`` >= 0; ground-truth visibility in {0, 1, 2}; ``crowdIndex`` in
  [0, 1]; ``num_keypoints`` >= 0; ``width`` / ``height`` > 0.
* shape: ``bbox`` is 4 numbers; ``keypoints`` is 3 x K numbers, K the schema's (the category's name list, when it
  has one, also K long).
* references: every annotation's ``image_id`` is an image and its ``category_id`` a category; every result's
  ``image_id`` is a ground-truth image and its ``category_id`` a category; no duplicate image, category or
  annotation ids.

``lenient=True`` keeps pycocotools' behaviour where pycocotools accepts a value and computes a defined number
from it (tests/test_fuzz_coco.py checks each against pycocotools 2.0.11): negative box sizes and areas (scored
as pycocotools scores them), ground-truth visibility outside {0, 1, 2} (pycocotools only asks ``v > 0``),
``iscrowd`` / ids written as ``true`` / ``false``, annotation ids beyond int64 (renumbered in order; only their
identity matters), duplicate annotation ids (pycocotools' own duplicate handling), NaN / infinite scores (ranked
as pycocotools sorts them: NaN last), ``crowdIndex`` outside [0, 1] and non-positive image sizes (not read by the
evaluation). NaN or infinite coordinates, strings, wrong lengths and dangling references are refused either way:
the reference tools give no defined number for them (pycocotools matches a NaN OKS at every threshold).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from crowdbench.datasets.formats.errors import FormatError

__all__ = [
    "MAX_SIZE",
    "CocoGt",
    "CocoResults",
    "RecordError",
    "check_coco_gt",
    "check_coco_results",
    "check_coco_top",
]

Kind = Literal["keypoints", "bbox"]
INT64 = (-(2**63), 2**63 - 1)
MAX_SIZE = 1e6  # a box side or image side beyond this is a unit or parsing error, not a person
_INT = {int, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64}
_NUM = _INT | {float, np.float16, np.float32, np.float64}  # JSON numbers, and numpy scalars from Python callers
_MISSING = object()
_HINT = " (--lenient accepts it as pycocotools does)"


def _short(value: Any) -> str:
    if value is _MISSING:
        return "nothing"
    try:
        return json.dumps(value, allow_nan=True)[:40]
    except (TypeError, ValueError):
        return repr(value)[:40]


@dataclass
class CocoGt:
    """Validated COCO ground truth: ``data`` (the dict as read, never edited) and what the checks learnt of it.

    ``relaxed``: the ``--lenient`` findings it holds (empty when strict checks would pass), e.g.
    ``["annotations[4] (id 9): 'bbox' has a negative size"]``; ``renumber``: annotation ids must be renumbered
    before an engine sees them (ids beyond int64)."""

    data: dict
    source: str
    kind: Kind
    num_keypoints: int | None
    has_zero_id: bool = False
    duplicate_ids: bool = False
    renumber: bool = False
    relaxed: list[str] = field(default_factory=list)

    @property
    def images(self) -> list[dict]:
        return self.data["images"]

    @property
    def annotations(self) -> list[dict]:
        return self.data["annotations"]

    @property
    def categories(self) -> list[dict]:
        return self.data["categories"]


@dataclass
class CocoResults:
    """Validated COCO results list (``records``, never edited); ``finite_scores``: every score is finite."""

    records: list
    source: str
    kind: Kind
    finite_scores: bool = True
    relaxed: list[str] = field(default_factory=list)


class RecordError(FormatError):
    """A :class:`FormatError` about one record: ``what[index]`` (``annotations[3]``), so that a reader can skip it."""

    def __init__(self, message: str, what: str, index: int) -> None:
        super().__init__(message)
        self.what, self.index = what, index


class _Checker:
    """Column checks over one list of records; the first failure names ``src``, ``what[i]`` (+ id) and the field.

    ``positions``: the place of each record in the whole list, for a checker over some of its records."""

    def __init__(
        self,
        src: str,
        what: str,
        records: list,
        lenient: bool,
        relaxed: list[str],
        hint: str = _HINT,
        positions: Sequence[int] | None = None,
    ) -> None:
        self.src, self.what, self.records, self.lenient, self.relaxed = src, what, records, lenient, relaxed
        self.hint, self.positions = hint, positions

    def position(self, i: int) -> int:
        return i if self.positions is None else self.positions[i]

    def where(self, i: int) -> str:
        rec = self.records[i]
        ident = f" (id {_short(rec['id'])})" if isinstance(rec, dict) and "id" in rec else ""
        return f"{self.what}[{self.position(i)}]{ident}"

    def fail(self, i: int, text: str) -> None:
        raise RecordError(f"{self.src}: {self.where(i)}: {text}", self.what, self.position(i))

    def relax(self, i: int, text: str) -> None:
        """A value pycocotools accepts: an error, or with ``lenient`` a note in ``relaxed``."""
        if not self.lenient:
            self.fail(i, text + self.hint)
        self.relaxed.append(f"{self.where(i)}: {text}")

    def objects(self) -> None:
        for i, rec in enumerate(self.records):
            if type(rec) is not dict:
                message = f"{self.src}: {self.what}[{i}]: expected a JSON object, got {_short(rec)}"
                raise RecordError(message, self.what, i)

    def values(self, key: str, default: Any = _MISSING) -> list:
        vals = [r.get(key, default) for r in self.records]
        if default is _MISSING:
            for i, v in enumerate(vals):
                if v is _MISSING:
                    self.fail(i, f"has no {key!r}")
        return vals

    def ints(self, key: str, default: Any = _MISSING, *, big_ok: bool = False) -> tuple[list, np.ndarray | None]:
        """Integer column: ``(values, int64 array or None when some are beyond int64 and ``big_ok``)``."""
        vals = self.values(key, default)
        types = set(map(type, vals))
        if not types <= _INT:
            for i, v in enumerate(vals):
                if type(v) not in _INT and not (type(v) is bool and self.lenient):
                    self.fail(i, f"{key!r} must be an integer, got {_short(v)}")
            self.relaxed.append(f"{self.what}: {key!r} written as true/false")  # only bools get here
        if types != {int}:
            vals = [int(v) for v in vals]
        try:
            return vals, np.array(vals, dtype=np.int64)
        except OverflowError:
            for i, v in enumerate(vals):
                if not INT64[0] <= v <= INT64[1]:
                    if big_ok and self.lenient:
                        self.relax(i, f"{key!r} {v} is beyond int64")
                        return vals, None
                    self.fail(i, f"{key!r} {_short(v)} is not an integer within int64")
            raise

    def numbers(self, key: str, width: int | None, default: Any = _MISSING, *, exact: bool = True) -> np.ndarray:
        """Rows of ``width`` finite numbers (``width=None``: one number per record) as a float64 array.

        ``exact=False`` (long rows such as keypoints, when no ``true`` / ``false`` can be in the source): numpy's
        type inference finds strings, nulls and nested lists in C instead of a Python scan of every value's type;
        it cannot tell a Python bool from 0 / 1, which is why files containing ``true`` or ``false`` take the exact
        scan."""
        vals = self.values(key, default)
        if width is None:
            if not set(map(type, vals)) <= _NUM:
                self._bad_type(key, [[v] for v in vals], width)
            arr = self._floats(lambda: vals, len(vals))
            return self._finite(arr.reshape(-1, 1), vals, key, width)[:, 0]
        rows = vals
        if not all(type(r) is list and len(r) == width for r in rows):
            for i, r in enumerate(rows):
                if type(r) is not list:
                    self.fail(i, f"{key!r} must be a list of {width} numbers, got {_short(r)}")
                if len(r) != width:
                    self.fail(i, f"{key!r} has {len(r)} values, expected {width}")
        arr = None
        if not exact:
            try:
                arr = np.array(rows) if rows else np.zeros((0, width))
            except (ValueError, TypeError, OverflowError):
                arr = None
            if arr is not None and (arr.dtype.kind not in "iuf" or arr.shape != (len(rows), width)):
                arr = None  # a string, null, huge integer or nested list somewhere: the exact scan names it
            if arr is not None:
                arr = arr.astype(np.float64, copy=False)
        if arr is None:
            if not set(map(type, itertools.chain.from_iterable(rows))) <= _NUM:
                self._bad_type(key, rows, width)
            arr = self._floats(lambda: itertools.chain.from_iterable(rows), len(rows) * width).reshape(-1, width)
        return self._finite(arr, rows, key, width)

    @staticmethod
    def _floats(flat: Callable[[], Iterable[Any]], n: int) -> np.ndarray:
        """The ``n`` numbers ``flat()`` yields as float64; an integer beyond the float range becomes +-inf (then
        refused as not finite) instead of an OverflowError."""
        try:
            return np.fromiter(flat(), np.float64, count=n)
        except OverflowError:
            return np.array(
                [float(v) if abs(v) < 1e308 else (np.inf if v > 0 else -np.inf) for v in flat()], np.float64
            )

    def _finite(self, arr: np.ndarray, rows: list, key: str, width: int | None) -> np.ndarray:
        bad = ~np.isfinite(arr)
        if bad.any():
            i, j = (int(v) for v in np.argwhere(bad)[0])
            v = rows[i] if width is None else rows[i][j]
            at = "" if width is None else f"[{j}]"
            self.fail(i, f"{key!r}{at}: {'NaN' if v != v else _short(v)} is not a finite number")
        return arr

    def _bad_type(self, key: str, rows: list, width: int | None) -> None:
        for i, r in enumerate(rows):
            for j, v in enumerate(r):
                if type(v) not in _NUM:
                    at = "" if width is None else f"[{j}]"
                    self.fail(i, f"{key!r}{at} must be a number, got {_short(v)}")

    def first(self, mask: np.ndarray) -> int | None:
        hit = np.flatnonzero(mask)
        return int(hit[0]) if len(hit) else None


def _ids_unique(ck: _Checker, ids: list, key: str = "id") -> None:
    """Fail on the first id seen twice, naming where it was first."""
    if len(set(ids)) == len(ids):
        return
    seen: dict[Any, int] = {}
    for i, v in enumerate(ids):
        if v in seen:
            ck.fail(i, f"duplicate {key} {v} (first at {ck.what}[{seen[v]}])")
        seen[v] = i


def check_coco_top(data: Any, src: str) -> None:
    """A JSON object with ``images``, ``annotations`` and ``categories`` lists."""
    if not isinstance(data, dict):
        raise FormatError(f"{src}: expected a COCO JSON object with 'images', 'annotations', 'categories'")
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise FormatError(f"{src}: missing top-level key {key!r}")
        if type(data[key]) is not list:
            raise FormatError(f"{src}: {key!r} must be a list, got {type(data[key]).__name__}")


def check_coco_gt(
    data: Any,
    src: str,
    *,
    kind: Kind,
    num_keypoints: int | None = None,
    need_area: bool = True,
    lenient: bool = False,
    allow_duplicate_ids: bool = False,
    image_keys: Sequence[str] = (),
    evaluation: bool = True,
    exact_types: bool = True,
) -> CocoGt:
    """Validate a COCO ground-truth dict (module docstring); return it as :class:`CocoGt`.

    ``kind="keypoints"`` needs ``num_keypoints`` (K); ``need_area``: ``area`` is required (COCO OKS scale and area
    ranges; CrowdPose and OCHuman need none); ``image_keys``: keys every image must have (the pipeline reader needs
    ``file_name``, ``width``, ``height``); ``evaluation=False`` (readers): ``num_keypoints`` is
    optional and ``iscrowd`` regions may have no keypoints (our writer's ignore regions; pycocotools reads both);
    ``exact_types=False``: keypoint lists are typed by numpy's inference (fast; a bool counts as 0 / 1: pass it
    only when the source cannot hold ``true`` / ``false``); ``allow_duplicate_ids``: duplicate annotation ids as
    pycocotools treats them (implied by ``lenient``)."""
    check_coco_top(data, src)
    relaxed: list[str] = []
    hint = _HINT if evaluation else ""
    cats = _Checker(src, "categories", data["categories"], lenient, relaxed, hint)
    cat_ids = _check_categories(cats, num_keypoints if kind == "keypoints" else None)
    if kind == "keypoints" and num_keypoints is None:
        raise ValueError("kind='keypoints' needs num_keypoints")
    ims = _Checker(src, "images", data["images"], lenient, relaxed, hint)
    img_ids = _check_images(ims, image_keys)
    anns = _Checker(src, "annotations", data["annotations"], lenient, relaxed, hint)
    anns.objects()
    ann_ids, ann_arr = anns.ints("id", big_ok=True)
    dup = len(set(ann_ids)) != len(ann_ids)
    if dup and not (allow_duplicate_ids or lenient):
        _ids_unique(anns, ann_ids)
    _check_references(anns, img_ids, cat_ids, "in 'images'", "in 'categories'")
    _check_annotation_boxes(anns, need_area)
    _check_crowd(anns)
    if kind == "keypoints":
        _check_keypoints(anns, int(num_keypoints), evaluation, exact_types)  # type: ignore[arg-type]
    return CocoGt(
        data,
        src,
        kind,
        num_keypoints if kind == "keypoints" else None,
        has_zero_id=0 in ann_ids,
        duplicate_ids=dup,
        renumber=ann_arr is None,
        relaxed=relaxed,
    )


def _check_categories(cats: _Checker, num_keypoints: int | None) -> list:
    """Objects with unique integer ids; with ``num_keypoints`` (K) a ``keypoints`` name list is K long. The ids."""
    cats.objects()
    cat_ids, _ = cats.ints("id")
    _ids_unique(cats, cat_ids)
    if num_keypoints is not None:
        for i, c in enumerate(cats.records):
            names = c.get("keypoints")
            if names is not None and (type(names) is not list or len(names) != num_keypoints):
                got = f"{len(names)} names" if type(names) is list else _short(names)
                cats.fail(i, f"'keypoints' must name the schema's {num_keypoints} keypoints, got {got}")
    return cat_ids


def _check_images(ims: _Checker, image_keys: Sequence[str]) -> list:
    """Objects with integer ids (unique unless lenient), ``image_keys``, sizes and ``crowdIndex`` in range. The ids."""
    ims.objects()
    img_ids, _ = ims.ints("id")
    if not ims.lenient:
        _ids_unique(ims, img_ids)
    for key in image_keys:
        ims.values(key)
    for key in ("width", "height"):
        if any(key in im for im in ims.records):
            size = ims.numbers(key, None, default=1)
            bad = ims.first((size <= 0) | (size > MAX_SIZE))
            if bad is not None:
                ims.relax(bad, f"{key!r} {_short(ims.records[bad][key])} is outside (0, {MAX_SIZE:g}]")
    if any("crowdIndex" in im for im in ims.records):
        ci = ims.numbers("crowdIndex", None, default=0.0)
        bad = ims.first((ci < 0) | (ci > 1))
        if bad is not None:
            ims.relax(bad, f"'crowdIndex' {_short(ims.records[bad]['crowdIndex'])} is outside [0, 1]")
    return img_ids


def _check_references(ck: _Checker, image_ids: Sequence, cat_ids: Sequence, images: str, categories: str) -> None:
    """Every record's ``image_id`` is one of ``image_ids`` and its ``category_id`` one of ``cat_ids`` (else it
    "is not" ``images`` / ``categories``)."""
    ref_ids, img_col = ck.ints("image_id")
    bad = ck.first(~np.isin(img_col, np.asarray(image_ids, dtype=np.int64)))
    if bad is not None:
        ck.fail(bad, f"'image_id' {ref_ids[bad]} is not {images}")
    _, cat_col = ck.ints("category_id")
    bad = ck.first(~np.isin(cat_col, np.asarray(cat_ids, dtype=np.int64)))
    if bad is not None:
        ck.fail(bad, f"'category_id' {int(cat_col[bad])} is not {categories}")


def _check_annotation_boxes(anns: _Checker, need_area: bool) -> None:
    """``bbox``, the optional ``fbox`` / ``vbox``, ``track_id`` and ``area`` (required with ``need_area``)."""
    _boxes(anns, "bbox")
    for key in ("fbox", "vbox"):  # CrowdHuman-style full / visible boxes (our writer, data inspect)
        _optional_boxes(anns, key)
    if any("track_id" in a for a in anns.records):
        anns.ints("track_id", default=-1)
    if need_area or any("area" in a for a in anns.records):
        area = anns.numbers("area", None, default=_MISSING if need_area else 0.0)
        bad = anns.first(area < 0)
        if bad is not None:
            anns.relax(bad, f"'area' {area[bad]:g} is negative")


def _check_crowd(anns: _Checker) -> None:
    crowd = [a.get("iscrowd", 0) for a in anns.records]
    if not set(map(type, crowd)) <= {int} or not set(crowd) <= {0, 1}:
        for i, v in enumerate(crowd):
            if type(v) is bool:
                anns.relax(i, f"'iscrowd' is {_short(v)}, not 0 or 1")
            elif type(v) is not int or v not in (0, 1):
                anns.fail(i, f"'iscrowd' must be 0 or 1, got {_short(v)}")


def _check_keypoints(anns: _Checker, k: int, evaluation: bool, exact_types: bool) -> None:
    """``keypoints`` (3 x ``k`` numbers, visibility 0 / 1 / 2) and ``num_keypoints`` >= 0, both required for
    evaluation (readers: crowd regions may have no keypoints, ``num_keypoints`` is optional)."""
    for key in ("keypoints", "num_keypoints") if evaluation else ("keypoints",):
        for i, a in enumerate(anns.records):
            if key not in a and (evaluation or a.get("iscrowd", 0) != 1):
                anns.fail(i, f"has no {key!r}")
    kp = anns.numbers("keypoints", 3 * k, default=[0] * (3 * k), exact=exact_types)
    vis = kp[:, 2::3]
    bad = anns.first(~np.isin(vis, (0, 1, 2)).all(axis=1))
    if bad is not None:
        j = int(np.flatnonzero(~np.isin(vis[bad], (0, 1, 2)))[0])
        anns.relax(bad, f"'keypoints'[{3 * j + 2}]: visibility {vis[bad, j]:g} is not 0, 1 or 2")
    _, nk = anns.ints("num_keypoints", default=0)
    bad = anns.first(nk < 0)
    if bad is not None:
        anns.fail(bad, f"'num_keypoints' {int(nk[bad])} is negative")


def _boxes(ck: _Checker, key: str, default: Any = _MISSING) -> np.ndarray:
    box = ck.numbers(key, 4, default)
    bad = ck.first((box[:, 2:] < 0).any(axis=1))
    if bad is not None:
        ck.relax(bad, f"{key!r} has a negative size {[float(v) for v in box[bad, 2:]]}")
    bad = ck.first((np.abs(box) > MAX_SIZE).any(axis=1))
    if bad is not None:
        ck.fail(bad, f"{key!r} {[float(v) for v in box[bad]]} lies beyond {MAX_SIZE:g} pixels")
    return box


def _optional_boxes(ck: _Checker, key: str) -> None:
    """:func:`_boxes` over the records that have ``key`` (errors name their place in the whole list)."""
    rows = [i for i, r in enumerate(ck.records) if key in r]
    if rows:
        sub = _Checker(ck.src, ck.what, [ck.records[i] for i in rows], ck.lenient, ck.relaxed, ck.hint, rows)
        _boxes(sub, key)


def check_coco_results(
    records: Any, src: str, gt: CocoGt, *, lenient: bool = False, exact_types: bool = True
) -> CocoResults:
    """Validate a COCO results list against its validated ground truth (module docstring), for the ground truth's
    ``kind`` (keypoints: ``gt.num_keypoints`` per result)."""
    if type(records) is not list:
        raise FormatError(f"{src}: expected a JSON list of COCO results, got {type(records).__name__}")
    relaxed: list[str] = []
    ck = _Checker(src, "results", records, lenient, relaxed)
    ck.objects()
    image_ids, cat_ids = [im["id"] for im in gt.images], [c["id"] for c in gt.categories]
    _check_references(ck, image_ids, cat_ids, "an image of the ground truth", "a category of the ground truth")
    finite = True
    try:
        ck.numbers("score", None)
    except FormatError:
        if not lenient:
            raise
        scores = ck.values("score")
        for i, v in enumerate(scores):  # NaN / inf are ranked as pycocotools sorts them; other types are refused
            if type(v) not in _NUM:
                ck.fail(i, f"'score' must be a number, got {_short(v)}")
        finite = False
        relaxed.append(f"{src}: NaN or infinite scores (ranked as pycocotools sorts them)")
    if gt.kind == "keypoints":
        ck.numbers("keypoints", 3 * int(gt.num_keypoints), exact=exact_types)  # type: ignore[arg-type]
        _optional_boxes(ck, "bbox")
    else:
        _boxes(ck, "bbox")
    return CocoResults(records, src, gt.kind, finite_scores=finite, relaxed=relaxed)


def renumbered(gt: CocoGt) -> dict:
    """A shallow copy of ``gt.data`` whose annotation ids are ``1..N`` in order (0 stays 0: pycocotools' quirk)."""
    anns = [dict(a) for a in gt.annotations]
    nonzero = sorted({a["id"] for a in anns if a["id"] != 0})
    rank = {v: i + 1 for i, v in enumerate(nonzero)}
    for a in anns:
        a["id"] = rank.get(a["id"], 0)
    return {**gt.data, "annotations": anns}
