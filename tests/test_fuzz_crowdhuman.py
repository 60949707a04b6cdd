"""Issue 20, CrowdHuman: a table of malformed ``.odgt`` ground truth, detections and ``id_hw`` files.

Every variant goes through ``crowdbench eval crowdhuman`` (and, for ground-truth variants, ``crowdbench data
inspect``): exit 2, one ``error:`` line naming the file, the line / record and the field, no traceback, nothing
written. Variants that CrowdDet's evaluation code accepts and scores (``lenient=True``: negative box sizes, boxes
beyond the 1e6 px bound, ignore flags other than 0/1) must give, with ``--lenient``, CrowdDet's own AP / mMR / JI:
computed here with CrowdDet's code when it is under ``benchmarks/reference`` (see benchmarks/README.md), else the
values recorded below (which the same test checks against CrowdDet's code whenever it is there). Every other variant
is refused with ``--lenient`` too. A few ground-truth variants also go through ``crowdbench data check`` and the
table pipeline's reader (``load_split``), which share the readers' checks.
"""

from __future__ import annotations

import copy
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from badinput import Variant, at_least, expect_bad, expect_number, ids
from badinput import delete_at as _delete  # tests/ is on sys.path
from badinput import set_at as _set

from crowdbench.bench.cli import main
from crowdbench.bench.metrics.crowdhuman import JI_SCORE_THRESHOLDS, evaluate_crowdhuman
from crowdbench.datasets.formats.crowdhuman import DetectionRecord, read_odgt
from crowdbench.datasets.formats.errors import FormatError
from crowdbench.datasets.layout import load_split
from crowdbench.datasets.model import Frame, Instance

REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("CROWDDET_EVAL", REPO / "benchmarks" / "reference"))

# ------------------------------------------------------------------------------------------------ the clean sample

A, B = "284193,faa9000f2678b5e", "283554,35288000868e92d4"  # CrowdHuman-style IDs
SIZES = {A: (800, 1000), B: (480, 640)}  # (height, width)


def _gtbox(fbox: list[float], k: int, tag: str = "person", ignore: int | None = None) -> dict[str, Any]:
    x, y, w, h = fbox
    extra: dict[str, Any] = {"box_id": k, "occ": 0}
    if ignore is not None:
        extra["ignore"] = ignore
    return {
        "tag": tag,
        "fbox": fbox,
        "vbox": [x + 2, y + 2, w - 4, h - 10],
        "hbox": [x + w / 4, y, w / 2, h / 6],
        "head_attr": {"ignore": 0, "occ": 0, "unsure": 0},
        "extra": extra,
    }


def clean_gt() -> list[dict[str, Any]]:
    """Two images as in annotation_val.odgt (no width / height: they come from id_hw): 4 + 3 people, an ignored
    person and a mask region."""
    a = [[100, 100, 80, 200], [300, 120, 90, 210], [500, 100, 85, 220], [700, 150, 70, 180]]
    b = [[50, 60, 100, 250], [200, 40, 110, 260], [400, 80, 90, 240]]
    boxes_a = [_gtbox(f, k) for k, f in enumerate(a)]
    boxes_a += [_gtbox([850, 500, 120, 200], 4, tag="mask", ignore=1), _gtbox([20, 500, 60, 150], 5, ignore=1)]
    return [{"ID": A, "gtboxes": boxes_a}, {"ID": B, "gtboxes": [_gtbox(f, k) for k, f in enumerate(b)]}]


def clean_pred() -> list[dict[str, Any]]:
    """CrowdDet result lines: TPs, a false positive per image, a detection inside the mask (dropped)."""
    det_a = [
        ([100, 100, 80, 200], 0.95),
        ([305, 125, 88, 205], 0.9),
        ([880, 550, 50, 100], 0.8),
        ([600, 600, 50, 100], 0.7),
        ([495, 110, 85, 215], 0.6),
    ]
    det_b = [([52, 58, 98, 250], 0.85), ([205, 45, 100, 255], 0.5), ([500, 300, 60, 120], 0.4)]
    det_b.append(([400, 80, 90, 240], 0.3))
    return [
        {
            "ID": rid,
            "height": SIZES[rid][0],
            "width": SIZES[rid][1],
            "dtboxes": [dict(box=b, score=s, tag=1) for b, s in d],
        }
        for rid, d in ((A, det_a), (B, det_b))
    ]


