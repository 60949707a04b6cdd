"""Issue 20 fuzz table for MOTChallenge files (datasets/formats/mot.py, the one validation layer of the format).

Each malformed variant of a tiny valid sequence (``SEQ-01``: ``gt/gt.txt``, ``seqinfo.ini`` and a tracker result
file) goes through ``crowdbench eval mot`` and, for the ground truth and seqinfo, ``crowdbench data inspect``:
exit 2, one ``error:`` line naming the file, the line and the field, nothing written. With ``--lenient``, a variant
TrackEval accepts gives TrackEval's number (PyPI ``trackeval`` run in-process on the same files); every other
variant is still refused.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from badinput import Variant, at_least, expect_bad, expect_number, ids

from crowdbench.datasets.formats.errors import FormatError
from crowdbench.datasets.formats.mot import read_mot, read_mot_frames

HAVE_TE = importlib.util.find_spec("trackeval") is not None

SEQ = "SEQ-01"
SEQ_LENGTH = 4
# frame,id,x,y,w,h,conf,class,visibility; row k is line k + 1. Frames 1-3 have predictions, frame 4 none; row 4 is a
# static person (class 7: a distractor), zero-marked.
GT = [
    "1,1,10,10,20,40,1,1,1",
    "1,2,100,10,20,40,1,1,0.5",
    "2,1,12,10,20,40,1,1,1",
    "2,2,102,10,20,40,1,1,1",
    "2,3,200,10,20,40,0,7,1",
    "3,1,14,10,20,40,1,1,1",
    "3,2,104,10,20,40,1,1,0.25",
    "4,1,16,10,20,40,1,1,1",
    "4,2,106,10,20,40,1,1,1",
]
# frame,id,x,y,w,h,score,-1,-1,-1: an identity switch in frame 2, a prediction on the distractor, a false positive.
PRED = [
    "1,1,10,10,20,40,0.9,-1,-1,-1",
    "1,2,101,10,20,40,0.8,-1,-1,-1",
    "2,1,12,10,20,40,0.9,-1,-1,-1",
    "2,3,102,10,20,40,0.8,-1,-1,-1",
    "2,4,200,10,20,40,0.6,-1,-1,-1",
    "3,1,14,11,20,40,0.9,-1,-1,-1",
    "3,3,150,10,20,40,0.7,-1,-1,-1",
]
SEQINFO = [
    "[Sequence]",
    f"name={SEQ}",
    "imDir=img1",
    "frameRate=30",
    f"seqLength={SEQ_LENGTH}",
    "imWidth=640",
    "imHeight=480",
    "imExt=.jpg",
]


def rows(lines: list[str]) -> list[list[str]]:
    return [line.split(",") for line in lines]


def setv(row: int, col: int, value: str):
    """Set field ``col`` (0-based) of row ``row``."""

    def mutate(sample):
        sample[row][col] = value

    return mutate


def seqinfo_line(key: str, value: str | None):
    """Replace (``value``) or drop (``None``) a ``seqinfo.ini`` key."""

    def mutate(lines):
        i = next(i for i, line in enumerate(lines) if line.startswith(f"{key}="))
        if value is None:
            del lines[i]
        else:
            lines[i] = f"{key}={value}"

    return mutate


def text(value: str):
    return lambda sample: value


def gt(name, category, mutate, *needles, lenient=False, **extra):
    return Variant(f"gt-{name}", category, mutate, needles, "gt", lenient, extra)


def pred(name, category, mutate, *needles, lenient=False, **extra):
    return Variant(f"pred-{name}", category, mutate, needles, "pred", lenient, extra)


def ini(name, category, mutate, *needles):
    return Variant(f"seqinfo-{name}", category, mutate, needles, "seqinfo")


def _extend(rows_: list[list[str]], *fields: str) -> None:
    for r in rows_:
        r.extend(fields)


def _truncate(n: int):
    def mutate(sample):
        for r in sample:
            del r[n:]

    return mutate


def _dup(src: int, frame_row: int):
    """Row ``src`` again, with the frame and id of row ``frame_row`` (same id twice in that frame)."""

    def mutate(sample):
        new = list(sample[src])
        new[0], new[1] = sample[frame_row][0], sample[frame_row][1]
        sample.append(new)

    return mutate


VARIANTS: list[Variant] = [
    # ------------------------------------------------------------------------------------------------------ types
    gt("id-1e30", "types", setv(2, 1, "1e30"), "gt.txt:3: id (column 2) 1e30", "int64"),
    pred("id-10-to-30", "types", setv(0, 1, "1" + "0" * 30), "SEQ-01.txt:1: id (column 2)", "int64"),
    pred("id-2-to-63", "types", setv(5, 1, str(2**63)), "SEQ-01.txt:6: id (column 2) 9223372036854775808", "int64"),
    gt("id-fraction", "types", setv(3, 1, "2.5"), "gt.txt:4: id (column 2) 2.5 is not an integer"),
    gt("id-huge-fraction", "types", setv(3, 1, "12345678901234567.5"), "gt.txt:4: id (column 2)", "not an integer"),
    gt("frame-fraction", "types", setv(5, 0, "2.5"), "gt.txt:6: frame (column 1) 2.5 is not an integer"),
    gt("x-word", "types", setv(1, 2, "ten"), "gt.txt:2: x (column 3) is not a number: 'ten'"),
    pred("score-bool", "types", setv(2, 6, "true"), "SEQ-01.txt:3: score (column 7) is not a number: 'true'"),
    gt("class-fraction", "types", setv(0, 7, "1.5"), "gt.txt:1: class (column 8) 1.5 is not an integer"),
    pred("class-fraction", "types", setv(1, 7, "0.5"), "SEQ-01.txt:2: class (column 8) 0.5 is not an integer"),
    gt("hex-number", "types", setv(0, 4, "0x14"), "gt.txt:1: width (column 5) is not a number: '0x14'"),
    ini("seqlength-word", "types", seqinfo_line("seqLength", "four"), "seqinfo.ini:5: seqLength", "integer"),
    # ------------------------------------------------------------------------------------------------- finiteness
    gt("x-nan", "finiteness", setv(0, 2, "nan"), "gt.txt:1: x (column 3) nan is not a finite number"),
    gt("width-inf", "finiteness", setv(2, 4, "inf"), "gt.txt:3: width (column 5) inf is not a finite number"),
    pred("height-minus-inf", "finiteness", setv(3, 5, "-inf"), "SEQ-01.txt:4: height (column 6) -inf is not a fin"),
    pred("frame-nan", "finiteness", setv(0, 0, "NaN"), "SEQ-01.txt:1: frame (column 1) NaN is not a finite number"),
    gt("id-inf", "finiteness", setv(1, 1, "inf"), "gt.txt:2: id (column 2) inf is not a finite number"),
    gt("conf-nan", "finiteness", setv(1, 6, "nan"), "gt.txt:2: conf (column 7) nan is not a finite number"),
    gt("class-inf", "finiteness", setv(4, 7, "inf"), "gt.txt:5: class (column 8) inf is not a finite number"),
    gt("visibility-nan", "finiteness", setv(1, 8, "nan"), "gt.txt:2: visibility (column 9) nan", lenient=True),
    pred("score-nan", "finiteness", setv(3, 6, "nan"), "SEQ-01.txt:4: score (column 7) nan", lenient=True),
    pred("column-10-inf", "finiteness", setv(2, 9, "inf"), "SEQ-01.txt:3: z3d (column 10) inf", lenient=True),
    # ----------------------------------------------------------------------------------------------------- ranges
    gt("width-negative", "ranges", setv(2, 4, "-5"), "gt.txt:3: width (column 5) -5 is negative", lenient=True),
    pred("height-negative", "ranges", setv(5, 5, "-40"), "SEQ-01.txt:6: height (column 6) -40 is neg", lenient=True),
    gt(
        "box-inverted",
        "ranges",
        lambda s: s[6].__setitem__(slice(4, 6), ["-20", "-40"]),
        "gt.txt:7: width (co",
        lenient=True,
    ),
    gt("frame-zero", "ranges", setv(0, 0, "0"), "gt.txt:1: frame (column 1) 0 must be >= 1"),
    gt("frame-huge", "ranges", setv(8, 0, "1000000000000"), "gt.txt:9: frame (column 1) 1000000000000", "10,000,000"),
    gt("frame-beyond-seqlength", "ranges", setv(8, 0, "5"), "gt.txt:9: frame (column 1) 5 is beyond", "length 4"),
    pred("frame-beyond-seqlength", "ranges", setv(6, 0, "7"), "SEQ-01.txt:7: frame (column 1) 7 is beyond"),
    gt("id-negative", "ranges", setv(0, 1, "-1"), "gt.txt:1: id (column 2) -1 must be >= 0"),
    pred("id-negative", "ranges", setv(2, 1, "-5"), "SEQ-01.txt:3: id (column 2) -5 must be >= 0"),
    gt("x-huge", "ranges", setv(3, 2, "5e7"), "gt.txt:4: x (column 3) 5e7 is beyond"),
    pred("width-huge", "ranges", setv(0, 4, "1e300"), "SEQ-01.txt:1: width (column 5) 1e300 is larger than"),
    gt("conf-half", "ranges", setv(2, 6, "0.5"), "gt.txt:3: conf (column 7) 0.5 must be 0 or 1", lenient=True),
    gt("conf-two", "ranges", setv(5, 6, "2"), "gt.txt:6: conf (column 7) 2 must be 0 or 1", lenient=True),
    gt("conf-huge", "ranges", setv(0, 6, "1e300"), "gt.txt:1: conf (column 7) 1e300"),
    gt("visibility-above-1", "ranges", setv(1, 8, "1.5"), "gt.txt:2: visibility (column 9) 1.5", lenient=True),
    gt(
        "class-outside-table",
        "ranges",
        setv(7, 7, "99"),
        "gt.txt:8: class (column 8) 99 is not a MOTChallenge",
        lenient=True,
    ),  # frame 4 has no predictions: TrackEval drops the row
    gt("class-zero-with-predictions", "ranges", setv(3, 7, "0"), "gt.txt:4: class (column 8) 0 is not a MOTCh"),
    gt("class-negative-with-predictions", "ranges", setv(0, 7, "-1"), "gt.txt:1: class (column 8) -1 is not a"),
    pred("class-car", "ranges", setv(4, 7, "3"), "SEQ-01.txt:5: class (column 8) 3 is not pedestrian"),
    pred("class-zero", "ranges", setv(4, 7, "0"), "SEQ-01.txt:5: class (column 8) 0 must be 1", lenient=True),
    ini("seqlength-huge", "ranges", seqinfo_line("seqLength", str(10**12)), "seqinfo.ini:5: seqLength", "10,000,000"),
    ini("seqlength-negative", "ranges", seqinfo_line("seqLength", "-4"), "seqinfo.ini:5: seqLength", "non-negative"),
    # ------------------------------------------------------------------------------------------------------ shape
    gt("row-short", "shape", lambda s: s[4].__delitem__(8), "gt.txt:5: expected 9 columns like the first line, got 8"),
    pred("row-long", "shape", lambda s: s[2].append("1"), "SEQ-01.txt:3: expected 10 columns like the first"),
    pred("row-5-columns", "shape", _truncate(5), "SEQ-01.txt:1: expected at least 6 columns"),
    gt("empty-field", "shape", lambda s: s[3].insert(2, ""), "gt.txt:4: empty field"),
    pred("leading-comma", "shape", lambda s: s[1].insert(0, ""), "SEQ-01.txt:2: empty field"),
    gt(
        "eleven-columns",
        "shape",
        lambda s: _extend(s, "0", "0"),
        "gt.txt:1: 11 columns; a gt file has 8 to 10",
        lenient=True,
    ),
    gt(
        "comment",
        "shape",
        lambda s: s[2].__setitem__(8, "1 # seen"),
        "gt.txt:3: expected 9 columns like the first line, got 11",
    ),
    # ------------------------------------------------------------------------------------------------- references
    gt("duplicate-id", "references", _dup(8, 7), "gt.txt:10: id (column 2) 1 appears twice in frame 4"),
    pred("duplicate-id", "references", _dup(6, 5), "SEQ-01.txt:8: id (column 2) 1 appears twice in frame 3"),
    gt("duplicate-distractor-id", "references", _dup(0, 4), "gt.txt:10: id (column 2) 3 appears twice in frame 2"),
    pred("missing-result-file", "references", text(""), "no result file for sequence SEQ-01", delete=True),
    # --------------------------------------------------------------------------------------------------- required
    gt("no-class-column", "required", _truncate(7), "gt.txt:1: 7 columns; a gt file has", "8"),
    pred("no-score-column", "required", _truncate(6), "SEQ-01.txt:1: 6 columns; a results file has", "7"),
    ini("no-sequence-section", "required", lambda s: s.__delitem__(0), "seqinfo.ini: no [Sequence] section"),
    ini("no-seqlength", "required", seqinfo_line("seqLength", None), "seqinfo.ini: [Sequence] has no seqLength"),
    ini("seqlength-empty", "required", seqinfo_line("seqLength", ""), "seqinfo.ini:5: seqLength must be"),
]


def test_table_covers_every_category():
    at_least(VARIANTS, 30)


def build(tmp_path: Path, v: Variant | None) -> dict[str, Path]:
    """The sequence under ``tmp_path/in`` with ``v`` applied: paths of the GT folder, the results folder and each
    file."""
    root = tmp_path / "in"
    seq = root / "gt" / SEQ
    (seq / "gt").mkdir(parents=True)
    (root / "pred").mkdir()
    paths = {"gt": seq / "gt" / "gt.txt", "pred": root / "pred" / f"{SEQ}.txt", "seqinfo": seq / "seqinfo.ini"}
    samples = {"gt": rows(GT), "pred": rows(PRED), "seqinfo": list(SEQINFO)}
    for target, sample in samples.items():
        sample = copy.deepcopy(sample)
        out = v.mutate(sample) if v is not None and v.target == target else None
        if v is not None and v.target == target and v.extra.get("delete"):
            continue
        if out is None:
            out = "".join(f"{','.join(r) if isinstance(r, list) else r}\n" for r in sample)
        paths[target].write_text(out)
    return {"gt_dir": root / "gt", "pred_dir": root / "pred", **paths}


def eval_argv(p: dict[str, Path]) -> list[str]:
    return ["eval", "mot", "--gt", str(p["gt_dir"]), "--pred", str(p["pred_dir"])]


def named(p: dict[str, Path], v: Variant) -> str:
    """The path the error must name (the results folder when the result file is missing)."""
    return str(p["pred_dir"] if v.extra.get("delete") else p[v.target])


@pytest.mark.parametrize("v", VARIANTS, ids=ids(VARIANTS))
def test_eval_refuses(v, tmp_path, capsys, monkeypatch):
    p = build(tmp_path, v)
    expect_bad(eval_argv(p), tmp_path, capsys, monkeypatch, named(p, v), *v.needles)


GT_SIDE = [v for v in VARIANTS if v.target in ("gt", "seqinfo")]


@pytest.mark.parametrize("v", GT_SIDE, ids=ids(GT_SIDE))
def test_inspect_refuses(v, tmp_path, capsys, monkeypatch):
    p = build(tmp_path, v)
    argv = ["data", "inspect", str(p["gt_dir"])]
    expect_bad(argv, tmp_path, capsys, monkeypatch, named(p, v), *v.needles)


@pytest.mark.parametrize("v", GT_SIDE, ids=ids(GT_SIDE))
def test_pipeline_reader_refuses(v, tmp_path):
    """The table pipeline's reader (``load_split`` and ``data check`` read MOT17 through ``read_mot_frames``)."""
    p = build(tmp_path, v)
    with pytest.raises(FormatError) as info:
        read_mot_frames(p["gt_dir"] / SEQ)
    message = str(info.value)
    assert "\n" not in message and named(p, v) in message
    for needle in v.needles:
        assert needle in message


