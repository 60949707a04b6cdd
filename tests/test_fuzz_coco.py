"""Issue 20 fuzz table: malformed COCO-style inputs never become a number.

Each variant edits a valid sample (COCO keypoints: ``shared/data/coco_keypoints/test_coco.json`` with jittered
predictions; CrowdPose: the xtcocotools example) and is run through ``crowdbench eval`` and, for ground-truth
variants, ``crowdbench data inspect``: exit 2, one ``error:`` line naming the file, record and field, no
traceback, nothing written. Variants pycocotools accepts and scores run again with ``--lenient``, which must give
pycocotools 2.0.11's stats on the very same files.
"""

from __future__ import annotations

import copy
import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from badinput import Variant, at_least, expect_bad, expect_number, ids
from badinput import delete_at as _del  # tests/ is on sys.path (rootdir mode)
from badinput import set_at as _set

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="shared sample data absent")


def _do(*fns):
    def go(d: Any) -> None:
        for fn in fns:
            fn(d)

    return go


def _dup(key: str, field: str = "id"):
    def go(d: Any) -> None:
        d[key][1][field] = d[key][0][field]

    return go


A0 = "annotations.0"
V = Variant
COCO_VARIANTS = [
    # types
    V("ann-id-float", "types", _set(f"{A0}.id", 1.0), ("annotations[0]", "'id' must be an integer")),
    V("ann-id-string", "types", _set(f"{A0}.id", "7"), ("annotations[0]", "'id' must be an integer")),
    V("image-id-list", "types", _set("images.0.id", [1]), ("images[0]", "'id' must be an integer")),
    V("category-id-string", "types", _set("categories.0.id", "1"), ("categories[0]", "'id'")),
    V("ann-image-id-float", "types", _set(f"{A0}.image_id", 785.0), ("annotations[0]", "'image_id'")),
    V("keypoint-string", "types", _set(f"{A0}.keypoints.0", "3"), ("annotations[0]", "'keypoints'[0]")),
    V("keypoint-null", "types", _set(f"{A0}.keypoints.4", None), ("annotations[0]", "'keypoints'[4]", "null")),
    V("bbox-true", "types", _set(f"{A0}.bbox.1", True), ("annotations[0]", "'bbox'[1]", "true")),
    V("area-string", "types", _set(f"{A0}.area", "big"), ("annotations[0]", "'area'")),
    V("num-keypoints-float", "types", _set(f"{A0}.num_keypoints", 3.5), ("annotations[0]", "'num_keypoints'")),
    V("ann-not-object", "types", _set(A0, [1, 2]), ("annotations[0]", "JSON object")),
    V("score-string", "types", _set("0.score", "high"), ("results[0]", "'score'"), target="pred"),
    V("pred-keypoint-true", "types", _set("0.keypoints.3", True), ("results[0]", "'keypoints'[3]"), target="pred"),
    V("pred-image-id-float", "types", _set("1.image_id", 785.0), ("results[1]", "'image_id'"), target="pred"),
    # finiteness
    V("keypoint-nan", "finiteness", _set(f"{A0}.keypoints.0", math.nan), ("annotations[0]", "'keypoints'[0]", "NaN")),
    V("bbox-inf", "finiteness", _set(f"{A0}.bbox.2", math.inf), ("annotations[0]", "'bbox'[2]", "finite")),
    V("area-minus-inf", "finiteness", _set(f"{A0}.area", -math.inf), ("annotations[0]", "'area'", "finite")),
    V("keypoint-1e400", "finiteness", _set(f"{A0}.keypoints.1", 10**400), ("annotations[0]", "'keypoints'[1]")),
    V("pred-keypoint-nan", "finiteness", _set("2.keypoints.0", math.nan), ("results[2]", "NaN"), target="pred"),
    V("score-nan", "finiteness", _set("0.score", math.nan), ("results[0]", "'score'"), target="pred", lenient=True),
    V("score-inf", "finiteness", _set("3.score", math.inf), ("results[3]", "'score'"), target="pred", lenient=True),
    # ranges
    V("bbox-negative-width", "ranges", _set(f"{A0}.bbox.2", -5.0), ("annotations[0]", "negative"), lenient=True),
    V("area-negative", "ranges", _set(f"{A0}.area", -10.0), ("annotations[0]", "'area'"), lenient=True),
    V("visibility-3", "ranges", _set(f"{A0}.keypoints.2", 3), ("annotations[0]", "visibility 3"), lenient=True),
    V("visibility-minus-1", "ranges", _set(f"{A0}.keypoints.5", -1), ("annotations[0]", "visibility"), lenient=True),
    V("bbox-huge", "ranges", _set(f"{A0}.bbox.0", 1e9), ("annotations[0]", "'bbox'", "beyond")),
    V("ann-id-1e30", "ranges", _set(f"{A0}.id", 10**30), ("annotations[0]", "int64"), lenient=True),
    V("image-id-2e63", "ranges", _do(_set("images.0.id", 2**63), _set(f"{A0}.image_id", 2**63)), ("images[0]",)),
    V("iscrowd-2", "ranges", _set(f"{A0}.iscrowd", 2), ("annotations[0]", "'iscrowd' must be 0 or 1")),
    V("iscrowd-true", "ranges", _set(f"{A0}.iscrowd", True), ("annotations[0]", "'iscrowd'"), lenient=True),
    V("num-keypoints-negative", "ranges", _set(f"{A0}.num_keypoints", -1), ("annotations[0]", "negative")),
    V("image-width-negative", "ranges", _set("images.0.width", -640), ("images[0]", "'width'"), lenient=True),
    # shape
    V("keypoints-50", "shape", lambda d: d["annotations"][0]["keypoints"].pop(), ("annotations[0]", "50 values")),
    V("keypoints-54", "shape", lambda d: d["annotations"][1]["keypoints"].extend([1, 2, 2]), ("annotations[1]",)),
    V("bbox-3", "shape", lambda d: d["annotations"][0]["bbox"].pop(), ("annotations[0]", "'bbox' has 3 values")),
    V("keypoints-object", "shape", _set(f"{A0}.keypoints", {"x": 1}), ("annotations[0]", "'keypoints' must be a list")),
    V("category-16-names", "shape", lambda d: d["categories"][0]["keypoints"].pop(), ("categories[0]", "16 names")),
    V("pred-keypoints-48", "shape", lambda d: d[0]["keypoints"].pop(), ("results[0]", "50 values"), target="pred"),
    # references
    V("ann-unknown-image", "references", _set(f"{A0}.image_id", 999), ("annotations[0]", "999 is not in 'images'")),
    V("ann-unknown-category", "references", _set(f"{A0}.category_id", 9), ("annotations[0]", "'category_id' 9")),
    V("duplicate-ann-id", "references", _dup("annotations"), ("annotations[1]", "duplicate id"), lenient=True),
    V("duplicate-image-id", "references", _dup("images"), ("images[1]", "duplicate id")),
    V("duplicate-category", "references", lambda d: d["categories"].append(dict(d["categories"][0])), ("duplicate",)),
    V("pred-unknown-image", "references", _set("0.image_id", 4242), ("results[0]", "4242"), target="pred"),
    V("pred-unknown-category", "references", _set("0.category_id", 5), ("results[0]", "'category_id' 5"), "pred"),
    # required
    V("no-categories", "required", _del("categories"), ("'categories'",)),
    V("images-not-list", "required", _set("images", {"1": {}}), ("'images' must be a list",)),
    V("gt-is-list", "required", lambda d: [d], ("COCO JSON object",)),
    V("ann-no-bbox", "required", _del(f"{A0}.bbox"), ("annotations[0]", "has no 'bbox'")),
    V("ann-no-keypoints", "required", _del(f"{A0}.keypoints"), ("annotations[0]", "has no 'keypoints'")),
    V("ann-no-image-id", "required", _del(f"{A0}.image_id"), ("annotations[0]", "has no 'image_id'")),
    V(
        "ann-no-num-keypoints",
        "required",
        _del(f"{A0}.num_keypoints"),
        ("annotations[0]", "'num_keypoints'"),
        extra={"inspect": False},
    ),  # fmt: skip  (readers do not need it; pycocotools' ignore rule does)
    V("ann-no-area", "required", _del(f"{A0}.area"), ("annotations[0]", "has no 'area'"), extra={"inspect": False}),
    V("pred-no-score", "required", _del("0.score"), ("results[0]", "has no 'score'"), target="pred"),
    V("pred-no-keypoints", "required", _del("1.keypoints"), ("results[1]", "has no 'keypoints'"), target="pred"),
    V("preds-not-list", "required", lambda d: {"results": d}, ("JSON list",), target="pred"),
]


