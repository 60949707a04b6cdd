"""CrowdHuman AP / mMR / JI (bench/metrics/crowdhuman.py): hand-computed cases, the real sample, reference parity.

Hand computations follow metrics.md section 3 (CrowdDet's evaluation code). Notation: the TP/FP list is all
non-dropped detections sorted by score; r_i = TP_i / N_gt, p_i = TP_i / (TP_i + FP_i);
AP = sum_{i>=1} (r_i - r_{i-1}) (p_{i-1} + p_i) / 2 (trapezoids from the first point, no (0, 1) anchor).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from crowdbench.bench.metrics.cli import add_eval_commands
from crowdbench.bench.metrics.crowdhuman import (
    FPPI_REFS,
    JI_SCORE_THRESHOLDS,
    CrowdHumanImage,
    evaluate_crowdhuman,
    evaluate_images,
)
from crowdbench.datasets.formats.crowdhuman import DetectionRecord, read_detections, read_id_hw, read_odgt

REPO = Path(__file__).resolve().parents[1]
SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "crowdhuman"
EPS = 1e-6


def img(gt, det=(), scores=(), ignore=(), width=1000, height=1000, name="img"):
    """Image with valid GT ``gt``, ignore boxes ``ignore`` and detections (all x1, y1, x2, y2)."""
    gt_boxes = np.array(list(gt) + list(ignore), dtype=float).reshape(-1, 4)
    flags = np.array([False] * len(gt) + [True] * len(ignore))
    return CrowdHumanImage(name, width, height, gt_boxes, flags, np.array(det, float).reshape(-1, 4), scores)


A, B, C, D = (0, 0, 100, 200), (200, 0, 300, 200), (400, 0, 500, 200), (600, 0, 700, 200)
FAR = (800, 800, 900, 950)  # overlaps none of the GT above


# --------------------------------------------------------------------------------------------- (a) perfect boxes


def test_perfect_detections_ap_is_n_minus_1_over_n():
    # 4 GT, 4 exact detections: r = 1/4, 2/4, 3/4, 1 and p = 1 throughout. The first point (r = 1/4) has no
    # trapezoid to its left, so AP = 3 * (1/4) * 1 = 3/4, not 1. No FP: FPPI = 0 at every point, so every reference
    # falls back to the last point (MR = 0) and mMR = exp(mean(log 0)) = 0 (no clamping).
    # JI: k = m = n = 4 at every threshold -> 4 / (4 + 4 - 4 + 1e-6).
    res = evaluate_images([img([A, B, C, D], [A, B, C, D], [0.9, 0.8, 0.7, 0.6])])
    assert pytest.approx(3 / 4, abs=1e-12) == res.AP
    assert res.mMR == 0.0
    assert pytest.approx(4 / (4 + EPS), abs=1e-15) == res.JI
    assert (res.num_tp, res.num_fp, res.num_dropped, res.num_gt) == (4, 0, 0, 4)
    # Two images (3 + 3 GT) are one dataset-wide list: AP = 5/6, like mmdet's recorded CrowdHuman sample value.
    res2 = evaluate_images(
        [img([A, B, C], [A, B, C], [0.9, 0.8, 0.7], name="x"), img([A, B, C], [A, B, C], [0.6, 0.5, 0.4], name="y")]
    )
    assert pytest.approx(5 / 6, abs=1e-12) == res2.AP


# ------------------------------------------------------------------------------------- (b) ignore regions drop dets


def test_detection_on_ignore_region_is_dropped():
    # Valid GT A, B; ignore region R. Detections: on A (0.9), inside R (0.8, IoA = 1), on B (0.7).
    # The R detection is neither TP nor FP: list = [TP, TP] -> r = 1/2, 1; p = 1, 1 -> AP = (1/2) * 1 = 0.5.
    # (Were it an FP: [TP, FP, TP], r = .5, .5, 1, p = 1, .5, 2/3 -> AP = 0 + .5 * (.5 + 2/3) / 2 = 7/24.)
    R = (300, 300, 700, 700)
    inside = (400, 400, 500, 600)
    res = evaluate_images([img([A, B], [A, inside, B], [0.9, 0.8, 0.7], ignore=[R])])
    assert pytest.approx(0.5, abs=1e-12) == res.AP
    assert (res.num_tp, res.num_fp, res.num_dropped, res.num_ignore) == (2, 0, 1, 1)
    # JI: the unmatched R detection has IoA > 0.5 with R -> discounted: k = 2, m = 2, n = 3 - 1 = 2.
    assert pytest.approx(2 / (2 + EPS), abs=1e-15) == res.JI
    # The same image with R as a *valid* GT would make that detection a TP; with R absent it is an FP.
    assert pytest.approx(7 / 24, abs=1e-12) == evaluate_images([img([A, B], [A, inside, B], [0.9, 0.8, 0.7])]).AP


def test_ignore_needs_ioa_strictly_above_half_and_valid_gt_wins():
    # Detection half inside the ignore box: IoA = 0.5 exactly (1e-6 in the denominator makes it 0.4999999...): FP.
    R = (0, 500, 100, 700)
    half = (0, 600, 100, 800)  # area 20000, 10000 of it inside R
    res = evaluate_images([img([A], [A, half], [0.9, 0.8], ignore=[R])])
    assert (res.num_tp, res.num_fp, res.num_dropped) == (1, 1, 0)
    # A detection that matches a free valid GT is a TP even if it also lies inside an ignore region.
    res = evaluate_images([img([A], [A], [0.9], ignore=[(0, 0, 100, 200)])])
    assert (res.num_tp, res.num_dropped) == (1, 0)


# ------------------------------------------------------------------------------------ (c) an FP above the TPs


def test_fp_above_tp_changes_ap_by_hand():
    # GT A, B. [FP 0.9, TP 0.8, TP 0.7]: r = 0, 1/2, 1; p = 0, 1/2, 2/3
    #   AP = (1/2)(0 + 1/2)/2 + (1/2)(1/2 + 2/3)/2 = 1/8 + 7/24 = 5/12 = 0.41667.
    # [TP 0.9, TP 0.8, FP 0.7]: r = 1/2, 1, 1; p = 1, 1, 2/3 -> AP = (1/2)(1 + 1)/2 + 0 = 1/2.
    high = evaluate_images([img([A, B], [FAR, A, B], [0.9, 0.8, 0.7])])
    low = evaluate_images([img([A, B], [A, B, FAR], [0.9, 0.8, 0.7])])
    assert pytest.approx(5 / 12, abs=1e-12) == high.AP
    assert pytest.approx(1 / 2, abs=1e-12) == low.AP
    assert (high.num_tp, high.num_fp) == (2, 1)


def test_caltech_match_prefers_highest_iou_and_consumes_gt():
    # GT A = [0, 0, 100, 200], A2 = [0, 20, 100, 220]. Detection d1 (.9) = [0, 15, 100, 215]: IoU(A) = .86,
    # IoU(A2) = .95 -> takes A2 (the highest, not the first). d2 (.8) = [0, 0, 100, 125]: IoU(A) = .625,
    # IoU(A2) = .477 -> takes A. d3 (.7) = A exactly: both GT consumed -> FP. d4 (.6) = [200, 0, 300, 100] on
    # B = [200, 0, 300, 200]: IoU = 0.5 (less the 1e-6), not > 0.5 -> FP. Had d1 taken A, d2 would be an FP.
    a2 = (0, 20, 100, 220)
    dets = [(0, 15, 100, 215), (0, 0, 100, 125), A, (200, 0, 300, 100)]
    res = evaluate_images([img([A, a2, B], dets, [0.9, 0.8, 0.7, 0.6])])
    assert (res.num_tp, res.num_fp) == (2, 2)


# ----------------------------------------------------------------------------- (d) mMR picks on a multi-image set


def test_mmr_fppi_picks_by_hand():
    # 10 images, one GT each (N_gt = 10, N_img = 10 -> one FP = 0.1 FPPI). Detections in score order:
    #   k     0    1    2    3    4    5    6    7    8    9    10   11
    #   kind  TP   FP   TP   TP   FP   TP   FP   FP   TP   FP   TP   FP
    #   FPPI  0    .1   .1   .1   .2   .2   .3   .4   .4   .5   .5   .6
    #   MR    .9   .9   .8   .7   .7   .6   .6   .6   .5   .5   .4   .4
    # For each reference r the first k with FPPI >= r:
    #   r = .0100 .0178 .0316 .0562 -> k = 1 (MR .9); r = .1000 -> k = 1 too (0.1 >= 0.1; the Dollar toolbox
    #   would take the last point with FPPI <= .1, k = 3, MR .7); r = .1778 -> k = 4 (.7); r = .3162 -> k = 7 (.6);
    #   r = .5623 -> k = 11 (.4); r = 1.0 is never reached -> last point, k = 11 (.4).
    #   mMR = exp((5 ln .9 + ln .7 + ln .6 + 2 ln .4) / 9) = exp(-3.2268846 / 9) = exp(-0.3585427) = 0.698694.
    gt_box, fp_box = (100, 100, 200, 300), (600, 600, 700, 800)
    kinds = ["TP", "FP", "TP", "TP", "FP", "TP", "FP", "FP", "TP", "FP", "TP", "FP"]
    dets: dict[int, list] = {i: [] for i in range(10)}
    tp_img, fp_img = 0, 6
    for k, kind in enumerate(kinds):
        score = 0.99 - 0.01 * k
        if kind == "TP":
            dets[tp_img].append((gt_box, score))
            tp_img += 1
        else:
            dets[fp_img].append((fp_box, score))
            fp_img = 6 + (fp_img - 5) % 4
    images = [img([gt_box], [b for b, _ in dets[i]], [s for _, s in dets[i]], name=f"i{i}") for i in range(10)]
    res = evaluate_images(images)
    assert res.MR_at_fppi == pytest.approx((0.9, 0.9, 0.9, 0.9, 0.9, 0.7, 0.6, 0.4, 0.4), abs=1e-12)
    expect = math.exp((5 * math.log(0.9) + math.log(0.7) + math.log(0.6) + 2 * math.log(0.4)) / 9)
    assert res.mMR == pytest.approx(expect, abs=1e-12)
    assert res.mMR == pytest.approx(0.698694, abs=1e-6)
    assert len(FPPI_REFS) == 9


# -------------------------------------------------------------------- (e) JI: max-weight matching and discounting


def test_ji_max_weight_beats_greedy_and_ignore_discounting():
    # Same y-range 0..100, so IoU = overlap length / union length along x.
    #   G1 = [100, 200], G2 = [110, 210]; D1 = [100, 180] (score .95), D2 = [60, 172] (score .94)
    #   IoU(D1, G1) = 80/100 = .8, IoU(D1, G2) = 70/110 = .636, IoU(D2, G1) = 72/140 = .514,
    #   IoU(D2, G2) = 62/150 = .413 (no edge).
    # Greedy by IoU takes D1-G1 (.8) and leaves D2 with nothing: k = 1. The maximum-weight matching is
    # D1-G2 + D2-G1 = 1.151 > .8: k = 2.
    # Ignore region R = [300, 0, 500, 200] holds a valid GT G3 (never matched, IoA 1 -> not counted in m)
    # and a detection D3 (.93, unmatched, IoA 1 -> not counted in n). D4 = far FP with score .05.
    #   s = 0.0: kept D1..D4: k = 2, n = 4 - 1 = 3, m = 3 - 1 = 2 -> JI = 2 / (2 + 3 - 2 + 1e-6) = 0.6667
    #   s >= 0.1: D4 dropped: k = 2, n = 2, m = 2 -> JI = 2 / (2 + 1e-6); JI = max = 0.999999500.
    #   (Greedy would give k = 1, n = 2, m = 2 -> 1/3.)
    g1, g2, g3 = (100, 0, 200, 100), (110, 0, 210, 100), (310, 10, 360, 110)
    d1, d2, d3, d4 = (100, 0, 180, 100), (60, 0, 172, 100), (420, 100, 490, 190), (600, 0, 650, 50)
    R = (300, 0, 500, 200)
    res = evaluate_images([img([g1, g2, g3], [d1, d2, d3, d4], [0.95, 0.94, 0.93, 0.05], [R], 800, 300)])
    assert res.JI_per_threshold[0] == pytest.approx(2 / (3 + EPS), abs=1e-15)
    assert res.JI_per_threshold[1:] == pytest.approx([2 / (2 + EPS)] * 9, abs=1e-15)
    assert pytest.approx(2 / (2 + EPS), abs=1e-15) == res.JI
    assert res.JI_counts[0] == (2, 3, 2)
    assert res.JI_counts[5] == (2, 2, 2)
    # Caltech matching for AP is greedy: D1 takes G1 (highest IoU), D2 is an FP, D3 dropped, D4 an FP.
    assert (res.num_tp, res.num_fp, res.num_dropped) == (1, 2, 1)


def test_ji_thresholds_are_strict_and_use_0_1_times_i():
    # A detection scored exactly 0.3 is kept at s = 0.2 and dropped at s = 0.1 * 3 = 0.30000000000000004 (> is strict
    # anyway); one scored 0.5 is dropped at s = 0.5.
    assert JI_SCORE_THRESHOLDS[3] == 0.1 * 3 != 0.3
    res = evaluate_images([img([A, B], [A, B], [0.3, 0.5])])
    ks = [c[0] for c in res.JI_counts]
    assert ks == [2, 2, 2, 1, 1, 0, 0, 0, 0, 0]
    # at s = 0.5 nothing is kept: k = n = 0 but m = 2, so the image still counts, with JI 0
    assert res.JI_per_threshold[5] == 0.0


def test_clipping_to_image_and_unknown_size():
    # GT A = [0, 0, 100, 200] in a 100 x 200 image; the detection [-100, 0, 100, 200] has IoU 0.5 unclipped (FP),
    # but is clipped to [0, 0, 100, 200] first (x1 to [0, W-1], x2 to [0, W]) -> IoU ~ 1 -> TP.
    det = [(-100, 0, 100, 200)]
    assert evaluate_images([img([A], det, [0.9], width=100, height=200)]).num_tp == 1
    assert evaluate_images([img([A], det, [0.9], width=0, height=0)]).num_tp == 0  # size unknown: no clipping


def test_empty_inputs():
    res = evaluate_images([img([A], [], [])])
    assert res.AP == 0.0 and math.isnan(res.mMR) and res.JI == 0.0  # CrowdDet: empty list -> AP 0, MR NaN
    res = evaluate_images([img([], [A], [0.9], ignore=[A])])
    assert math.isnan(res.AP) and res.num_dropped == 1  # no valid GT: AP undefined (CrowdDet divides by 0)


# ------------------------------------------------------------------------------------------ (f) the real sample


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="shared CrowdHuman sample not available")
@pytest.mark.parametrize("size_from", ["id_hw", "mmdet_ori_shape"])
def test_real_sample_matches_mmdet_recorded_values(size_from):
    # mmdet's test: predictions = the 6 person fboxes, score 1.0 -> mAP 0.8333, mMR 0.0, JI 1.0 (4 decimals).
    # AP = 5/6 by the first-point rule; mMR = 0 (no FP); JI = 6 / (6 + 1e-6) = 0.99999983 -> "1.0" when rounded.
    # Sizes: the id_hw file says 1356 x 2048 (h x w); mmdet fed ori_shape (1640, 1640). Clipping differs (person 1's
    # fbox reaches y = 2041: clipped to 1356 vs 1640) but GT and detections are the same boxes clipped the same
    # way, so IoUs stay ~1 and the numbers are identical either way.
    odgt = SAMPLE / "test_annotation_train.odgt"
    if size_from == "id_hw":
        gt = read_odgt(odgt, id_hw=read_id_hw(SAMPLE / "id_hw_train.json"))
        assert (gt[0].height, gt[0].width) == (1356, 2048)
        dets = [DetectionRecord(gt[0].video, gt[0].boxes(), np.ones(6))]
    else:
        gt = read_odgt(odgt)
        dets = [DetectionRecord(gt[0].video, gt[0].boxes(), np.ones(6), width=1640, height=1640)]
    res = evaluate_crowdhuman(gt, dets)
    assert round(res.AP, 4) == 0.8333 and pytest.approx(5 / 6, abs=1e-12) == res.AP
    assert res.mMR == 0.0
    assert round(res.JI, 4) == 1.0 and pytest.approx(6 / (6 + EPS), abs=1e-15) == res.JI
    assert (res.num_gt, res.num_ignore, res.num_tp, res.num_fp) == (6, 1, 6, 0)


# ------------------------------------------------------------------------------- (g) parity with CrowdDet's code


REFERENCE = Path(os.environ.get("CROWDDET_EVAL", REPO / "benchmarks" / "reference"))


def _reference():
    """CrowdDet's own evaluation code (MIT), which we do not redistribute: see benchmarks/README.md."""
    if not (REFERENCE / "crowddet_eval").is_dir():
        pytest.skip(f"CrowdDet evaluation code not found under {REFERENCE} (benchmarks/README.md says how to add it)")
    pytest.importorskip("tqdm")  # imported by CrowdDet's compute_JI
    sys.path.insert(0, str(REFERENCE))
    try:
        from crowddet_eval import compute_JI
        from crowddet_eval.APMRToolkits import Database
    finally:
        sys.path.remove(str(REFERENCE))
    return Database, compute_JI


