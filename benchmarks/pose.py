"""Benchmark: CPU inference speed of the top-down pose nets (``crowdbench.methods.pose.models``), crops per second.

For each model and input size, batch 8, ``torch.set_num_threads(2)``, eval mode, ``torch.inference_mode``, times

* ``single``: one forward;
* ``flip``: plus a forward on the width-flipped batch, flipped back (flip width, swap left/right channels by COCO's
  flip pairs, MSRA one-pixel shift to the right) and averaged: methods.md section 8 "Flip test";
* ``ms+flip``: input scales 0.7 / 1.0 / 1.3 (reading A of methods.md section 8: same crop, network input resized
  to s x (H, W)), each with flip, heatmaps resized bilinearly to the 1.0 size and averaged (6 forwards).

Random weights (speed does not depend on them); reported figure = crops / median seconds per batch.

    python benchmarks/pose.py [--quick] [--iters 10] [--batch 8]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import Tensor

from crowdbench.methods.pose.models import PoseNet, build_pose_model

NUM_JOINTS = 17
COCO_FLIP_PAIRS = [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)]
SCALES = (0.7, 1.0, 1.3)

MODELS = [  # name, build kwargs, input (H, W)
    ("SimpleBaseline-R18", dict(arch="simplebaseline", backbone="resnet18"), (256, 192)),
    ("SimpleBaseline-R50", dict(arch="simplebaseline", backbone="resnet50"), (256, 192)),
    ("HRNet-W18-small", dict(arch="hrnet", hrnet_width=18), (256, 192)),
    ("HRNet-W32", dict(arch="hrnet", hrnet_width=32), (256, 192)),
    ("SimpleBaseline-R18 (smoke)", dict(arch="simplebaseline", backbone="resnet18"), (64, 48)),
    ("HRNet-W8 tiny (smoke)", dict(arch="hrnet", hrnet_width=8), (64, 48)),
]


def flip_back(heatmaps: Tensor, flip_pairs: list[tuple[int, int]], shift: bool = True) -> Tensor:
    """Heatmaps of a width-flipped input -> heatmaps in the original frame (HRNet ``flip_back`` + shift)."""
    perm = list(range(heatmaps.shape[1]))
    for a, b in flip_pairs:
        perm[a], perm[b] = b, a
    out = heatmaps.flip(-1)[:, perm]
    if shift:  # MSRA (non-UDP) pipeline: column j takes column j - 1
        out = torch.cat([out[..., :1], out[..., :-1]], dim=-1)
    return out


def predict(model: PoseNet, x: Tensor, mode: str) -> Tensor:
    """Averaged heatmaps for ``mode`` in {single, flip, ms+flip}."""
    if mode == "single":
        return model(x)["heatmaps"]
    if mode == "flip":
        return 0.5 * (model(x)["heatmaps"] + flip_back(model(x.flip(-1))["heatmaps"], COCO_FLIP_PAIRS))
    h, w = x.shape[-2:]
    size = (-(-h // model.stride), -(-w // model.stride))
    total = 0
    for s in SCALES:
        xs = x
        if s != 1.0:
            xs = F.interpolate(x, size=(round(h * s), round(w * s)), mode="bilinear", align_corners=False)
        hm = predict(model, xs, "flip")
        total = total + F.interpolate(hm, size=size, mode="bilinear", align_corners=False)
    return total / len(SCALES)


def time_mode(model: PoseNet, x: Tensor, mode: str, iters: int, warmup: int) -> float:
    """Median seconds per batch."""
    times = []
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        hm = predict(model, x, mode)
        dt = time.perf_counter() - t0
        if i >= warmup:
            times.append(dt)
    assert hm.shape[-2:] == (-(-x.shape[-2] // model.stride), -(-x.shape[-1] // model.stride))
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 timed iterations after 1 warm-up (default 10 after 2)")
    ap.add_argument("--iters", type=int, help="timed iterations per cell")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    iters = args.iters or (2 if args.quick else 10)
    warmup = 1 if args.quick else 2
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    modes = ("single", "flip", "ms+flip")
    print(f"batch {args.batch}, {args.threads} threads, median of {iters} (after {warmup} warm-up); crops/s")
    print(f"{'model':28} {'input':>8} {'params':>8} " + " ".join(f"{m:>9}" for m in modes))
    for name, kwargs, (h, w) in MODELS:
        model = build_pose_model(num_joints=NUM_JOINTS, **kwargs).eval()
        x = torch.randn(args.batch, 3, h, w)
        with torch.inference_mode():
            secs = [time_mode(model, x, m, iters, warmup) for m in modes]
        params = sum(p.numel() for p in model.parameters()) / 1e6
        cells = " ".join(f"{args.batch / s:9.1f}" for s in secs)
        print(f"{name:28} {f'{h}x{w}':>8} {params:7.1f}M {cells}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