def _reference(p: dict[str, Path]) -> dict:
    from crowdbench.bench.metrics.mot import run_trackeval

    return run_trackeval({SEQ: (p["gt"], p["pred"], SEQ_LENGTH)}, benchmark="MOT17")[SEQ]


def _assert_same(ours: dict, te: dict) -> None:
    c, i, h = te["CLEAR"], te["Identity"], te["HOTA"]
    got = (ours["TP"], ours["FP"], ours["FN"], ours["IDSW"], ours["Frag"], ours["IDTP"], ours["IDFP"], ours["IDFN"])
    want = tuple(int(x) for x in (c["CLR_TP"], c["CLR_FP"], c["CLR_FN"], c["IDSW"], c["Frag"]))
    want += tuple(int(x) for x in (i["IDTP"], i["IDFP"], i["IDFN"]))
    assert got == want
    assert (ours["MOTA"], ours["MOTP"], ours["IDF1"]) == (c["MOTA"], c["MOTP"], i["IDF1"])
    assert ours["HOTA"] == pytest.approx(float(np.mean(h["HOTA"])), abs=1e-12)


@pytest.mark.parametrize("v", VARIANTS, ids=ids(VARIANTS))
def test_lenient(v, tmp_path, capsys, monkeypatch):
    """``--lenient``: TrackEval's number where it accepts the input, still exit 2 everywhere else."""
    p = build(tmp_path, v)
    argv = [*eval_argv(p), "--lenient"]
    if not v.lenient:
        expect_bad(argv, tmp_path, capsys, monkeypatch, named(p, v), *v.needles)
        return
    if not HAVE_TE:
        pytest.skip("trackeval not installed")
    ours = expect_number(argv, capsys)["combined"]
    _assert_same(ours, _reference(p))


