"""Benchmark: crowdbench's CrowdHuman evaluator vs CrowdDet's own evaluation code (vendored reference).

Builds a seeded synthetic problem at CrowdHuman-val scale (4,370 images, ~23 people each plus ignore regions,
~50 detections per image), writes it in the native formats (GT ``.odgt``, CrowdDet result JSON lines), and times

* ours: reading both files, AP+mMR, JI, and all three together (``evaluate_images``);
* reference: ``compute_APMR.compute_APMR`` (includes its own file loading) and JI as CrowdDet computes it
  (``compute_JI_with_ignore`` + ``gather`` per score threshold, run in this process; CrowdDet's ``evaluation_all``
  spreads the same work over 10 processes);

checks that AP, mMR and JI agree, and prints a table of seconds and speed-ups. The reference is slow (pure-Python
matching loops and a Python blossom algorithm); ``--ref-images N`` runs it on the first N images only and
extrapolates its time linearly to the full set, labelled as such (values are then compared on those N images).

    python benchmarks/bench_crowdhuman_eval.py                 # full scale
    python benchmarks/bench_crowdhuman_eval.py --images 500    # smaller
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# CrowdDet's evaluation code (MIT) is not redistributed here; benchmarks/README.md says how to put it in place.
REFERENCE = Path(os.environ.get("CROWDDET_EVAL", REPO / "benchmarks" / "reference"))
sys.path.insert(0, str(REFERENCE))  # checked in main(), so make_dataset can be imported without it

from crowdbench.bench.metrics.crowdhuman import (  # noqa: E402
    JI_SCORE_THRESHOLDS,
    CrowdHumanResult,
    evaluate_images,
    images_from_frames,
)
from crowdbench.datasets.formats.crowdhuman import read_detections, read_odgt  # noqa: E402


def _r1(v: np.ndarray) -> list[float]:
    return [round(float(x), 1) for x in v]


def make_dataset(n_images: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Synthetic crowd: (GT odgt records, CrowdDet result records), boxes ``[x, y, w, h]``.

    People come in clusters with heavy overlap and may extend past the image border; integer GT boxes like
    CrowdHuman; ignore regions (``tag: "mask"``, a few ``person`` with ``extra.ignore: 1``); detections = jittered
    GT (90 %), duplicates (15 %), random false positives and boxes inside ignore regions; boxes rounded to 0.1 px and
    scores to 5 decimals as CrowdDet's ``tools/test.py`` writes them (which also creates exact score ties).
    """
    rng = np.random.default_rng(seed)
    gts, dts = [], []
    for i in range(n_images):
        width, height = int(rng.integers(640, 2049)), int(rng.integers(480, 1537))
        n_people = min(int(rng.poisson(rng.gamma(2.0, 11.0))) + 1, 250)
        n_clusters = int(rng.integers(1, 5))
        centers = rng.uniform([0, 0], [width, height], size=(n_clusters, 2))
        which = rng.integers(0, n_clusters, n_people)
        ph = np.exp(rng.normal(np.log(height / 4), 0.5, n_people)).clip(12, 2 * height)
        pw = ph * rng.uniform(0.3, 0.5, n_people)
        cx = centers[which, 0] + rng.normal(0, width / 8, n_people)
        cy = centers[which, 1] + rng.normal(0, height / 10, n_people)
        people = np.round(np.stack([cx - pw / 2, cy - ph / 2, pw, ph], axis=1))
        gtboxes = []
        for j, b in enumerate(people.tolist()):
            ignored = rng.random() < 0.02
            extra = {"box_id": j, "ignore": 1} if ignored else {"box_id": j}
            gtboxes.append({"tag": "person", "fbox": b, "vbox": b, "hbox": b, "extra": extra})
        n_mask = int(rng.poisson(1.0))
        masks = []
        for _ in range(n_mask):
            mw, mh = rng.uniform(0.05, 0.4) * width, rng.uniform(0.05, 0.4) * height
            mb = [
                round(float(rng.uniform(0, width - mw))),
                round(float(rng.uniform(0, height - mh))),
                round(mw),
                round(mh),
            ]
            masks.append(mb)
            gtboxes.append({"tag": "mask", "fbox": mb, "vbox": mb, "hbox": mb, "extra": {"ignore": 1}})
        gts.append({"ID": f"{i:06d},{rng.integers(16**8):08x}", "gtboxes": gtboxes})

        boxes, scores = [], []
        for x, y, w, h in people.tolist():
            for dup in range(2):
                if (dup == 0 and rng.random() > 0.9) or (dup == 1 and rng.random() > 0.15):
                    continue
                jit = rng.normal(0, 0.07, 4) * [w, h, w, h]
                boxes.append([x + jit[0], y + jit[1], w + jit[2], h + jit[3]])
                s = rng.beta(5, 1.5) * (1.0 if dup == 0 else rng.uniform(0.2, 0.8))
                scores.append(s)
        for _ in range(int(rng.poisson(18))):
            fh = float(np.exp(rng.normal(np.log(height / 5), 0.6)))
            fw = fh * rng.uniform(0.25, 0.6)
            boxes.append([rng.uniform(-fw / 2, width - fw / 2), rng.uniform(-fh / 2, height - fh / 2), fw, fh])
            scores.append(rng.beta(1.0, 8))
        for mx, my, mw, mh in masks:
            for _ in range(int(rng.poisson(2))):
                fw, fh = rng.uniform(0.2, 0.6) * mw, rng.uniform(0.2, 0.6) * mh
                boxes.append([mx + rng.uniform(0, mw - fw), my + rng.uniform(0, mh - fh), fw, fh])
                scores.append(rng.beta(2, 3))
        dtboxes = [
            {"box": _r1(np.array(b)), "score": round(float(np.clip(s, 0.01, 1.0)), 5), "tag": 1}
            for b, s in zip(boxes, scores, strict=True)
        ]
        dts.append({"ID": gts[-1]["ID"], "height": height, "width": width, "dtboxes": dtboxes})
    return gts, dts


