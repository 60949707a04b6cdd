"""Issue 20 fuzz table: malformed HIE-style trees (``labels/<video>/<index>.json`` + ``tracks/<video>.txt``).

A valid two-frame tree is written with :func:`write_hie`; each variant edits frame 0's record (or the track file or a
file name) and must give one ``error:`` line from ``crowdbench data inspect`` naming the file and the object / field
(exit 2, no traceback, nothing written), and a :class:`FormatError` from :func:`read_hie`, the pipeline's reader.
HIE has no reference evaluator reading this tree, so there is no ``--lenient`` here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from badinput import Variant, at_least, delete_at, expect_bad, ids  # tests/ is on sys.path (rootdir import mode)

from crowdbench.datasets.formats.errors import FormatError
from crowdbench.datasets.formats.hie import read_hie, write_hie
from crowdbench.datasets.model import Frame, Instance


def _tree(root: Path) -> Path:
    frames = []
    for t in range(2):
        insts = []
        for k, tid in enumerate((3, 8)):
            kp = np.zeros((14, 3))
            kp[:, 0], kp[:, 1], kp[:, 2] = 20 + 30 * k + np.arange(14), 10 + 5 * np.arange(14), 2
            insts.append(Instance(box=np.array([10 + 30 * k, 5, 40 + 30 * k, 90.0]), keypoints=kp, track_id=tid))
        frames.append(Frame("v1", t, 128, 96, instances=insts))
    return write_hie({"v1": frames}, root)


def _obj(field: str, value: Any, j: int = 0):
    def go(rec: dict) -> None:
        rec["object"][j][field] = value

    return go


def _box(key: str, value: Any):
    def go(rec: dict) -> None:
        rec["object"][0]["bndbox"][key] = value

    return go


def _rec(field: str, value: Any):
    def go(rec: dict) -> None:
        rec[field] = value

    return go


def _drop(*path: Any):
    return delete_at(path)


V = Variant
HIE_VARIANTS = [
    # types
    V("name-number", "types", _obj("name", 3), ("object 0", "'name'")),
    V("name-pattern", "types", _obj("name", "Q-3"), ("object 0", "'name'")),
    V("bndbox-list", "types", _obj("bndbox", [1, 2, 3, 4]), ("object 0", "bndbox")),
    V("bndbox-string", "types", _box("xmin", "10"), ("object 0", "'xmin'")),
    V("bndbox-true", "types", _box("ymax", True), ("object 0", "'ymax'")),
    V("width-float", "types", _rec("size", {"width": 128.5, "height": 96, "depth": 3}), ("'width'",)),
    V("height-string", "types", _rec("size", {"width": 128, "height": "96", "depth": 3}), ("'height'",)),
    V("joint-list", "types", _obj("nose", [1, 2, 0]), ("object 0", "'nose'")),
    V("joint-words", "types", _obj("nose", "a,b,0"), ("object 0", "'nose'")),
    V("joint-flag-word", "types", _obj("chest", "1,2,x"), ("object 0", "'chest'")),
    V("object-not-dict", "types", lambda r: r["object"].__setitem__(0, [1]), ("object 0", "JSON object")),
    V("objects-not-list", "types", _rec("object", {"0": {}}), ("'object' must be a list",)),
    V("ignore-region-string", "types", _rec("ignore_regions", [[1, 2, "x", 4]]), ("ignore region",)),
    # finiteness
    V("bndbox-nan", "finiteness", _box("xmin", float("nan")), ("object 0", "'xmin'")),
    V("bndbox-inf", "finiteness", _box("xmax", float("inf")), ("object 0", "'xmax'")),
    V("joint-nan", "finiteness", _obj("nose", "nan,1,0"), ("object 0", "non-finite")),
    V("joint-inf", "finiteness", _obj("nose", "1,inf,0"), ("object 0", "non-finite")),
    V("ignore-region-nan", "finiteness", _rec("ignore_regions", [[1, 2, float("nan"), 4]]), ("ignore region",)),
    V("bndbox-1e400", "finiteness", _box("ymin", 10**400), ("object 0", "'ymin'")),
    # ranges
    V("xmax-below-xmin", "ranges", _box("xmax", 0), ("object 0", "xmax < xmin")),
    V("ymax-below-ymin", "ranges", _box("ymax", 1), ("object 0", "ymax < ymin")),
    V("flag-2", "ranges", _obj("nose", "1,2,2"), ("object 0", "flag must be -1, 0 or 1")),
    V("flag-minus-2", "ranges", _obj("nose", "1,2,-2"), ("object 0", "flag")),
    V("width-negative", "ranges", _rec("size", {"width": -128, "height": 96, "depth": 3}), ("'width'",)),
    V("track-id-1e30", "ranges", _obj("name", "P-" + "1" + "0" * 30), ("object 0", "int64")),
    V("bndbox-huge", "ranges", _box("xmax", 1e9), ("object 0", "'xmax'")),
    V("joint-huge", "ranges", _obj("nose", "1e9,2,0"), ("object 0", "'nose'", "beyond")),
    # shape
    V("joint-two-values", "shape", _obj("nose", "1,2"), ("object 0", "'nose'")),
    V("joint-four-values", "shape", _obj("nose", "1,2,0,5"), ("object 0", "'nose'")),
    V("ignore-region-3", "shape", _rec("ignore_regions", [[1, 2, 3]]), ("'ignore_regions'",)),
    # references
    V("duplicate-track", "references", _obj("name", "P-8", 0), ("object 1", "P-8 already used")),
    V("track-file-mismatch", "references", lambda r: None, ("(frame, id) pairs differ",), target="tracks"),
    V("bad-file-name", "references", lambda r: None, ("file name must be",), target="name"),
    # required
    V("no-size", "required", _drop("size"), ("'size'",)),
    V("no-height", "required", _drop("size", "height"), ("'height'",)),
    V("missing-joint", "required", _drop("object", 0, "left_ankle"), ("object 0", "left_ankle")),
    V("no-bndbox", "required", _drop("object", 0, "bndbox"), ("object 0", "'bndbox'")),
    V("no-name", "required", _drop("object", 0, "name"), ("object 0", "'name'")),
]


def _broken(v: Variant, root: Path) -> Path:
    """The tree with ``v`` applied; the file the error must name."""
    _tree(root)
    label = root / "labels" / "v1" / "000000.json"
    if v.target == "tracks":
        track = root / "tracks" / "v1.txt"
        lines = track.read_text().splitlines()
        first = lines[0].split(",")
        lines[0] = ",".join([first[0], "77", *first[2:]])  # a track id no label has
        track.write_text("\n".join(lines) + "\n")
        return track
    if v.target == "name":
        bad = label.with_name("0.json")
        label.rename(bad)
        return bad
    rec = json.loads(label.read_text())
    v.mutate(rec)
    label.write_text(json.dumps(rec, allow_nan=True))
    return label


def test_hie_table_covers_every_category() -> None:
    at_least(HIE_VARIANTS, 30)


@pytest.mark.parametrize("v", HIE_VARIANTS, ids=ids(HIE_VARIANTS))
def test_hie_inspect_and_reader_refuse(v: Variant, tmp_path, capsys, monkeypatch) -> None:
    root = tmp_path / "in" / "hie"
    bad = _broken(v, root)
    expect_bad(["data", "inspect", str(root)], tmp_path, capsys, monkeypatch, str(bad), *v.needles)
    with pytest.raises(FormatError, match=re.escape(str(bad))):
        read_hie(root)
