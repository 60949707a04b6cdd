"""Benchmark: CPU speed of optical-flow pose smoothing (``crowdbench.methods.tracking.flow``, methods.md section 6).

On a textured synthetic RGB pair (blurred random noise) whose second image is the first shifted by a known integer
vector (default (-5, -3), as in methods.md's table), times ``compute_flow`` for DIS ultrafast / fast / medium (and
medium at half resolution) and Farneback, the classic OpenCV baseline (methods.md parameters), in the same run, and
reports the median flow recovered over the image interior (it should equal the shift). Smoothing a frame with
paper 000 eq. (1) needs two flows (``F_{k-1->k}`` and ``F_{k+1->k}``), so the smoothing rate is
``1 / (2 t_flow + t_pose)``, ``t_pose`` the cost of ``smooth_poses`` for one frame of 100 people x 17 joints (timed
separately, flows given). Figures = median over ``--repeats`` after one warm-up; OpenCV uses its default threads.

    python benchmarks/flow_smoothing.py [--repeats 3] [--size 1920x1080]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from crowdbench.methods.tracking.flow import FlowMethod, compute_flow, smooth_poses

METHODS: tuple[tuple[FlowMethod, float], ...] = (
    ("dis_ultrafast", 1.0),
    ("dis_fast", 1.0),
    ("dis_medium", 1.0),
    ("dis_medium", 0.5),
    ("farneback", 1.0),
)


def textured_pair(width: int, height: int, shift: tuple[int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 texture and the same image moved by ``shift = (dx, dy)`` (so the true flow is ``shift``)."""
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8), (0, 0), 1.5)
    return image, np.roll(image, shift=(shift[1], shift[0]), axis=(0, 1))


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_pose_step(flow_shape: tuple[int, int], people: int = 100, joints: int = 17, repeats: int = 3) -> float:
    """Seconds of ``smooth_poses`` for the middle frame of 3 frames with ``people`` tracked people (flows given)."""
    rng = np.random.default_rng(1)
    h, w = flow_shape
    frames = []
    for _ in range(3):
        pose = {}
        for tid in range(people):
            xy = rng.uniform([0, 0], [w - 1, h - 1], size=(joints, 2))
            pose[tid] = np.concatenate([xy, rng.uniform(0, 1, size=(joints, 1))], axis=1)
        frames.append(pose)
    flow = rng.normal(size=(h, w, 2)).astype(np.float32)
    # smooth all 3 frames; cost per frame = total / 3 (frames 0 and 2 have one neighbour each)
    total = median_seconds(lambda: smooth_poses(frames, [None, flow, flow], [flow, flow, None], 0.25, 0.3), repeats)
    return total / 3


def bench_flow(
    size: tuple[int, int] = (1920, 1080),
    repeats: int = 3,
    shift: tuple[int, int] = (-5, -3),
    methods: Sequence[tuple[FlowMethod, float]] = METHODS,
) -> list[dict[str, float | str]]:
    """One row per (method, scale): seconds per flow, flows/s, smoothed frames/s and the recovered median flow."""
    width, height = size
    prev, nxt = textured_pair(width, height, shift)
    t_pose = bench_pose_step((height, width), repeats=repeats)
    margin = max(8, min(width, height) // 20)
    rows: list[dict[str, float | str]] = []
    for method, scale in methods:
        seconds = median_seconds(lambda m=method, s=scale: compute_flow(prev, nxt, m, s), repeats)
        flow = compute_flow(prev, nxt, method, scale)
        med = np.median(flow[margin:-margin, margin:-margin].reshape(-1, 2), axis=0)
        rows.append(
            {
                "method": method if scale == 1.0 else f"{method} @{scale:g}",
                "flow_s": seconds,
                "flows_per_s": 1.0 / seconds,
                "pose_s": t_pose,
                "smoothed_fps": 1.0 / (2.0 * seconds + t_pose),
                "median_dx": float(med[0]),
                "median_dy": float(med[1]),
            }
        )
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method (median reported)")
    parser.add_argument("--size", default="1920x1080", help="image size WIDTHxHEIGHT")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    shift = (-5, -3)
    print(f"opencv {cv2.__version__}, {cv2.getNumThreads()} threads, {width}x{height}, true shift {shift}")
    rows = bench_flow((width, height), args.repeats, shift)
    print(f"pose smoothing step (eq. 1), 100 people x 17 joints: {rows[0]['pose_s'] * 1e3:.2f} ms / frame")
    print(f"{'method':<18} {'s / flow':>9} {'flows/s':>8} {'smoothed fps':>13} {'median flow':>16}")
    for r in rows:
        median = f"({r['median_dx']:+.2f}, {r['median_dy']:+.2f})"
        print(f"{r['method']:<18} {r['flow_s']:>9.3f} {r['flows_per_s']:>8.1f} {r['smoothed_fps']:>13.2f} {median:>16}")


if __name__ == "__main__":
    main()