def clean_id_hw() -> dict[str, list[int]]:
    return {rid: list(hw) for rid, hw in SIZES.items()}


CLEAN = {"AP": 0.617687074829932, "mMR": 0.48985370448747023, "JI": 0.6749998462500355}

# ------------------------------------------------------------------------------------------------- the variants


def _text(text: str) -> Callable[[Any], str]:
    return lambda data: text


def _append_copy(i: int) -> Callable[[Any], None]:
    return lambda data: data.append(copy.deepcopy(data[i]))


def _coco(image_id: Any, bbox: tuple[int, ...] = (1, 2, 3, 4), **fields: Any) -> Callable[[Any], str]:
    """Detections as one COCO-style result record (``image_id``, ``bbox``, then ``fields``) instead of CrowdDet's."""
    return lambda data: json.dumps([{"image_id": image_id, "bbox": list(bbox), **fields}])


def _update(record: int, **fields: Any) -> Callable[[Any], None]:
    return lambda data: data[record].update(**fields)


G = "gt.odgt"
P = "pred.json"
H = "id_hw.json"
NEG = "is negative"
BEYOND = "1000000"
FIN = "must be a finite number"


def _field(file: str, boxes: str, record: int, box: int, key: str, value: Any, *more: str) -> tuple[Any, ...]:
    """``mutate`` and ``needles`` of a variant setting ``key`` (``"fbox.2"``: item 2 of the list; ``"extra.ignore"``) of
    box ``box`` of record ``record``: the error names the file's line, the box and the field."""
    keys = [int(k) if k.isdigit() else k for k in key.split(".")]
    field = ".".join(k for k in keys if isinstance(k, str))
    return _set((record, boxes, box, *keys), value), (f"{file}:{record + 1}:", f"{boxes}[{box}]: '{field}'", *more)


def _gt_field(record: int, box: int, key: str, value: Any, *more: str) -> tuple[Any, ...]:
    """:func:`_field` of a ground-truth box (``gtboxes`` in gt.odgt)."""
    return _field(G, "gtboxes", record, box, key, value, *more)


def _dt_field(record: int, box: int, key: str, value: Any, *more: str) -> tuple[Any, ...]:
    """:func:`_field` of a detection (``dtboxes`` in pred.json)."""
    return _field(P, "dtboxes", record, box, key, value, *more)


V = Variant

# Recorded CrowdDet numbers (AP, mMR, JI) of the lenient variants; checked against CrowdDet's code when present.
LENIENT_EXPECT: dict[str, dict[str, float]] = {
    "fbox-negative-width": {"AP": 0.33784013605442176, "mMR": 0.8231090522290833, "JI": 0.541666545138917},
    "fbox-negative-height": {"AP": 0.3973639455782313, "mMR": 0.7142857142857143, "JI": 0.49999990000002004},
    "mask-fbox-negative-width": {"AP": 0.5670918367346938, "mMR": 0.5714285714285714, "JI": 0.6249998645833637},
    "fbox-x-beyond-bound": {"AP": 0.37355442176870746, "mMR": 0.9279553995895209, "JI": 0.541666545138917},
    "fbox-width-beyond-bound": {"AP": 0.5130952380952382, "mMR": 0.48985370448747023, "JI": 0.6333331622222713},
    "vbox-negative-height": CLEAN,
    "hbox-negative-width": CLEAN,
    "extra-ignore-2": {"AP": 0.5986111111111112, "mMR": 0.3916905184686362, "JI": 0.7999996900001369},
    "head-attr-ignore-minus-1": CLEAN,
    "det-box-negative-width": {"AP": 0.3973639455782313, "mMR": 0.7142857142857143, "JI": 0.49999990000002004},
    "det-box-height-beyond-bound": CLEAN,  # clipped to the image: still the same false positive
}

