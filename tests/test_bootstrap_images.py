"""Image-unit bootstrap resamplers (issue 19): bit-for-bit point estimates, weights = duplicated images, coverage of
the percentile interval on a generator with a known AP, paired effects and verdicts, ``--bootstrap`` CLI."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest
from test_metrics_coco import kp_only, make_case
from test_metrics_crowdpose import _random_crowdpose

from crowdbench.bench.metrics import coco_keypoints
from crowdbench.bench.metrics.bootstrap import (
    load_resampler,
    paired_effect,
    percentile_interval,
    replicate_weights,
    verdict,
)
from crowdbench.bench.metrics.cli import add_eval_commands
from crowdbench.bench.metrics.coco_keypoints import (
    BOX_STAT_NAMES,
    KEYPOINT_STAT_NAMES,
    CocoImageResampler,
    evaluate_coco_box,
    evaluate_coco_keypoints,
)
from crowdbench.bench.metrics.crowdhuman import CrowdHumanImage, CrowdHumanImageResampler, evaluate_images
from crowdbench.bench.metrics.crowdpose import CROWDPOSE_STAT_NAMES, evaluate_crowdpose

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
COCO = SHARED / "coco_keypoints"
CROWDPOSE = SHARED / "crowdpose" / "xtcocotools_example"
CROWDHUMAN = SHARED / "crowdhuman"
needs_data = pytest.mark.skipif(not (COCO / "test_coco.json").is_file(), reason="shared data absent")


def ones(resampler: object, rows: int = 2) -> np.ndarray:
    return np.ones((rows, len(resampler.units)), np.int32)  # type: ignore[attr-defined]


def same(a: float, b: float) -> bool:
    """Exact equality (NaN equals NaN)."""
    return a == b or (math.isnan(a) and math.isnan(b))


def box_only(preds: list[dict]) -> list[dict]:
    return [{k: v for k, v in p.items() if k != "keypoints"} for p in preds]


def crowd_images(seed: int, n_img: int = 30, decimals: int = 2, noise: float = 6.0, fp: int = 5) -> list:
    """Random CrowdHuman images: GT boxes with some ignore flags, jittered detections, false positives."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n_img):
        n = int(rng.integers(0, 12))
        xy, wh = rng.uniform(0, 500, (n, 2)), rng.uniform(20, 120, (n, 2))
        gt = np.concatenate([xy, xy + wh], 1)
        keep = rng.random(n) < 0.8
        det = gt[keep] + rng.normal(0, noise, (int(keep.sum()), 4))
        nf = int(rng.integers(0, fp + 1))
        fxy = rng.uniform(0, 500, (nf, 2))
        det = np.concatenate([det, np.concatenate([fxy, fxy + rng.uniform(20, 100, (nf, 2))], 1)])
        scores = np.round(rng.random(len(det)), decimals)
        images.append(CrowdHumanImage(str(i), 640, 640, gt, rng.random(n) < 0.1, det, scores))
    return images


# ------------------------------------------------------------------------------------ weights 1 = point estimate


@pytest.mark.parametrize("engine", ["hotcoco", "faster_coco_eval"])
@pytest.mark.parametrize("seed", range(12))
def test_coco_keypoints_and_box_ones_reproduce_every_stat(seed: int, engine: str) -> None:
    gt, preds = make_case(seed)
    res, rs = evaluate_coco_keypoints(gt, preds if seed % 2 else kp_only(preds), return_resampler=True, engine=engine)
    values = rs.values(ones(rs))
    for name in KEYPOINT_STAT_NAMES:
        assert (values[name] == getattr(res, name)).all(), name
    res, rs = evaluate_coco_box(gt, box_only(preds), return_resampler=True, engine=engine)
    values = rs.values(ones(rs))
    for name in BOX_STAT_NAMES:
        assert (values[name] == getattr(res, name)).all(), name


@pytest.mark.parametrize("seed", range(6))
def test_hotcoco_states_equal_faster_coco_eval_states(seed: int) -> None:
    """The per-image statistics derived from hotcoco's evalImgs are array for array those of the other engine."""
    gt, preds = make_case(seed)
    kp = preds if seed % 2 else kp_only(preds)
    for fn, p in ((evaluate_coco_keypoints, kp), (evaluate_coco_box, box_only(preds))):
        a = fn(gt, p, return_resampler=True, engine="hotcoco")[1].arrays
        b = fn(gt, p, return_resampler=True, engine="faster_coco_eval")[1].arrays
        assert a.keys() == b.keys()
        for k in a:
            assert a[k].dtype.kind == b[k].dtype.kind and np.array_equal(a[k], b[k]), k