def _coco_preds(gt: dict) -> list[dict]:
    """Deterministic predictions: each labelled person's keypoints jittered, a score per person, plus a false one."""
    rng = random.Random(0)
    preds = []
    for a in gt["annotations"]:
        if a.get("iscrowd") or not a["num_keypoints"]:
            continue
        kp = [v + (rng.uniform(-4, 4) if j % 3 != 2 else 0) for j, v in enumerate(a["keypoints"])]
        kp[2::3] = [1.0] * (len(kp) // 3)
        preds.append({"image_id": a["image_id"], "category_id": 1, "keypoints": kp, "score": rng.random()})
    preds.append({"image_id": gt["images"][0]["id"], "category_id": 1, "keypoints": [5.0] * 51, "score": 0.99})
    return preds


def _write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, allow_nan=True) if not isinstance(data, str) else data)
    return path


@pytest.fixture(scope="module")
def coco_samples() -> tuple[dict, list]:
    gt = json.loads((DATA / "coco_keypoints" / "test_coco.json").read_text())
    return gt, _coco_preds(gt)


def _files(tmp_path: Path, g: Any, p: Any) -> tuple[Path, Path]:
    d = tmp_path / "in"
    d.mkdir(exist_ok=True)
    return _write(d / "gt.json", g), _write(d / "pred.json", p)