VARIANTS: list[Variant] = [
    # ---- types
    V("gt-id-bool", "types", _set((0, "ID"), True), (f"{G}:1:", "'ID'")),
    V("gt-id-float", "types", _set((1, "ID"), 1.5), (f"{G}:2:", "'ID'")),
    V("gt-id-beyond-int64", "types", _set((1, "ID"), 2**70), (f"{G}:2:", "'ID'", "int64")),
    V("gtboxes-object", "types", _set((0, "gtboxes"), {"a": 1}), (f"{G}:1:", "'gtboxes' must be a list")),
    V("gtbox-string", "types", _set((1, "gtboxes", 2), "box"), (f"{G}:2:", "gtboxes[2] must be a JSON object")),
    V("tag-number", "types", *_gt_field(0, 1, "tag", 1)),
    V("fbox-string-value", "types", *_gt_field(0, 0, "fbox.2", "80", FIN)),
    V("fbox-true", "types", *_gt_field(1, 1, "fbox.0", True, FIN)),
    V("extra-list", "types", *_gt_field(0, 3, "extra", [])),
    V("extra-ignore-true", "types", *_gt_field(0, 4, "extra.ignore", True)),
    V("head-attr-string", "types", *_gt_field(1, 0, "head_attr", "x")),
    V("record-width-string", "types", _update(0, width="1000", height=800), (f"{G}:1:", "'width'")),
    V("record-not-object", "types", lambda d: d.insert(1, [1, 2]), (f"{G}:2:", "expected a JSON object")),
    V("det-score-string", "types", *_dt_field(0, 1, "score", "0.9", FIN), "pred"),
    V("det-box-true", "types", *_dt_field(1, 0, "box.3", True, FIN), "pred"),
    V("det-id-list", "types", _set((1, "ID"), [1]), (f"{P}:2:", "'ID'"), "pred"),
    V("dtboxes-object", "types", _set((0, "dtboxes"), {}), (f"{P}:1:", "dtboxes must be a list"), "pred"),
    V("id-hw-string", "types", _set((A, 0), "800"), (H, f"ID {A!r}", "height"), "id_hw"),
    V("coco-image-id-bool", "types", _coco(True, score=1), (P, "record 0", "'image_id'"), "pred"),
    # ---- finiteness
    V("fbox-nan", "finiteness", *_gt_field(0, 2, "fbox.1", math.nan, FIN)),
    V("fbox-inf", "finiteness", *_gt_field(1, 0, "fbox.3", math.inf, FIN)),
    V("hbox-minus-inf", "finiteness", *_gt_field(0, 1, "hbox.0", -math.inf, FIN)),
    V(
        "vbox-1e400",
        "finiteness",
        lambda d: json.dumps(d[0]).replace("[102, 102,", "[1e400, 102,", 1),
        (f"{G}:1:", "gtboxes[0]: 'vbox'", FIN),
    ),
    V("fbox-int-beyond-float", "finiteness", *_gt_field(1, 2, "fbox.2", 10**400, FIN)),
    V("mask-fbox-nan", "finiteness", *_gt_field(0, 4, "fbox.0", math.nan, FIN)),
    V("det-score-nan", "finiteness", *_dt_field(0, 2, "score", math.nan, FIN), "pred"),
    V("det-box-inf", "finiteness", *_dt_field(1, 3, "box.2", math.inf, FIN), "pred"),
    V("coco-score-inf", "finiteness", _coco(A, score=math.inf), (P, f"image_id {A!r}", "'score'", FIN), "pred"),
    # ---- ranges (the lenient ones: CrowdDet scores them)
    V("fbox-negative-width", "ranges", *_gt_field(0, 1, "fbox.2", -5, "width -5", NEG), lenient=True),
    V("fbox-negative-height", "ranges", *_gt_field(1, 0, "fbox.3", -250, "height -250", NEG), lenient=True),
    V("mask-fbox-negative-width", "ranges", *_gt_field(0, 4, "fbox.2", -120, NEG), lenient=True),
    V("fbox-x-beyond-bound", "ranges", *_gt_field(0, 0, "fbox.0", 5e6, "x", BEYOND), lenient=True),
    V("fbox-width-beyond-bound", "ranges", *_gt_field(1, 2, "fbox.2", 2e6, "width", BEYOND), lenient=True),
    V("vbox-negative-height", "ranges", *_gt_field(0, 2, "vbox.3", -1, NEG), lenient=True),
    V("hbox-negative-width", "ranges", *_gt_field(1, 1, "hbox.2", -3.5, NEG), lenient=True),
    V("extra-ignore-2", "ranges", *_gt_field(1, 2, "extra.ignore", 2, "0 or 1"), lenient=True),
    V("head-attr-ignore-minus-1", "ranges", *_gt_field(0, 0, "head_attr.ignore", -1), lenient=True),
    V("det-box-negative-width", "ranges", *_dt_field(1, 0, "box.2", -98, NEG), "pred", lenient=True),
    V("det-box-height-beyond-bound", "ranges", *_dt_field(0, 3, "box.3", 3e6, "height", BEYOND), "pred", lenient=True),
    V("record-width-negative", "ranges", _update(1, width=-5, height=480), (f"{G}:2:", "'width'", "non-negative")),
    V("record-height-absurd", "ranges", _update(0, width=1000, height=10**6), (f"{G}:1:", "'height'", "100000")),
    V("det-width-negative", "ranges", _set((0, "width"), -1), (f"{P}:1:", "'width'"), "pred"),
    V("id-hw-absurd", "ranges", _set((B, 0), 10**7), (H, f"ID {B!r}", "height", "100000"), "id_hw"),
    V("id-hw-negative", "ranges", _set((A, 1), -3), (H, f"ID {A!r}", "width"), "id_hw"),
    # ---- shape
    V("fbox-3-values", "shape", *_gt_field(0, 0, "fbox", [1, 2, 3], "list of 4")),
    V(
        "fbox-5-values",
        "shape",
        lambda d: d[1]["gtboxes"][1]["fbox"].append(7),
        (f"{G}:2:", "gtboxes[1]: 'fbox'", "list of 4"),
    ),
    V("fbox-nested", "shape", *_gt_field(0, 2, "fbox", [[1, 2], [3, 4]])),
    V("vbox-string", "shape", *_gt_field(1, 0, "vbox", "1,2,3,4", "list of 4")),
    V("det-box-2-values", "shape", *_dt_field(1, 1, "box", [1, 2], "list of 4"), "pred"),
    V("id-hw-one-value", "shape", _set((A,), [800]), (H, f"ID {A!r}", "[height, width]"), "id_hw"),
    V(
        "coco-bbox-3-values",
        "shape",
        _coco(B, (1, 2, 3), score=0.5),
        (P, f"image_id {B!r}", "'bbox'", "list of 4"),
        "pred",
    ),
    # ---- references
    V("gt-duplicate-id", "references", _append_copy(0), (f"{G}:3:", "duplicate ID", "line 1")),
    V(
        "det-unknown-id",
        "references",
        _set((1, "ID"), "nowhere,123"),
        (f"{P}:2:", "'nowhere,123'", "not in the ground truth"),
        "pred",
    ),
    V("det-duplicate-id", "references", _append_copy(1), (f"{P}:3:", "duplicate ID", "line 2"), "pred"),
    V(
        "coco-unknown-image-id",
        "references",
        _coco(7, score=0.5),
        (P, "record 0", "'7'", "not in the ground truth"),
        "pred",
    ),
    # ---- required
    V("gt-no-id", "required", _delete((1, "ID")), (f"{G}:2:", "no 'ID'")),
    V("gt-no-gtboxes", "required", _delete((0, "gtboxes")), (f"{G}:1:", "no 'gtboxes'")),
    V("gtbox-no-fbox", "required", _delete((0, "gtboxes", 3, "fbox")), (f"{G}:1:", "gtboxes[3] has no 'fbox'")),
    V("gtbox-no-tag", "required", _delete((1, "gtboxes", 1, "tag")), (f"{G}:2:", "gtboxes[1] has no 'tag'")),
    V("width-without-height", "required", _update(1, width=640), (f"{G}:2:", "'width' but no 'height'")),
    V("det-no-dtboxes", "required", _delete((0, "dtboxes")), (f"{P}:1:", "no 'dtboxes'"), "pred"),
    V(
        "det-no-score",
        "required",
        _delete((1, "dtboxes", 2, "score")),
        (f"{P}:2:", "dtboxes[2] has no 'score'"),
        "pred",
    ),
    V("det-no-box", "required", _delete((0, "dtboxes", 0, "box")), (f"{P}:1:", "dtboxes[0] has no 'box'"), "pred"),
    V("det-empty-file", "required", _text(""), (P, "no detection records"), "pred"),
    V("det-blank-lines-only", "required", _text("\n  \n"), (P, "no detection records"), "pred"),
    V("det-empty-coco-list", "required", _text("[]"), (P, "no detection records"), "pred"),
    V("coco-no-score", "required", _coco(A), (P, "record 0", "no 'score'"), "pred"),
]

