"""MOTChallenge CLEAR / Identity / HOTA (bench/metrics/mot.py) against metrics.md 6.3, TrackEval and py-motmetrics.

Reference values: metrics.md 6.3 (TUD-Campus / TUD-Stadtmitte from the motmetrics 1.4.0 wheel, = motmetrics'
``test_motchallenge_files``; HOTA 0.400 from mmtracking's ``test_mot15_track_evaluation``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from crowdbench.bench.metrics.mot import (
    MotSequence,
    add_command,
    evaluate_mot,
    evaluate_mot_files,
    run_trackeval,
    sequence_from_frames,
)
from crowdbench.datasets.formats.errors import FormatError
from crowdbench.datasets.formats.mot import read_mot

HAVE_MM = importlib.util.find_spec("motmetrics") is not None
HAVE_TE = importlib.util.find_spec("trackeval") is not None
needs_mm = pytest.mark.skipif(not HAVE_MM, reason="motmetrics not installed")
needs_te = pytest.mark.skipif(not HAVE_TE, reason="trackeval not installed")
MOT17 = Path(__file__).resolve().parents[2] / "shared" / "data" / "mot17" / "train"
TUD_LEN = {"TUD-Campus": 71, "TUD-Stadtmitte": 179}


def tud_dir() -> Path:
    import motmetrics

    return Path(motmetrics.__file__).parent / "data"


# metrics.md 6.3: (MOTA, motp distance, FP, FN, IDSW, Frag, MT, PT, ML, IDF1, IDP, IDR)
TUD_REF = {
    "TUD-Campus": (0.526462, 0.277201, 13, 150, 7, 7, 1, 6, 1, 0.557659, 0.729730, 0.451253),
    "TUD-Stadtmitte": (0.564014, 0.345904, 45, 452, 7, 6, 5, 4, 1, 0.644619, 0.819760, 0.531142),
    "OVERALL": (0.555116, 0.330177, 58, 602, 14, 13, 6, 10, 2, 0.624296, 0.799176, 0.512211),
}
TUD_TP = {"TUD-Campus": 209, "TUD-Stadtmitte": 704, "OVERALL": 913}
TUD_HOTA = {"TUD-Campus": 0.3914, "TUD-Stadtmitte": 0.3978, "OVERALL": 0.4000}


def _check_tud(m, key):
    mota, dist, fp, fn, idsw, frag, mt, pt, ml, idf1, idp, idr = TUD_REF[key]
    assert (m.FP, m.FN, m.IDSW, m.Frag, m.MT, m.PT, m.ML, m.TP) == (fp, fn, idsw, frag, mt, pt, ml, TUD_TP[key])
    for got, want in ((m.MOTA, mota), (m.MOTP_distance, dist), (m.IDF1, idf1), (m.IDP, idp), (m.IDR, idr)):
        assert got == pytest.approx(want, abs=5e-7)
    assert pytest.approx(1 - dist, abs=5e-7) == m.MOTP


@needs_mm
@pytest.mark.parametrize("semantics", ["trackeval", "motmetrics"])
def test_tud_reference_values(semantics):
    res = evaluate_mot_files(tud_dir(), tud_dir(), benchmark="MOT15", semantics=semantics)
    assert list(res.sequences) == ["TUD-Campus", "TUD-Stadtmitte"]
    for seq, m in res.sequences.items():
        _check_tud(m, seq)
    _check_tud(res.combined, "OVERALL")
    if semantics == "trackeval":
        assert round(res.combined.HOTA, 3) == 0.400
        for seq, m in [*res.sequences.items(), ("OVERALL", res.combined)]:
            assert pytest.approx(TUD_HOTA[seq], abs=5e-5) == m.HOTA
    else:
        assert res.combined.HOTA is None


def _compare_trackeval(res, te, names):
    """Integers identical, CLEAR / Identity floats bit-identical, HOTA to 1e-12."""
    for seq in [*names, "COMBINED_SEQ"]:
        m = res.combined if seq == "COMBINED_SEQ" else res.sequences[seq]
        c, i, h = te[seq]["CLEAR"], te[seq]["Identity"], te[seq]["HOTA"]
        ours = (m.TP, m.FP, m.FN, m.IDSW, m.Frag, m.MT, m.PT, m.ML, m.IDTP, m.IDFP, m.IDFN)
        ref = tuple(int(x) for x in (c["CLR_TP"], c["CLR_FP"], c["CLR_FN"], c["IDSW"], c["Frag"], c["MT"], c["PT"]))
        ref += tuple(int(x) for x in (c["ML"], i["IDTP"], i["IDFP"], i["IDFN"]))
        assert ours == ref, seq
        if m.num_gt_dets and m.num_pred_dets:
            assert (m.MOTA, m.MOTP, m.MOTP_sum, m.IDF1) == (c["MOTA"], c["MOTP"], c["MOTP_sum"], i["IDF1"]), seq
        np.testing.assert_array_equal(m.HOTA_TP_alpha, h["HOTA_TP"])
        for ours_k, ref_k in (("HOTA", "HOTA"), ("DetA", "DetA"), ("AssA", "AssA"), ("LocA", "LocA")):
            np.testing.assert_allclose(getattr(m, f"{ours_k}_alpha"), h[ref_k], rtol=0, atol=1e-12)
            assert getattr(m, ours_k) == pytest.approx(float(np.mean(h[ref_k])), abs=1e-12)


@needs_mm
@needs_te
def test_tud_matches_trackeval_in_process():
    d = tud_dir()
    te = run_trackeval({s: (d / s / "gt.txt", d / s / "test.txt", n) for s, n in TUD_LEN.items()}, benchmark="MOT15")
    res = evaluate_mot_files(d, d, benchmark="MOT15")
    _compare_trackeval(res, te, list(TUD_LEN))


# ------------------------------------------------------------------------------------------------- synthetic data
def synth_sequence(rng, n_frames, n_obj, *, miss=0.15, id_change=0.01, fp_per_frame=2.0, short=0.3):
    """GT and prediction rows (frame, id, x, y, w, h) of one crowded random sequence."""
    length = np.where(rng.random(n_obj) < short, rng.integers(4, 16, n_obj), rng.integers(20, n_frames, n_obj))
    start = rng.integers(1, n_frames, n_obj)
    end = np.minimum(start + length, n_frames + 1)
    cnt = end - start
    obj = np.repeat(np.arange(n_obj), cnt)
    t = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    frame = start[obj] + t
    w = rng.uniform(30, 90, n_obj)[obj]
    x = rng.uniform(0, 1800, n_obj)[obj] + rng.normal(0, 2, n_obj)[obj] * t
    y = rng.uniform(0, 900, n_obj)[obj] + rng.normal(0, 1, n_obj)[obj] * t
    gt = np.column_stack([frame, obj + 1, x, y, w, 2.5 * w])
    keep = rng.random(len(gt)) > miss
    change = (rng.random(len(gt)) < id_change) & (t > 0)
    cum = np.cumsum(change)
    first = np.cumsum(cnt) - cnt
    pid = 100000 + obj * 100 + cum - np.repeat(cum[first] - change[first], cnt)
    jit = rng.normal(0, 0.08, (len(gt), 4)) * np.column_stack([w, w, w, w])
    pred = np.column_stack([frame, pid, gt[:, 2:] + jit])[keep]
    nfp = rng.poisson(fp_per_frame, n_frames)
    fpf = np.repeat(np.arange(1, n_frames + 1), nfp)
    fw = rng.uniform(30, 90, len(fpf))
    fxy = rng.uniform(0, [1800, 900], (len(fpf), 2))
    fps = np.column_stack([fpf, 900000 + np.arange(len(fpf)), fxy, fw, 2.5 * fw])
    pred = np.vstack([pred, fps])
    return gt[np.argsort(gt[:, 0], kind="stable")], pred[np.argsort(pred[:, 0], kind="stable")]


def write_rows(path: Path, rows: np.ndarray, tail: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{int(r[0])},{int(r[1])},{r[2]:.3f},{r[3]:.3f},{r[4]:.3f},{r[5]:.3f},{tail}\n" for r in rows]
    path.write_text("".join(lines))
    return path


@pytest.fixture(scope="module")
def synth_files(tmp_path_factory):
    rng = np.random.default_rng(2024)
    root = tmp_path_factory.mktemp("synth")
    files = {}
    for k, n_frames in enumerate((150, 200, 120)):
        gt, pred = synth_sequence(rng, n_frames, 60)
        name = f"SYN-{k:02d}"
        g = write_rows(root / "gt" / name / "gt" / "gt.txt", gt, "1,-1,-1,-1")
        p = write_rows(root / "pred" / f"{name}.txt", pred, "1,-1,-1,-1")
        (root / "gt" / name / "seqinfo.ini").write_text(f"[Sequence]\nname={name}\nseqLength={n_frames}\n")
        files[name] = (g, p, n_frames)
    return root, files


@needs_te
def test_synthetic_matches_trackeval(synth_files):
    root, files = synth_files
    res = evaluate_mot_files(root / "gt", root / "pred", benchmark="MOT15")
    _compare_trackeval(res, run_trackeval(files, benchmark="MOT15"), list(files))


def _mm_reference(files):
    """py-motmetrics on the same files, distances from motmetrics' own ``boxiou`` (its iou_matrix fails on numpy 2)."""
    import motmetrics as mm

    accs = []
    for g, p, _ in files.values():
        gt, pr = read_mot(g), read_mot(p)
        acc = mm.MOTAccumulator()
        for f in np.union1d(gt.frames, pr.frames):
            gi, pi = gt.frames == f, pr.frames == f
            d = np.empty((0, 0))
            if gi.any() and pi.any():
                d = 1 - mm.distances.boxiou(gt.boxes[gi][:, None], pr.boxes[pi][None, :])
                d = np.where(d > 0.5, np.nan, d)
            acc.update(gt.ids[gi], pr.ids[pi], d, frameid=int(f))
        accs.append(acc)
    metrics = ["num_switches", "num_fragmentations", "mostly_tracked", "partially_tracked", "mostly_lost"]
    metrics += ["num_false_positives", "num_misses", "mota", "motp", "idf1"]
    df = mm.metrics.create().compute_many(accs, metrics=metrics, names=list(files), generate_overall=True)
    return df.loc["OVERALL"]


