"""Benchmark: COCO keypoint and box AP engines, same inputs, one process (issue 19 part 5).

At val scale (default 5,000 images x 20 people, seeded; ``metrics.coco_keypoint_set``, box detections = the
keypoint predictions' extents, box GT = the people's boxes), times

* the validation of issue 20 (``validated``: ``datasets/formats/coco_checks.py``), done once when the files are
  read; the evaluators receive the validated inputs and never check them again;
* ours, ``evaluate_coco_keypoints`` / ``evaluate_coco_box`` on the validated inputs with ``engine="hotcoco"`` and
  ``engine="faster_coco_eval"`` (``"auto"`` picks hotcoco here), and with ``return_resampler=True`` (bootstrap
  states) for each engine;
* hotcoco 1.3 alone (``hotcoco.COCO`` + ``loadRes`` + ``COCOeval``, no checks);
* end to end from JSON files: ours (read + validate + evaluate, what ``crowdbench eval`` does) and hotcoco reading
  the same files itself (its Rust parser);
  sub-second runs: best of 3, the others one run;
* pycocotools 2.0.11 (copies of the inputs are made untimed: it edits them).

Every run's stats must equal pycocotools' (``==``, not approx); exit 1 otherwise.

    python benchmarks/coco_engines.py [--images 5000] [--people 20] [--skip-pycocotools]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics import coco_keypoint_set

from crowdbench.bench.metrics.coco_keypoints import evaluate_coco_box, evaluate_coco_keypoints, validated


def box_set(gt: dict, preds: list[dict]) -> list[dict]:
    """Box detections: each keypoint prediction's extent (x, y, w, h) with its score."""
    dets = []
    for p in preds:
        k = np.asarray(p["keypoints"]).reshape(-1, 3)
        x0, y0 = k[:, 0].min(), k[:, 1].min()
        box = [float(x0), float(y0), float(k[:, 0].max() - x0), float(k[:, 1].max() - y0)]
        dets.append({"image_id": p["image_id"], "category_id": 1, "bbox": box, "score": p["score"]})
    return dets


def timed(fn, *args, repeat: int = 1, **kw) -> tuple[list[float], float]:
    """Result and the best of ``repeat`` wall times (the sub-second runs are repeated: 2 shared cores are noisy)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn(*args, **kw)
        best = min(best, time.perf_counter() - start)
    return out, best


def run_hotcoco(gt: dict, preds: list[dict], iou_type: str) -> list[float]:
    import hotcoco

    with contextlib.redirect_stdout(io.StringIO()):
        coco = hotcoco.COCO(gt)
        ev = hotcoco.COCOeval(coco, coco.loadRes(preds), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(v) for v in ev.stats]


def run_pycocotools(gt: dict, preds: list[dict], iou_type: str) -> list[float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(preds), iouType=iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(v) for v in ev.stats]


def bench(kind: str, gt: dict, preds: list[dict], skip_ref: bool, folder: Path) -> bool:
    iou_type = "keypoints" if kind == "keypoints" else "bbox"
    ours = evaluate_coco_keypoints if kind == "keypoints" else evaluate_coco_box
    rows: list[tuple[str, list[float], float]] = []
    k = 17 if kind == "keypoints" else None
    (g, p), t_check = timed(validated, gt, preds, kind=iou_type, num_keypoints=k, repeat=3)
    for engine in ("hotcoco", "faster_coco_eval"):
        res, t = timed(ours, g, p, engine=engine, repeat=3 if engine == "hotcoco" else 1)
        rows.append((f"ours, engine={engine}", list(res.stats), t))
        (res, _), t = timed(ours, g, p, engine=engine, return_resampler=True)
        rows.append((f"ours, engine={engine} + resampler", list(res.stats), t))
    stats, t = timed(run_hotcoco, gt, preds, iou_type, repeat=3)
    rows.append(("hotcoco 1.3 alone", stats, t))
    gf, pf = folder / f"{kind}_gt.json", folder / f"{kind}_pred.json"
    gf.write_text(json.dumps(gt))
    pf.write_text(json.dumps(preds))
    res, t_files = timed(ours, gf, pf)
    rows.append(("ours from files: read + validate + evaluate", list(res.stats), t_files))
    stats, t = timed(run_hotcoco, str(gf), str(pf), iou_type, repeat=3)
    rows.append(("hotcoco 1.3 from files (its own parser)", stats, t))
    if not skip_ref:
        g, p = copy.deepcopy(gt), copy.deepcopy(preds)  # pycocotools edits its inputs; copies are not timed
        stats, t = timed(run_pycocotools, g, p, iou_type)
        rows.append(("pycocotools 2.0.11", stats, t))
    ref = rows[-1][1]
    ok = all(r[1] == ref for r in rows)
    print(f"COCO {kind} AP ({len(gt['annotations'])} GT, {len(preds)} predictions): stats "
          + ("identical in every run" if ok else "DIFFER") + f"; {ref[:3]}")  # fmt: skip
    print(f"  {'validation (once, when the files are read)':46s} {t_check:7.2f} s")
    for name, stats, t in rows:
        flag = "" if stats == ref else "   DIFFERS"
        print(f"  {name:46s} {t:7.2f} s{flag}", flush=True)
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--people", type=int, default=20)
    ap.add_argument("--skip-pycocotools", action="store_true", help="reference = hotcoco alone")
    args = ap.parse_args(argv)
    small_gt, small_preds = coco_keypoint_set(20, 5, seed=1)  # warm-up: imports and first calls are not timed
    for engine in ("hotcoco", "faster_coco_eval"):
        evaluate_coco_keypoints(small_gt, small_preds, engine=engine, return_resampler=True)
    run_hotcoco(small_gt, small_preds, "keypoints")
    gt, preds = coco_keypoint_set(args.images, args.people)
    folder = Path(tempfile.mkdtemp(prefix="coco_engines_"))
    ok = bench("keypoints", gt, preds, args.skip_pycocotools, folder)
    box_gt = {**gt, "annotations": [{k: v for k, v in a.items() if k not in ("keypoints", "num_keypoints")}
                                    for a in gt["annotations"]]}  # fmt: skip
    ok = bench("box", box_gt, box_set(gt, preds), args.skip_pycocotools, folder) and ok
    shutil.rmtree(folder)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