class _ListQueue(list):
    """Stands in for the multiprocessing queue ``compute_JI_with_ignore`` writes to."""

    def put_nowait(self, item):
        self.append(item)


def _random_crowd(seed: int = 7, n_images: int = 50) -> tuple[list[dict], list[dict]]:
    """Seeded crowded scenes as CrowdHuman odgt records + CrowdDet result records (boxes x, y, w, h).

    Clusters of overlapping people (some past the border), ignore regions (masks and ignored persons),
    detections = jittered GT + duplicates + FPs + boxes inside masks; scores on a 0.01 grid (ties across and within
    images, exact 0.3 / 0.7 / 0.9 values on JI thresholds). Image 0 holds a 6 x 6 crowd where every detection
    overlaps every person (a matching component too big for enumeration); image 3 has only ignored GT;
    image 5 has no detections.
    """
    rng = np.random.default_rng(seed)
    gts, dts = [], []
    for i in range(n_images):
        w_img, h_img = int(rng.integers(400, 1000)), int(rng.integers(300, 800))
        n = int(rng.integers(12, 28))
        centers = rng.uniform([0, 0], [w_img, h_img], size=(3, 2))[rng.integers(0, 3, n)]
        h = rng.uniform(60, 300, n)
        w = h * rng.uniform(0.3, 0.5, n)
        xy = centers + rng.normal(0, 1, (n, 2)) * [w_img / 10, h_img / 12] - np.stack([w, h], 1) / 2
        people = np.round(np.column_stack([xy, w, h])).tolist()
        if i == 0:
            people += [[50 + 2 * j, 40 + j, 80, 200] for j in range(6)]
        gtboxes = []
        for b in people:
            ignored = i == 3 or rng.random() < 0.05
            gtboxes.append({"tag": "person", "fbox": b, "hbox": b, "extra": {"ignore": 1} if ignored else {}})
        masks = []
        for _ in range(int(rng.integers(0, 3))):
            mw, mh = rng.uniform(60, 250), rng.uniform(60, 250)
            mb = [
                round(float(rng.uniform(0, w_img - mw))),
                round(float(rng.uniform(0, h_img - mh))),
                round(mw),
                round(mh),
            ]
            masks.append(mb)
            gtboxes.append({"tag": "mask", "fbox": mb, "hbox": mb, "extra": {"ignore": 1}})
        rng.shuffle(gtboxes)  # ignore boxes interleaved with persons, as in real files
        gts.append({"ID": f"img{i:03d},{rng.integers(1 << 32):08x}", "gtboxes": gtboxes})

        boxes = []
        for x, y, bw, bh in people:
            for _ in range(int(rng.random() < 0.85) + int(rng.random() < 0.3)):
                boxes.append(np.array([x, y, bw, bh]) + rng.normal(0, 0.08, 4) * [bw, bh, bw, bh])
        for _ in range(int(rng.integers(2, 7))):
            fw, fh = rng.uniform(20, 150), rng.uniform(50, 300)
            boxes.append(np.array([rng.uniform(-fw / 2, w_img), rng.uniform(-fh / 2, h_img), fw, fh]))
        for mx, my, mw, mh in masks:
            boxes.append(np.array([mx + mw * 0.2, my + mh * 0.2, mw * 0.5, mh * 0.5]))
        scores = np.round(rng.uniform(0.01, 1.0, len(boxes)), 2)
        scores[rng.random(len(boxes)) < 0.1] = rng.choice([0.3, 0.7, 0.9])
        dtboxes = [
            {"box": [round(float(v), 1) for v in b], "score": float(s), "tag": 1}
            for b, s in zip(boxes, scores, strict=True)
        ]
        dts.append({"ID": gts[-1]["ID"], "height": h_img, "width": w_img, "dtboxes": [] if i == 5 else dtboxes})
    return gts, dts


