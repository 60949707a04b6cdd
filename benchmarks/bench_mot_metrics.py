"""Benchmark: crowdbench's MOTChallenge metrics vs py-motmetrics 1.4.0 and TrackEval 1.3.0 (same run, same data).

Builds a seeded synthetic tracking set at MOT17-train scale (7 sequences with MOT17-train's lengths, 5,316 frames,
~110k GT boxes, ~21 people per frame, 15 % misses, id changes, ~2 false positives per frame), writes it as
MOTChallenge files (MOT15-style, so no preprocessing) and times

* ours, CLEAR + Identity (``evaluate_mot(hota=False)``, includes the IoU computation), and HOTA alone (given IoUs);
* py-motmetrics: per frame ``distances.boxiou`` (its ``iou_matrix`` fails on numpy 2), ``MOTAccumulator.update``,
  then ``compute_many`` (CLEAR + IDF1);
* TrackEval in-process (``run_trackeval``: file loading + its metrics), CLEAR + Identity and HOTA runs;

checks that the numbers agree (ours vs TrackEval: identical integers and CLEAR/Identity floats, HOTA to 1e-12; our
``semantics="motmetrics"`` vs motmetrics: identical counts) and prints seconds and speed-ups.

    python benchmarks/bench_mot_metrics.py [--scale 0.25] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from crowdbench.bench.metrics.mot import (
    _clear_identity,
    _hota,
    _prepare,
    evaluate_mot,
    load_mot_sequences,
    run_trackeval,
)

MOT17_TRAIN_LENGTHS = {"02": 600, "04": 1050, "05": 837, "09": 525, "10": 654, "11": 900, "13": 750}


def synth_sequence(rng: np.random.Generator, n_frames: int, per_frame: float) -> tuple[np.ndarray, np.ndarray]:
    """GT and prediction rows ``frame, id, x, y, w, h`` of one crowded random sequence."""
    mean_len = 0.3 * 9.5 + 0.7 * (20 + n_frames) / 2 * 0.8
    n_obj = int(per_frame * n_frames / mean_len)
    length = np.where(rng.random(n_obj) < 0.3, rng.integers(4, 16, n_obj), rng.integers(20, n_frames, n_obj))
    start = rng.integers(1, n_frames, n_obj)
    cnt = np.minimum(start + length, n_frames + 1) - start
    obj = np.repeat(np.arange(n_obj), cnt)
    t = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    w = rng.uniform(30, 90, n_obj)[obj]
    x = rng.uniform(0, 1800, n_obj)[obj] + rng.normal(0, 2, n_obj)[obj] * t
    y = rng.uniform(0, 900, n_obj)[obj] + rng.normal(0, 1, n_obj)[obj] * t
    gt = np.column_stack([start[obj] + t, obj + 1, x, y, w, 2.5 * w])
    change = (rng.random(len(gt)) < 0.004) & (t > 0)
    cum, first = np.cumsum(change), np.cumsum(cnt) - cnt
    pid = 100000 + obj * 100 + cum - np.repeat(cum[first] - change[first], cnt)
    pred = np.column_stack([gt[:, 0], pid, gt[:, 2:] + rng.normal(0, 0.08, (len(gt), 4)) * w[:, None]])
    pred = pred[rng.random(len(gt)) > 0.15]
    fpf = np.repeat(np.arange(1, n_frames + 1), rng.poisson(2.0, n_frames))
    fw = rng.uniform(30, 90, len(fpf))
    fps = np.column_stack([fpf, 900000 + np.arange(len(fpf)), rng.uniform(0, [1800, 900], (len(fpf), 2)), fw, 2.5 * fw])
    pred = np.vstack([pred, fps])
    return gt[np.argsort(gt[:, 0], kind="stable")], pred[np.argsort(pred[:, 0], kind="stable")]


def write_rows(path: Path, rows: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "%d,%d,%.3f,%.3f,%.3f,%.3f,1,-1,-1,-1"
    np.savetxt(path, rows, fmt=fmt)
    return path


def run_motmetrics(seqs) -> tuple[dict, float]:
    import motmetrics as mm

    t0 = time.perf_counter()
    accs = []
    for s in seqs:
        acc = mm.MOTAccumulator()
        go, po = np.argsort(s.gt_frames, kind="stable"), np.argsort(s.pred_frames, kind="stable")
        gf, pf = s.gt_frames[go], s.pred_frames[po]
        gs = np.searchsorted(gf, np.arange(s.num_frames + 2))
        ps = np.searchsorted(pf, np.arange(s.num_frames + 2))
        gid, gb, pid, pb = s.gt_ids[go], s.gt_boxes[go], s.pred_ids[po], s.pred_boxes[po]
        for f in np.union1d(gf, pf):
            g, p = slice(gs[f], gs[f + 1]), slice(ps[f], ps[f + 1])
            d = np.empty((0, 0))
            if gs[f + 1] > gs[f] and ps[f + 1] > ps[f]:
                d = 1 - mm.distances.boxiou(gb[g][:, None], pb[p][None, :])
                d = np.where(d > 0.5, np.nan, d)
            acc.update(gid[g], pid[p], d, frameid=int(f))
        accs.append(acc)
    metrics = ["num_switches", "num_fragmentations", "mostly_tracked", "partially_tracked", "mostly_lost"]
    metrics += ["num_false_positives", "num_misses", "num_matches", "mota", "motp", "idf1", "idp", "idr"]
    df = mm.metrics.create().compute_many(accs, metrics=metrics, names=[s.name for s in seqs], generate_overall=True)
    return df.loc["OVERALL"].to_dict(), time.perf_counter() - t0


def timed(fn, repeat: int):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of each sequence's frames")
    ap.add_argument("--repeat", type=int, default=3, help="best of N for our timings")
    ap.add_argument("--seed", type=int, default=17)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        root, files = Path(tmp), {}
        for k, n in MOT17_TRAIN_LENGTHS.items():
            n = max(20, int(n * args.scale))
            gt, pred = synth_sequence(rng, n, 24.7)
            name = f"SYN17-{k}"
            g = write_rows(root / "gt" / name / "gt" / "gt.txt", gt)
            p = write_rows(root / "pred" / f"{name}.txt", pred)
            (root / "gt" / name / "seqinfo.ini").write_text(f"[Sequence]\nseqLength={n}\n")
            files[name] = (g, p, n)
        seqs = load_mot_sequences(root / "gt", root / "pred", benchmark="MOT15")
        n_gt = sum(len(s.gt_ids) for s in seqs)
        n_pr = sum(len(s.pred_ids) for s in seqs)
        n_fr = sum(s.num_frames for s in seqs)
        print(f"data: {len(seqs)} sequences, {n_fr} frames, {n_gt} GT boxes, {n_pr} predicted boxes")

        ours_ci, t_ci = timed(lambda: evaluate_mot(seqs, hota=False), args.repeat)
        preps = [_prepare(s) for s in seqs]
        mets = [_clear_identity(p, 0.5) for p in preps]

        def hota_only():
            for p, m in zip(preps, mets, strict=True):
                _hota(p, m)

        _, t_hota = timed(hota_only, args.repeat)
        ours_all, t_all = timed(lambda: evaluate_mot(seqs), args.repeat)
        ours_mm, t_ours_mm = timed(lambda: evaluate_mot(seqs, semantics="motmetrics"), 1)
        mm_ref, t_mm = run_motmetrics(seqs)
        t0 = time.perf_counter()
        te_ci = run_trackeval(files, benchmark="MOT15", metrics=("CLEAR", "Identity"))
        t_te_ci = time.perf_counter() - t0
        t0 = time.perf_counter()
        te_h = run_trackeval(files, benchmark="MOT15", metrics=("HOTA",))
        t_te_h = time.perf_counter() - t0

    # ---- checks
    c, te_c, te_i = ours_all.combined, te_ci["COMBINED_SEQ"]["CLEAR"], te_ci["COMBINED_SEQ"]["Identity"]
    te_hc = te_h["COMBINED_SEQ"]["HOTA"]
    ints = ("TP", "FP", "FN", "IDSW", "Frag", "MT", "PT", "ML")
    te_ints = ("CLR_TP", "CLR_FP", "CLR_FN", "IDSW", "Frag", "MT", "PT", "ML")
    ok_te = all(getattr(c, a) == int(te_c[b]) for a, b in zip(ints, te_ints, strict=True))
    ok_te &= (te_c["MOTA"], te_c["MOTP"], te_i["IDF1"]) == (c.MOTA, c.MOTP, c.IDF1) and int(te_i["IDTP"]) == c.IDTP
    ok_te &= bool(np.allclose(c.HOTA_alpha, te_hc["HOTA"], rtol=0, atol=1e-12))
    ok_te &= (ours_ci.combined.MOTA, ours_ci.combined.IDF1) == (c.MOTA, c.IDF1)
    m = ours_mm.combined
    mm_pairs = [
        (m.IDSW, mm_ref["num_switches"]), (m.Frag, mm_ref["num_fragmentations"]), (m.MT, mm_ref["mostly_tracked"]),
        (m.FP, mm_ref["num_false_positives"]), (m.FN, mm_ref["num_misses"]), (m.TP - m.IDSW, mm_ref["num_matches"]),
    ]  # fmt: skip
    ok_mm = all(a == int(b) for a, b in mm_pairs) and abs(m.MOTA - mm_ref["mota"]) < 1e-12
    ok_mm &= abs(m.IDF1 - mm_ref["idf1"]) < 1e-12 and abs(m.MOTP_distance - mm_ref["motp"]) < 1e-9
    print(
        f"TrackEval semantics: MOTA {c.MOTA:.6f} MOTP {c.MOTP:.6f} IDF1 {c.IDF1:.6f} HOTA {c.HOTA:.6f} "
        f"IDSW {c.IDSW} Frag {c.Frag} MT {c.MT}   == TrackEval: {ok_te}"
    )
    print(
        f"motmetrics semantics: MOTA {m.MOTA:.6f} motp {m.MOTP_distance:.6f} IDF1 {m.IDF1:.6f} "
        f"IDSW {m.IDSW} Frag {m.Frag} MT {m.MT}   == motmetrics: {ok_mm}"
    )
    rows = [
        ("ours CLEAR+Identity (incl. IoU)", t_ci, None),
        ("ours HOTA (given IoU)", t_hota, None),
        ("ours CLEAR+Identity+HOTA", t_all, None),
        ("ours semantics='motmetrics' (uses motmetrics)", t_ours_mm, None),
        ("motmetrics 1.4.0 CLEAR+IDF1", t_mm, t_mm / t_ci),
        ("TrackEval 1.3.0 CLEAR+Identity (incl. file IO)", t_te_ci, t_te_ci / t_ci),
        ("TrackEval 1.3.0 HOTA (incl. file IO)", t_te_h, t_te_h / t_all),
    ]
    print(f"\n{'what':<48} {'seconds':>9} {'ours faster by':>15}")
    for name, t, sp in rows:
        print(f"{name:<48} {t:>9.3f} {'' if sp is None else f'{sp:.1f}x':>15}")
    print("(HOTA speed-up is against ours CLEAR+Identity+HOTA; ours: best of --repeat, references: one run)")
    return 0 if ok_te and ok_mm else 1


if __name__ == "__main__":
    sys.exit(main())
