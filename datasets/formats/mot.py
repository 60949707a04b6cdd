"""MOTChallenge writers: ``<seq>/gt/gt.txt``, ``<seq>/seqinfo.ini`` and tracker result files.

Ground truth lines are ``frame,id,x,y,w,h,conf,class,visibility`` with 1-based frame numbers
(``Frame.index + 1``), the full box (not clipped: MOT boxes may leave the image), ``conf`` 1 (0 for ignored
instances), ``class`` 1 (pedestrian) and ``visibility`` = area of the visible box inside the full box over
the full box's area. Result lines are ``frame,id,x,y,w,h,score,-1,-1,-1``.

:func:`read_mot` reads either kind (MOT15 10-column, MOT16/17/20 9-column GT, 7- to 10-column results), strictly.
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

__all__ = ["MotTable", "box_visibility", "mot_lines", "read_mot", "write_mot_results", "write_mot_sequence"]


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
    an integer >= 0, the box finite with ``w, h >= 0``; an id may occur once per frame (TrackEval
    ``_check_unique_ids``). Violations raise :class:`FormatError` naming ``file:line``.
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
    bad((ids != np.round(ids)) | (ids < 0), "id must be an integer >= 0")
    bad((data[:, 4] < 0) | (data[:, 5] < 0), "negative box width or height")
    frames, ids = frames.astype(np.int64), ids.astype(np.int64)
    if n:
        order = np.lexsort((ids, frames))
        dup = (frames[order][1:] == frames[order][:-1]) & (ids[order][1:] == ids[order][:-1])
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