def test_edge_cases_reproduce_too() -> None:
    """Empty prediction list, GT id 0 (pycocotools' bug kept), NaN score; CrowdHuman without GT or detections."""
    gt, preds = make_case(3)
    gt0 = {**gt, "annotations": [dict(a, id=i) for i, a in enumerate(gt["annotations"])]}
    nan_preds = [dict(p) for p in preds]
    nan_preds[0]["score"] = float("nan")
    for g, p in ((gt, []), (gt0, nan_preds)):
        res, rs = evaluate_coco_keypoints(g, p, return_resampler=True, lenient=True)
        assert [rs.values(ones(rs))[n][0] for n in KEYPOINT_STAT_NAMES] == list(res.stats)
        res, rs = evaluate_coco_box(g, box_only(p), return_resampler=True, lenient=True)
        assert [rs.values(ones(rs))[n][0] for n in BOX_STAT_NAMES] == list(res.stats)
    box = [0, 0, 10, 10]
    for image in (
        CrowdHumanImage("a", 0, 0, np.zeros((0, 4)), [], [box], [0.9]),
        CrowdHumanImage("a", 0, 0, [box], [False], np.zeros((0, 4)), []),
    ):
        res, rs = evaluate_images([image], return_resampler=True)
        values = rs.values(ones(rs))
        assert all(same(values[n][0], getattr(res, n)) for n in ("AP", "mMR", "JI"))


@needs_data
def test_shared_coco_ones_reproduce_and_npz_round_trip(tmp_path: Path) -> None:
    res, rs = evaluate_coco_keypoints(
        COCO / "test_coco.json", COCO / "xtcocotools_example" / "example_coco_preds.json", return_resampler=True
    )
    assert rs.unit == "image" and rs.units == sorted(rs.units, key=int)
    assert [rs.values(ones(rs))[n][0] for n in KEYPOINT_STAT_NAMES] == list(res.stats)
    box, rb = evaluate_coco_box(COCO / "test_coco.json", COCO / "test_coco_det_AP_H_56.json", return_resampler=True)
    assert [rb.values(ones(rb))[n][0] for n in BOX_STAT_NAMES] == list(box.stats)
    rb.save(tmp_path / "box.npz")
    loaded = load_resampler(tmp_path / "box.npz")
    assert isinstance(loaded, CocoImageResampler)
    w = replicate_weights(len(rb.units), 50, seed=3)
    a, b = rb.values(w), loaded.values(w)
    assert loaded.units == rb.units and all((a[k] == b[k]).all() for k in a)


@pytest.mark.parametrize("seed", range(4))
def test_crowdpose_ones_reproduce_every_stat(seed: int) -> None:
    gt, preds = _random_crowdpose(seed)
    res, rs = evaluate_crowdpose(gt, preds, return_resampler=True)
    values = rs.values(ones(rs))
    assert [values[n][0] for n in CROWDPOSE_STAT_NAMES] == list(res.stats)


@needs_data
def test_shared_crowdpose_ones_reproduce() -> None:
    res, rs = evaluate_crowdpose(
        CROWDPOSE / "example_crowdpose_val.json", CROWDPOSE / "example_crowdpose_preds.json", return_resampler=True
    )
    assert [rs.values(ones(rs))[n][0] for n in CROWDPOSE_STAT_NAMES] == list(res.stats)


@pytest.mark.parametrize("seed", range(15))
def test_crowdhuman_ones_reproduce_ap_mmr_ji(seed: int) -> None:
    res, rs = evaluate_images(crowd_images(seed), return_resampler=True)
    values = rs.values(ones(rs))
    for name in ("AP", "mMR", "JI"):
        assert same(values[name][0], getattr(res, name)), name


def test_crowdhuman_real_sample_and_round_trip(tmp_path: Path) -> None:
    from crowdbench.bench.metrics.crowdhuman import evaluate_crowdhuman
    from crowdbench.datasets.formats.crowdhuman import DetectionRecord, read_odgt

    if not (CROWDHUMAN / "test_annotation_train.odgt").is_file():
        pytest.skip("shared CrowdHuman sample absent")
    gt = read_odgt(CROWDHUMAN / "test_annotation_train.odgt")
    boxes = gt[0].boxes()
    dets = [DetectionRecord(gt[0].video, boxes[:-1], np.linspace(1, 0.5, len(boxes) - 1))]
    res, rs = evaluate_crowdhuman(gt, dets, return_resampler=True)
    values = rs.values(ones(rs))
    assert all(same(values[n][0], getattr(res, n)) for n in ("AP", "mMR", "JI"))
    rs.save(tmp_path / "ch.npz")
    loaded = load_resampler(tmp_path / "ch.npz")
    assert isinstance(loaded, CrowdHumanImageResampler)
    assert loaded.units == rs.units and loaded.values(ones(rs))["AP"][0] == res.AP


# ------------------------------------------------------------------------------- weights = duplicated test images


