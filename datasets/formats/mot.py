"""MOTChallenge writers: ``<seq>/gt/gt.txt``, ``<seq>/seqinfo.ini`` and tracker result files.

Ground truth lines are ``frame,id,x,y,w,h,conf,class,visibility`` with 1-based frame numbers
(``Frame.index + 1``), the full box (not clipped: MOT boxes may leave the image), ``conf`` 1 (0 for ignored
instances), ``class`` 1 (pedestrian) and ``visibility`` = area of the visible box inside the full box over
the full box's area. Result lines are ``frame,id,x,y,w,h,score,-1,-1,-1``.

:func:`read_mot` reads either kind (MOT15 10-column, MOT16/17/20 9-column GT, 7- to 10-column results and public
detection files, whose id is -1), strictly; :func:`read_seqinfo` reads ``seqinfo.ini`` and :func:`mot_to_frames`
turns a :class:`MotTable` into data-model frames.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crowdbench.datasets.formats.atomic import atomic_write_text
from crowdbench.datasets.formats.errors import FormatError
from crowdbench.datasets.model import Frame, Instance

__all__ = [
    "MAX_FRAME",
    "MOT_DISTRACTOR_CLASSES",
    "MOT_PEDESTRIAN",
    "SEQINFO_KEYS",
    "MotTable",
    "box_visibility",
    "mot_lines",
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

SEQINFO_KEYS = ("name", "imDir", "frameRate", "seqLength", "imWidth", "imHeight", "imExt")
"""The ``[Sequence]`` keys of a MOTChallenge ``seqinfo.ini``."""
_SEQINFO_INT = ("frameRate", "seqLength", "imWidth", "imHeight")


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
    results: the score; 1.0 when the file has only 6 columns); ``classes`` column 8 as int (-1 when absent; MOT15
    files carry ``x3d = -1`` there); ``visibility`` column 9 (-1 when absent). ``lines`` are the 1-based line numbers.
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


def _parse_slow(name: str, lines: list[str]) -> None:
    """Locate and raise the first malformed line (the fast path failed)."""
    ncols = None
    for no, line in enumerate(lines, 1):
        fields = line.replace(",", " ").split()
        if not fields:
            continue
        if len(fields) < 6:
            raise FormatError(f"{name}:{no}: expected at least 6 columns (frame,id,x,y,w,h), got {len(fields)}")
        if ncols is not None and len(fields) != ncols:
            raise FormatError(f"{name}:{no}: expected {ncols} columns like the first line, got {len(fields)}")
        ncols = len(fields)
        for k, field in enumerate(fields):
            try:
                float(field)
            except ValueError:
                raise FormatError(f"{name}:{no}: column {k + 1} is not a number: {field!r}") from None
    raise FormatError(f"{name}: unreadable MOT text file")


def read_mot(path: str | Path) -> MotTable:
    """Read a MOTChallenge ``gt.txt`` or tracker result file (comma or whitespace separated).

    Strict: every non-blank line needs the same number (>= 6) of numeric columns; frame must be an integer >= 1, id
    an integer >= 0 or -1 (no identity: MOTChallenge detection files ``det.txt``, ``frame,-1,x,y,w,h,conf[,x,y,z]``),
    the box finite with ``w, h >= 0``; an id >= 0 may occur once per frame (TrackEval ``_check_unique_ids``), id -1
    any number of times. Violations raise :class:`FormatError` naming ``file:line``.
    """
    path = Path(path)
    name = str(path)
    text = path.read_text(encoding="utf-8-sig")
    lines = text.splitlines()
    nonblank = np.array([i + 1 for i, line in enumerate(lines) if line.strip()], dtype=np.int64)
    if len(nonblank) == 0:
        data = np.zeros((0, 10))
    else:
        try:
            data = np.loadtxt(io.StringIO(text.replace(",", " ")), dtype=np.float64, ndmin=2)
        except ValueError:
            _parse_slow(name, lines)
        if data.shape[0] != len(nonblank) or data.shape[1] < 6:
            _parse_slow(name, lines)
    n, ncol = data.shape

    def bad(mask: np.ndarray, why: str) -> None:
        if mask.any():
            k = int(np.argmax(mask))
            raise FormatError(f"{name}:{nonblank[k]}: {why} (row {data[k, :6].tolist()})")

    bad(~np.isfinite(data[:, :6]).all(axis=1), "non-finite value")
    frames, ids = data[:, 0], data[:, 1]
    bad((frames != np.round(frames)) | (frames < 1), "frame must be an integer >= 1")
    bad(frames > MAX_FRAME, f"frame (column 1) must be <= {MAX_FRAME:,} (frame numbers must be in [1, {MAX_FRAME:,}])")
    bad((ids != np.round(ids)) | ((ids < 0) & (ids != -1)), "id must be an integer >= 0 (or -1: no identity)")
    bad((data[:, 4] < 0) | (data[:, 5] < 0), "negative box width or height")
    frames, ids = frames.astype(np.int64), ids.astype(np.int64)
    if n:
        order = np.lexsort((ids, frames))
        dup = (frames[order][1:] == frames[order][:-1]) & (ids[order][1:] == ids[order][:-1]) & (ids[order][1:] >= 0)
        if dup.any():
            k = int(order[1:][np.argmax(dup)])
            raise FormatError(f"{name}:{nonblank[k]}: id {ids[k]} appears twice in frame {frames[k]}")
    col = lambda j, fill: data[:, j] if ncol > j else np.full(n, fill, dtype=np.float64)  # noqa: E731
    return MotTable(
        path=name,
        frames=frames,
        ids=ids,
        boxes=np.ascontiguousarray(data[:, 2:6]),
        conf=col(6, 1.0),
        classes=col(7, -1.0).astype(np.int64),
        visibility=col(8, -1.0),
        lines=nonblank,
    )


def read_seqinfo(path: str | Path, *, required: Sequence[str] = SEQINFO_KEYS) -> dict[str, str | int]:
    """Read the ``[Sequence]`` section of a MOTChallenge ``seqinfo.ini``.

    Returns its ``key=value`` pairs (whitespace stripped, later duplicates win); ``frameRate``, ``seqLength``,
    ``imWidth`` and ``imHeight`` as ``int``, everything else as ``str``. Lines of other sections, blank lines and
    ``;``/``#`` comments are skipped. Raises :class:`FormatError` (one line naming the file, and the line where
    there is one) when the file has no ``[Sequence]`` section, a key of ``required`` (default: all of
    :data:`SEQINFO_KEYS`) is missing, an integer key is not a non-negative integer, or a line is not
    ``[section]`` / ``key=value``.
    """
    path = Path(path)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
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
        if key in _SEQINFO_INT:
            try:
                number = int(value)
            except ValueError:
                number = -1
            if number < 0:
                raise FormatError(f"{name}:{no}: {key} must be a non-negative integer, got {value[:40]!r}")
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
    rows_n = len(table)
    if num_frames is None:
        if seqinfo is not None and "seqLength" in seqinfo:
            num_frames = int(seqinfo["seqLength"])
        else:
            num_frames = int(table.frames.max(initial=0))
    if rows_n and table.frames.max() > num_frames:
        k = int(np.argmax(table.frames))
        raise FormatError(
            f"{table.path}:{table.lines[k]}: frame {table.frames[k]} beyond the sequence length {num_frames}"
        )
    info = seqinfo or {}
    if video is None:
        if "name" in info:
            video = str(info["name"])
        else:
            path = Path(table.path)
            video = path.parent.parent.name if path.parent.name in ("gt", "det") else path.stem
    width, height = int(info.get("imWidth", 0)), int(info.get("imHeight", 0))
    root = Path(seq_dir) if seq_dir is not None else None
    im_dir, im_ext = str(info.get("imDir", "img1")), str(info.get("imExt", ".jpg"))
    frames = [
        Frame(
            video,
            i,
            width,
            height,
            image=root / im_dir / f"{i + 1:06d}{im_ext}" if root is not None else None,
        )
        for i in range(num_frames)
    ]
    if gt:
        flag_on = table.conf.astype(np.int64) != 0
        no_class = table.classes == -1
        person = no_class | (table.classes == MOT_PEDESTRIAN)
        keep = person | np.isin(table.classes, MOT_DISTRACTOR_CLASSES)
        ignore = ~(person & flag_on)
    else:
        keep = np.ones(rows_n, dtype=bool)
        ignore = np.zeros(rows_n, dtype=bool)
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
        frames.extend(mot_to_frames(read_mot(ann), read_seqinfo(seq / "seqinfo.ini"), gt=gt, seq_dir=seq))
    return frames
