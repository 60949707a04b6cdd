"""MOTChallenge writers: ``<seq>/gt/gt.txt``, ``<seq>/seqinfo.ini`` and tracker result files.

Ground truth lines are ``frame,id,x,y,w,h,conf,class,visibility`` with 1-based frame numbers
(``Frame.index + 1``), the full box (not clipped: MOT boxes may leave the image), ``conf`` 1 (0 for ignored
instances), ``class`` 1 (pedestrian) and ``visibility`` = area of the visible box inside the full box over
the full box's area. Result lines are ``frame,id,x,y,w,h,score,-1,-1,-1``.

:func:`read_mot` reads either kind (MOT15 10-column, MOT16/17/20 9-column GT, 7- to 10-column results and public
detection files, whose id is -1) and validates it (the one validation layer of the format, issue 20: every entry
point reads through it; ``lenient=`` keeps TrackEval's parity); :func:`check_mot_pair` checks what needs both files
of an evaluated sequence; :func:`read_seqinfo` reads ``seqinfo.ini`` and :func:`mot_to_frames` turns a
:class:`MotTable` into data-model frames.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import NoReturn

import numpy as np

from crowdbench.datasets.formats.atomic import atomic_write_text
from crowdbench.datasets.formats.errors import FormatError
from crowdbench.datasets.model import Frame, Instance

__all__ = [
    "MAX_COORD",
    "MAX_FRAME",
    "MOT_CLASSES",
    "MOT_CLASS_IDS",
    "MOT_DISTRACTOR_CLASSES",
    "MOT_PEDESTRIAN",
    "MOT_ROLES",
    "SEQINFO_KEYS",
    "MotTable",
    "box_visibility",
    "check_mot_pair",
    "mot_lines",
    "mot_sequence_files",
    "mot_to_frames",
    "read_mot",
    "read_mot_frames",
    "read_seqinfo",
    "write_mot_results",
    "write_mot_sequence",
]

MOT_PEDESTRIAN = 1
"""MOT16/17/20 ``class`` of a pedestrian (the only class evaluated)."""
MOT_DISTRACTOR_CLASSES = (2, 7, 8, 12)
"""person_on_vehicle, static_person, distractor, reflection: people that are neither required nor penalised
(TrackEval removes predictions matched to them; MOT20 also counts class 6, non_mot_vehicle)."""
# Frame numbers beyond this are refused: per-frame arrays are sized by the largest frame (10**12 would be terabytes).
MAX_FRAME = 10**7
MAX_COORD = 10**6
"""Box coordinates and sizes beyond this many pixels are refused (float64 areas and IoUs of such boxes stay exact)."""
MOT_CLASSES = {
    "pedestrian": 1,
    "person_on_vehicle": 2,
    "car": 3,
    "bicycle": 4,
    "motorbike": 5,
    "non_mot_vehicle": 6,
    "static_person": 7,
    "distractor": 8,
    "occluder": 9,
    "occluder_on_ground": 10,
    "occluder_full": 11,
    "reflection": 12,
    "crowd": 13,
}
"""The MOT16/17/20 ground-truth class table (column 8): TrackEval ``MotChallenge2DBox.class_name_to_class_id``."""
MOT_CLASS_IDS = tuple(MOT_CLASSES.values())
MOT_ROLES = ("gt", "results", "det")
"""``role`` of :func:`read_mot`: ground truth, tracker results, public detections (``None``: any of them)."""

SEQINFO_KEYS = ("name", "imDir", "frameRate", "seqLength", "imWidth", "imHeight", "imExt")
"""The ``[Sequence]`` keys of a MOTChallenge ``seqinfo.ini``."""
_SEQINFO_INT = ("frameRate", "seqLength", "imWidth", "imHeight")
_SEQINFO_CANONICAL = {k.lower(): k for k in SEQINFO_KEYS}


def box_visibility(inst: Instance) -> float:
    """Visible fraction of the full box (1.0 when the instance has no visible box)."""
    if inst.visible_box is None:
        return 1.0
    b, v = inst.box, inst.visible_box
    area = (b[2] - b[0]) * (b[3] - b[1])
    iw = min(b[2], v[2]) - max(b[0], v[0])
    ih = min(b[3], v[3]) - max(b[1], v[1])
    return float(np.clip(max(iw, 0.0) * max(ih, 0.0) / area, 0.0, 1.0)) if area > 0 else 0.0


def _num(x: float) -> str:
    return f"{round(float(x), 2):g}"


def mot_lines(frames: Sequence[Frame], *, gt: bool = True) -> list[str]:
    """MOT text lines of one sequence's frames, sorted by frame then track id."""
    rows: list[tuple[int, int, str]] = []
    for frame in frames:
        for inst in frame.instances:
            if inst.track_id < 1:
                raise ValueError(f"frame {frame.frame_id}: MOT track ids must be >= 1, got {inst.track_id}")
            x1, y1, x2, y2 = inst.box
            box = f"{_num(x1)},{_num(y1)},{_num(x2 - x1)},{_num(y2 - y1)}"
            gt_tail = f"{0 if inst.ignore else 1},1,{_num(box_visibility(inst))}"
            tail = gt_tail if gt else f"{_num(inst.score)},-1,-1,-1"
            rows.append((frame.index + 1, inst.track_id, f"{frame.index + 1},{inst.track_id},{box},{tail}"))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [r[2] for r in rows]


