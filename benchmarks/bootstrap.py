"""Benchmark: image bootstrap replicates (issue 19) vs one evaluation by the reference tool, same run.

* COCO keypoint AP at val scale (``metrics.py``'s seeded 5,000 images x 20 people): ``evaluate_coco_keypoints(...,
  return_resampler=True)`` once, then 1,000 replicates of all 10 stats (``CocoImageResampler.values``); timed
  against one pycocotools 2.0.11 evaluation of the same set. Target: the 1,000 replicates take less time.
* CrowdHuman AP + mMR at val scale (``bench_crowdhuman_eval.py``'s seeded 4,370 images): ``evaluate_images(...,
  ji=False, return_resampler=True)`` once, then 1,000 replicates of AP and mMR. Target: under 30 s. The reference
  timed here is our own point evaluation (CrowdDet's code is not redistributed; ``bench_crowdhuman_eval.py`` times
  it when present).

Both check that all-ones weights reproduce the point estimate bit for bit.

    python benchmarks/bootstrap.py [--images 5000] [--people 20] [--ch-images 4370] [--resamples 1000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_crowdhuman_eval import make_dataset
from metrics import KEYS, coco_keypoint_set, run_pycocotools

from crowdbench.bench.metrics.bootstrap import percentile_interval, replicate_weights
from crowdbench.bench.metrics.coco_keypoints import evaluate_coco_keypoints
from crowdbench.bench.metrics.crowdhuman import evaluate_images, images_from_frames
from crowdbench.datasets.formats.crowdhuman import read_detections, read_odgt


def bench_coco(n_images: int, people: int, resamples: int, skip_ref: bool) -> bool:
    gt, preds = coco_keypoint_set(n_images, people)
    t = time.perf_counter()
    res, rs = evaluate_coco_keypoints(gt, preds, return_resampler=True)
    eval_s = time.perf_counter() - t
    exact = [rs.values(np.ones((1, len(rs.units)), np.int32))[k][0] for k in KEYS] == list(res.stats)
    w = replicate_weights(len(rs.units), resamples, seed=0)
    t = time.perf_counter()
    reps = rs.values(w)
    boot_s = time.perf_counter() - t
    ref_s = float("nan")
    if not skip_ref:
        ref_stats, ref_s = run_pycocotools(gt, preds)
        exact = exact and ref_stats == list(res.stats)
    low, high = percentile_interval(reps["AP"])
    print(f"COCO keypoints, {n_images} images x {people} people, {len(preds)} predictions")
    print(f"  ours: evaluation + per-image statistics   {eval_s:8.2f} s")
    print(f"  ours: {resamples} replicates (10 stats)     {boot_s:8.2f} s   AP {res.AP:.4f} [{low:.4f}, {high:.4f}]")
    print(f"  pycocotools: one evaluation               {ref_s:8.2f} s")
    print(f"  all-ones weights = point estimate (= pycocotools): {exact}")
    ok = exact and (skip_ref or boot_s < ref_s)
    print(f"  replicates faster than one pycocotools evaluation: {ok}")
    return ok


def bench_crowdhuman(n_images: int, resamples: int) -> bool:
    gts, dts = make_dataset(n_images)
    with tempfile.TemporaryDirectory() as tmp:
        gp, dp = Path(tmp) / "gt.odgt", Path(tmp) / "dt.json"
        gp.write_text("".join(json.dumps(r) + "\n" for r in gts))
        dp.write_text("".join(json.dumps(r) + "\n" for r in dts))
        frames = read_odgt(gp)
        dets = read_detections(dp)
    images = images_from_frames(frames, dets)
    t = time.perf_counter()
    point = evaluate_images(images, ji=False)
    point_s = time.perf_counter() - t
    t = time.perf_counter()
    res, rs = evaluate_images(images, ji=False, return_resampler=True)
    eval_s = time.perf_counter() - t
    ones = rs.values(np.ones((1, len(rs.units)), np.int32))
    exact = ones["AP"][0] == res.AP and ones["mMR"][0] == res.mMR and res.AP == point.AP
    w = replicate_weights(len(rs.units), resamples, seed=0)
    t = time.perf_counter()
    reps = rs.values(w)
    boot_s = time.perf_counter() - t
    n_det = sum(len(im.det_scores) for im in images)
    print(f"CrowdHuman AP + mMR, {n_images} images, {n_det} detections")
    print(f"  ours: point evaluation (AP + mMR)             {point_s:8.2f} s")
    print(f"  ours: evaluation + per-image statistics       {eval_s:8.2f} s")
    for key in ("AP", "mMR"):
        low, high = percentile_interval(reps[key])
        print(f"  {key}: {getattr(res, key):.4f} [{low:.4f}, {high:.4f}]")
    print(f"  ours: {resamples} replicates (AP + mMR)          {boot_s:8.2f} s")
    print(f"  all-ones weights = point estimate: {exact}")
    ok = exact and boot_s < 30.0
    print(f"  under 30 s: {ok}")
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--people", type=int, default=20)
    ap.add_argument("--ch-images", type=int, default=4370)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--skip-pycocotools", action="store_true")
    args = ap.parse_args(argv)
    ok = bench_coco(args.images, args.people, args.resamples, args.skip_pycocotools)
    ok = bench_crowdhuman(args.ch_images, args.resamples) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
