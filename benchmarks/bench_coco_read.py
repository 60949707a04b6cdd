"""Benchmark: ``read_coco_keypoints`` vs ``pycocotools.coco.COCO`` loading the same COCO-train-sized file.

Builds a seeded person-keypoints JSON at COCO train2017 scale (64,115 images, ~150k people, 17 keypoints each,
about 1 % ``iscrowd`` regions) in a temp dir, then times both readers on it (both include JSON parsing; ours also
builds the whole data model: frames, instances, ``K x 3`` keypoint arrays), prints the seconds and the ratio and
checks that the people counts agree.

    python benchmarks/bench_coco_read.py [--images 64115] [--people 149813] [--repeat 1]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from crowdbench.datasets.formats.coco import read_coco_keypoints
from crowdbench.datasets.keypoints import COCO_17


def build(path: Path, n_images: int, n_people: int, seed: int = 0) -> None:
    """Write a seeded synthetic COCO person-keypoints file with ``n_images`` images and ``n_people`` annotations."""
    rng = np.random.default_rng(seed)
    image_of = np.sort(rng.integers(1, n_images + 1, n_people))
    xy = rng.uniform(0, 400, (n_people, 2)).round(2)
    wh = rng.uniform(5, 200, (n_people, 2)).round(2)
    kx = (xy[:, None, 0] + rng.uniform(0, 1, (n_people, 17)) * wh[:, None, 0]).round(2)
    ky = (xy[:, None, 1] + rng.uniform(0, 1, (n_people, 17)) * wh[:, None, 1]).round(2)
    kv = rng.integers(0, 3, (n_people, 17))
    crowd = rng.random(n_people) < 0.01
    kx[kv == 0] = 0
    ky[kv == 0] = 0
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 640, "height": 480} for i in range(1, n_images + 1)]
    anns = []
    for j in range(n_people):
        flat = np.stack([kx[j], ky[j], kv[j]], axis=1).ravel().tolist()
        for m in range(2, 51, 3):
            flat[m] = int(flat[m])
        anns.append(
            {
                "id": j + 1,
                "image_id": int(image_of[j]),
                "category_id": 1,
                "bbox": [*xy[j].tolist(), *wh[j].tolist()],
                "area": float(wh[j, 0] * wh[j, 1]),
                "iscrowd": int(crowd[j]),
                "num_keypoints": int((kv[j] > 0).sum()),
                "keypoints": flat,
                "segmentation": [[*xy[j].tolist(), *(xy[j] + wh[j]).tolist(), float(xy[j, 0]), float(xy[j, 1] + 1)]],
            }
        )
    cat = {"id": 1, "name": "person", "supercategory": "person", "keypoints": list(COCO_17.keypoints)}
    cat["skeleton"] = [[a + 1, b + 1] for a, b in COCO_17.skeleton]
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": [cat]}))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=64115)
    ap.add_argument("--people", type=int, default=149813)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args(argv)
    from pycocotools.coco import COCO

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "person_keypoints_train_synthetic.json"
        t0 = time.perf_counter()
        build(path, args.images, args.people)
        print(f"built {path.name}: {path.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - t0:.1f} s")
        ours, theirs = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            frames = read_coco_keypoints(path)
            ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                coco = COCO(str(path))
            theirs.append(time.perf_counter() - t0)
        n_ours = sum(len(f.instances) + len(f.ignore_regions) for f in frames)
        n_theirs = len(coco.getAnnIds())
        a, b = min(ours), min(theirs)
        print(f"read_coco_keypoints: {a:.2f} s ({len(frames)} frames, {n_ours} people incl. crowd regions)")
        print(f"pycocotools COCO():  {b:.2f} s ({len(coco.getImgIds())} images, {n_theirs} annotations)")
        print(f"ratio ours / pycocotools: {a / b:.2f}")
        if n_ours != n_theirs or len(frames) != len(coco.getImgIds()):
            print("MISMATCH in counts", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