# ------------------------------------------------------------------------------------------------------ running


def _dump(target: str, data: Any) -> str:
    if isinstance(data, str):
        return data
    if target == "id_hw":
        return json.dumps(data)
    return "".join(json.dumps(r) + "\n" for r in data)


def _inputs(tmp_path: Path, variant: Variant | None) -> dict[str, Path]:
    """gt.odgt, pred.json and id_hw.json under ``tmp_path/in``, the variant's target mutated."""
    folder = tmp_path / "in"
    folder.mkdir(exist_ok=True)
    data = {"gt": clean_gt(), "pred": clean_pred(), "id_hw": clean_id_hw()}
    names = {"gt": G, "pred": P, "id_hw": H}
    if variant is not None:
        out = variant.mutate(data[variant.target])
        if out is not None:
            data[variant.target] = out
    paths = {}
    for key, name in names.items():
        paths[key] = folder / name
        paths[key].write_text(_dump(key, data[key]))
    return paths


def _eval_argv(p: dict[str, Path]) -> list[str]:
    return ["eval", "crowdhuman", "--gt", str(p["gt"]), "--pred", str(p["pred"]), "--id-hw", str(p["id_hw"])]


def _reference_numbers(p: dict[str, Path]) -> dict[str, float] | None:
    """CrowdDet's AP / mMR / JI on the files (as tools/test.py + compute_APMR / compute_JI run it), or None when its
    code is not under ``REFERENCE``."""
    if not (REFERENCE / "crowddet_eval").is_dir():
        return None
    pytest.importorskip("tqdm")  # imported by CrowdDet's compute_JI
    sys.path.insert(0, str(REFERENCE))
    try:
        from crowddet_eval import compute_JI
        from crowddet_eval.APMRToolkits import Database
    finally:
        sys.path.remove(str(REFERENCE))
    gts = [json.loads(line) for line in p["gt"].read_text().splitlines()]
    dts = [json.loads(line) for line in p["pred"].read_text().splitlines()]
    db = Database(str(p["gt"]), str(p["pred"]), "box", None, 0)
    db.compare()
    with np.errstate(divide="ignore", invalid="ignore"):
        ap, mmr = db.eval_AP()[0], db.eval_MR()[0]

    class Queue(list):
        def put_nowait(self, item: Any) -> None:
            self.append(item)

    records = []
    for g, d in zip(gts, dts, strict=True):  # tools/test.py stores the GT beside the detections, tag -1 = ignore
        tags = [-1 if b["tag"] != "person" or b["extra"].get("ignore", 0) != 0 else 1 for b in g["gtboxes"]]
        records.append(dict(d, gtboxes=[{"box": b["fbox"], "tag": t} for b, t in zip(g["gtboxes"], tags, strict=True)]))
    ji = []
    for s in JI_SCORE_THRESHOLDS:
        q = Queue()
        compute_JI.compute_JI_with_ignore(q, records, s, "box")
        ji.append(compute_JI.gather(q)[1])
    return {"AP": float(ap), "mMR": float(mmr), "JI": float(max(ji))}


