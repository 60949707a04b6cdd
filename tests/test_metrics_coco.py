"""COCO keypoint / box AP: bit-identical parity with pycocotools, shared-data reference values, edge cases, CLI."""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from crowdbench.bench.metrics.coco_keypoints import (
    add_command,
    evaluate_coco_box,
    evaluate_coco_keypoints,
    evaluate_coco_vis_invis,
    hotcoco_identical,
    run_cocoeval,
    split_vis_invis,
)
from crowdbench.datasets.formats.errors import FormatError
from crowdbench.datasets.keypoints import COCO_17

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco_keypoints"
needs_data = pytest.mark.skipif(not (DATA / "test_coco.json").is_file(), reason="shared COCO sample absent")
# every parity case runs on both matching engines (run_cocoeval) and on "auto", which must pick one that is identical
ENGINES = pytest.mark.parametrize("engine", ["hotcoco", "faster_coco_eval", "auto"])


# ------------------------------------------------------------------------------------------------ helpers


def make_case(seed: int, n_images: int = 6, max_people: int = 8) -> tuple[dict, list[dict]]:
    """Random COCO keypoint GT + predictions with crowd regions, 0-keypoint GT, empty images, ties, >20 dets."""
    rng = np.random.default_rng(seed)
    images, anns, preds = [], [], []
    aid = 1
    for img in range(1, n_images + 1):
        images.append({"id": img, "width": 640, "height": 480, "file_name": f"{img}.jpg"})
        n = 0 if img == 1 else int(rng.integers(0, max_people + 1))
        for _ in range(n):
            w, h = rng.uniform(10, 200, size=2)
            x, y = rng.uniform(0, 400), rng.uniform(0, 300)
            crowd = rng.random() < 0.08
            kx, ky = rng.uniform(x, x + w, 17), rng.uniform(y, y + h, 17)
            v = rng.choice([0, 1, 2], size=17, p=[0.3, 0.2, 0.5])
            if crowd or rng.random() < 0.1:
                v[:] = 0
            kp = np.stack([np.where(v > 0, kx, 0), np.where(v > 0, ky, 0), v], axis=1)
            anns.append(
                {
                    "id": aid,
                    "image_id": img,
                    "category_id": 1,
                    "bbox": [x, y, w, h],
                    "area": float(w * h * rng.uniform(0.4, 0.9)),
                    "iscrowd": int(crowd),
                    "keypoints": kp.ravel().tolist(),
                    "num_keypoints": int((v > 0).sum()),
                }
            )
            aid += 1
            if img != 2 and rng.random() < 0.85:  # image 2: no predictions at all
                s = rng.uniform(1, 25)
                pk = np.stack([kx + rng.normal(0, s, 17), ky + rng.normal(0, s, 17), rng.random(17)], axis=1)
                preds.append(
                    {
                        "image_id": img,
                        "category_id": 1,
                        "keypoints": pk.ravel().tolist(),
                        "score": round(float(rng.random()), 1),
                        "bbox": [x + rng.normal(0, s), y + rng.normal(0, s), w, h],
                    }
                )
        for _ in range(0 if img == 2 else int(rng.integers(0, 25 if img == 3 else 3))):  # FPs; image 3: > maxDets
            x, y = rng.uniform(0, 500, size=2)
            pk = np.stack([rng.uniform(x, x + 80, 17), rng.uniform(y, y + 160, 17), rng.random(17)], axis=1)
            preds.append(
                {
                    "image_id": img,
                    "category_id": 1,
                    "keypoints": pk.ravel().tolist(),
                    "score": round(float(rng.random()), 2),
                    "bbox": [x, y, 80.0, 160.0],
                }
            )
    rng.shuffle(preds)
    gt = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "person", "keypoints": list(COCO_17.keypoints), "skeleton": []}],
    }
    return gt, preds


def kp_only(preds: list[dict]) -> list[dict]:
    return [{k: v for k, v in p.items() if k != "bbox"} for p in preds]


def pycoco_stats(gt: dict, preds: list[dict], iou_type: str) -> list[float]:
    """pycocotools 2.0.11 reference (the dicts are deep-copied; pycocotools mutates them)."""
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        g = COCO()
        g.dataset = copy.deepcopy(gt)
        g.createIndex()
        d = g.loadRes(copy.deepcopy(preds))
        ev = COCOeval(g, d, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(x) for x in ev.stats]


def assert_kp_parity(gt: dict, preds: list[dict], **kw) -> None:
    ours = list(evaluate_coco_keypoints(gt, preds, **kw).stats)
    ref = pycoco_stats(gt, preds, "keypoints")
    assert ours == ref  # bit-identical, all 10


