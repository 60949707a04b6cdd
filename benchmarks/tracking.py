"""Benchmark: DeepSORT tracker speed (``crowdbench.methods.tracking.deepsort``), frames per second on CPU.

Synthetic scene, precomputed before timing: ``people`` boxes moving at constant velocity (speed up to 3 px / frame,
reflected at the 1920 x 1080 border), heights 80-240 px, Gaussian box noise (sigma 2 px), 5 % of detections dropped at
random (so the matching cascade sees tracks of several ages), and one random 128-D unit feature per person plus noise,
L2-normalised, float32. Reported: tracker frames per second (``DeepSort.step`` only), the share of that time spent in
the Hungarian solver (``scipy.optimize.linear_sum_assignment``), and the number of distinct track ids written (a sanity
check: close to the number of people when association works).

BLAS is pinned to one thread (``OPENBLAS_NUM_THREADS`` etc. default to 1 unless already set): the tracker is run one
video per process, and a multi-threaded BLAS on these small matrices is several times slower on a loaded machine.

No side-by-side figure with the reference implementation (``nwojke/deep_sort``) is printed: it is GPL-3.0, pins old
dependencies (TensorFlow 1, scikit-learn's removed ``linear_assignment``) and cannot be installed offline here.

Then the flow-smoothing section (``benchmarks/flow_smoothing.py``: DIS optical flow and the pose-smoothing step at
1920 x 1080, against OpenCV's Farneback in the same run); ``--no-flow`` skips it.

    python benchmarks/tracking.py [--frames 300] [--people 30 100] [--seed 0] [--no-flow]
"""

from __future__ import annotations

import argparse
import os
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402  (after the BLAS thread settings)

from crowdbench.methods.tracking import deepsort  # noqa: E402
from crowdbench.methods.tracking.deepsort import DeepSort, DeepSortParams  # noqa: E402

WIDTH, HEIGHT = 1920.0, 1080.0


def synthetic_detections(
    frames: int, people: int, seed: int = 0, dim: int = 128
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per-frame ``(boxes, scores, features)`` of ``people`` constant-velocity boxes (see the module docstring)."""
    rng = np.random.default_rng(seed)
    h = rng.uniform(80, 240, people)
    w = 0.4 * h
    pos = np.stack([rng.uniform(w / 2, WIDTH - w / 2), rng.uniform(h / 2, HEIGHT - h / 2)], axis=1)
    vel = rng.uniform(-3, 3, (people, 2))
    base = rng.normal(size=(people, dim))
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    half = np.stack([w / 2, h / 2], axis=1)
    out = []
    for _ in range(frames):
        pos += vel
        low, high = half, np.array([WIDTH, HEIGHT]) - half
        bounce = (pos < low) | (pos > high)
        vel[bounce] *= -1
        pos = np.clip(pos, low, high)
        boxes = np.concatenate([pos - half, pos + half], axis=1) + rng.normal(0, 2.0, (people, 4))
        feats = base + rng.normal(0, 0.1 / np.sqrt(dim), (people, dim))
        feats /= np.linalg.norm(feats, axis=1, keepdims=True)
        keep = rng.random(people) > 0.05
        out.append((boxes[keep], rng.uniform(0.5, 1.0, int(keep.sum())), feats[keep].astype(np.float32)))
    return out


def bench_tracker(frames: int = 300, people: int = 30, seed: int = 0, params: DeepSortParams | None = None) -> dict:
    """Time ``DeepSort.step`` over a synthetic scene; returns fps, Hungarian share and distinct ids written."""
    dets = synthetic_detections(frames, people, seed)
    tracker = DeepSort(params or DeepSortParams())
    lsa = deepsort.linear_sum_assignment
    hungarian = [0.0]

    def timed_lsa(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t0 = time.perf_counter()
        try:
            return lsa(cost)
        finally:
            hungarian[0] += time.perf_counter() - t0

    ids: set[int] = set()
    deepsort.linear_sum_assignment = timed_lsa
    try:
        t0 = time.perf_counter()
        for boxes, scores, feats in dets:
            out = tracker.step(boxes, scores, feats)
            ids.update(out[:, 4].astype(int).tolist())
        total = time.perf_counter() - t0
    finally:
        deepsort.linear_sum_assignment = lsa
    return {"fps": frames / total, "hungarian_share": hungarian[0] / total, "ids": len(ids), "seconds": total}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--people", type=int, nargs="+", default=[30, 100])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-flow", action="store_true", help="skip the flow-smoothing section")
    args = parser.parse_args(argv)
    print(f"DeepSORT, default parameters ({DeepSortParams()}), {args.frames} frames, 128-D features")
    print(f"{'people':>7} {'fps':>9} {'ms/frame':>9} {'hungarian':>10} {'ids':>5}")
    for n in args.people:
        r = bench_tracker(args.frames, n, args.seed)
        print(f"{n:>7} {r['fps']:>9.1f} {1000 / r['fps']:>9.2f} {100 * r['hungarian_share']:>9.1f}% {r['ids']:>5}")
    if not args.no_flow:
        import sys
        from pathlib import Path

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import flow_smoothing

        print()
        flow_smoothing.main([])


if __name__ == "__main__":
    main()