@needs_mm
@needs_te
def test_synthetic_semantics_differ_and_each_matches_its_reference(synth_files):
    root, files = synth_files
    te = evaluate_mot_files(root / "gt", root / "pred", benchmark="MOT15").combined
    mm_res = evaluate_mot_files(root / "gt", root / "pred", benchmark="MOT15", semantics="motmetrics").combined
    ref = _mm_reference(files)
    assert (mm_res.IDSW, mm_res.Frag, mm_res.MT, mm_res.PT, mm_res.ML, mm_res.FP, mm_res.FN) == tuple(
        int(ref[k])
        for k in (
            "num_switches",
            "num_fragmentations",
            "mostly_tracked",
            "partially_tracked",
            "mostly_lost",
            "num_false_positives",
            "num_misses",
        )
    )
    assert pytest.approx(ref["mota"], abs=1e-12) == mm_res.MOTA
    assert mm_res.MOTP_distance == pytest.approx(ref["motp"], abs=1e-9)
    assert pytest.approx(ref["idf1"], abs=1e-12) == mm_res.IDF1
    # the two conventions really differ on this data (metrics.md 6.4)
    assert (te.IDSW, te.Frag, te.MT) != (mm_res.IDSW, mm_res.Frag, mm_res.MT)
    assert pytest.approx(mm_res.IDF1, abs=1e-12) == te.IDF1