def _variant_files(tmp_path: Path, v: Variant, gt: dict, preds: list) -> tuple[Path, Path, Path]:
    """``_files`` of the samples with ``v`` applied (to copies), and the one of the two files ``v`` edits."""
    g, p = copy.deepcopy(gt), copy.deepcopy(preds)
    if v.target == "gt":
        out = v.mutate(g)
        g = out if isinstance(out, dict | list) else g
    else:
        out = v.mutate(p)
        p = out if isinstance(out, dict) else p
    gf, pf = _files(tmp_path, g, p)
    return gf, pf, gf if v.target == "gt" else pf


def test_coco_table_covers_every_category() -> None:
    at_least(COCO_VARIANTS, 30)


@pytest.mark.parametrize("v", COCO_VARIANTS, ids=ids(COCO_VARIANTS))
def test_coco_keypoints_eval_refuses(v: Variant, coco_samples, tmp_path, capsys, monkeypatch) -> None:
    gf, pf, bad = _variant_files(tmp_path, v, *coco_samples)
    argv = ["eval", "coco-keypoints", "--gt", str(gf), "--pred", str(pf)]
    expect_bad(argv, tmp_path, capsys, monkeypatch, str(bad), *v.needles)


GT_VARIANTS = [v for v in COCO_VARIANTS if v.target == "gt" and v.extra.get("inspect", True)]


@pytest.mark.parametrize("v", GT_VARIANTS, ids=ids(GT_VARIANTS))
def test_coco_inspect_refuses(v: Variant, coco_samples, tmp_path, capsys, monkeypatch) -> None:
    gf, _, _ = _variant_files(tmp_path, v, *coco_samples)
    expect_bad(["data", "inspect", str(gf)], tmp_path, capsys, monkeypatch, str(gf))


def _pycocotools_stats(gt_file: Path, pred_file: Path, iou_type: str) -> list[float]:
    import contextlib
    import io

    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(gt_file))
        ev = COCOeval(coco, coco.loadRes(str(pred_file)), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(s) for s in ev.stats]


LENIENT = [v for v in COCO_VARIANTS if v.lenient]


@pytest.mark.parametrize("v", LENIENT, ids=ids(LENIENT))
def test_coco_lenient_gives_pycocotools_number(v: Variant, coco_samples, tmp_path, capsys) -> None:
    gf, pf, _ = _variant_files(tmp_path, v, *coco_samples)
    out = expect_number(["eval", "coco-keypoints", "--gt", str(gf), "--pred", str(pf), "--lenient"], capsys)
    ref = _pycocotools_stats(gf, pf, "keypoints")
    names = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL")
    assert [out[n] for n in names] == ref


