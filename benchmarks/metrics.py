"""Benchmark: crowdbench's metrics vs the reference tools, same inputs, one process.

* COCO keypoint AP at val scale (default 5,000 images x 20 people, seeded): ours
  (``evaluate_coco_keypoints``, default ``engine="auto"``: hotcoco here) vs pycocotools 2.0.11
  (``COCOeval(iouType="keypoints")``). Both start from in-memory dicts; the 10 stats must be identical.
  Each engine, box AP and hotcoco alone: ``benchmarks/coco_engines.py``.
* MOTChallenge CLEAR + IDF1 (+ HOTA) at MOT17-train scale: ``benchmarks/bench_mot_metrics.py`` (ours vs
  py-motmetrics and TrackEval), run from here.

    python benchmarks/metrics.py [--images 5000] [--people 20] [--mot-scale 1.0] [--skip-mot]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import sys
import time
from pathlib import Path

import numpy as np

from crowdbench.bench.metrics.coco_keypoints import evaluate_coco_keypoints

KEYS = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL")


def coco_keypoint_set(n_images: int, people: int, seed: int = 0) -> tuple[dict, list[dict]]:
    """Seeded COCO-style GT (17 keypoints, some crowd and zero-keypoint people) and jittered predictions + FPs."""
    rng = np.random.default_rng(seed)
    images, anns, preds = [], [], []
    ann_id = 1
    for image_id in range(1, n_images + 1):
        images.append({"id": image_id, "width": 640, "height": 480})
        for _ in range(people):
            w, h = rng.uniform(20, 160), rng.uniform(40, 320)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            kx, ky = x + rng.uniform(0, w, 17), y + rng.uniform(0, h, 17)
            vis = rng.choice([0, 1, 2], 17, p=[0.2, 0.2, 0.6])
            crowd = int(rng.random() < 0.01)
            kpts = np.stack([kx * (vis > 0), ky * (vis > 0), vis], 1).ravel().round(2).tolist()
            anns.append({
                "id": ann_id, "image_id": image_id, "category_id": 1, "bbox": [x, y, w, h], "area": 0.6 * w * h,
                "iscrowd": crowd, "keypoints": kpts, "num_keypoints": int((vis > 0).sum()),
            })  # fmt: skip
            ann_id += 1
            if rng.random() < 0.9:  # detected, with keypoint noise proportional to the person's size
                noise = rng.normal(0, 0.04 * np.sqrt(w * h), (17, 2))
                pk = np.concatenate([np.stack([kx, ky], 1) + noise, rng.uniform(0.1, 1, (17, 1))], 1)
                preds.append({"image_id": image_id, "category_id": 1, "keypoints": pk.ravel().tolist(),
                              "score": float(rng.uniform(0.2, 1))})  # fmt: skip
        for _ in range(rng.poisson(1.0)):  # false positives
            pk = np.concatenate([rng.uniform(0, 480, (17, 2)), rng.uniform(0.1, 1, (17, 1))], 1)
            preds.append({"image_id": image_id, "category_id": 1, "keypoints": pk.ravel().tolist(),
                          "score": float(rng.uniform(0, 0.6))})  # fmt: skip
    categories = [{"id": 1, "name": "person", "keypoints": [str(i) for i in range(17)], "skeleton": []}]
    return {"images": images, "annotations": anns, "categories": categories}, preds


def run_pycocotools(gt: dict, preds: list[dict]) -> tuple[list[float], float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, preds = copy.deepcopy(gt), copy.deepcopy(preds)  # pycocotools edits its inputs; copies are not timed
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        dets = coco.loadRes(preds)
        ev = COCOeval(coco, dets, iouType="keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(v) for v in ev.stats], time.perf_counter() - start


def bench_coco(n_images: int, people: int) -> bool:
    t0 = time.perf_counter()
    gt, preds = coco_keypoint_set(n_images, people)
    print(f"COCO keypoints: {n_images} images, {len(gt['annotations'])} GT, {len(preds)} predictions "
          f"(generated in {time.perf_counter() - t0:.1f} s)", flush=True)  # fmt: skip
    gt_copy, preds_copy = copy.deepcopy(gt), copy.deepcopy(preds)  # both sides start from fresh, untimed copies
    start = time.perf_counter()
    ours = evaluate_coco_keypoints(gt_copy, preds_copy)
    ours_t = time.perf_counter() - start
    ref, ref_t = run_pycocotools(gt, preds)
    ours_stats = [float(getattr(ours, k)) for k in KEYS]
    same = ours_stats == ref
    print(f"  ours {ours_t:7.2f} s   pycocotools 2.0.11 {ref_t:7.2f} s   speed-up {ref_t / ours_t:5.1f}x")
    print(
        "  stats "
        + ("identical" if same else "DIFFER")
        + ": "
        + " ".join(f"{k} {v:.6f}" for k, v in zip(KEYS, ours_stats, strict=True))
    )
    if not same:
        print("  pycocotools: " + " ".join(f"{k} {v:.6f}" for k, v in zip(KEYS, ref, strict=True)))
    return same


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--people", type=int, default=20)
    ap.add_argument("--mot-scale", type=float, default=1.0, help="fraction of MOT17-train length per sequence")
    ap.add_argument("--skip-mot", action="store_true")
    args = ap.parse_args(argv)
    ok = bench_coco(args.images, args.people)
    if not args.skip_mot:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import bench_mot_metrics

        print(flush=True)
        ok = bench_mot_metrics.main(["--scale", str(args.mot_scale)]) == 0 and ok
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