def write_lines(records: list[dict], path: Path) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def ji_records(gts: list[dict], dts: list[dict]) -> list[dict]:
    """What CrowdDet's tools/test.py feeds compute_JI: result records carrying ``gtboxes`` with tag 1 / -1."""
    out = []
    for g, d in zip(gts, dts, strict=True):
        gtb = []
        for b in g["gtboxes"]:
            ign = b["tag"] != "person" or b.get("extra", {}).get("ignore", 0) != 0
            gtb.append({"box": b["fbox"], "tag": -1 if ign else 1})
        out.append(dict(d, gtboxes=gtb))
    return out


class _ListQueue(list):
    def put_nowait(self, item: dict) -> None:
        self.append(item)


def run_reference(gt_path: Path, dt_path: Path, records: list[dict]) -> tuple[dict, dict]:
    """CrowdDet's numbers and timings (seconds) for the files / JI records given."""
    from crowddet_eval import compute_JI
    from crowddet_eval.APMRToolkits import Database

    t0 = time.perf_counter()
    db = Database(str(gt_path), str(dt_path), "box", None, 0)
    t1 = time.perf_counter()
    db.compare()
    ap, _ = db.eval_AP()
    with np.errstate(divide="ignore"):
        mr, _ = db.eval_MR()
    t2 = time.perf_counter()
    per_thr = []
    for s in JI_SCORE_THRESHOLDS:
        q = _ListQueue()
        compute_JI.compute_JI_with_ignore(q, records, s, "box")
        per_thr.append(float(compute_JI.gather(q)[1]))
    t3 = time.perf_counter()
    values = {"AP": float(ap), "mMR": float(mr), "JI": max(per_thr), "JI_per_threshold": per_thr}
    return values, {"load": t1 - t0, "ap_mr": t2 - t0, "ji": t3 - t2, "total": t3 - t0}