BOX_VARIANTS = [
    V("det-bbox-negative", "ranges", _set("0.bbox.3", -4.0), ("results[0]", "negative"), target="pred", lenient=True),
    V("det-bbox-nan", "finiteness", _set("0.bbox.0", math.nan), ("results[0]", "NaN"), target="pred"),
    V("det-bbox-short", "shape", lambda d: d[1]["bbox"].pop(), ("results[1]", "3 values"), target="pred"),
    V("det-no-bbox", "required", _del("2.bbox"), ("results[2]", "has no 'bbox'"), target="pred"),
]


@pytest.mark.parametrize("v", BOX_VARIANTS, ids=ids(BOX_VARIANTS))
def test_coco_box(v: Variant, tmp_path, capsys, monkeypatch) -> None:
    gt = json.loads((DATA / "coco_keypoints" / "test_coco.json").read_text())
    dets = json.loads((DATA / "coco_keypoints" / "test_coco_det_AP_H_56.json").read_text())
    gf, pf, _ = _variant_files(tmp_path, v, gt, dets)
    argv = ["eval", "coco-box", "--gt", str(gf), "--pred", str(pf)]
    expect_bad(argv, tmp_path, capsys, monkeypatch, str(pf), *v.needles)
    if v.lenient:
        out = expect_number([*argv, "--lenient"], capsys)
        names = ("AP", "AP50", "AP75", "APS", "APM", "APL", "AR1", "AR10", "AR100", "ARS", "ARM", "ARL")
        assert [out[n] for n in names] == _pycocotools_stats(gf, pf, "bbox")


# ------------------------------------------------------------------------------------------------ CrowdPose

CP = DATA / "crowdpose" / "xtcocotools_example"
CROWDPOSE_VARIANTS = [
    v
    for v in COCO_VARIANTS
    if v.name not in ("area-string", "area-minus-inf", "area-negative", "ann-no-area")  # CrowdPose has no 'area'
    and not v.name.startswith(("keypoints-5", "category-16", "pred-keypoints-48"))  # 14-joint shapes below
] + [
    V("crowdindex-nan", "finiteness", _set("images.0.crowdIndex", math.nan), ("images[0]", "'crowdIndex'", "NaN")),
    V("crowdindex-string", "types", _set("images.1.crowdIndex", "hard"), ("images[1]", "'crowdIndex'")),
    V("crowdindex-1.5", "ranges", _set("images.0.crowdIndex", 1.5), ("images[0]", "outside [0, 1]"), lenient=True),
    V(
        "crowdindex-missing",
        "required",
        _del("images.2.crowdIndex"),
        ("images[2]", "has no 'crowdIndex'"),
        extra={"inspect": False},
    ),  # fmt: skip  (only the evaluator needs every image's index)
    V("cp-keypoints-39", "shape", lambda d: d["annotations"][0]["keypoints"].pop(), ("41 values",)),
    V("cp-pred-keypoints-51", "shape", lambda d: d[0]["keypoints"].extend([1, 1, 1] * 3), ("51 values",), "pred"),
]


@pytest.fixture(scope="module")
def crowdpose_samples() -> tuple[dict, list]:
    gt = json.loads((CP / "example_crowdpose_val.json").read_text())
    preds = json.loads((CP / "example_crowdpose_preds.json").read_text())
    gt["annotations"][0]["area"] = 100.0  # the COCO variants edit it (CrowdPose ignores 'area')
    return gt, preds


def _on_sample(v: Variant, gt: dict) -> Variant:
    """The float-image-id variants name the COCO sample's image 785; rebase them onto ``gt``'s first image."""
    if v.name not in ("ann-image-id-float", "pred-image-id-float"):
        return v
    path = f"{A0}.image_id" if v.target == "gt" else "1.image_id"
    return Variant(v.name, v.category, _set(path, float(gt["images"][0]["id"])), v.needles, v.target)


def test_crowdpose_table_covers_every_category() -> None:
    at_least(CROWDPOSE_VARIANTS, 30)