@pytest.mark.skipif(not HAVE_TE, reason="trackeval not installed")
def test_clean_sample_matches_trackeval_and_lenient_changes_nothing(tmp_path, capsys):
    p = build(tmp_path, None)
    strict = expect_number(eval_argv(p), capsys)
    assert expect_number([*eval_argv(p), "--lenient"], capsys) == strict
    _assert_same(strict["combined"], _reference(p))
    assert strict["combined"]["IDSW"] == 1 and strict["combined"]["FP"] == 1  # the distractor match is removed


def test_lenient_numbers_differ_from_clean(tmp_path, capsys):
    """The accepted variants do change the number (they are not no-ops): a negative-size GT box is a miss."""
    clean = expect_number(eval_argv(build(tmp_path / "a", None)), capsys)["combined"]
    v = next(v for v in VARIANTS if v.name == "gt-width-negative")
    neg = expect_number([*eval_argv(build(tmp_path / "b", v)), "--lenient"], capsys)["combined"]
    assert (neg["FN"], neg["FP"]) == (clean["FN"] + 1, clean["FP"] + 1)


def test_python_api_lenient_keyword(tmp_path, capsys):
    """``evaluate_mot_files(..., lenient=True)`` is what ``--lenient`` runs; the default refuses."""
    from crowdbench.bench.metrics.mot import evaluate_mot_files

    v = next(v for v in VARIANTS if v.name == "pred-height-negative")
    p = build(tmp_path, v)
    with pytest.raises(FormatError, match=r"SEQ-01\.txt:6: height \(column 6\) -40 is negative"):
        evaluate_mot_files(p["gt_dir"], p["pred_dir"])
    res = evaluate_mot_files(p["gt_dir"], p["pred_dir"], lenient=True)
    cli = expect_number([*eval_argv(p), "--lenient"], capsys)["combined"]
    assert (cli["MOTA"], cli["IDF1"], cli["HOTA"]) == (res.combined.MOTA, res.combined.IDF1, res.combined.HOTA)


