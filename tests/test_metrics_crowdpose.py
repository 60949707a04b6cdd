"""CrowdPose AP (official API semantics): reference values from shared/data/crowdpose/SOURCE.md, options, errors."""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest

from crowdbench.bench.metrics.crowdpose import add_command, drop_zero_score, evaluate_crowdpose
from crowdbench.datasets.formats.errors import FormatError
from crowdbench.datasets.keypoints import CROWDPOSE_14

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "crowdpose"
EX_GT = DATA / "xtcocotools_example" / "example_crowdpose_val.json"
EX_PRED = DATA / "xtcocotools_example" / "example_crowdpose_preds.json"
SIGMA_TENTHS = [0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89, 0.79, 0.79]
needs_data = pytest.mark.skipif(not EX_GT.is_file(), reason="shared CrowdPose sample absent")


@needs_data
def test_example_matches_official_and_xtcocotools() -> None:
    res = evaluate_crowdpose(EX_GT, EX_PRED)
    ref = [0.787722, 0.988119, 0.731436, 0.822222, 1.0, 0.777778]
    assert res.stats[:6] == pytest.approx(ref, abs=5e-7)
    assert res.stats[6:] == (1.0, 0.9802, 0.4116)  # rounded to 4 decimals by the API itself
    assert (res.num_images, res.num_gt, res.num_predictions, res.num_dropped_predictions) == (4, 10, 15, 0)


@needs_data
def test_gt_as_predictions() -> None:
    gt = json.loads((DATA / "test_crowdpose.json").read_text())
    preds = [
        {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
        for a in gt["annotations"]
        if a["num_keypoints"] > 0
    ]
    # both images are "medium": the empty easy / hard splits give -1
    assert evaluate_crowdpose(gt, preds).stats == (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, -1.0, 1.0, -1.0)
    gt2 = json.loads(EX_GT.read_text())
    preds2 = [
        {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
        for a in gt2["annotations"]
        if a["num_keypoints"] > 0
    ]
    assert evaluate_crowdpose(gt2, preds2).stats == (1.0,) * 9


@needs_data
def test_drop_zero_score_predictions_is_the_xtcocotools_filter() -> None:
    preds = json.loads(EX_PRED.read_text())
    zeroed = copy.deepcopy(preds)
    for p in zeroed[::3]:
        p["keypoints"][2::3] = [0.0] * 14
    official = evaluate_crowdpose(EX_GT, zeroed)
    xt = evaluate_crowdpose(EX_GT, zeroed, drop_zero_score_predictions=True)
    assert official.stats == evaluate_crowdpose(EX_GT, preds).stats  # the official API ignores keypoint scores
    assert xt.num_dropped_predictions == len(zeroed[::3]) == len(zeroed) - len(drop_zero_score(zeroed))
    assert xt.stats == evaluate_crowdpose(EX_GT, drop_zero_score(zeroed)).stats
    assert xt.AP != official.AP


@needs_data
def test_bad_input() -> None:
    gt = json.loads(EX_GT.read_text())
    preds = json.loads(EX_PRED.read_text())
    g = copy.deepcopy(gt)
    del g["images"][2]["crowdIndex"]
    with pytest.raises(FormatError, match=r"images\[2\] \(id \d+\): has no 'crowdIndex'"):
        evaluate_crowdpose(g, preds)
    p = copy.deepcopy(preds)
    p[3]["keypoints"] = p[3]["keypoints"] + [0, 0, 0] * 3  # 17 keypoints
    with pytest.raises(FormatError, match=r"results\[3\]: 'keypoints' has 51 values, expected 42"):
        evaluate_crowdpose(gt, p)


@needs_data
def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="crowdbench eval")
    add_command(parser.add_subparsers(dest="metric"))
    args = parser.parse_args(["crowdpose", "--gt", str(EX_GT), "--pred", str(EX_PRED), "--json"])
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["AP_hard"] == 0.4116
    args = parser.parse_args(["crowdpose", "--gt", str(EX_GT), "--pred", str(EX_PRED), "--drop-zero-score-predictions"])
    assert args.func(args) == 0
    assert "AP_medium" in capsys.readouterr().out
    missing = tmp_path / "none.json"
    args = parser.parse_args(["crowdpose", "--gt", str(EX_GT), "--pred", str(missing)])
    assert args.func(args) == 2
    assert capsys.readouterr().err.startswith("error: ")


def _random_crowdpose(seed: int) -> tuple[dict, list[dict]]:
    rng = np.random.default_rng(seed)
    images, anns, preds = [], [], []
    for img in range(1, 10):
        images.append({"id": img, "width": 640, "height": 480, "crowdIndex": float(rng.choice([0.05, 0.5, 0.9]))})
        for _ in range(int(rng.integers(0, 7))):
            aid = len(anns) + 1
            x, y, w, h = *rng.uniform(0, 400, 2), *rng.uniform(20, 200, 2)
            kx, ky = rng.uniform(x, x + w, 14), rng.uniform(y, y + h, 14)
            v = rng.choice([0, 1, 2], size=14, p=[0.3, 0.3, 0.4])
            kp = np.stack([np.where(v > 0, kx, 0), np.where(v > 0, ky, 0), v], 1).ravel().tolist()
            crowd = int(rng.random() < 0.05)
            n = 0 if crowd else int((v[:12] > 0).sum())
            anns.append({"id": aid, "image_id": img, "category_id": 1, "bbox": [x, y, w, h], "iscrowd": crowd,
                         "keypoints": kp, "num_keypoints": n})  # fmt: skip
            for _ in range(int(rng.integers(0, 3))):
                s = rng.uniform(1, 30)
                pk = np.stack([kx + rng.normal(0, s, 14), ky + rng.normal(0, s, 14), rng.random(14)], 1)
                preds.append({"image_id": img, "category_id": 1, "keypoints": pk.ravel().tolist(),
                              "score": round(float(rng.random()), 1)})  # fmt: skip
    cats = [{"id": 1, "name": "person", "keypoints": list(CROWDPOSE_14.keypoints)}]
    return {"images": images, "annotations": anns, "categories": cats}, preds


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_parity_with_pycocotools_on_area_053(seed: int) -> None:
    """The CrowdPose protocol = pycocotools keypoints with ``area := 0.53 w h`` and the 14 sigmas (metrics.md 2.2)."""
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, preds = _random_crowdpose(seed)
    ours = evaluate_crowdpose(gt, preds)
    g = copy.deepcopy(gt)
    for a in g["annotations"]:
        a["area"] = a["bbox"][3] * a["bbox"][2] * 0.53
    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO()
        cg.dataset = g
        cg.createIndex()
        ev = COCOeval(cg, cg.loadRes(copy.deepcopy(preds)), "keypoints")
        ev.params.kpt_oks_sigmas = np.array(SIGMA_TENTHS) / 10.0
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        ref = [float(ev.stats[i]) for i in (0, 1, 2, 5, 6, 7)]
        for lo, hi in ((-1.0, 0.2), (0.2, 0.8), (0.8, 2.0)):
            ev.params.imgIds = [im["id"] for im in gt["images"] if lo <= im["crowdIndex"] < hi]
            ev.evaluate()
            ev.accumulate()
            ref.append(round(float(np.mean(ev.eval["precision"][:, :, :, 0, :])), 4))
    assert list(ours.stats) == ref