def _write_lines(records: list[dict], path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_parity_with_crowddet_reference(tmp_path):
    Database, compute_JI = _reference()
    gts, dts = _random_crowd()
    gt_path = _write_lines(gts, tmp_path / "gt.odgt")
    dt_path = _write_lines(dts, tmp_path / "dt.json")

    # Reference, as tools/test.py + compute_APMR / compute_JI run it (JI in-process instead of 10 processes).
    db = Database(str(gt_path), str(dt_path), "box", None, 0)
    db.compare()
    ref_ap, _ = db.eval_AP()
    ref_mr, _ = db.eval_MR()
    ji_records = []
    for g, d in zip(gts, dts, strict=True):  # tools/test.py stores the GT next to the detections, tag -1 = ignore
        tags = [-1 if b["tag"] != "person" or b["extra"].get("ignore", 0) else 1 for b in g["gtboxes"]]
        ji_records.append(
            dict(d, gtboxes=[{"box": b["fbox"], "tag": t} for b, t in zip(g["gtboxes"], tags, strict=True)])
        )
    ref_ji = []
    for s in JI_SCORE_THRESHOLDS:
        q = _ListQueue()
        compute_JI.compute_JI_with_ignore(q, ji_records, s, "box")
        ref_ji.append(compute_JI.gather(q)[1])

    # Ours, through our own readers.
    res = evaluate_crowdhuman(read_odgt(gt_path), read_detections(dt_path))
    assert res.num_images == 50 and res.num_dropped > 0 and res.num_ignore > 0
    assert abs(res.AP - ref_ap) <= 1e-9, (res.AP, ref_ap)
    assert abs(res.mMR - ref_mr) <= 1e-9, (res.mMR, ref_mr)
    # JI: identical per threshold (no exact IoU ties in this data, so max-weight matchings coincide)
    assert list(res.JI_per_threshold) == [float(v) for v in ref_ji]
    assert max(ref_ji) == res.JI
    assert 0.5 < res.AP < 1 and 0 < res.mMR < 1 and 0.5 < res.JI < 1


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="shared CrowdHuman sample not available")
def test_reference_on_real_sample_agrees(tmp_path):
    # CrowdDet's own code on the real sample (GT odgt as is; detections with mmdet's 1640 x 1640 size).
    Database, _ = _reference()
    line = json.loads((SAMPLE / "test_annotation_train.odgt").read_text())
    dets = [{"box": b["fbox"], "score": 1.0, "tag": 1} for b in line["gtboxes"] if b["tag"] == "person"]
    dt = {"ID": line["ID"], "height": 1640, "width": 1640, "dtboxes": dets}
    dt_path = _write_lines([dt], tmp_path / "dt.json")
    db = Database(str(SAMPLE / "test_annotation_train.odgt"), str(dt_path), "box", None, 0)
    db.compare()
    with np.errstate(divide="ignore"):
        assert db.eval_AP()[0] == pytest.approx(5 / 6) and db.eval_MR()[0] == 0.0
    ours = evaluate_crowdhuman(read_odgt(SAMPLE / "test_annotation_train.odgt"), read_detections(dt_path))
    assert db.eval_AP()[0] == ours.AP