# ------------------------------------------------------------------------------------------------ hand-computed
B = np.array([[10.0, 10.0, 20.0, 40.0]])
E = np.zeros((0, 4))


def one(name, gt_ids, pred_ids, pred_boxes=None):
    """One GT object (box B) per listed frame id; predictions per frame (None = no prediction)."""
    gt = [(np.array([g]), B) if g is not None else (np.array([], int), E) for g in gt_ids]
    pb = pred_boxes or [B] * len(pred_ids)
    pred = [(np.array([p]), b) if p is not None else (np.array([], int), E) for p, b in zip(pred_ids, pb, strict=True)]
    return sequence_from_frames(name, gt, pred)


def test_perfect_and_switch():
    m = evaluate_mot([one("a", [1] * 4, [7] * 4)]).combined
    assert (m.MOTA, m.MOTP, m.IDF1, m.IDSW, m.MT, m.HOTA) == (1.0, 1.0, 1.0, 0, 1, 1.0)
    m = evaluate_mot([one("b", [1] * 4, [7, 7, 8, 8])]).combined
    # TP 4, IDSW 1: MOTA = 1 - 1/4; IDTP = 2: IDF1 = 2*2 / (4 + 4)
    assert (m.TP, m.IDSW, m.MOTA, m.IDTP, m.IDF1, m.Frag) == (4, 1, 0.75, 2, 0.5, 0)