def write_mot_sequence(
    frames: Sequence[Frame],
    seq_dir: str | Path,
    *,
    name: str | None = None,
    frame_rate: int = 30,
    im_dir: str = "img1",
    im_ext: str = ".jpg",
) -> Path:
    """Write ``gt/gt.txt`` and ``seqinfo.ini`` of one sequence (images are written by the caller)."""
    if not frames:
        raise ValueError("a MOT sequence needs at least one frame")
    seq_dir = Path(seq_dir)
    videos = {f.video for f in frames}
    if len(videos) != 1:
        raise ValueError(f"frames of one sequence expected, got videos {sorted(videos)}")
    lines = mot_lines(frames, gt=True)
    atomic_write_text(seq_dir / "gt" / "gt.txt", "".join(f"{line}\n" for line in lines))
    first = frames[0]
    ini = (
        "[Sequence]\n"
        f"name={name or first.video}\n"
        f"imDir={im_dir}\n"
        f"frameRate={frame_rate}\n"
        f"seqLength={max(f.index for f in frames) + 1}\n"
        f"imWidth={first.width}\n"
        f"imHeight={first.height}\n"
        f"imExt={im_ext}\n"
    )
    atomic_write_text(seq_dir / "seqinfo.ini", ini)
    return seq_dir


def write_mot_results(frames: Sequence[Frame], path: str | Path) -> Path:
    """Write a tracker result file (``frame,id,x,y,w,h,score,-1,-1,-1``) of one sequence."""
    return atomic_write_text(path, "".join(f"{line}\n" for line in mot_lines(frames, gt=False)))


@dataclass(frozen=True)
class MotTable:
    """Rows of one MOTChallenge text file, in file order.

    ``boxes`` are ``x, y, w, h`` (float64, as written); ``conf`` is column 7 (GT: the "consider" flag, 0 = zero-marked;
    results: the score; 1.0 when the file has only 6 columns); ``classes`` column 8 as int (-1 when there is no class
    column: fewer than 8 columns, or MOT15 ground truth, whose column 8 is x3d); ``visibility`` column 9 (-1 when
    absent or not a visibility). ``lines`` are the 1-based line numbers.
    """

    path: str
    frames: np.ndarray
    ids: np.ndarray
    boxes: np.ndarray
    conf: np.ndarray
    classes: np.ndarray
    visibility: np.ndarray
    lines: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)


_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|nan|inf|infinity)", re.IGNORECASE)
_EMPTY_FIELD = re.compile(r"^[ \t]*,|,[ \t]*,", re.MULTILINE)
_INT64 = (-(2**63), 2**63 - 1)


def _fields(line: str) -> list[str]:
    return line.replace(",", " ").split()


def _parse_slow(name: str, lines: list[str], role: str | None) -> NoReturn:
    """Locate and raise the first malformed line (the fast path failed)."""
    ncols = None
    for no, line in enumerate(lines, 1):
        fields = _fields(line)
        if not fields:
            continue
        if len(fields) < 6:
            raise FormatError(f"{name}:{no}: expected at least 6 columns (frame,id,x,y,w,h), got {len(fields)}")
        if ncols is not None and len(fields) != ncols:
            raise FormatError(f"{name}:{no}: expected {ncols} columns like the first line, got {len(fields)}")
        ncols = len(fields)
        for k, field in enumerate(fields):
            if not _NUMBER.fullmatch(field):
                what = _column_name(k, role, ncols, _has_class(role, None, ncols))
                raise FormatError(f"{name}:{no}: {what} is not a number: {field[:40]!r}")
    raise FormatError(f"{name}: unreadable MOT text file")