def _close(got: dict[str, Any], want: dict[str, float]) -> None:
    for key in ("AP", "mMR", "JI"):
        assert got[key] == pytest.approx(want[key], abs=1e-9), (key, got[key], want[key])


def test_table_covers_every_category():
    at_least(VARIANTS, 30)
    assert {v.name for v in VARIANTS if v.lenient} == set(LENIENT_EXPECT)


def test_clean_sample_gives_the_recorded_numbers(tmp_path, capsys):
    p = _inputs(tmp_path, None)
    got = expect_number(_eval_argv(p), capsys)
    _close(got, CLEAN)
    ref = _reference_numbers(p)
    if ref is not None:
        _close(ref, CLEAN)
    assert expect_number([*_eval_argv(p), "--lenient"], capsys) == got  # clean data: --lenient changes nothing


@pytest.mark.parametrize("variant", VARIANTS, ids=ids(VARIANTS))
def test_variant(variant, tmp_path, capsys, monkeypatch):
    p = _inputs(tmp_path, variant)
    target = p[variant.target]
    needles = (str(target), *variant.needles)
    expect_bad(_eval_argv(p), tmp_path, capsys, monkeypatch, *needles)
    if variant.target == "gt":
        expect_bad(["data", "inspect", str(target)], tmp_path, capsys, monkeypatch, *needles)
    if not variant.lenient:
        expect_bad([*_eval_argv(p), "--lenient"], tmp_path, capsys, monkeypatch, *needles)
        return
    got = expect_number([*_eval_argv(p), "--lenient"], capsys)
    want = LENIENT_EXPECT[variant.name]
    ref = _reference_numbers(p)
    if ref is not None:
        _close(ref, want)  # the recorded value is CrowdDet's
    _close(got, want)


