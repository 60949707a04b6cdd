"""Benchmark: inference seconds per image of the pose-regression networks of pose-regression Table 4 (paper 002).

Each runnable row of ``pose-regression/table4`` is built as ``crowdbench table`` builds it (``bench.matrix.expand``)
and timed at batch 1 on one image of the profile's input size (smoke: the 160 x 160 synthetic frames; ``--profile
full``: 800 x 1216, a COCO image resized to a shorter side of 800): the network, then candidate selection and
soft-NMS on a fixed workload of the ``--people`` x 5 best locations (an untrained network would otherwise keep
none or all of them, which times nothing real).

Then the feature alignment's deformable 3x3 convolution, forward + backward on the P3 map of a training batch (smoke:
8 x 64 x 20 x 20; full: 8 x 256 x 100 x 100): ``torchvision.ops.deform_conv2d`` against crowdbench's
``deform_conv2d_sampled`` (the same function through ``grid_sample``, which CPU runs use), with their largest
difference.

Reference in the same run: torchvision's ``keypointrcnn_resnet50_fpn`` (Mask R-CNN with a keypoint head; paper 002
Table 4 compares with Mask R-CNN, 0.2 s), no weights, on the same image, with ``box_score_thresh=0`` and
``box_detections_per_img=--people`` so its keypoint head runs on that many people, as in a crowd.

    python benchmarks/pose_regression.py [--profile smoke] [--iters 5] [--warmup 1] [--device cpu] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torchvision.models.detection import keypointrcnn_resnet50_fpn

from crowdbench.bench.matrix import expand
from crowdbench.bench.specs import load_spec
from crowdbench.methods.pose.regression.decode import decode_poses, pose_boxes, soft_nms
from crowdbench.methods.pose.regression.model import build_regression_model, deform_conv2d_sampled

FULL_IMAGE = (800, 1216)


def seconds(run, iters: int, warmup: int, cuda: bool) -> float:
    """Median wall seconds of ``run()`` (synchronised on CUDA)."""
    times = []
    for i in range(warmup + iters):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        run()
        if cuda:
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def regression_step(model, image: torch.Tensor, people: int, iou: float, max_dets: int):
    """Network + the best ``5 x people`` locations decoded + soft-NMS of their pseudo boxes."""

    def run() -> None:
        with torch.inference_mode():
            out = model(image)
            top = out["cls"][0].topk(min(5 * people, out["cls"].shape[1])).indices
            offsets = out["refined"] if out["refined"] is not None else out["initial"]
            poses = decode_poses(out["locations"][top], out["strides"][top], offsets[0, top])
            scores = (out["cls"][0, top].sigmoid() * out["psm"][0, top].sigmoid()).cpu().numpy().astype(np.float64)
        soft_nms(pose_boxes(poses.cpu().numpy()), scores, iou_thr=iou, max_dets=max_dets)

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="smoke", choices=["smoke", "full"])
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--people", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: CUDA is not available on this machine")
    cells = expand(load_spec("pose-regression/table4"), profile=args.profile)
    h, w = (160, 160) if args.profile == "smoke" else FULL_IMAGE
    torch.manual_seed(0)
    image = torch.randn(1, 3, h, w, device=args.device)
    print(
        f"device {args.device} ({torch.get_num_threads()} threads), profile {args.profile}, one {w}x{h} image, "
        f"{args.people} people, median of {args.iters} after {args.warmup} warm-up"
    )
    ref = keypointrcnn_resnet50_fpn(
        weights=None,
        weights_backbone=None,
        num_classes=2,
        min_size=min(h, w),
        max_size=max(h, w),
        box_score_thresh=0.0,
        box_detections_per_img=args.people,
    ).to(args.device)
    ref.eval()

    def ref_run(model=ref) -> None:
        with torch.inference_mode():
            model(list(image))

    ref_s = seconds(ref_run, args.iters, args.warmup, cuda)
    header = f"{'row':<50} {'trunk':<16} {'Mparams':>8} {'s/image':>8} {'x ref':>6}"
    print(header)
    print("-" * len(header))
    n_ref = sum(p.numel() for p in ref.parameters()) / 1e6
    print(
        f"{'reference: torchvision keypointrcnn_resnet50_fpn':<50} {'resnet50':<16} {n_ref:8.2f} {ref_s:8.3f} {1:6.2f}"
    )
    del ref
    for cell in cells:
        r = cell.config.regression
        torch.manual_seed(0)
        model = build_regression_model(r.model, 17).to(args.device).eval()
        s = seconds(
            regression_step(model, image, args.people, r.test.nms_iou, r.test.max_dets), args.iters, args.warmup, cuda
        )
        n = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"{cell.row_label:<50} {r.model.backbone:<16} {n:8.2f} {s:8.3f} {s / ref_s:6.2f}")
        del model

    deform_section(args.profile, args.device, args.iters, cuda)


def deform_section(profile: str, device: str, iters: int, cuda: bool) -> None:
    from torchvision.ops import deform_conv2d

    b, c, side = (8, 64, 20) if profile == "smoke" else (8, 256, 100)
    torch.manual_seed(0)
    x = torch.randn(b, c, side, side, device=device, requires_grad=True)
    weight = (torch.randn(c, c, 3, 3, device=device) * 0.01).requires_grad_(True)
    offset = (torch.randn(b, 4 * 18, side, side, device=device) * 2).requires_grad_(True)
    last: dict[str, torch.Tensor] = {}

    def step(name: str, fn):
        def run() -> None:
            y = fn(x, offset, weight, None)
            y.sum().backward()
            last[name] = y.detach()

        return run

    tv = seconds(step("torchvision", lambda x_, o, w, _b: deform_conv2d(x_, o, w, padding=1)), iters, 1, cuda)
    ours = seconds(step("ours", deform_conv2d_sampled), iters, 1, cuda)
    diff = float((last["torchvision"] - last["ours"]).abs().max())
    print(
        f"\ndeformable 3x3 conv, forward + backward, {b}x{c}x{side}x{side}, 4 offset groups: "
        f"torchvision.ops.deform_conv2d {tv:.3f} s, grid_sample form {ours:.3f} s ({tv / ours:.1f}x), "
        f"max |difference| {diff:.1e}"
    )


if __name__ == "__main__":
    main()