@pytest.mark.parametrize("v", CROWDPOSE_VARIANTS, ids=ids(CROWDPOSE_VARIANTS))
def test_crowdpose_eval_and_inspect_refuse(v: Variant, crowdpose_samples, tmp_path, capsys, monkeypatch) -> None:
    own = v.name.startswith(("crowdindex", "cp-")) or "values" not in "".join(v.needles)
    needles = v.needles if own else v.needles[:1]  # the COCO variants' counts are of 17 joints
    gt, preds = crowdpose_samples
    gf, pf, bad = _variant_files(tmp_path, _on_sample(v, gt), gt, preds)
    expect_bad(
        ["eval", "crowdpose", "--gt", str(gf), "--pred", str(pf)], tmp_path, capsys, monkeypatch, str(bad), *needles
    )
    if v.target == "gt" and v.extra.get("inspect", True):
        needles = () if v.name == "gt-is-list" else needles  # inspect: "unknown dataset format"
        expect_bad(["data", "inspect", str(gf)], tmp_path, capsys, monkeypatch, str(gf), *needles)


def test_crowdpose_lenient_crowd_index(crowdpose_samples, tmp_path, capsys) -> None:
    """A crowd index above 1 is 'hard' for the official API exactly as 1.0 is: --lenient gives that number."""
    gt, preds = crowdpose_samples
    g = copy.deepcopy(gt)
    g["images"][0]["crowdIndex"] = 1.5
    gf, pf = _files(tmp_path, g, preds)
    out = expect_number(["eval", "crowdpose", "--gt", str(gf), "--pred", str(pf), "--lenient"], capsys)
    g["images"][0]["crowdIndex"] = 1.0
    gf, pf = _files(tmp_path, g, preds)
    assert out == expect_number(["eval", "crowdpose", "--gt", str(gf), "--pred", str(pf)], capsys)


# ------------------------------------------------------------------------------------------------ HIE w-AP

HIE_VARIANTS = [
    v for v in CROWDPOSE_VARIANTS if not v.name.startswith("crowdindex") and v.name != "cp-pred-keypoints-51"
] + [
    V("area-string", "types", _set(f"{A0}.area", "big"), ("annotations[0]", "'area'")),
    V("area-minus-inf", "finiteness", _set(f"{A0}.area", -math.inf), ("annotations[0]", "'area'", "finite")),
    V("area-negative", "ranges", _set(f"{A0}.area", -10.0), ("annotations[0]", "'area'"), lenient=True),
    V("ann-no-area", "required", _del(f"{A0}.area"), ("annotations[0]", "has no 'area'")),
    V("video-id-missing", "required", _del("images.1.video_id"), ("images[1]", "'video_id'")),
    V("video-id-list", "types", _set("images.0.video_id", [1]), ("images[0]", "'video_id' must be")),
    V("video-id-null", "types", _set("images.0.video_id", None), ("images[0]",)),
]


@pytest.fixture(scope="module")
def hie_samples(crowdpose_samples) -> tuple[dict, list]:
    """The CrowdPose example as HIE w-AP input: 14 joints, two videos, an OKS ``area`` per annotation."""
    gt, preds = copy.deepcopy(crowdpose_samples)
    for k, im in enumerate(gt["images"]):
        im["video_id"] = f"v{k % 2}"
        del im["crowdIndex"]
    for a in gt["annotations"]:
        a["area"] = float(a["bbox"][2] * a["bbox"][3])
    return gt, preds


def test_hie_table_covers_every_category() -> None:
    at_least(HIE_VARIANTS, 30)


@pytest.mark.parametrize("v", HIE_VARIANTS, ids=ids(HIE_VARIANTS))
def test_hie_wap_eval_refuses(v: Variant, hie_samples, tmp_path, capsys, monkeypatch) -> None:
    own = v.name.startswith(("video", "area", "ann-no-area", "cp-")) or "values" not in "".join(v.needles)
    gt, preds = hie_samples
    gf, pf, bad = _variant_files(tmp_path, _on_sample(v, gt), gt, preds)
    argv = ["eval", "hie-wap", "--gt", str(gf), "--pred", str(pf)]
    expect_bad(argv, tmp_path, capsys, monkeypatch, str(bad), *(v.needles if own else v.needles[:1]))