def test_negative_fbox_no_longer_changes_ap_silently(tmp_path, capsys, monkeypatch):
    # the case: a person's fbox with negative width turned AP into a lower number without a word
    variant = next(v for v in VARIANTS if v.name == "fbox-negative-width")
    p = _inputs(tmp_path, variant)
    err = expect_bad(_eval_argv(p), tmp_path, capsys, monkeypatch, f"{p['gt']}:1: gtboxes[1]: 'fbox' width -5")
    assert err.endswith("is negative")
    assert expect_number([*_eval_argv(p), "--lenient"], capsys)["AP"] < CLEAN["AP"]


def _frames() -> tuple[list[Frame], list[DetectionRecord]]:
    gt = [Frame(A, 0, 1000, 800, instances=[Instance([10, 10, 50, 90]), Instance([100, 10, 140, 90])])]
    dets = [DetectionRecord(A, [[10, 10, 50, 90], [100, 10, 140, 90]], [0.9, 0.8], 1000, 800)]
    return gt, dets


def test_python_api_checks_in_memory_frames():
    gt, dets = _frames()
    clean = evaluate_crowdhuman(gt, dets)
    gt[0].instances[1].box = np.array([100.0, 10.0, 95.0, 90.0])  # x2 < x1: width -5
    with pytest.raises(FormatError, match=r"ground truth: image '.*': box 1: width -5(\.0)? is negative"):
        evaluate_crowdhuman(gt, dets)
    lenient = evaluate_crowdhuman(gt, dets, lenient=True)
    assert lenient.AP < clean.AP and lenient.num_gt == clean.num_gt  # a miss, as CrowdDet counts it
    dets[0].scores[0] = np.nan
    with pytest.raises(FormatError, match=r"detections: image '.*': box 0: score nan is not finite"):
        evaluate_crowdhuman(gt, dets, lenient=True)


def test_reader_lenient_keyword(tmp_path):
    p = _inputs(tmp_path, next(v for v in VARIANTS if v.name == "fbox-negative-width"))
    with pytest.raises(FormatError, match="is negative"):
        read_odgt(p["gt"])
    frames = read_odgt(p["gt"], lenient=True)
    np.testing.assert_array_equal(frames[0].instances[1].box, [300, 120, 295, 330])


DATA_CHECK = ("tag-number", "fbox-nan", "fbox-negative-width", "fbox-3-values", "gt-duplicate-id", "gtbox-no-tag")


@pytest.mark.parametrize("name", DATA_CHECK)
def test_data_check_and_pipeline_reader_share_the_checks(name, tmp_path, capsys, monkeypatch):
    """``data check`` and the table pipeline's reader (``load_split``) refuse ground-truth variants as ``eval`` does."""
    variant = next(v for v in VARIANTS if v.name == name)
    gt = tmp_path / "root" / "crowdhuman" / "annotation_train.odgt"
    gt.parent.mkdir(parents=True)
    data = clean_gt()
    out = variant.mutate(data)
    gt.write_text(_dump("gt", data if out is None else out))
    monkeypatch.delenv("CROWDBENCH_DEBUG", raising=False)
    assert main(["data", "check", "--data-root", str(tmp_path / "root"), "--table", "hie-pose/table3"]) == 1
    text = capsys.readouterr().out
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if line.startswith("unreadable: ")]
    assert len(lines) == 1 and str(gt) in lines[0], text
    for needle in variant.needles:
        assert needle.replace(G, gt.name) in lines[0], (needle, lines[0])
    with pytest.raises(FormatError) as err:
        load_split(tmp_path / "root", "crowdhuman", "train")
    assert str(err.value) in lines[0]
