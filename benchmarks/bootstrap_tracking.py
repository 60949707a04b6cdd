"""Benchmark: bootstrap intervals of MOTA / IDF1 / HOTA (``MotResampler``) at MOT17-train scale.

Builds the seeded synthetic set of ``bench_mot_metrics.py`` (7 sequences with MOT17-train's lengths, 5,316 frames,
~115k GT boxes), runs ``evaluate_mot_bootstrap`` once (matching + per-block statistics), checks that unit weights
reproduce the point estimate (MOTA / IDF1 / HOTA bit for bit), then times ``values`` on ``--resamples`` frame-block
replicates and prints the 95 % intervals (centred for ``MotResampler.centre``).

``--coverage N``: instead, the coverage of 95 % intervals on N simulated sets (7 sequences x 300 frames, 10 people
per frame, blocks of 50 frames, 300 resamples) against the truth computed on 150 sequences from the same generator,
plain percentile vs centred percentile intervals.

    python benchmarks/bootstrap_tracking.py [--scale 0.25] [--resamples 1000] [--block-frames 50]
    python benchmarks/bootstrap_tracking.py --coverage 100
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_mot_metrics import MOT17_TRAIN_LENGTHS, synth_sequence, write_rows

from crowdbench.bench.metrics.bootstrap import centred_interval, percentile_interval, replicate_weights
from crowdbench.bench.metrics.mot import MotSequence, evaluate_mot, evaluate_mot_bootstrap, load_mot_sequences


def coverage(n_sets: int, block_frames: int) -> int:
    """Coverage of plain and centred 95 % percentile intervals on simulated sets with a known truth."""
    rng = np.random.default_rng(123)

    def seq(name: str, n: int = 300) -> MotSequence:
        gt, pr = synth_sequence(rng, n, 10.0)
        return MotSequence(name, n, gt[:, 0], gt[:, 1], gt[:, 2:], pr[:, 0], pr[:, 1], pr[:, 2:])

    keys = ("MOTA", "IDF1", "HOTA", "AssA")
    big = evaluate_mot([seq(f"b{i}") for i in range(150)]).combined
    truth = {k: getattr(big, k) for k in keys}
    plain, centred = dict.fromkeys(keys, 0), dict.fromkeys(keys, 0)
    shift = {k: 0.0 for k in keys}
    for s in range(n_sets):
        res, rs = evaluate_mot_bootstrap([seq(f"s{i}") for i in range(7)], block_frames=block_frames)
        v = rs.values(replicate_weights(len(rs.units), 300, seed=s))
        for k in keys:
            point = getattr(res.combined, k)
            lo, hi = percentile_interval(v[k])
            plain[k] += lo <= truth[k] <= hi
            lo, hi = centred_interval(v[k], point)
            centred[k] += lo <= truth[k] <= hi
            shift[k] += (float(np.mean(v[k])) - point) / n_sets
    print(f"{n_sets} simulated sets, 7 sequences x 300 frames, blocks of {block_frames}: coverage of 95 % intervals")
    for k in keys:
        print(
            f"  {k:<5} truth {truth[k]:.4f}  percentile {plain[k] / n_sets:.2f}  centred {centred[k] / n_sets:.2f}"
            f"  mean(replicates) - point {shift[k]:+.4f}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of each sequence's frames")
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--block-frames", type=int, default=50)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--coverage", type=int, metavar="N", help="coverage study on N simulated sets instead")
    args = ap.parse_args(argv)
    if args.coverage:
        return coverage(args.coverage, args.block_frames)
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
        clo, chi = centred_interval(vals[k], getattr(point, k))
        print(f"  {k:<5} {getattr(point, k):.4f}  95 % percentile [{lo:.4f}, {hi:.4f}]  centred [{clo:.4f}, {chi:.4f}]")
    print(f"weights 1 reproduce the point estimate (MOTA/IDF1/IDP/IDR/HOTA/DetA/AssA bit for bit): {exact}")
    print(f"\n{'what':<58} {'seconds':>8}")
    print(f"{'point estimate evaluate_mot (CLEAR+Identity+HOTA)':<58} {t_point:>8.2f}")
    print(f"{'evaluate_mot_bootstrap (same + per-block statistics)':<58} {t_stats:>8.2f}")
    print(f"{f'{args.resamples} replicates MOTA/MOTP/IDF1/HOTA (values)':<58} {t_boot:>8.2f}")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