_ROLE_COLUMNS = {None: (6, None), "gt": (8, 10), "results": (7, 10), "det": (6, 10)}
_ROLE_LAYOUT = {
    None: "frame,id,x,y,w,h[,...]",
    "gt": "frame,id,x,y,w,h,conf,class[,visibility] (MOT15: frame,id,x,y,w,h,conf,x3d,y3d,z3d)",
    "results": "frame,id,x,y,w,h,score[,-1,-1,-1]",
    "det": "frame,-1,x,y,w,h[,score,...]",
}


def _has_class(role: str | None, benchmark: str | None, ncol: int) -> bool:
    """Whether column 8 is a class id: results always (TrackEval reads it so), MOT16/17/20 ground truth; MOT15 and
    10-column files of unknown benchmark carry the x3d world coordinate there."""
    if ncol < 8:
        return False
    if role == "results":
        return True
    if benchmark is not None:
        return benchmark != "MOT15"
    return ncol <= 9


def _column_name(j: int, role: str | None, ncol: int, has_class: bool = True) -> str:
    names = ["frame", "id", "x", "y", "width", "height"]
    names.append({"gt": "conf", "results": "score"}.get(role or "", "conf"))
    if role == "results":
        names += ["class", "y3d", "z3d"]  # frame,id,x,y,w,h,score,x3d,y3d,z3d; TrackEval reads column 8 as the class
    else:
        names += ["class", "visibility", "z3d"] if has_class else ["x3d", "y3d", "z3d"]
    return f"{names[j] if j < len(names) else 'value'} (column {j + 1})"


