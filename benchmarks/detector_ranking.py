"""Diagnostic: where a trained detector loses its people: the proposals, the box head's outputs or their ranking.

Not a speed benchmark. For one trained detector (a cached ``train`` stage's ``model.pt``) of a table row, on the
row's first ``--frames`` validation frames (built as ``crowdbench table`` builds them, ``bench.matrix.expand``):

- proposal recall: ground-truth boxes with an RPN proposal at IoU >= 0.5 (all post-NMS proposals);
- head recall: ground-truth boxes with any box-head output at IoU >= 0.5 (every scored box, before NMS);
- top-2N recall: the same within the 2N highest-scored outputs of a frame with N people, once with the box head's
  BatchNorm on its running statistics (``eval``, what inference does) and once on the batch's statistics (only the
  first when the head has no BatchNorm: a C4 head trained from scratch uses GroupNorm, ``faster_rcnn.group_norm_head``).

A detector with high proposal and head recall but low top-2N recall finds its people and ranks them badly: AP and
log-average miss rate, which read the ranking, are then low although the boxes are there. Issue 22 used it on the
smoke C4 detector of hie-pose Table 1 (README results log, session 13).

    python benchmarks/detector_ranking.py hie-pose/table1 1 runs/cache/train/<key>/model.pt [--frames 24]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torchvision.ops import box_iou

from crowdbench.bench.matrix import expand
from crowdbench.bench.specs import load_spec
from crowdbench.bench.stages.data import load_frames
from crowdbench.bench.stages.detector_training import image_tensor, load_detector_weights
from crowdbench.methods.detection.faster_rcnn import build_detector


def _recall(gt: torch.Tensor, boxes: torch.Tensor) -> float:
    """Share of ``gt`` boxes with a box of ``boxes`` at IoU >= 0.5."""
    if len(boxes) == 0:
        return 0.0
    return float((box_iou(gt, boxes).max(1).values >= 0.5).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table")
    parser.add_argument("row", type=int, help="1-based row of the table whose detector this is")
    parser.add_argument("model", help="the row's trained detector: <run-dir>/cache/train/<key>/model.pt")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = expand(load_spec(args.table), rows=[args.row - 1])[0].config
    frames = load_frames(cfg.data, cfg.data.val_split)[: args.frames]
    model = build_detector(cfg.model)
    load_detector_weights(model, args.model, cfg.model)
    head_norms = [m for m in model.roi_heads.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    found: dict[str, list[float]] = {
        "proposals": [],
        "head": [],
        "top-2N (running stats)": [],
        "top-2N (batch stats)": [],
    }
    with torch.no_grad():
        for frame in frames:
            gt = torch.tensor(np.array([i.box for i in frame.instances if not i.ignore]), dtype=torch.float32)
            if len(gt) == 0:
                continue
            model.eval()
            images, _ = model.transform([image_tensor(frame)])
            proposals, _ = model.rpn(images, model.backbone(images.tensors))
            found["proposals"].append(_recall(gt, proposals[0] * frame.height / images.image_sizes[0][0]))
            for name, batch_stats in (("top-2N (running stats)", False), ("top-2N (batch stats)", True)):
                if batch_stats and not head_norms:  # GroupNorm head (a C4 trained from scratch): nothing to switch
                    continue
                for norm in head_norms:  # momentum 0: batch statistics must not overwrite the running ones
                    norm.train(batch_stats)
                    norm.momentum = 0.0
                out = model([image_tensor(frame)])[0]
                top = out["boxes"][out["scores"].argsort(descending=True)[: 2 * len(gt)]]
                found[name].append(_recall(gt, top))
                if not batch_stats:
                    found["head"].append(_recall(gt, out["boxes"]))
    print(f"{args.table} row {args.row}, {len(found['head'])} frames, {len(head_norms)} BatchNorm layers in the head")
    for name, values in found.items():
        if values:  # a GroupNorm head has no batch-statistics pass
            print(f"  {name:<24} recall {100 * np.mean(values):5.1f} %")


if __name__ == "__main__":
    main()