def test_fragmentation_and_mt_threshold():
    far = np.array([[500.0, 500.0, 20.0, 40.0]])
    seq = one("c", [1] * 5, [7, 7, 9, 7, 7], [B, B, far, B, B])  # frame 3: only a far-away FP
    m = evaluate_mot([seq]).combined
    # TP 4, FN 1, FP 1: MOTA 0.6; Frag = 2 tracked starts - 1; ratio 0.8 is not > 0.8: PT (TrackEval)
    assert (m.TP, m.FN, m.FP, m.Frag, m.MT, m.PT, m.IDTP) == (4, 1, 1, 1, 0, 1, 4)
    assert pytest.approx(0.6) == m.MOTA
    assert pytest.approx(8 / 10) == m.IDF1
    # TrackEval quirk: a frame without any prediction does not reset "tracked in the previous frame": no Frag
    gap = one("c2", [1] * 5, [7, 7, None, 7, 7])
    assert evaluate_mot([gap]).combined.Frag == 0
    if HAVE_MM:
        for s in (seq, gap):
            mm_m = evaluate_mot([s], semantics="motmetrics").combined
            assert (mm_m.TP, mm_m.Frag, mm_m.MT, mm_m.PT) == (4, 1, 1, 0)  # ratio >= 0.8: MT


@needs_te
def test_hand_cases_match_trackeval(tmp_path):
    far = np.array([[500.0, 500.0, 20.0, 40.0]])
    seqs = [
        one("c", [1] * 5, [7, 7, 9, 7, 7], [B, B, far, B, B]),
        one("c2", [1] * 5, [7, 7, None, 7, 7]),
        one("b", [1, 1, None, 1, 1], [7, 7, 8, 8, 7]),
    ]
    files = {}
    for q in seqs:
        g = np.column_stack([q.gt_frames, q.gt_ids, q.gt_boxes])
        r = np.column_stack([q.pred_frames, q.pred_ids, q.pred_boxes])
        files[q.name] = (
            write_rows(tmp_path / q.name / "gt.txt", g, "1,-1,-1,-1"),
            write_rows(tmp_path / q.name / "res.txt", r, "1,-1,-1,-1"),
            q.num_frames,
        )
    _compare_trackeval(evaluate_mot(seqs), run_trackeval(files, benchmark="MOT15"), [q.name for q in seqs])


def test_motp_conventions():
    half = np.array([[10.0, 10.0, 20.0, 32.0]])  # IoU 0.8 with B
    m = evaluate_mot([one("d", [1, 1], [3, 3], [half, B])]).combined
    assert pytest.approx(0.9) == m.MOTP and m.MOTP_distance == pytest.approx(0.1)
    below = np.array([[10.0, 10.0, 20.0, 19.0]])  # IoU 0.475 < 0.5: no match
    m = evaluate_mot([one("e", [1], [3], [below])]).combined
    assert (m.TP, m.FP, m.FN, m.MOTA) == (0, 1, 1, -1.0)


def test_continuation_prefers_previous_frame_match():
    # two predictions overlap one GT in frame 2; the one continuing frame 1's match wins despite lower IoU
    b2 = np.array([[10.0, 10.0, 20.0, 36.0]])
    gt = [(np.array([1]), B), (np.array([1]), B)]
    pred = [(np.array([5]), b2), (np.array([5, 6]), np.vstack([b2, B]))]
    m = evaluate_mot([sequence_from_frames("f", gt, pred)]).combined
    assert (m.TP, m.IDSW, m.FP) == (2, 0, 1)


# ---------------------------------------------------------------------------------------------------- edge cases
def test_sequence_without_gt_or_predictions():
    no_gt = one("g", [None] * 3, [4, 4, 4])
    no_pred = one("h", [1, 1, 1], [None] * 3)
    ok = one("i", [1] * 2, [2] * 2)
    res = evaluate_mot([no_gt, no_pred, ok])
    assert (res.sequences["g"].FP, res.sequences["g"].TP, res.sequences["g"].HOTA) == (3, 0, 0.0)
    assert (res.sequences["h"].FN, res.sequences["h"].ML) == (3, 1)
    c = res.combined
    assert (c.TP, c.FP, c.FN, c.MT, c.ML) == (2, 3, 3, 1, 1)
    assert pytest.approx((2 - 3) / 5) == c.MOTA
    assert pytest.approx(2 * 2 / (5 + 5)) == c.IDF1
    empty = evaluate_mot([one("j", [None], [None])]).combined
    assert (empty.MOTA, empty.IDF1, empty.HOTA) == (0.0, 0.0, 0.0)


