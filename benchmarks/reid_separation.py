"""Diagnostic: does a trained ReID network tell the people of a tracking table's validation videos apart where
DeepSORT decides?

Not a speed benchmark. For one trained ReID network (a cached ``reid`` stage's ``model.pt``) of a table row, on
the row's validation videos (built as ``crowdbench table`` builds them, ``bench.matrix.expand``), each ground-truth
person visible in frame t and in frame t - ``--gap`` is embedded (the row's flip / scales) and compared with

- ``same``: the cosine distance to its own earlier crop (what DeepSORT's gallery holds);
- ``other``: the smallest cosine distance to any other person's earlier crop of that frame;
- ``other (near)``: the same, over other people whose earlier box overlaps the person's current box (IoU > 0.1),
  the candidates a crossing confuses.

``--min-visible V`` keeps only people whose visible box covers at least V of their box in both frames.

It prints the medians, the share of ``same`` within the row's ``max_cosine_distance`` (DeepSORT's appearance gate:
pairs above it are never matched on appearance), the share of ``other`` within it (wrong matches the gate lets
through) and rank-1 (``same`` < ``other``). A network whose ``same`` distances mostly exceed the gate cannot change
DeepSORT's matches; one with low rank-1 among near people cannot keep identities through crossings.

``--colour`` scores a hand-made reference instead of the network: a hue-saturation histogram (16 x 4 bins, square
root, L2-normalised) of the crop's central half, the same crops. The synthetic people differ mainly in clothing
colour, so it tells whether the scenario carries the identity cue the network should have learnt. Issue 22 used it
on hie-tracking Table 5 (README results log, session 14).

    python benchmarks/reid_separation.py hie-tracking/table5 2 runs/cache/reid/<key>/model.pt [--gap 10] [--colour]
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import torch

from crowdbench.bench.matrix import expand
from crowdbench.bench.specs import load_spec
from crowdbench.bench.stages.data import load_frames
from crowdbench.datasets.formats.mot import box_visibility
from crowdbench.methods.tracking.deepsort import iou_matrix
from crowdbench.methods.tracking.reid import crop_boxes, embed, load_reid_model


def colour_features(frames, boxes: list[np.ndarray], input_hw: tuple[int, int]) -> list[np.ndarray]:
    """Per frame, ``N x 64`` hue-saturation histograms of each box's crop (central half of its width and height)."""
    h, w = input_hw
    out = []
    for frame, b in zip(frames, boxes, strict=True):
        crops = crop_boxes(frame.load_image(), b, input_hw)[:, h // 4 : h - h // 4, w // 4 : w - w // 4]
        feats = np.zeros((len(crops), 64))
        for n, crop in enumerate(crops):
            hsv = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2HSV)
            hist = cv2.calcHist([hsv], [0, 1], None, [16, 4], [0, 180, 0, 256]).reshape(-1)
            feats[n] = np.sqrt(hist / max(hist.sum(), 1.0))
        out.append(feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12))
    return out


def _people(frame) -> dict[int, np.ndarray]:
    """Track id -> box (x1, y1, x2, y2) of the frame's annotated, non-ignored people."""
    return {int(i.track_id): np.asarray(i.box, dtype=np.float64) for i in frame.instances if not i.ignore}


def _visibility(frame) -> dict[int, float]:
    return {int(i.track_id): box_visibility(i) for i in frame.instances if not i.ignore}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table")
    parser.add_argument("row", type=int, help="1-based row of the table whose ReID network this is")
    parser.add_argument("model", help="the row's trained ReID network: <run-dir>/cache/reid/<key>/model.pt")
    parser.add_argument("--gap", type=int, default=1, help="frames between the compared crops")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--colour", action="store_true", help="score the colour-histogram reference, not the network")
    parser.add_argument("--min-visible", type=float, default=0.0, help="only people this visible in both frames")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = expand(load_spec(args.table), rows=[args.row - 1])[0].config
    r = cfg.tracking.reid
    gate = cfg.tracking.deepsort.max_cosine_distance
    frames = load_frames(cfg.data, cfg.data.val_split)
    people = [_people(f) for f in frames]
    seen = [_visibility(f) for f in frames]
    ids = [np.array(sorted(p), dtype=np.int64) for p in people]
    boxes = [np.array([p[i] for i in sorted(p)]).reshape(-1, 4) for p in people]
    if args.colour:
        feats = colour_features(frames, boxes, tuple(r.input_hw))
    else:
        model = load_reid_model(r, args.model, "cpu")
        feats = embed(model, frames, boxes, flip=r.flip, scales=tuple(r.scales), device="cpu")
    same, other, near_same, near_other = [], [], [], []
    for t in range(args.gap, len(frames)):
        s = t - args.gap
        if frames[s].video != frames[t].video or len(ids[t]) == 0 or len(ids[s]) < 2:
            continue
        dist = 1.0 - feats[t] @ feats[s].T  # cosine distance, features L2-normalised
        overlap = iou_matrix(boxes[t], boxes[s])
        for a, pid in enumerate(ids[t]):
            own = np.flatnonzero(ids[s] == pid)
            if len(own) == 0 or min(seen[t][int(pid)], seen[s][int(pid)]) < args.min_visible:
                continue
            rest = ids[s] != pid
            same.append(dist[a, own[0]])
            other.append(dist[a, rest].min())
            near = rest & (overlap[a] > 0.1)
            if near.any():
                near_same.append(dist[a, own[0]])
                near_other.append(dist[a, near].min())
    if not same:
        raise SystemExit(f"{args.table} row {args.row}: no person is seen in two frames {args.gap} apart")
    same_a, other_a = np.array(same), np.array(other)
    ns, no = np.array(near_same), np.array(near_other)
    pairs = f"{len(same_a)} person pairs {args.gap} frame(s) apart, visible >= {args.min_visible:.0%} in both"
    print(f"{args.table} row {args.row}: {len(frames)} validation frames, {pairs}")
    what = "colour histogram" if args.colour else f"ReID {r.arch}, flip {r.flip}, scales {list(r.scales)}"
    print(f"  {what}, crops {r.input_hw[0]}x{r.input_hw[1]}; DeepSORT gate max_cosine_distance {gate}")
    print(f"  same person     median {np.median(same_a):.3f}; within the gate {np.mean(same_a <= gate):6.1%}")
    print(f"  nearest other   median {np.median(other_a):.3f}; within the gate {np.mean(other_a <= gate):6.1%}")
    print(f"  rank-1 (same < nearest other): {np.mean(same_a < other_a):6.1%}")
    if len(ns):
        print(
            f"  {len(ns)} pairs with an overlapping other person (IoU > 0.1): rank-1 {np.mean(ns < no):6.1%}, "
            f"other within the gate {np.mean(no <= gate):6.1%}"
        )


if __name__ == "__main__":
    main()