def _exact_ids(name: str, lines: list[str], nonblank: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Ids as int64, exactly: float64 holds integers exactly only up to 2**53, so larger ones are re-read from the
    text (``Decimal``); a value that is not an integer within int64 (``1e30``, ``2.5``) raises :class:`FormatError`."""
    out = np.zeros(len(ids), dtype=np.int64)
    big = ~(np.abs(ids) < 2.0**53)  # NaN included (refused before)
    frac = ~big & (ids != np.trunc(ids))
    if frac.any():
        k = int(np.argmax(frac))
        text = _fields(lines[nonblank[k] - 1])[1]
        raise FormatError(f"{name}:{nonblank[k]}: id (column 2) {text[:40]} is not an integer")
    out[~big] = ids[~big].astype(np.int64)
    for k in np.flatnonzero(big):
        text = _fields(lines[nonblank[k] - 1])[1]
        try:
            value = Decimal(text)
        except InvalidOperation:  # pragma: no cover - the float parse accepted it
            value = Decimal("nan")
        if not value.is_finite() or value != value.to_integral_value():
            raise FormatError(f"{name}:{nonblank[k]}: id (column 2) {text[:40]} is not an integer")
        if not _INT64[0] <= int(value) <= _INT64[1]:
            raise FormatError(f"{name}:{nonblank[k]}: id (column 2) {text[:40]} is outside the int64 range")
        out[k] = int(value)
    return out


def _read_text(path: str | Path) -> tuple[str, str]:
    """The name and text of a UTF-8 file (a BOM dropped); not UTF-8 raises :class:`FormatError`."""
    path = Path(path)
    name = str(path)
    try:
        return name, path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


@dataclass(frozen=True)
class _Rows:
    """The numbers of one MOT file, one row per non-blank line, and how to name a bad value in them."""

    name: str
    lines: list[str]
    nonblank: np.ndarray  # 1-based line number of each row
    data: np.ndarray
    role: str | None
    has_class: bool

    def bad(self, mask: np.ndarray, j: int, why: str) -> None:
        """Raise :class:`FormatError` at the first row of ``mask``, naming column ``j`` and its text."""
        if mask.any():
            k = int(np.argmax(mask))
            value = _fields(self.lines[self.nonblank[k] - 1])[j]
            field = _column_name(j, self.role, self.data.shape[1], self.has_class)
            raise FormatError(f"{self.name}:{self.nonblank[k]}: {field} {value[:40]} {why}")


def _parse_numbers(name: str, text: str, lines: list[str], nonblank: np.ndarray, role: str | None) -> np.ndarray:
    """``rows x columns`` float64 of the file (``0 x 10`` when blank); the first malformed line raises."""
    empty = _EMPTY_FIELD.search(text)
    if empty is not None:
        no = text.count("\n", 0, empty.start()) + 1
        raise FormatError(f"{name}:{no}: empty field (two separators in a row, or a leading comma)")
    if len(nonblank) == 0:
        return np.zeros((0, 10))
    try:
        data = np.loadtxt(io.StringIO(text.replace(",", " ")), dtype=np.float64, ndmin=2, comments=None)
    except ValueError:
        _parse_slow(name, lines, role)
    if data.shape[0] != len(nonblank) or data.shape[1] < 6:
        _parse_slow(name, lines, role)
    return data


def _check_column_count(name: str, nonblank: np.ndarray, data: np.ndarray, role: str | None, lenient: bool) -> None:
    n, ncol = data.shape
    lo, hi = _ROLE_COLUMNS[role]
    if lenient and role in ("gt", "results"):
        hi = None
    if n and (ncol < lo or (hi is not None and ncol > hi)):
        want = f"{lo} to {hi}" if hi is not None else f"at least {lo}"
        raise FormatError(f"{name}:{nonblank[0]}: {ncol} columns; a {role} file has {want} ({_ROLE_LAYOUT[role]})")


def _check_finite(rows: _Rows, lenient: bool) -> None:
    """No NaN or inf (lenient: only in the columns TrackEval computes with)."""
    unused: set[int] = set()
    if lenient and rows.role == "results":
        unused = {6, 8, 9}
    elif lenient and rows.role == "gt":
        unused = {8, 9} | ({7} if not rows.has_class else set())
    finite = np.isfinite(rows.data)
    if not finite.all():
        for j in range(rows.data.shape[1]):
            if j not in unused:
                rows.bad(~finite[:, j], j, "is not a finite number")


def _checked_frames(rows: _Rows, seq_length: int | None) -> np.ndarray:
    frames = rows.data[:, 0]
    rows.bad(frames != np.trunc(frames), 0, "is not an integer")
    rows.bad(frames < 1, 0, "must be >= 1")
    rows.bad(frames > MAX_FRAME, 0, f"must be <= {MAX_FRAME:,} (frame numbers must be in [1, {MAX_FRAME:,}])")
    if seq_length is not None:
        rows.bad(frames > seq_length, 0, f"is beyond the sequence length {seq_length} (seqinfo.ini seqLength)")
    return frames.astype(np.int64)


def _checked_ids(rows: _Rows) -> np.ndarray:
    ids = _exact_ids(rows.name, rows.lines, rows.nonblank, rows.data[:, 1])
    if rows.role in ("gt", "results"):
        rows.bad(ids < 0, 1, "must be >= 0")
    else:
        rows.bad((ids < 0) & (ids != -1), 1, "must be >= 0 (or -1: no identity)")
    return ids


def _check_boxes(rows: _Rows, lenient: bool) -> None:
    for j in (2, 3):
        rows.bad(np.abs(rows.data[:, j]) > MAX_COORD, j, f"is beyond +-{MAX_COORD:,} pixels")
    for j in (4, 5):
        if not lenient:
            rows.bad(rows.data[:, j] < 0, j, "is negative")
        rows.bad(np.abs(rows.data[:, j]) > MAX_COORD, j, f"is larger than {MAX_COORD:,} pixels")


def _checked_classes(rows: _Rows, lenient: bool) -> np.ndarray:
    """Check conf (column 7), class (8) and visibility (9); the classes as int64 (-1 without a class column)."""
    data, role = rows.data, rows.role
    n, ncol = data.shape
    if ncol > 6 and role == "gt":
        if lenient:  # TrackEval: int(conf) != 0; beyond int32 the cast is not defined the same everywhere
            rows.bad(np.abs(data[:, 6]) >= 2**31, 6, "is not a consider flag")
        else:
            rows.bad((data[:, 6] != 0) & (data[:, 6] != 1), 6, "must be 0 or 1 (the consider flag)")
    classes = np.full(n, -1, dtype=np.int64)
    if rows.has_class:
        cls = data[:, 7]
        rows.bad(cls != np.trunc(cls), 7, "is not an integer")
        rows.bad(np.abs(cls) > 2**31, 7, "is not a class id")
        classes = cls.astype(np.int64)
        if role == "results":
            rows.bad(classes > 1, 7, "is not pedestrian (1) or -1 (TrackEval evaluates pedestrians only)")
            if not lenient:
                rows.bad((classes != -1) & (classes != 1), 7, "must be 1 (pedestrian) or -1")
        elif not (lenient and role == "gt"):
            valid = np.isin(classes, MOT_CLASS_IDS) | ((classes == -1) & (role in (None, "det")))
            rows.bad(~valid, 7, f"is not a MOTChallenge class (1-{max(MOT_CLASS_IDS)}, TrackEval's table)")
    if ncol > 8 and rows.has_class and role != "results" and not (lenient and role == "gt"):
        vis = data[:, 8]
        ok = (vis >= 0) & (vis <= 1) | ((vis == -1) & (role in (None, "det")))
        rows.bad(~ok, 8, "must be in [0, 1]")
    return classes


def _check_unique_ids(name: str, nonblank: np.ndarray, frames: np.ndarray, ids: np.ndarray) -> None:
    """An id other than -1 at most once per frame (TrackEval ``_check_unique_ids``)."""
    if not len(frames):
        return
    order = np.lexsort((ids, frames))
    fo, io_ = frames[order], ids[order]
    dup = (fo[1:] == fo[:-1]) & (io_[1:] == io_[:-1]) & (io_[1:] != -1)
    if dup.any():
        k = int(order[1:][np.argmax(dup)])
        raise FormatError(f"{name}:{nonblank[k]}: id (column 2) {ids[k]} appears twice in frame {frames[k]}")


def read_mot(
    path: str | Path,
    *,
    role: str | None = None,
    benchmark: str | None = None,
    seq_length: int | None = None,
    lenient: bool = False,
) -> MotTable:
    """Read and validate a MOTChallenge ``gt.txt``, tracker result or detection file (comma or whitespace separated).

    The one validation layer of the format: ``crowdbench eval mot``, ``data inspect``, ``data check`` and the
    pipeline's readers all read through here. Violations raise a one-line :class:`FormatError` naming
    ``file:line``, the field (``id (column 2)``) and the value. Checks (``role``: ``"gt"``, ``"results"``,
    ``"det"``, or ``None`` for any of them):

    - shape: every non-blank line has the same number of numeric columns, no empty field (``1,,2``); ``gt`` 8 to 10
      (TrackEval needs the class column), ``results`` 7 to 10, ``det`` 6 to 10, ``None`` at least 6;
    - types: frame and id integers, ids within int64 exactly (re-read from the text beyond 2**53), class integer;
    - finiteness: no NaN or +-inf anywhere;
    - ranges: frame in ``[1, MAX_FRAME]`` and ``<= seq_length`` (seqinfo ``seqLength``) when given; id >= 0
      (``None``/``det``: or -1, no identity); ``|x|, |y|, w, h <= MAX_COORD`` and ``w, h >= 0``; ground-truth conf
      (the consider flag) 0 or 1, visibility in ``[0, 1]`` (``None``: or -1); ground-truth class in
      :data:`MOT_CLASSES` (1-13, TrackEval's table; ``None``/``det``: or -1); result class -1 or 1;
    - references: an id (other than -1) at most once per frame (TrackEval ``_check_unique_ids``).

    Column 8 is a class unless ``benchmark`` is ``"MOT15"`` (or, when ``benchmark`` is ``None``, the file has 10
    columns): then it is the x3d world coordinate, and ``classes`` is -1.

    ``lenient=True`` (``crowdbench eval mot --lenient``) keeps TrackEval's parity where it computes a defined number:
    ``results``/``gt`` may have more than 10 columns; negative widths and heights (IoU 0: the box never matches);
    any finite ground-truth conf below 2**31 (a row is considered when ``int(conf) != 0``); result scores and the
    columns TrackEval never reads (visibility, columns 9-10) may be any number, NaN included; result classes any
    integer <= 1; ground-truth classes outside the table (refused only in frames with predictions, by
    :func:`check_mot_pair`, as TrackEval does).
    """
    if role not in _ROLE_COLUMNS:
        raise ValueError(f"role must be one of {list(_ROLE_COLUMNS)}, got {role!r}")
    name, text = _read_text(path)
    lines = text.splitlines()
    nonblank = np.array([i + 1 for i, line in enumerate(lines) if line.strip()], dtype=np.int64)
    data = _parse_numbers(name, text, lines, nonblank, role)
    _check_column_count(name, nonblank, data, role, lenient)
    n, ncol = data.shape
    rows = _Rows(name, lines, nonblank, data, role, _has_class(role, benchmark, ncol))
    _check_finite(rows, lenient)
    frames = _checked_frames(rows, seq_length)
    ids = _checked_ids(rows)
    _check_boxes(rows, lenient)
    classes = _checked_classes(rows, lenient)
    _check_unique_ids(name, nonblank, frames, ids)
    col = lambda j, fill: data[:, j] if ncol > j else np.full(n, fill, dtype=np.float64)  # noqa: E731
    return MotTable(
        path=name,
        frames=frames,
        ids=ids,
        boxes=np.ascontiguousarray(data[:, 2:6]),
        conf=col(6, 1.0),
        classes=classes,
        visibility=col(8, -1.0) if rows.has_class else np.full(n, -1.0),
        lines=nonblank,
    )


def check_mot_pair(
    gt: MotTable, pred: MotTable, *, benchmark: str = "MOT17", num_frames: int | None = None, lenient: bool = False
) -> None:
    """The checks of one evaluated sequence that need both files (TrackEval ``MotChallenge2DBox`` semantics).

    Frames of both files ``<= num_frames``; result classes <= 1 (strict: -1 or 1); MOT16/17/20 ground-truth classes
    in :data:`MOT_CLASSES` — with ``lenient`` only in frames that have predictions, where TrackEval refuses them
    (elsewhere it drops such rows as non-pedestrians). Raises :class:`FormatError` naming ``file:line``.
    """
    for t in (gt, pred):
        if num_frames is not None and len(t) and t.frames.max() > num_frames:
            k = int(np.argmax(t.frames))
            raise FormatError(
                f"{t.path}:{t.lines[k]}: frame (column 1) {t.frames[k]} is beyond the sequence length {num_frames}"
            )
    if len(pred):
        bad = pred.classes > 1 if lenient else (pred.classes != -1) & (pred.classes != 1)
        if bad.any():
            k = int(np.argmax(bad))
            raise FormatError(
                f"{pred.path}:{pred.lines[k]}: class (column 8) {pred.classes[k]} is not pedestrian (1) or -1"
            )
    if benchmark == "MOT15" or not len(gt):
        return
    invalid = ~np.isin(gt.classes, MOT_CLASS_IDS)
    where = ""
    if lenient:
        invalid &= np.isin(gt.frames, pred.frames)
        where = " in a frame with predictions (TrackEval refuses it there)"
    if invalid.any():
        k = int(np.argmax(invalid))
        raise FormatError(
            f"{gt.path}:{gt.lines[k]}: class (column 8) {gt.classes[k]} is not a MOTChallenge class "
            f"(1-{max(MOT_CLASS_IDS)}, TrackEval's table){where}"
        )


def read_seqinfo(path: str | Path, *, required: Sequence[str] = SEQINFO_KEYS) -> dict[str, str | int]:
    """Read the ``[Sequence]`` section of a MOTChallenge ``seqinfo.ini``.

    Returns its ``key=value`` pairs (whitespace stripped, later duplicates win); ``frameRate``, ``seqLength``,
    ``imWidth`` and ``imHeight`` as ``int``, everything else as ``str``. Lines of other sections, blank lines and
    ``;``/``#`` comments are skipped; keys are matched without regard to case, as configparser (TrackEval) does.
    Raises :class:`FormatError` (one line naming the file, and the line where
    there is one) when the file has no ``[Sequence]`` section, a key of ``required`` (default: all of
    :data:`SEQINFO_KEYS`) is missing, an integer key is not a non-negative integer (``seqLength``: beyond
    :data:`MAX_FRAME`), or a line is not
    ``[section]`` / ``key=value``.
    """
    name, text = _read_text(path)
    section: str | None = None
    seen_section = False
    out: dict[str, str | int] = {}
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in ";#":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            seen_section |= section == "Sequence"
            continue
        if "=" not in line:
            raise FormatError(f"{name}:{no}: expected key=value or [section], got {line[:40]!r}")
        if section != "Sequence":
            continue
        key, value = (x.strip() for x in line.split("=", 1))
        key = _SEQINFO_CANONICAL.get(key.lower(), key)  # configparser (TrackEval) ignores the case of keys
        if key in _SEQINFO_INT:
            try:
                number = int(value)
            except ValueError:
                number = -1
            if number < 0:
                raise FormatError(f"{name}:{no}: {key} must be a non-negative integer, got {value[:40]!r}")
            if key == "seqLength" and number > MAX_FRAME:
                raise FormatError(f"{name}:{no}: seqLength must be <= {MAX_FRAME:,}, got {number:,}")
            out[key] = number
        else:
            out[key] = value
    if not seen_section:
        raise FormatError(f"{name}: no [Sequence] section")
    missing = [k for k in required if k not in out]
    if missing:
        raise FormatError(f"{name}: [Sequence] has no {', '.join(missing)}")
    return out


def mot_to_frames(
    table: MotTable,
    seqinfo: dict[str, str | int] | None = None,
    *,
    gt: bool = True,
    video: str | None = None,
    seq_dir: str | Path | None = None,
    num_frames: int | None = None,
) -> list[Frame]:
    """Turn the rows of one sequence (:func:`read_mot`) into data-model frames, ordered by frame.

    Frames: ``Frame.index = frame - 1`` for every frame ``1..N``, with ``N`` = ``num_frames``, else ``seqinfo``
    ``seqLength``, else the largest frame in the table (frames without rows are empty); a row beyond ``N`` raises
    :class:`FormatError` naming ``file:line``. ``video`` defaults to ``seqinfo["name"]``, else the sequence folder
    name (``<seq>/gt/gt.txt``, ``<seq>/det/det.txt``) or the file stem; width and height come from ``seqinfo``
    (0 = unknown); with ``seq_dir`` the image is ``seq_dir/<imDir>/<frame:06d><imExt>`` (``img1``, ``.jpg`` by
    default). Boxes ``x, y, w, h`` become ``x1, y1, x2, y2``; ``track_id`` is the row id (-1 for detections).

    ``gt=True`` (ground truth), per the MOT16/17/20 convention that TrackEval evaluates:

    - class 1 (pedestrian) with a non-zero flag (column 7): an :class:`Instance`;
    - class 1 with flag 0 (zero-marked) and the distractor classes :data:`MOT_DISTRACTOR_CLASSES`
      (person_on_vehicle, static_person, distractor, reflection): an ``Instance(ignore=True)``;
    - every other class (vehicles, occluders, crowd): dropped, as they are not people;
    - files without a class column (MOT15, class -1): flag != 0 -> instance, flag 0 -> ignored instance.

    Visibility (column 9, MOT16+) is kept as ``visible_box``: the top part of the full box, full width, with
    height ``visibility x h``, so that :func:`box_visibility` gives back the file's value (MOT stores only the
    fraction, not where the visible part is); no visibility column -> ``visible_box = None``.

    ``gt=False`` (tracker results, public detections): every row is an instance with ``score`` = column 7.
    """
    num_frames = _frame_count(table, seqinfo, num_frames)
    info = seqinfo or {}
    frames = _empty_frames(_video_name(table, info, video), info, seq_dir, num_frames)
    keep, ignore = _gt_rows(table) if gt else (np.ones(len(table), dtype=bool), np.zeros(len(table), dtype=bool))
    xyxy = np.column_stack([table.boxes[:, :2], table.boxes[:, :2] + table.boxes[:, 2:]])
    for k in np.flatnonzero(keep):
        box = xyxy[k]
        vis = float(table.visibility[k])
        visible = None
        if gt and vis >= 0:
            visible = box.copy()
            visible[3] = box[1] + min(vis, 1.0) * (box[3] - box[1])
        frames[int(table.frames[k]) - 1].instances.append(
            Instance(
                box=box,
                visible_box=visible,
                score=1.0 if gt else float(table.conf[k]),
                track_id=int(table.ids[k]),
                ignore=bool(ignore[k]),
            )
        )
    return frames


def _frame_count(table: MotTable, seqinfo: dict[str, str | int] | None, num_frames: int | None) -> int:
    """``num_frames``, else seqinfo ``seqLength``, else the largest frame; a row beyond it raises."""
    if num_frames is None:
        if seqinfo is not None and "seqLength" in seqinfo:
            num_frames = int(seqinfo["seqLength"])
        else:
            num_frames = int(table.frames.max(initial=0))
    if len(table) and table.frames.max() > num_frames:
        k = int(np.argmax(table.frames))
        raise FormatError(
            f"{table.path}:{table.lines[k]}: frame {table.frames[k]} beyond the sequence length {num_frames}"
        )
    return num_frames


def _video_name(table: MotTable, info: dict[str, str | int], video: str | None) -> str:
    """``video``, else seqinfo ``name``, else the sequence folder (``<seq>/gt/gt.txt``) or the file stem."""
    if video is not None:
        return video
    if "name" in info:
        return str(info["name"])
    path = Path(table.path)
    return path.parent.parent.name if path.parent.name in ("gt", "det") else path.stem


def _empty_frames(video: str, info: dict[str, str | int], seq_dir: str | Path | None, num_frames: int) -> list[Frame]:
    width, height = int(info.get("imWidth", 0)), int(info.get("imHeight", 0))
    root = Path(seq_dir) if seq_dir is not None else None
    im_dir, im_ext = str(info.get("imDir", "img1")), str(info.get("imExt", ".jpg"))
    return [
        Frame(
            video,
            i,
            width,
            height,
            image=root / im_dir / f"{i + 1:06d}{im_ext}" if root is not None else None,
        )
        for i in range(num_frames)
    ]


def _gt_rows(table: MotTable) -> tuple[np.ndarray, np.ndarray]:
    """Which ground-truth rows are people (kept), and which of those are ignored (see :func:`mot_to_frames`)."""
    flag_on = table.conf.astype(np.int64) != 0
    no_class = table.classes == -1
    person = no_class | (table.classes == MOT_PEDESTRIAN)
    keep = person | np.isin(table.classes, MOT_DISTRACTOR_CLASSES)
    return keep, ~(person & flag_on)


def read_mot_frames(path: str | Path, *, gt: bool = True) -> list[Frame]:
    """Frames of a MOTChallenge split folder (``<path>/<seq>/{seqinfo.ini,gt/gt.txt,img1/}``) or of one sequence
    folder, sequences in name order (:func:`mot_to_frames`; ``gt=False`` reads ``det/det.txt`` instead)."""
    path = Path(path)
    seqs = (
        [path]
        if (path / "seqinfo.ini").is_file()
        else sorted(p for p in path.iterdir() if (p / "seqinfo.ini").is_file())
    )
    if not seqs:
        raise FormatError(f"{path}: no MOTChallenge sequence (no <seq>/seqinfo.ini)")
    frames: list[Frame] = []
    for seq in seqs:
        ann = seq / ("gt/gt.txt" if gt else "det/det.txt")
        if not ann.is_file():
            raise FormatError(f"{ann}: missing ({'ground truth' if gt else 'detections'} of sequence {seq.name})")
        info = read_seqinfo(seq / "seqinfo.ini")
        table = read_mot(ann, role="gt" if gt else "det", seq_length=int(info["seqLength"]))
        frames.extend(mot_to_frames(table, info, gt=gt, seq_dir=seq))
    return frames


def _seq_length(seq_dir: Path) -> int | None:
    """``seqLength`` of ``seq_dir/seqinfo.ini`` (read and checked by the format's reader), ``None`` without one."""
    ini = seq_dir / "seqinfo.ini"
    if not ini.is_file():
        return None
    return int(read_seqinfo(ini, required=("seqLength",))["seqLength"])


def mot_sequence_files(gt: Path, pred: Path) -> list[tuple[str, Path, Path, int | None]]:
    """(name, gt file, pred file, seqLength) per sequence of a MOTChallenge tree: ``gt`` a ``gt.txt`` (then ``pred`` is
    one result file) or a folder of ``<seq>/gt/gt.txt`` (or ``<seq>/gt.txt``), ``pred`` then holding ``<seq>.txt``
    (or ``data/<seq>.txt``, or ``<seq>/test.txt``); ``seqLength`` from ``<seq>/seqinfo.ini`` where there is one."""
    if gt.is_file():
        if not pred.is_file():
            raise FileNotFoundError(f"{pred}: no such file (a GT file needs a prediction file)")
        seq_dir = gt.parent.parent if gt.parent.name == "gt" else gt.parent
        return [(seq_dir.name, gt, pred, _seq_length(seq_dir))]
    if not gt.is_dir():
        raise FileNotFoundError(f"{gt}: no such file or directory")
    if not pred.is_dir():
        raise FileNotFoundError(f"{pred}: not a directory (a GT directory needs a prediction directory)")
    out = []
    for d in sorted(x for x in gt.iterdir() if x.is_dir()):
        g = next((f for f in (d / "gt" / "gt.txt", d / "gt.txt") if f.is_file()), None)
        if g is None:
            continue
        cands = (pred / f"{d.name}.txt", pred / "data" / f"{d.name}.txt", pred / d.name / "test.txt")
        p = next((f for f in cands if f.is_file()), None)
        if p is None:
            raise FileNotFoundError(f"{pred}: no result file for sequence {d.name} (tried {d.name}.txt)")
        out.append((d.name, g, p, _seq_length(d)))
    if not out:
        raise FileNotFoundError(f"{gt}: no sequences (<seq>/gt/gt.txt or <seq>/gt.txt)")
    return out