def test_id_1e30_no_longer_changes_idf1(tmp_path):
    """The known bug: ``1e30`` became an int64 garbage id (float parsing) and changed IDF1; now a FormatError."""
    f = tmp_path / "res.txt"
    f.write_text("1,1,0,0,10,10,1,-1,-1,-1\n2,1e30,0,0,10,10,1,-1,-1,-1\n")
    with pytest.raises(FormatError, match=r"res\.txt:2: id \(column 2\) 1e30 is outside the int64 range"):
        read_mot(f, role="results")
    # ids beyond 2**53 but within int64 are read exactly (float64 would merge these two)
    f.write_text("1,9007199254740993,0,0,10,10,1,-1,-1,-1\n1,9007199254740992,0,0,10,10,1,-1,-1,-1\n")
    assert read_mot(f, role="results").ids.tolist() == [2**53 + 1, 2**53]


def test_validation_is_fast(tmp_path):
    """100k rows validate well under a second."""
    import time

    rng = np.random.default_rng(0)
    n = 100_000
    frames = np.arange(n) // 50 + 1
    ids_ = np.arange(n) % 50 + 1
    box = rng.uniform(0, 500, (n, 4)).round(2)
    body = "\n".join(f"{f},{i},{b[0]},{b[1]},{b[2]},{b[3]},1,1,1" for f, i, b in zip(frames, ids_, box, strict=True))
    path = tmp_path / "gt.txt"
    path.write_text(body + "\n")
    t0 = time.perf_counter()
    table = read_mot(path, role="gt", benchmark="MOT17", seq_length=int(frames.max()))
    assert len(table) == n and time.perf_counter() - t0 < 1.0