def test_weights_equal_evaluating_the_duplicated_images() -> None:
    """A replicate is the metric of the resampled test set: weight c = the image c times (distinct scores)."""
    gt, preds = make_case(7, n_images=12)
    rng = np.random.default_rng(0)
    for p in preds:
        p["score"] = float(rng.random())  # no ties, so the duplicated set's order is the weighted order
    w = rng.multinomial(12, np.full(12, 1 / 12))
    _, rs = evaluate_coco_keypoints(gt, kp_only(preds), return_resampler=True)
    images, anns, dup = [], [], []
    for new_id, (img, c) in enumerate(((im, c) for im, n in zip(gt["images"], w, strict=True) for c in range(n)), 1):
        images.append({**img, "id": new_id})
        anns += [{**a, "id": len(anns) + j + 1, "image_id": new_id} for j, a in
                 enumerate(a for a in gt["annotations"] if a["image_id"] == img["id"])]  # fmt: skip
        dup += [{**p, "image_id": new_id, "score": p["score"] + c * 1e-12} for p in kp_only(preds)
                if p["image_id"] == img["id"]]  # fmt: skip
    ref = evaluate_coco_keypoints({**gt, "images": images, "annotations": anns}, dup)
    got = rs.values(w[None].astype(np.int32))
    assert [got[n][0] for n in KEYPOINT_STAT_NAMES] == pytest.approx(list(ref.stats), abs=1e-12)

    ims = crowd_images(3, n_img=40, decimals=12)
    w = rng.multinomial(40, np.full(40, 1 / 40))
    copies = [
        CrowdHumanImage(
            f"{im.id}_{c}", im.width, im.height, im.gt_boxes, im.gt_ignore, im.det_boxes, im.det_scores + c * 1e-12
        )
        for im, n in zip(ims, w, strict=True)
        for c in range(n)
    ]
    ref_ch = evaluate_images(copies)
    got = evaluate_images(ims, return_resampler=True)[1].values(w[None].astype(np.int32))
    for name in ("AP", "mMR", "JI"):
        assert got[name][0] == pytest.approx(getattr(ref_ch, name), abs=1e-12), name


# ------------------------------------------------------------------------------------------------------- coverage


def _simulated(rng: np.random.Generator, n_img: int) -> CrowdHumanImageResampler:
    """Images with 3 GT each, each found with probability .7 (score ~ N(1, 1)), Poisson(1.5) FP (score ~ N(0, 1))."""
    n_gt = np.full(n_img, 3)
    found = rng.random((n_img, 3)) < 0.7
    n_fp = rng.poisson(1.5, n_img)
    img = np.concatenate([np.repeat(np.arange(n_img), found.sum(1)), np.repeat(np.arange(n_img), n_fp)])
    tp = np.concatenate([np.ones(int(found.sum()), bool), np.zeros(int(n_fp.sum()), bool)])
    score = np.concatenate([rng.normal(1, 1, int(found.sum())), rng.normal(0, 1, int(n_fp.sum()))])
    order = np.argsort(-score, kind="stable")
    arrays = {
        "units": np.arange(n_img).astype(str),
        "n_val": n_gt,
        "seq_tp": tp[order],
        "seq_img": img[order].astype(np.int32),
        "has_ap_mr": np.asarray(True),
    }
    return CrowdHumanImageResampler(arrays)


def test_percentile_interval_covers_the_true_ap() -> None:
    rng = np.random.default_rng(2026)
    big = _simulated(rng, 200_000)
    truth = big.values(ones(big, 1))
    n_img, sets, resamples = 150, 200, 400
    covered = {"AP": 0, "mMR": 0}
    for s in range(sets):
        rs = _simulated(rng, n_img)
        reps = rs.values(replicate_weights(n_img, resamples, seed=s))
        for name in covered:
            low, high = percentile_interval(reps[name])
            covered[name] += low <= truth[name][0] <= high
    assert covered["AP"] / sets >= 0.90, covered
    assert covered["mMR"] / sets >= 0.85, covered


# ----------------------------------------------------------------------------------------------- paired effects


def test_identical_predictions_give_an_exact_zero_effect() -> None:
    gt, preds = make_case(11, n_images=10)
    _, a = evaluate_coco_keypoints(gt, preds, return_resampler=True)
    _, b = evaluate_coco_keypoints(gt, [dict(p) for p in preds], return_resampler=True)
    w = replicate_weights(len(a.units), 200, seed=1)
    for name, (low, high) in paired_effect(b.values(w), a.values(w)).items():
        assert low == 0.0 and high == 0.0, name
        assert verdict(0.5, low, high) == "within noise"
    _, ca = evaluate_images(crowd_images(5), return_resampler=True)
    _, cb = evaluate_images(crowd_images(5), return_resampler=True)
    w = replicate_weights(len(ca.units), 200, seed=1)
    assert all(v == (0.0, 0.0) for v in paired_effect(cb.values(w), ca.values(w)).values())


