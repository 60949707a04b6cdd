"""Benchmark: CPU training-step time of the detectors of hie-pose Table 1 (backbones x C4 / FPN x Faster / Cascade).

For every runnable row of ``hie-pose/table1`` (plus the smoke default detector of Table 3, ResNet-18 FPN) the row's
config is built exactly as ``crowdbench table`` builds it (``bench.matrix.expand``), the detector is built by
``methods.detection.faster_rcnn.build_detector`` and one SGD step (forward with targets, backward, optimizer step) is
timed on a fixed batch of ``train.batch_size`` synthetic smoke frames. Reported: parameters, median seconds per step
over ``--iters`` steps after ``--warmup``, and the projected training time of the row (``train.iterations`` steps).

Reference in the same run: torchvision's own ``fasterrcnn_resnet50_fpn`` (no weights, 2 classes, the same
``min_size`` / ``max_size``) on the same batch, the model every detection repo starts from, so a figure can be read as
"x times the stock torchvision detector's step". ``--profile full`` times the full-size backbones instead (slow on a
CPU; meant for a GPU machine, where ``--device cuda`` uses it).

    python benchmarks/detector_backbones.py [--profile smoke] [--iters 5] [--warmup 2] [--device cpu] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torchvision.models.detection import fasterrcnn_resnet50_fpn

from crowdbench.bench.config import RunConfig
from crowdbench.bench.matrix import expand
from crowdbench.bench.specs import load_spec
from crowdbench.bench.stages.data import load_frames
from crowdbench.bench.stages.detector_training import image_tensor
from crowdbench.methods.detection.crowddet import targets_from_frame
from crowdbench.methods.detection.faster_rcnn import build_detector


def batch(cfg: RunConfig, device: str) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """The first ``batch_size`` training frames of the row's data, as the trainer feeds them."""
    frames = load_frames(cfg.data, "train")[: cfg.train.batch_size]
    images = [image_tensor(f).to(device) for f in frames]
    targets = [{k: v.to(device) for k, v in targets_from_frame(f, device).items()} for f in frames]
    return images, targets


def step_seconds(model: torch.nn.Module, images: list, targets: list, iters: int, warmup: int) -> float:
    """Median wall seconds of one SGD step (synchronised on CUDA)."""
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    model.train()
    times = []
    for i in range(warmup + iters):
        if images[0].is_cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = sum(model(images, targets).values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if images[0].is_cuda:
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def n_params(model: torch.nn.Module) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="smoke", choices=["smoke", "full"])
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {device}: CUDA is not available on this machine")

    cells = expand(load_spec("hie-pose/table1"), profile=args.profile)
    default = expand(load_spec("hie-pose/table3"), profile=args.profile, rows=[1])[0]
    rows = [(c.row_label, c.config) for c in cells] + [
        ("Table 3 default (" + default.config.model.backbone + " FPN)", default.config)
    ]
    images, targets = batch(rows[0][1], device)
    m = rows[0][1].model
    print(
        f"device {device} ({torch.get_num_threads()} threads), profile {args.profile}, batch {len(images)} x "
        f"{tuple(images[0].shape[1:])}, min_size {m.min_size}, median of {args.iters} steps after {args.warmup}"
    )
    torch.manual_seed(0)
    ref = fasterrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=2, min_size=m.min_size, max_size=m.max_size
    ).to(device)
    ref_targets = [
        {"boxes": t["boxes"], "labels": torch.ones(len(t["boxes"]), dtype=torch.int64, device=device)} for t in targets
    ]
    ref_s = step_seconds(ref, images, ref_targets, args.iters, args.warmup)
    header = (
        f"{'row':<40} {'trunk':<18} {'neck':<4} {'heads':<7} {'Mparams':>8} {'s/step':>7} {'x ref':>6} {'train':>8}"
    )
    print(header)
    print("-" * len(header))
    print(
        f"{'reference: torchvision fasterrcnn_resnet50_fpn':<40} {'resnet50':<18} {'FPN':<4} {'1':<7} "
        f"{n_params(ref):8.2f} {ref_s:7.3f} {1.0:6.2f} {'':>8}"
    )
    del ref
    for label, cfg in rows:
        torch.manual_seed(0)
        model = build_detector(cfg.model).to(device)
        s = step_seconds(model, images, targets, args.iters, args.warmup)
        heads = f"cas x{len(cfg.model.cascade_ious)}" if cfg.model.cascade else "1"
        total = s * cfg.train.iterations
        print(
            f"{label[:40]:<40} {cfg.model.backbone:<18} {'FPN' if cfg.model.fpn else 'C4':<4} {heads:<7} "
            f"{n_params(model):8.2f} {s:7.3f} {s / ref_s:6.2f} {total / 60:6.1f} m"
        )
        del model


if __name__ == "__main__":
    main()
