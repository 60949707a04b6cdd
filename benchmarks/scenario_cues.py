"""Diagnostic: does a smoke scenario carry the cue a tracking table's ReID rows claim to use?

Not a speed benchmark, and no detector. For each scenario given, on the validation videos a tracking table
builds (its data config, ``bench.matrix.expand``; ``--data-seeds`` varies the synthetic data), DeepSORT at the
table's row parameters tracks *oracle detections*: the ground-truth boxes of the people whose visible share of
the box is at least ``--min-visible`` (a hidden person is not detected). It tracks them with each appearance:

- ``IoU only``: no appearance features (the table's baseline row);
- ``colour``: the colour-histogram reference of ``reid_separation.py`` (hue-saturation of the crop's central half)
  as the appearance feature, a training-free stand-in for a ReID network that has learnt clothing colour;
- ``ReID k`` (``--model``, repeatable): a trained ReID network's features of the same boxes.

If no appearance raises the MOTA of oracle detections (fewer switches, or fewer people missed after an occlusion:
DeepSORT's IoU stage never re-matches a track that missed a frame), the scenario does not contain the mechanism
(identities kept through crossings and occlusions on appearance, paper 004 section 4.3; DeepSORT, Wojke et al. 2017,
section 2.2), and no ReID can show it there. If they do, but the table's rows show no effect, the detector's boxes
hide it. It also prints the scenario's crowding: people per frame and the share of people whose box overlaps
another's (IoU > 0.1). Issue 22 used it on hie-tracking Table 5 (README results log, session 15).

    python benchmarks/scenario_cues.py hie-tracking/table5 --scenarios moving_crowd [--data-seeds 0 1 2] \
        [--model runs/cache/reid/<key>/model.pt ...]
"""

from __future__ import annotations

import argparse

import numpy as np
from reid_separation import colour_features  # the same reference, run as a script from benchmarks/

from crowdbench.bench.matrix import expand
from crowdbench.bench.specs import load_spec
from crowdbench.bench.stages.data import load_frames
from crowdbench.bench.stages.tracking import evaluate_tracks, track_frames
from crowdbench.datasets.formats.mot import box_visibility
from crowdbench.methods.tracking.deepsort import iou_matrix
from crowdbench.methods.tracking.reid import embed, load_reid_model


def oracle_detections(frames, min_visible: float) -> list[dict[str, np.ndarray]]:
    """Per frame, the full boxes of the annotated people at least ``min_visible`` visible, score 1."""
    out = []
    for frame in frames:
        boxes = [i.box for i in frame.instances if not i.ignore and box_visibility(i) >= min_visible]
        arr = np.array(boxes, dtype=np.float32).reshape(-1, 4)
        out.append({"boxes": arr, "scores": np.ones(len(arr), dtype=np.float32)})
    return out


def crowding(frames) -> tuple[float, float]:
    """People per frame and the share of people whose box overlaps another person's (IoU > 0.1)."""
    people = overlapping = 0
    for frame in frames:
        boxes = np.array([i.box for i in frame.instances if not i.ignore], dtype=np.float64).reshape(-1, 4)
        people += len(boxes)
        if len(boxes) > 1:
            iou = iou_matrix(boxes, boxes)
            np.fill_diagonal(iou, 0.0)
            overlapping += int((iou.max(axis=1) > 0.1).sum())
    return people / max(len(frames), 1), overlapping / max(people, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table")
    parser.add_argument("--row", type=int, default=2, help="1-based row whose DeepSORT and ReID crop settings to use")
    parser.add_argument("--scenarios", nargs="+", required=True)
    parser.add_argument("--data-seeds", type=int, nargs="+", default=[0], help="synthetic data seeds (table: 0)")
    parser.add_argument("--min-visible", type=float, default=0.5, help="people this visible are detected")
    parser.add_argument("--model", action="append", default=[], help="also a trained ReID network (model.pt)")
    args = parser.parse_args()
    cfg = expand(load_spec(args.table), rows=[args.row - 1])[0].config
    r = cfg.tracking.reid
    models = [load_reid_model(r, path, "cpu") for path in args.model]
    print(f"{args.table} row {args.row}: oracle detections (people >= {args.min_visible:.0%} visible)")
    print(f"  DeepSORT {cfg.tracking.deepsort.model_dump()}")
    for scenario in args.scenarios:
        for data_seed in args.data_seeds:
            data = cfg.data.model_copy(update={"scenario": scenario, "seed": data_seed})
            frames = load_frames(data, data.val_split)
            dets = oracle_detections(frames, args.min_visible)
            boxes = [d["boxes"] for d in dets]
            per_frame, share = crowding(frames)
            print(
                f"{scenario} (data seed {data_seed}): {len(frames)} frames, {per_frame:.1f} people/frame, "
                f"{share:.0%} overlapping another"
            )
            runs = [("IoU only", None), ("colour", colour_features(frames, boxes, tuple(r.input_hw)))]
            for k, model in enumerate(models):
                feats = embed(model, frames, boxes, flip=r.flip, scales=tuple(r.scales), device="cpu")
                runs.append((f"ReID {k + 1}", feats))
            for name, features in runs:
                v = evaluate_tracks(frames, track_frames(frames, dets, features, cfg))
                print(
                    f"  {name:9s} MOTA {100 * v['MOTA']:5.1f}, IDF1 {100 * v['IDF1']:5.1f}, "
                    f"ID Sw {v['IDSw']:3.0f}, FN {v['FN']:4.0f}, FP {v['FP']:3.0f}"
                )


if __name__ == "__main__":
    main()