def test_planted_effect_agrees_or_opposes_by_sign() -> None:
    worse = crowd_images(9, n_img=60, noise=25.0, fp=12)
    better = crowd_images(9, n_img=60, noise=2.0, fp=1)
    _, a = evaluate_images(worse, return_resampler=True)
    _, b = evaluate_images(better, return_resampler=True)
    w = replicate_weights(len(a.units), 300, seed=0)
    effect = paired_effect(b.values(w), a.values(w))
    assert effect["AP"][0] > 0 and effect["JI"][0] > 0 and effect["mMR"][1] < 0
    assert verdict(+2.0, *effect["AP"]) == "agrees" and verdict(-2.0, *effect["AP"]) == "opposes"
    assert verdict(-2.0, *effect["mMR"]) == "agrees" and verdict(+2.0, *effect["mMR"]) == "opposes"

    gt, preds = make_case(4, n_images=30)
    perfect = [  # B: the ground truth itself, A: the noisy predictions
        {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
        for a in gt["annotations"]
        if a["num_keypoints"] > 0 and not a["iscrowd"]
    ]
    _, ka = evaluate_coco_keypoints(gt, preds, return_resampler=True)
    _, kb = evaluate_coco_keypoints(gt, perfect, return_resampler=True)
    w = replicate_weights(len(ka.units), 200, seed=0)
    low, high = paired_effect(kb.values(w), ka.values(w))["AP"]
    assert verdict(1.0, low, high) == "agrees" and verdict(-1.0, low, high) == "opposes"


# ---------------------------------------------------------------------------------------------------------- CLI


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="metric", required=True)
    add_eval_commands(sub)
    args = parser.parse_args(argv)
    return args.func(args)


@needs_data
def test_cli_bootstrap_json_and_text(capsys: pytest.CaptureFixture[str]) -> None:
    gt, pred = str(COCO / "test_coco.json"), str(COCO / "xtcocotools_example" / "example_coco_preds.json")
    assert _cli(["coco-keypoints", "--gt", gt, "--pred", pred, "--bootstrap", "300", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["bootstrap"] == {"resamples": 300, "unit": "image", "seed": 0, "level": 0.95}
    assert data["num_images"] == 4
    for name in KEYPOINT_STAT_NAMES:
        assert data[name]["low"] <= data[name]["value"] <= data[name]["high"], name
    assert _cli(["coco-keypoints", "--gt", gt, "--pred", pred]) == 0  # no --bootstrap: the output as before
    assert "[" not in capsys.readouterr().out
    assert _cli(["coco-box", "--gt", gt, "--pred", str(COCO / "test_coco_det_AP_H_56.json"), "--bootstrap", "50"]) == 0
    out = capsys.readouterr().out
    assert "AR100" in out and "50 resamples of images" in out
    assert _cli(["coco-box", "--gt", gt, "--pred", pred, "--bootstrap", "0"]) == 2
    assert "--bootstrap" in capsys.readouterr().err
    cp = [
        "--gt",
        str(CROWDPOSE / "example_crowdpose_val.json"),
        "--pred",
        str(CROWDPOSE / "example_crowdpose_preds.json"),
    ]
    assert _cli(["crowdpose", *cp, "--bootstrap", "50", "--bootstrap-seed", "4", "--level", "0.9", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["bootstrap"]["seed"] == 4 and data["bootstrap"]["level"] == 0.9 and "AP_hard" in data


def test_cli_crowdhuman_bootstrap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from crowdbench.datasets.formats.crowdhuman import read_odgt

    odgt = CROWDHUMAN / "test_annotation_train.odgt"
    if not odgt.is_file():
        pytest.skip("shared CrowdHuman sample absent")
    gt = read_odgt(odgt)
    pred = tmp_path / "pred.json"
    boxes = [(x1, y1, x2 - x1, y2 - y1) for x1, y1, x2, y2 in gt[0].boxes().tolist()]
    pred.write_text(json.dumps([{"image_id": gt[0].video, "bbox": list(b), "score": 1.0} for b in boxes]))
    assert _cli(["crowdhuman", "--gt", str(odgt), "--pred", str(pred), "--bootstrap", "20", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["AP"]["value"] == pytest.approx(5 / 6) and data["AP"]["low"] == data["AP"]["value"]
    assert data["bootstrap"]["resamples"] == 20 and "JI_per_threshold" in data


def test_resampler_rejects_wrong_weight_shape() -> None:
    gt, preds = make_case(1)
    _, rs = evaluate_coco_keypoints(gt, preds, return_resampler=True)
    with pytest.raises(ValueError, match="weights must be"):
        rs.values(np.ones((2, len(rs.units) + 1), np.int32))
    assert isinstance(rs, coco_keypoints.CocoImageResampler)