# ------------------------------------------------------------------------------------------------ parity


@ENGINES
def test_parity_keypoints_random_property(engine: str) -> None:
    pytest.importorskip("pycocotools")
    hyp = pytest.importorskip("hypothesis")
    st = pytest.importorskip("hypothesis.strategies")

    @hyp.settings(max_examples=25, deadline=None, derandomize=True)
    @hyp.given(seed=st.integers(0, 2**32 - 1), with_bbox=st.booleans())
    def check(seed: int, with_bbox: bool) -> None:
        gt, preds = make_case(seed)
        assert_kp_parity(gt, preds if with_bbox else kp_only(preds), engine=engine)

    check()


@ENGINES
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_parity_box_random(seed: int, engine: str) -> None:
    gt, preds = make_case(100 + seed)
    dets = [{k: v for k, v in p.items() if k != "keypoints"} for p in preds]
    assert list(evaluate_coco_box(gt, dets, engine=engine).stats) == pycoco_stats(gt, dets, "bbox")


@pytest.mark.parametrize("engine", ["hotcoco", "faster_coco_eval"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_parity_custom_sigmas(seed: int, engine: str) -> None:
    """14 keypoints with CrowdPose's sigmas under the COCO protocol (``iouType="keypoints"``), as HIE w-AP uses."""
    from crowdbench.bench.metrics.coco_keypoints import pycocotools_sigmas
    from crowdbench.datasets.keypoints import CROWDPOSE_14

    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, preds = make_case(300 + seed)
    k = 14
    gt["categories"][0]["keypoints"] = gt["categories"][0]["keypoints"][:k]
    for a in gt["annotations"]:
        a["keypoints"] = a["keypoints"][: 3 * k]
        a["num_keypoints"] = int(sum(v > 0 for v in a["keypoints"][2::3]))
    for p in preds:
        p["keypoints"] = p["keypoints"][: 3 * k]
    ours = evaluate_coco_keypoints(gt, preds, sigmas=CROWDPOSE_14.sigmas, engine=engine).stats
    with contextlib.redirect_stdout(io.StringIO()):
        g = COCO()
        g.dataset = copy.deepcopy(gt)
        g.createIndex()
        ev = COCOeval(g, g.loadRes(copy.deepcopy(preds)), "keypoints")
        ev.params.kpt_oks_sigmas = pycocotools_sigmas(CROWDPOSE_14.sigmas)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert list(ours) == [float(x) for x in ev.stats]


@needs_data
@ENGINES
def test_shared_coco_preds_and_dets(engine: str) -> None:
    gt = DATA / "test_coco.json"
    kp = evaluate_coco_keypoints(gt, DATA / "xtcocotools_example" / "example_coco_preds.json", engine=engine)
    ref = [0.860890, 0.993145, 0.910891, 0.775578, 0.937252, 0.875, 1.0, 0.916667, 0.78, 0.942857]
    assert kp.stats == pytest.approx(ref, abs=5e-7)
    assert (kp.num_images, kp.num_gt, kp.num_ignored_gt, kp.num_predictions) == (4, 14, 2, 73)
    box = evaluate_coco_box(gt, DATA / "test_coco_det_AP_H_56.json", engine=engine)
    ref_box = [0.789121, 0.982398, 0.982398, 0.650495, 0.766620, 0.872170]
    assert box.stats[:6] == pytest.approx(ref_box, abs=5e-7)
    assert box.stats[6:] == pytest.approx([0.278571, 0.828571, 0.842857, 0.65, 0.82, 0.914286], abs=5e-7)
    if importlib.util.find_spec("pycocotools") is not None:
        g = json.loads(gt.read_text())
        assert list(kp.stats) == pycoco_stats(
            g, json.loads((DATA / "xtcocotools_example" / "example_coco_preds.json").read_text()), "keypoints"
        )
        assert list(box.stats) == pycoco_stats(g, json.loads((DATA / "test_coco_det_AP_H_56.json").read_text()), "bbox")


@needs_data
@ENGINES
def test_shared_gt_as_predictions_is_one(engine: str) -> None:
    gt = json.loads((DATA / "test_coco.json").read_text())
    preds = [
        {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
        for a in gt["annotations"]
        if a["num_keypoints"] > 0
    ]
    assert evaluate_coco_keypoints(gt, preds, engine=engine).stats == (1.0,) * 10


# ------------------------------------------------------------------------------------------------ edge cases


@pytest.mark.parametrize("engine", ["faster_coco_eval", "auto"])
def test_gt_id_zero_reproduces_pycocotools_and_can_be_renumbered(engine: str) -> None:
    gt, preds = make_case(7)
    gt0 = copy.deepcopy(gt)
    for i, a in enumerate(gt0["annotations"]):
        a["id"] = i  # first GT gets id 0
    assert hotcoco_identical(gt0, preds, "keypoints") == "a GT annotation has id 0"
    assert_kp_parity(gt0, preds, engine=engine)
    fixed = evaluate_coco_keypoints(gt0, preds, renumber_zero_id=True, engine=engine).stats
    assert list(fixed) == pycoco_stats(gt, preds, "keypoints")  # ids 1..N: the GT with id 0 can match again
    # hotcoco forced: the GT with id 0 can match, i.e. renumber_zero_id's numbers, not pycocotools' (why auto avoids it)
    assert evaluate_coco_keypoints(gt0, preds, engine="hotcoco").stats == fixed


def test_auto_engine_choice() -> None:
    gt, preds = make_case(4)
    dets = [{k: v for k, v in p.items() if k != "keypoints"} for p in preds]
    assert run_cocoeval(gt, kp_only(preds), "keypoints").engine == "hotcoco"
    assert run_cocoeval(gt, dets, "bbox").engine == "hotcoco"
    assert run_cocoeval(copy.deepcopy(gt), copy.deepcopy(preds), "keypoints", use_area=False).engine == (
        "faster_coco_eval"
    )
    nan = [{**p, "score": math.nan} if i == 0 else p for i, p in enumerate(preds)]
    assert hotcoco_identical(gt, nan, "keypoints") == "NaN or infinite scores"
    assert hotcoco_identical(gt, preds, "keypoints_crowd") == "iouType 'keypoints_crowd'"
    with pytest.raises(ValueError, match="engine must be one of"):
        run_cocoeval(gt, preds, "keypoints", engine="pycocotools")


@ENGINES
def test_image_without_gt_and_image_without_predictions(engine: str) -> None:
    gt, preds = make_case(11)
    assert not [a for a in gt["annotations"] if a["image_id"] == 1]  # image 1: no GT
    assert not [p for p in preds if p["image_id"] == 2]  # image 2: no predictions
    preds.append({**preds[0], "image_id": 1})  # a FP on the GT-less image
    assert_kp_parity(gt, preds, engine=engine)


@ENGINES
def test_crowd_regions_absorb_detections(engine: str) -> None:
    gt, preds = make_case(3)
    crowd = {"id": 999, "image_id": 4, "category_id": 1, "bbox": [0, 0, 640, 480], "area": 300000.0, "iscrowd": 1}
    gt["annotations"].append({**crowd, "keypoints": [0] * 51, "num_keypoints": 0})
    preds += [{**p, "image_id": 4} for p in preds[:5]]
    assert_kp_parity(gt, preds, engine=engine)
    assert_kp_parity(gt, kp_only(preds), engine=engine)
    dets = [{k: v for k, v in p.items() if k != "keypoints"} for p in preds]
    assert list(evaluate_coco_box(gt, dets, engine=engine).stats) == pycoco_stats(gt, dets, "bbox")


@ENGINES
def test_nan_inf_and_negative_scores_follow_pycocotools(engine: str) -> None:
    gt, preds = make_case(5)
    for i, p in enumerate(preds):
        if i % 5 == 0:
            p["score"] = math.nan
        elif i % 7 == 0:
            p["score"] = -2.5
        elif i % 11 == 0:
            p["score"] = -math.inf
    preds[1]["score"] = math.inf
    with pytest.raises(FormatError, match=r"results\[0\]: 'score': NaN is not a finite number"):
        evaluate_coco_keypoints(gt, preds, engine=engine)  # issue 20: bad input never becomes a number
    assert_kp_parity(gt, preds, engine=engine, lenient=True)  # scores become dense ranks first (hotcoco rejects NaN)


@pytest.mark.parametrize("engine", ["faster_coco_eval", "auto"])
def test_duplicate_annotation_ids(engine: str) -> None:
    gt, preds = make_case(9)
    gt["annotations"][3]["id"] = gt["annotations"][2]["id"]
    with pytest.raises(FormatError, match=r"annotations\[3\] \(id \d+\): duplicate id"):
        evaluate_coco_keypoints(gt, preds)
    assert hotcoco_identical(gt, preds, "keypoints") == "duplicate GT annotation ids"
    assert_kp_parity(gt, preds, allow_duplicate_ids=True, engine=engine)


@ENGINES
def test_empty_prediction_list_gives_zero(engine: str) -> None:
    gt, _ = make_case(2)
    assert evaluate_coco_keypoints(gt, [], engine=engine).AP == 0.0


# ------------------------------------------------------------------------------------------------ bad input


def test_bad_input_is_one_line_format_error(tmp_path: Path) -> None:
    gt, preds = make_case(4)
    g = tmp_path / "gt.json"
    g.write_text(json.dumps(gt))
    bad = tmp_path / "preds.json"
    bad.write_text(json.dumps(preds)[:200])
    with pytest.raises(FormatError, match=r"preds\.json:1:\d+: invalid JSON"):
        evaluate_coco_keypoints(g, bad)
    p2 = copy.deepcopy(preds)
    p2[4]["image_id"] = 12345
    with pytest.raises(FormatError, match=r"results\[4\]: 'image_id' 12345 is not an image of the ground truth"):
        evaluate_coco_keypoints(g, p2)
    p3 = copy.deepcopy(preds)
    p3[2]["keypoints"] = p3[2]["keypoints"][:42]
    with pytest.raises(FormatError, match=r"results\[2\]: 'keypoints' has 42 values, expected 51"):
        evaluate_coco_keypoints(gt, p3)
    g4 = copy.deepcopy(gt)
    del g4["annotations"][1]["num_keypoints"]
    with pytest.raises(FormatError, match=r"annotations\[1\] \(id \d+\): has no 'num_keypoints'"):
        evaluate_coco_keypoints(g4, preds)
    with pytest.raises(FormatError, match="missing top-level key 'images'"):
        evaluate_coco_keypoints({"annotations": []}, preds)
    p5 = copy.deepcopy(preds)
    p5[0]["score"] = "high"
    with pytest.raises(FormatError) as exc:
        evaluate_coco_keypoints(gt, p5)
    assert "\n" not in str(exc.value) and "results[0]: 'score' must be a number" in str(exc.value)


# ------------------------------------------------------------------------------------------------ AP-vis / AP-invis


def test_vis_invis_split_and_values() -> None:
    gt, preds = make_case(6)
    vis, invis = split_vis_invis(gt, "keypoints")
    for a, av, ai in zip(gt["annotations"], vis["annotations"], invis["annotations"], strict=True):
        v = np.asarray(a["keypoints"]).reshape(-1, 3)[:, 2]
        assert av["num_keypoints"] == int((v == 2).sum())
        assert ai["num_keypoints"] == int((v == 1).sum())
    res = evaluate_coco_vis_invis(gt, preds)
    assert res.AP_vis == evaluate_coco_keypoints(vis, preds).AP
    assert res.AP_invis == evaluate_coco_keypoints(invis, preds).AP
    inst = evaluate_coco_vis_invis(gt, preds, split="instances")
    assert inst.split == "instances" and 0 <= inst.AP_invis <= 1
    gt_as_pred = [
        {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
        for a in gt["annotations"]
        if a["num_keypoints"] > 0 and not a["iscrowd"]
    ]
    perfect = evaluate_coco_vis_invis(gt, gt_as_pred)
    assert perfect.AP_vis == 1.0 and perfect.AP_invis == 1.0


# ------------------------------------------------------------------------------------------------ CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crowdbench eval")
    add_command(parser.add_subparsers(dest="metric"))
    return parser


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt, preds = make_case(8)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "p.json").write_text(json.dumps(preds))
    args = _parser().parse_args(
        ["coco-keypoints", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "p.json"), "--json"]
    )
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["AP"] == evaluate_coco_keypoints(gt, preds).AP
    args = _parser().parse_args(["coco-box", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "p.json")])
    assert args.func(args) == 0
    assert "AP50" in capsys.readouterr().out
    args = _parser().parse_args(
        [
            "coco-keypoints",
            "--gt",
            str(tmp_path / "gt.json"),
            "--pred",
            str(tmp_path / "p.json"),
            "--vis-invis",
            "keypoints",
        ]
    )
    assert args.func(args) == 0
    assert "AP-invis" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text("[{")
    args = _parser().parse_args(
        ["coco-keypoints", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "bad.json")]
    )
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "bad.json" in err


def test_checks_fast_path_and_record_checks_agree() -> None:
    """Plain JSON input takes the whole-list checks; numpy scalars or an all-bool row take the record-by-record ones."""
    gt, preds = make_case(6)
    ref = evaluate_coco_keypoints(gt, preds).stats
    g = copy.deepcopy(gt)
    g["annotations"][0]["area"] = np.float64(g["annotations"][0]["area"])
    p = copy.deepcopy(preds)
    p[0]["score"] = np.float64(p[0]["score"])
    assert evaluate_coco_keypoints(g, p).stats == ref
    b = copy.deepcopy(preds)
    b[1]["bbox"] = [True] * 4
    with pytest.raises(FormatError, match=r"results\[1\]: 'bbox'\[0\] must be a number, got true"):
        evaluate_coco_keypoints(gt, b)
