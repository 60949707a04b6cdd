"""Benchmark: bootstrap intervals of MOTA / IDF1 / HOTA (``MotResampler``) at MOT17-train scale.

Builds the seeded synthetic set of ``bench_mot_metrics.py`` (7 sequences with MOT17-train's lengths, 5,316 frames,
~115k GT boxes), runs ``evaluate_mot_bootstrap`` once (matching + per-block statistics), checks that unit weights
reproduce the point estimate (MOTA / IDF1 / HOTA bit for bit), then times ``values`` on ``--resamples`` frame-block
replicates and prints the 95 % intervals.

    python benchmarks/bootstrap_tracking.py [--scale 0.25] [--resamples 1000] [--block-frames 50]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_mot_metrics import MOT17_TRAIN_LENGTHS, synth_sequence, write_rows

from crowdbench.bench.metrics.bootstrap import percentile_interval, replicate_weights
from crowdbench.bench.metrics.mot import evaluate_mot, evaluate_mot_bootstrap, load_mot_sequences


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of each sequence's frames")
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--block-frames", type=int, default=50)
    ap.add_argument("--seed", type=int, default=17)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for k, n in MOT17_TRAIN_LENGTHS.items():
            n = max(20, int(n * args.scale))
            gt, pred = synth_sequence(rng, n, 24.7)
            write_rows(root / "gt" / f"SYN17-{k}" / "gt" / "gt.txt", gt)
            write_rows(root / "pred" / f"SYN17-{k}.txt", pred)
            (root / "gt" / f"SYN17-{k}" / "seqinfo.ini").write_text(f"[Sequence]\nseqLength={n}\n")
        seqs = load_mot_sequences(root / "gt", root / "pred", benchmark="MOT15")
    n_gt, n_fr = sum(len(s.gt_ids) for s in seqs), sum(s.num_frames for s in seqs)
    print(f"data: {len(seqs)} sequences, {n_fr} frames, {n_gt} GT boxes")
    t0 = time.perf_counter()
    point = evaluate_mot(seqs).combined
    t_point = time.perf_counter() - t0
    t0 = time.perf_counter()
    res, rs = evaluate_mot_bootstrap(seqs, block_frames=args.block_frames)
    t_stats = time.perf_counter() - t0
    keys = ("MOTA", "IDF1", "HOTA", "DetA", "AssA", "MOTP")
    ones = rs.values(np.ones((1, len(rs.units)), np.int32))
    exact = all(ones[k][0] == getattr(point, k) for k in ("MOTA", "IDF1", "IDP", "IDR", "HOTA", "DetA", "AssA"))
    exact &= all(getattr(res.combined, k) == getattr(point, k) for k in keys)
    print(f"units: {len(rs.units)} x {rs.unit}; {len(rs._general)} ID-overlap components need a solver")
    w = replicate_weights(len(rs.units), args.resamples, seed=0)
    t0 = time.perf_counter()
    vals = rs.values(w)
    t_boot = time.perf_counter() - t0
    for k in keys:
        lo, hi = percentile_interval(vals[k])
        print(f"  {k:<5} {getattr(point, k):.4f}  95 % [{lo:.4f}, {hi:.4f}]")
    print(f"weights 1 reproduce the point estimate (MOTA/IDF1/IDP/IDR/HOTA/DetA/AssA bit for bit): {exact}")
    print(f"\n{'what':<58} {'seconds':>8}")
    print(f"{'point estimate evaluate_mot (CLEAR+Identity+HOTA)':<58} {t_point:>8.2f}")
    print(f"{'evaluate_mot_bootstrap (same + per-block statistics)':<58} {t_stats:>8.2f}")
    print(f"{f'{args.resamples} replicates MOTA/MOTP/IDF1/HOTA (values)':<58} {t_boot:>8.2f}")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