def test_duplicate_id_in_frame(tmp_path):
    f = tmp_path / "res.txt"
    f.write_text("1,1,0,0,10,10,1,-1,-1,-1\n1,2,0,0,10,10,1,-1,-1,-1\n1,1,5,5,10,10,1,-1,-1,-1\n")
    with pytest.raises(FormatError, match=r"res\.txt:3: id \(column 2\) 1 appears twice in frame 1"):
        read_mot(f)
    with pytest.raises(ValueError, match="appears twice"):
        MotSequence("x", 1, [1, 1], [3, 3], np.ones((2, 4)), [], [], E)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("1,1,0,0,10,10,1,-1,-1,-1\n1,2,0,zero,10,10,1,-1,-1,-1\n", r"gt\.txt:2: y \(column 4\) is not a number"),
        ("1,1,0,0,10,10\n2,1,0,0\n", r"gt\.txt:2: expected at least 6 columns"),
        ("1,1,0,0,10,10,1\n\n1.5,2,0,0,10,10,1\n", r"gt\.txt:3: frame \(column 1\) 1\.5 is not an integer"),
        ("1,1,0,0,10,10,1\n1,-2,0,0,10,10,1\n", r"gt\.txt:2: id \(column 2\) -2 must be >= 0"),
    ],
)
def test_malformed_lines(tmp_path, text, pattern):
    f = tmp_path / "gt.txt"
    f.write_text(text)
    with pytest.raises(FormatError, match=pattern):
        read_mot(f)


# --------------------------------------------------------------------------------------- MOT17 sample + preprocessing
@pytest.mark.skipif(not MOT17.is_dir(), reason="shared MOT17 sample missing")
def test_mot17_sample_gt_against_itself(tmp_path):
    lengths = {"MOT17-02-FRCNN": 4, "MOT17-04-FRCNN": 8}
    for seq, n in lengths.items():
        rows = np.loadtxt(MOT17 / seq / "gt" / "gt.txt", delimiter=",")
        ped = rows[(rows[:, 7] == 1) & (rows[:, 6] != 0)]
        write_rows(tmp_path / "ped" / f"{seq}.txt", ped, "1,-1,-1,-1")
        write_rows(tmp_path / "all" / f"{seq}.txt", rows, "1,-1,-1,-1")  # distractor rows must be removed
        gdir = tmp_path / "gt" / seq
        (gdir / "gt").mkdir(parents=True)
        (gdir / "gt" / "gt.txt").write_bytes((MOT17 / seq / "gt" / "gt.txt").read_bytes())
        (gdir / "seqinfo.ini").write_text(f"[Sequence]\nseqLength={n}\n")
    res = evaluate_mot_files(tmp_path / "gt", tmp_path / "ped", benchmark="MOT17")
    c = res.combined
    assert (c.num_gt_dets, c.num_gt_ids, c.MOTA, c.IDF1, c.HOTA, c.FP) == (88 + 336, 22 + 42, 1.0, 1.0, 1.0, 0)
    res_all = evaluate_mot_files(tmp_path / "gt", tmp_path / "all", benchmark="MOT17")
    assert res_all.combined.FP > 0 and res_all.combined.TP == 88 + 336
    if HAVE_TE:
        files = {
            s: (tmp_path / "gt" / s / "gt" / "gt.txt", tmp_path / "all" / f"{s}.txt", n) for s, n in lengths.items()
        }
        _compare_trackeval(res_all, run_trackeval(files, benchmark="MOT17"), list(lengths))


# ------------------------------------------------------------------------------------------------------------ CLI
def _cli(argv):
    parser = argparse.ArgumentParser(prog="crowdbench eval")
    add_command(parser.add_subparsers(dest="metric", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@needs_mm
def test_cli(capsys, tmp_path):
    d = str(tud_dir())
    assert _cli(["mot", "--gt", d, "--pred", d, "--benchmark", "MOT15", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["combined"]["MOTA"] == pytest.approx(0.555116, abs=5e-7)
    assert _cli(["mot", "--gt", d, "--pred", d, "--benchmark", "MOT15"]) == 0
    assert "MOTA" in capsys.readouterr().out
    bad = tmp_path / "gt.txt"
    bad.write_text("1,1,0,0,10,10,1\nx\n")
    assert _cli(["mot", "--gt", str(bad), "--pred", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "gt.txt:2" in err
