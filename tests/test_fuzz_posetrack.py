"""Issue 20 fuzz table: malformed PoseTrack 2018 and 2017 files never become a number.

Each variant edits ``012834_mpii_test.json`` (one frame, 11 people) of a copy of the shared validation folders, in
the ground truth or in the predictions (a copy of the ground truth), and runs ``crowdbench eval posetrack``: exit
2, one ``error:`` line naming the file and the record / field, no traceback, nothing written. Ground-truth variants
also go through ``crowdbench data inspect`` (the pipeline's reader) unless the check needs to know the file is
ground truth (head boxes, visibility). Variants poseval accepts and scores run again with ``--lenient``, which must
give the number of an equivalent clean file (poseval's own behaviour, reasoned per variant: the head size is the
norm of the head box's diagonal, joint ids beyond 14 are never evaluated, visibility only matters as
``x == y == v == 0``).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
from badinput import Variant, at_least, expect_bad, expect_number, ids
from badinput import delete_at as _del  # tests/ is on sys.path (rootdir mode)
from badinput import set_at as _set

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="shared sample data absent")
FILE = "012834_mpii_test.json"


def _retype_image_id(d: dict, value: Any) -> None:
    d["images"][0]["id"] = value
    for a in d["annotations"]:
        a["image_id"] = value


def _flip_head18(d: dict) -> None:
    x, y, w, h = d["annotations"][0]["bbox_head"]
    d["annotations"][0]["bbox_head"] = [x + w, y, -w, h]


def _region18(d: dict, n: int) -> None:
    d["images"][0]["ignore_regions_x"] = [[10, 20, 30][:n]]
    d["images"][0]["ignore_regions_y"] = [[10, 40, 10][:n]]


V = Variant


def _lenient_as(name: str, category: str, path: str, value: Any, needles: tuple, clean: Any, **extra: Any) -> Variant:
    """``path`` set to ``value``, which poseval scores as if it were ``clean``: ``--lenient`` must give the number of
    the file with ``path`` set to ``clean``."""
    return V(name, category, _set(path, value), needles, lenient=True, extra={**extra, "same_as": _set(path, clean)})


A0, A1 = "annotations.0", "annotations.1"
PT18 = [
    # types
    V("image-id-string", "types", _set("images.0.id", "x"), ("images[0]", "expected an integer")),
    V("image-id-float", "types", lambda d: _retype_image_id(d, 10128340000.0), ("images[0]",), lenient=True),
    V("track-id-float", "types", _set(f"{A0}.track_id", 0.0), ("annotations[0]", "track_id"), lenient=True),
    V("track-id-string", "types", _set(f"{A0}.track_id", "0"), ("annotations[0]", "track_id")),
    V("keypoint-string", "types", _set(f"{A0}.keypoints.3", "1"), ("annotations[0]", "keypoints")),
    V("keypoint-true", "types", _set(f"{A0}.keypoints.4", True), ("annotations[0]", "keypoints")),
    V("score-string", "types", _set(f"{A0}.scores", ["high"] + [0.5] * 16), ("annotations[0]", "scores"), "pred"),
    V("head-string", "types", _set(f"{A0}.bbox_head.0", "1"), ("annotations[0]", "bbox_head")),
    V("file-name-number", "types", _set("images.0.file_name", 7), ("images[0]", "file_name")),
    V("annotation-list", "types", _set(A0, [1, 2]), ("annotations[0]", "expected an object")),
    # finiteness
    V("keypoint-nan", "finiteness", _set(f"{A0}.keypoints.3", math.nan), ("annotations[0]", "keypoints", "nan")),
    V("keypoint-inf", "finiteness", _set(f"{A0}.keypoints.4", math.inf), ("annotations[0]", "keypoints")),
    V("head-nan", "finiteness", _set(f"{A0}.bbox_head.2", math.nan), ("annotations[0]", "bbox_head")),
    V("score-nan", "finiteness", _set(f"{A1}.scores", [math.nan] * 17), ("annotations[1]", "scores"), "pred"),
    V("keypoint-1e400", "finiteness", _set(f"{A0}.keypoints.0", 10**400), ("annotations[0]", "keypoints")),
    # ranges
    V("keypoint-1e9", "ranges", _set(f"{A0}.keypoints.0", 1e9), ("annotations[0]", "within")),
    _lenient_as("visibility-3", "ranges", f"{A0}.keypoints.2", 3, ("annotations[0]", "visibility 3"), 1, inspect=False),
    V("head-negative", "ranges", _flip_head18, ("annotations[0]", "x2 < x1"), lenient=True, extra={"inspect": False}),
    V("track-id-2e63", "ranges", _set(f"{A0}.track_id", 2**63), ("annotations[0]", "int64")),
    V("image-id-2e64", "ranges", lambda d: _retype_image_id(d, 2**64), ("images[0]", "int64")),
    # shape
    V("keypoints-50", "shape", lambda d: d["annotations"][0]["keypoints"].pop(), ("annotations[0]", "51 numbers")),
    V("scores-16", "shape", _set(f"{A0}.scores", [0.5] * 16), ("annotations[0]", "scores"), "pred"),
    V("head-3", "shape", lambda d: d["annotations"][0]["bbox_head"].pop(), ("annotations[0]", "bbox_head")),
    V("regions-unequal", "shape", lambda d: d["images"][0]["ignore_regions_y"].append([1, 2, 3]), ("images[0]",)),
    V("region-2-points", "shape", lambda d: _region18(d, 2), ("images[0]", "3 or more points")),
    V("category-16-names", "shape", lambda d: d["categories"][0]["keypoints"].pop(), ("categories",)),
    # references
    V("unknown-image", "references", _set(f"{A0}.image_id", 5), ("annotations[0]", "not in images")),
    V("duplicate-image", "references", lambda d: d["images"].append(dict(d["images"][0])), ("images[1]",)),
    V("duplicate-track", "references", _set(f"{A1}.track_id", 0), ("annotations[1]", "track_id 0 already used")),
    V("duplicate-track-pred", "references", _set(f"{A1}.track_id", 0), ("annotations[1]", "already"), "pred"),
    # required
    V("no-annotations", "required", _del("annotations"), ("'annotations'",)),
    V("no-keypoints", "required", _del(f"{A0}.keypoints"), ("annotations[0]", "'keypoints'")),
    V("no-track-id", "required", _del(f"{A0}.track_id"), ("annotations[0]", "'track_id'"), extra={"inspect": False}),
    V("no-head-box", "required", _del(f"{A0}.bbox_head"), ("annotations[0]", "bbox_head"), extra={"inspect": False}),
    V("no-file-name", "required", _del("images.0.file_name"), ("images[0]", "file_name")),
    V("no-categories", "required", _del("categories"), ("'categories'",)),
    V("category-not-person", "required", _set("categories.0.name", "car"), ("person",)),
]


R0 = "annolist.0.annorect.0"
P0 = f"{R0}.annopoints.0.point.0"


def _flip_head17(d: dict) -> None:
    r = d["annolist"][0]["annorect"][0]
    r["x1"], r["x2"] = r["x2"], r["x1"]


def _region17(d: dict, n: int) -> None:
    d["annolist"][0]["ignore_regions"] = [{"point": [{"x": [10 * k], "y": [5 * k]} for k in range(n)]}]


def _dup_joint(d: dict) -> None:
    pts = d["annolist"][0]["annorect"][0]["annopoints"][0]["point"]
    pts[1]["id"] = list(pts[0]["id"])


PT17 = [
    # types
    V("track-id-string", "types", _set(f"{R0}.track_id", ["a"]), ("annorect[0]", "track_id")),
    _lenient_as("track-id-float", "types", f"{R0}.track_id", [0.0], ("annorect[0]", "track_id"), [0]),
    V("joint-id-string", "types", _set(f"{P0}.id", ["x"]), ("point[0]", "id")),
    V("x-string", "types", _set(f"{P0}.x", ["1"]), ("point[0]", "x")),
    V("x-bare", "types", _set(f"{P0}.x", 1.0), ("point[0]", "'x' must be a one-element list")),
    V("y-true", "types", _set(f"{P0}.y", [True]), ("point[0]", "y")),
    V("image-not-list", "types", _set("annolist.0.image", {"name": "a.jpg"}), ("annolist[0]", "'image'")),
    V("annorect-not-list", "types", _set("annolist.0.annorect", {}), ("annolist[0]", "annorect")),
    # finiteness
    V("x-nan", "finiteness", _set(f"{P0}.x", [math.nan]), ("point[0]", "x")),
    V("y-inf", "finiteness", _set(f"{P0}.y", [math.inf]), ("point[0]", "y")),
    V("score-nan", "finiteness", _set(f"{P0}.score", [math.nan]), ("point[0]", "score"), target="pred"),
    V("head-nan", "finiteness", _set(f"{R0}.x1", [math.nan]), ("annorect[0]", "x1")),
    # ranges
    V(
        "joint-id-15",
        "ranges",
        _set(f"{P0}.id", [15]),
        ("point[0]", "joint id 15"),
        lenient=True,
        extra={"same_as": _del(P0)},
    ),
    V("joint-id-negative", "ranges", _set(f"{P0}.id", [-1]), ("point[0]", "joint id -1")),
    V("x-1e9", "ranges", _set(f"{P0}.x", [1e9]), ("point[0]", "within")),
    _lenient_as("is-visible-3", "ranges", f"{P0}.is_visible", [3], ("point[0]", "is_visible"), [1]),
    V("head-swapped", "ranges", _flip_head17, ("annorect[0]", "x2 < x1"), lenient=True, extra={"inspect": False}),
    V("imgnum-0", "ranges", _set("annolist.0.imgnum", [0]), ("annolist[0]", "imgnum")),
    V("imgnum-1e9", "ranges", _set("annolist.0.imgnum", [10**9]), ("annolist[0]", "imgnum")),
    V("track-id-2e64", "ranges", _set(f"{R0}.track_id", [2**64]), ("annorect[0]", "int64")),
    # shape
    V("x-two-values", "shape", _set(f"{P0}.x", [1, 2]), ("point[0]", "one-element list")),
    V("region-2-points", "shape", lambda d: _region17(d, 2), ("ignore_regions[0]", "3 or more points")),
    V("point-not-object", "shape", _set(P0, [1, 2]), ("point[0]",)),
    # references
    V("duplicate-joint", "references", _dup_joint, ("point[1]", "listed twice")),
    V("duplicate-track", "references", _set("annolist.0.annorect.1.track_id", [0]), ("annorect[1]", "already used")),
    V("duplicate-track-pred", "references", _set("annolist.0.annorect.1.track_id", [0]), ("already",), "pred"),
    # required
    V("no-head-box", "required", _del(f"{R0}.x1"), ("annorect[0]", "head box"), extra={"inspect": False}),
    V("point-no-x", "required", _del(f"{P0}.x"), ("point[0]", "'x'")),
    V("point-no-id", "required", _del(f"{P0}.id"), ("point[0]", "'id'")),
    V("image-no-name", "required", _set("annolist.0.image", [{}]), ("annolist[0]", "'image'")),
    V("no-annolist", "required", lambda d: {"annolists": d["annolist"]}, ()),
]


def _folders(tmp_path: Path, year: str) -> tuple[Path, Path]:
    d = tmp_path / "in"
    src = DATA / f"posetrack{year}" / "annotations" / "val"
    gt, pred = d / "gt", d / "pred"
    if not gt.exists():
        shutil.copytree(src, gt)
        shutil.copytree(src, pred)
    return gt, pred


def _mutate(folder: Path, fn: Any) -> Path:
    path = folder / FILE
    data = json.loads(path.read_text())
    out = fn(data)
    path.write_text(json.dumps(out if isinstance(out, dict) else data, allow_nan=True))
    return path


def test_tables_cover_every_category() -> None:
    at_least(PT18, 30)
    at_least(PT17, 30)


CASES = [("18", v) for v in PT18] + [("17", v) for v in PT17]


@pytest.mark.parametrize(
    ("year", "v"), CASES, ids=[f"pt{y}-{i}" for (y, _), i in zip(CASES, ids(PT18) + ids(PT17), strict=True)]
)
def test_posetrack_refused(year: str, v: Variant, tmp_path, capsys, monkeypatch) -> None:
    gt, pred = _folders(tmp_path, year)
    bad = _mutate(gt if v.target == "gt" else pred, v.mutate)
    argv = ["eval", "posetrack", "--gt", str(gt), "--pred", str(pred)]
    expect_bad(argv, tmp_path, capsys, monkeypatch, str(bad), *v.needles)
    if v.target == "gt" and v.extra.get("inspect", True):
        expect_bad(["data", "inspect", str(bad)], tmp_path, capsys, monkeypatch, str(bad))
    if v.lenient:
        got = expect_number([*argv, "--lenient"], capsys)
        same = v.extra.get("same_as")
        if v.name.startswith("head-"):
            same = None  # the swapped corners' own file, corrected back below
        gt2, pred2 = _folders(tmp_path / "clean", year)
        if same is not None:
            _mutate(gt2 if v.target == "gt" else pred2, same)
        want = expect_number(["eval", "posetrack", "--gt", str(gt2), "--pred", str(pred2)], capsys)
        assert got["ap"] == want["ap"] and got["mot"] == want["mot"]