def _best(fn, repeat: int) -> tuple[float, object]:
    best, out = math.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def compare(ours: CrowdHumanResult, ref: dict) -> list[str]:
    problems = []
    for key in ("AP", "mMR"):
        if not abs(getattr(ours, key) - ref[key]) <= 1e-9:
            problems.append(f"{key}: ours {getattr(ours, key)!r} vs reference {ref[key]!r}")
    for s, a, b in zip(JI_SCORE_THRESHOLDS, ours.JI_per_threshold, ref["JI_per_threshold"], strict=True):
        if a != b:
            problems.append(f"JI@{s:.1f}: ours {a!r} vs reference {b!r} (diff {a - b:.3g})")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=4370, help="images in the synthetic set (default: CrowdHuman val)")
    ap.add_argument("--ref-images", type=int, help="run the reference on the first N images only and extrapolate")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="timing repeats for ours (best of)")
    args = ap.parse_args(argv)
    if not (REFERENCE / "crowddet_eval").is_dir():
        sys.exit(f"error: CrowdDet evaluation code not found under {REFERENCE}; see benchmarks/README.md")
    n_ref = min(args.ref_images or args.images, args.images)

    t = time.perf_counter()
    gts, dts = make_dataset(args.images, args.seed)
    gen_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        gt_path, dt_path = Path(tmp) / "gt.odgt", Path(tmp) / "dt.json"
        write_lines(gts, gt_path)
        write_lines(dts, dt_path)
        n_gt = sum(len(g["gtboxes"]) for g in gts)
        n_det = sum(len(d["dtboxes"]) for d in dts)
        print(
            f"synthetic set: {args.images} images, {n_gt} GT boxes ({n_gt / args.images:.1f}/image incl. ignore), "
            f"{n_det} detections ({n_det / args.images:.1f}/image); generated in {gen_s:.1f} s"
        )

        read_s, (frames, recs) = _best(lambda: (read_odgt(gt_path), read_detections(dt_path)), args.repeat)
        images = images_from_frames(frames, recs)
        ap_s, _ = _best(lambda: evaluate_images(images, ji=False), args.repeat)
        ji_s, _ = _best(lambda: evaluate_images(images, ap_mr=False), args.repeat)
        tot_s, ours = _best(lambda: evaluate_images(images), args.repeat)

        if n_ref < args.images:
            gt_ref, dt_ref = Path(tmp) / "gt_ref.odgt", Path(tmp) / "dt_ref.json"
            write_lines(gts[:n_ref], gt_ref)
            write_lines(dts[:n_ref], dt_ref)
            ours_ref = evaluate_images(images[:n_ref])
        else:
            gt_ref, dt_ref, ours_ref = gt_path, dt_path, ours
        print(f"running the reference on {n_ref} images ...", flush=True)
        ref_vals, ref_t = run_reference(gt_ref, dt_ref, ji_records(gts[:n_ref], dts[:n_ref]))

    problems = compare(ours_ref, ref_vals)
    scale = args.images / n_ref
    label = "" if scale == 1 else f"  (measured on {n_ref} images x {scale:.2f}, extrapolated)"
    rows = [
        ("read GT + detections", read_s, None),
        ("AP + mMR", ap_s, ref_t["ap_mr"] * scale),
        ("JI (10 thresholds)", ji_s, ref_t["ji"] * scale),
        ("AP + mMR + JI", tot_s, ref_t["total"] * scale),
        ("AP + mMR + JI incl. reading", tot_s + read_s, ref_t["total"] * scale),
    ]
    print()
    print(f"{'':30} {'ours [s]':>10} {'CrowdDet [s]':>13} {'speed-up':>9}")
    for name, a, b in rows:
        ref_txt = f"{b:13.2f}" if b is not None else f"{'':>13}"
        sp = f"{b / a:8.0f}x" if b is not None else ""
        print(f"{name:30} {a:10.3f} {ref_txt} {sp}")
    print(f"reference AP + mMR includes loading its two files: {ref_t['load'] * scale:.2f} s")
    print("reference JI: in one process, JI records already in memory (evaluation_all: 10 processes + JSON loading)")
    print(f"ours: best of {args.repeat}; reference: one run")
    if label:
        print(f"reference times{label}")
    print()
    print(f"ours      ({args.images} images): AP {ours.AP:.6f}  mMR {ours.mMR:.6f}  JI {ours.JI:.6f}")
    if n_ref < args.images:
        print(f"ours      (first {n_ref}): AP {ours_ref.AP:.6f}  mMR {ours_ref.mMR:.6f}  JI {ours_ref.JI:.6f}")
    print(f"reference ({n_ref} images): AP {ref_vals['AP']:.6f}  mMR {ref_vals['mMR']:.6f}  JI {ref_vals['JI']:.6f}")
    if problems:
        print("MISMATCH:\n  " + "\n  ".join(problems))
        return 1
    print("agreement: AP and mMR within 1e-9, JI identical at all 10 thresholds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
