"""MOTChallenge writers: ``<seq>/gt/gt.txt``, ``<seq>/seqinfo.ini`` and tracker result files.

Ground truth lines are ``frame,id,x,y,w,h,conf,class,visibility`` with 1-based frame numbers
(``Frame.index + 1``), the full box (not clipped: MOT boxes may leave the image), ``conf`` 1 (0 for ignored
instances), ``class`` 1 (pedestrian) and ``visibility`` = area of the visible box inside the full box over
the full box's area. Result lines are ``frame,id,x,y,w,h,score,-1,-1,-1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from crowdbench.datasets.formats.atomic import atomic_write_text
from crowdbench.datasets.model import Frame, Instance

__all__ = ["box_visibility", "mot_lines", "write_mot_results", "write_mot_sequence"]


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