# ------------------------------------------------------------------------------------------------------------ CLI


def _cli(argv):
    parser = argparse.ArgumentParser(prog="crowdbench eval")
    add_eval_commands(parser.add_subparsers(dest="metric", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="shared CrowdHuman sample not available")
def test_cli_eval_crowdhuman(tmp_path, capsys):
    gt = read_odgt(SAMPLE / "test_annotation_train.odgt")
    pred = tmp_path / "pred.json"
    pred.write_text(
        json.dumps(
            [
                {"image_id": gt[0].video, "bbox": list(b), "score": 1.0}
                for b in [(x1, y1, x2 - x1, y2 - y1) for x1, y1, x2, y2 in gt[0].boxes().tolist()]
            ]
        )
    )
    hw = ["--id-hw", str(SAMPLE / "id_hw_train.json")]
    assert _cli(["crowdhuman", "--gt", str(SAMPLE / "test_annotation_train.odgt"), "--pred", str(pred), *hw]) == 0
    out = capsys.readouterr().out
    assert "AP   0.8333" in out and "mMR  0.0000" in out and "JI   1.0000" in out
    assert _cli(["crowdhuman", "--gt", str(SAMPLE / "test_annotation_train.odgt"), "--pred", str(pred), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["AP"] == pytest.approx(5 / 6) and len(data["JI_per_threshold"]) == 10

    bad = tmp_path / "bad.json"
    bad.write_text('{"ID": "x", "dtboxes": [{"box": [1, 2, 3], "score": 1}]}\n')
    assert _cli(["crowdhuman", "--gt", str(SAMPLE / "test_annotation_train.odgt"), "--pred", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "bad.json:1:" in err and "\n" not in err
    assert _cli(["crowdhuman", "--gt", str(tmp_path / "missing.odgt"), "--pred", str(pred)]) == 2
    assert "missing.odgt" in capsys.readouterr().err
