"""PoseTrack per-joint AP / MOTA (poseval protocol): sample data references, hand cases, quirks, formats, CLI."""

from __future__ import annotations

import argparse
import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest

from crowdbench.bench.metrics.posetrack import (
    PoseTrackFrame,
    PoseTrackPerson,
    PoseTrackPoint,
    PoseTrackVideo,
    _Accumulator,
    _polygon_contains,
    add_command,
    evaluate_posetrack,
    evaluate_posetrack_ap,
    evaluate_posetrack_tracking,
    read_posetrack,
    read_posetrack17,
    read_posetrack18,
)
from crowdbench.datasets.formats.errors import FormatError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PT18 = DATA / "posetrack18" / "annotations" / "val"
PT17 = DATA / "posetrack17" / "annotations" / "val"
needs_data = pytest.mark.skipif(not (PT18.is_dir() and PT17.is_dir()), reason="shared PoseTrack sample missing")

#: SOURCE.md (posetrack18 and posetrack17): poseval on the perturbed predictions (x*0.98, y*1.02, score 0.8*vis)
PERTURBED = {
    "Head": 73.5,
    "Shou": 68.9,
    "Elb": 72.6,
    "Wri": 76.0,
    "Hip": 60.9,
    "Knee": 59.0,
    "Ankl": 59.0,
    "Total": 67.6,
}
NOSE = 13


def _write_predictions(out: Path, perturb: bool) -> Path:
    out.mkdir()
    for f in sorted(PT18.glob("*.json")):
        d = json.loads(f.read_text())
        for a in d["annotations"]:
            k = a["keypoints"]
            if perturb:
                for j in range(17):
                    k[3 * j] *= 0.98
                    k[3 * j + 1] *= 1.02
            a["scores"] = [(0.8 if perturb else 1.0) * k[3 * j + 2] for j in range(17)]
        (out / f.name).write_text(json.dumps(d))
    return out


@pytest.fixture(scope="module")
def preds(tmp_path_factory) -> dict[str, Path]:
    if not PT18.is_dir():
        pytest.skip("shared PoseTrack sample missing")
    base = tmp_path_factory.mktemp("pt")
    return {"gt": _write_predictions(base / "gt", False), "pert": _write_predictions(base / "pert", True)}


# ------------------------------------------------------------------------------------------------ sample references


@needs_data
@pytest.mark.parametrize("gt_dir", [PT18, PT17], ids=["gt2018", "gt2017"])
def test_gt_as_predictions_gives_100(preds, gt_dir):
    r = evaluate_posetrack(gt_dir, preds["gt"])
    assert all(v == 100.0 for v in r.ap.row().values())
    assert r.ap.num_frames == 3 and sum(r.ap.num_gt_joints) > 0
    # poseval --evalPoseTracking crashes here (SOURCE.md): one labeled frame per sequence, last frame skipped
    assert r.mot is None and "only one evaluated frame" in r.mot_error
    with pytest.raises(ValueError, match="only one evaluated frame"):
        evaluate_posetrack_tracking(*(_dir(gt_dir), _dir(preds["gt"])))
    mot = evaluate_posetrack_tracking(_dir(gt_dir), _dir(preds["gt"]), skip_last_frame=False)
    assert mot.total_mota == 100.0 and mot.total_precision == 100.0 and mot.total_recall == 100.0
    assert sum(mot.num_switches) == sum(mot.num_misses) == sum(mot.num_false_positives) == 0
    # MOTP: motmetrics 1.4 events['D'] also sums RAW pair distances (other persons within 0.5 head sizes)
    assert mot.total_motp < 100.0
    exact = evaluate_posetrack_tracking(_dir(gt_dir), _dir(preds["gt"]), skip_last_frame=False, motp_all_events=False)
    assert exact.total_motp == 100.0


def _dir(path: Path) -> dict[str, PoseTrackVideo]:
    return {p.name: read_posetrack(p) for p in sorted(path.glob("*.json"))}


@needs_data
@pytest.mark.parametrize("gt_dir", [PT18, PT17], ids=["gt2018", "gt2017"])
def test_perturbed_predictions_match_poseval_printout(preds, gt_dir):
    r = evaluate_posetrack(gt_dir, preds["pert"])
    printed = {k: float(f"{v:1.1f}") for k, v in r.ap.row().items()}  # poseval formatCell "%1.1f"
    assert printed == PERTURBED
    assert r.ap.total == pytest.approx(67.5705, abs=1e-4)


@needs_data
def test_2017_and_2018_formats_agree(preds, tmp_path):
    a = evaluate_posetrack(PT18, preds["pert"], skip_last_frame=False)
    b = evaluate_posetrack(PT17, preds["pert"], fmt=None, skip_last_frame=False)
    assert a.to_dict() == b.to_dict()
    v18, v17 = read_posetrack18(PT18 / "012834_mpii_test.json"), read_posetrack17(PT17 / "012834_mpii_test.json")
    assert [(p.track_id, p.head_box, sorted((q.id, q.x, q.y) for q in p.points)) for p in v18.frames[0].persons] == [
        (p.track_id, p.head_box, sorted((q.id, q.x, q.y) for q in p.points)) for p in v17.frames[0].persons
    ]
    assert len(v18.frames[0].ignore_regions) == len(v17.frames[0].ignore_regions) == 4


# ---------------------------------------------------------------------------------------------------- hand cases


def person(track, joints, head=(0.0, 0.0, 30.0, 40.0), score=None):
    """joints: {joint id: (x, y) or (x, y, score)}; default head box diagonal 50 -> head size 30."""
    pts = [PoseTrackPoint(j, v[0], v[1], v[2] if len(v) > 2 else score) for j, v in joints.items()]
    return PoseTrackPerson(track, pts, head, True, f"person {track}")


def video(*frames, name="v.json"):
    return {name: PoseTrackVideo(name, [PoseTrackFrame(f"{k:06d}.jpg", list(p), r) for k, (p, r) in enumerate(frames)])}


def test_pckh_threshold_and_pose_assignment_by_hand():
    gt = video(([person(0, {0: (100, 100), 1: (200, 100)})], []))
    # A: joint 1 is 20 px = 0.67 head sizes off -> PCKh 1/2; B: joint 0 exactly 15 px = 0.5 -> matches, PCKh 1
    a = person(1, {0: (100, 100, 0.9), 1: (220, 100, 0.9)})
    b = person(2, {0: (115, 100, 0.5), 1: (200, 100, 0.5)})
    r = evaluate_posetrack_ap(gt, video(([a, b], [])))
    # GT takes B; A's joints are false positives ranked first: precision [0, 1/2], recall [0, 1] -> AP 50
    assert r.ap[0] == r.ap[1] == 50.0
    assert r.precision[0] == 50.0 and r.recall[0] == 100.0
    # joints without predictions get AP 0 and still count in Total (evaluateAP.computeMetrics)
    assert r.ap[2:] == (0.0,) * 13 and r.total == pytest.approx(100 / 15)
    # 15.01 px is beyond 0.5 head sizes: both poses have PCKh 1/2, the GT takes the first (argmax), A
    b2 = person(2, {0: (115.01, 100, 0.5), 1: (200, 100, 0.5)})
    r2 = evaluate_posetrack_ap(gt, video(([a, b2], [])))
    assert r2.ap[0] == 100.0 and r2.ap[1] == 0.0


def test_mota_with_id_switch_and_skip_last_frame():
    g = [[person(0, {NOSE: (100, 100)})] for _ in range(4)]
    p = [[person(t, {NOSE: (101, 100, 1.0)})] for t in (5, 5, 7, 7)]
    gt, pr = video(*((x, []) for x in g)), video(*((x, []) for x in p))
    skip = evaluate_posetrack_tracking(gt, pr)  # frames 0..2: one switch in three objects
    assert skip.num_objects[NOSE] == 3 and skip.num_switches[NOSE] == 1
    assert skip.mota[NOSE] == pytest.approx(100 * (1 - 1 / 3)) and skip.total_mota == skip.mota[NOSE]
    assert math.isnan(skip.mota[0]) and skip.motp[0] == 0.0  # no objects: MOTA NaN (excluded), MOTP 0 (counted)
    # motmetrics 1.4 events['D']: RAW rows (3 x 1/30) + MATCH/SWITCH rows (3 x 1/30) + the ASCEND row (1/30)
    assert skip.motp[NOSE] == pytest.approx(100 * (1 - 7 / 90))
    exact = evaluate_posetrack_tracking(gt, pr, motp_all_events=False)
    assert exact.motp[NOSE] == pytest.approx(100 * (1 - 1 / 30))
    np.testing.assert_array_equal(exact.mota, skip.mota)
    full = evaluate_posetrack_tracking(gt, pr, skip_last_frame=False)
    assert full.num_objects[NOSE] == 4 and full.mota[NOSE] == pytest.approx(75.0)
    assert full.total_motp == pytest.approx(full.motp[NOSE] / 15)


def test_frame_without_predictions_dummy_quirk():
    g = [[person(0, {NOSE: (100, 100)})], [person(0, {NOSE: (100, 100)}), person(1, {NOSE: (300, 100)})], []]
    g[2] = [person(0, {NOSE: (100, 100)})]
    p = [[person(0, {NOSE: (100, 100, 1.0)})], [], []]
    gt, pr = video(*((x, []) for x in g)), video(*((x, []) for x in p))
    q = evaluate_posetrack_tracking(gt, pr)
    # poseval: the empty frame is one unmatchable GT id 0 vs prediction id 0 for every joint
    assert q.num_objects[NOSE] == 2 and q.num_misses[NOSE] == 1 and q.num_false_positives[NOSE] == 1
    assert q.mota[NOSE] == 0.0 and q.mota[0] == -100.0
    assert q.total_mota == pytest.approx((0 - 100 * 14) / 15)
    real = evaluate_posetrack_tracking(gt, pr, empty_frame_dummy=False)
    assert real.num_objects[NOSE] == 3 and real.num_misses[NOSE] == 2 and real.num_false_positives[NOSE] == 0
    assert real.total_mota == pytest.approx(100 / 3)
    # AP of a video without any prediction: all joints 0
    assert evaluate_posetrack_ap(gt, video(([], []), ([], []), ([], []))).total == 0.0


def test_frame_without_gt_is_not_evaluated():
    gt = video(([], []), ([person(0, {0: (100, 100)})], []))
    pr = video(([person(3, {0: (500, 500, 0.99)})], []), ([person(0, {0: (100, 100, 0.5)})], []))
    r = evaluate_posetrack_ap(gt, pr)
    assert r.num_frames == 1 and r.ap[0] == 100.0


def test_ignore_regions_drop_points_and_persons():
    region = np.array([[400, 0], [600, 0], [600, 200], [400, 200]], dtype=float)
    inside = person(1, {0: (500, 100), 1: (550, 100)})
    outside = person(0, {0: (100, 100), 1: (200, 100)})
    gt = video(([outside, inside], [region]))
    pr = video(([person(0, {0: (100, 100, 0.5), 1: (200, 100, 0.5)}), person(9, {0: (580, 150, 0.9)})], []))
    r = evaluate_posetrack_ap(gt, pr)
    assert r.ap[0] == r.ap[1] == 100.0 and r.num_gt_joints[:2] == (1, 1)
    no_region = video(([outside, inside], []))
    assert evaluate_posetrack_ap(no_region, pr).ap[0] == 25.0  # 2 GT; FP (0.9) ranked above the TP (0.5)
    # strict interior: boundary points (edge, vertex) are kept, as shapely Polygon.contains
    assert _polygon_contains(region, 500, 100)
    assert not _polygon_contains(region, 400, 100) and not _polygon_contains(region, 600, 200)
    assert not _polygon_contains(region[:2], 500, 0)


def test_accumulator_matches_motmetrics():
    mm = pytest.importorskip("motmetrics")
    rng = np.random.default_rng(3)
    acc, ref = _Accumulator(), mm.MOTAccumulator(auto_id=True)
    for _ in range(60):
        o = sorted(rng.choice(6, size=rng.integers(0, 5), replace=False).tolist())
        h = sorted(rng.choice(8, size=rng.integers(0, 5), replace=False).tolist())
        d = rng.random((len(o), len(h)))
        d[d > 0.5] = np.nan
        acc.update(o, h, d)
        ref.update(o, h, d.copy())
    m = mm.metrics.create().compute(
        ref, metrics=["num_misses", "num_switches", "num_false_positives", "num_objects", "num_detections"]
    )
    assert (acc.misses, acc.switches, acc.fps, acc.objects, acc.matches + acc.switches) == tuple(
        int(m[k].iloc[0]) for k in m.columns
    )
    assert acc.sum_all == pytest.approx(ref.events["D"].sum(), rel=1e-12)
    assert acc.sum_matched == pytest.approx(ref.mot_events.query("Type in ['MATCH', 'SWITCH']")["D"].sum())


# --------------------------------------------------------------------------------------------- errors and formats


def _pt18(path: Path, annotations: list[dict]) -> Path:
    names = ["nose", "head_bottom", "head_top", *["x"] * 2, "left_shoulder", "right_shoulder", "left_elbow"]
    names += ["right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee"]
    names += ["left_ankle", "right_ankle"]
    data = {
        "images": [{"id": 1, "file_name": "images/val/000001_x/000000.jpg"}],
        "annotations": annotations,
        "categories": [{"name": "person", "keypoints": names}],
    }
    path.write_text(json.dumps(data))
    return path


def test_malformed_files_raise_format_error_naming_file_and_record(tmp_path):
    ok = {"image_id": 1, "track_id": 0, "keypoints": [0] * 51, "bbox_head": [0, 0, 10, 10]}
    bad = copy.deepcopy(ok) | {"keypoints": [0] * 50}
    with pytest.raises(FormatError, match=r"a\.json: annotations\[1\]: 'keypoints' must have 51"):
        read_posetrack18(_pt18(tmp_path / "a.json", [ok, bad]))
    with pytest.raises(FormatError, match=r"b\.json: annotations\[0\]: image_id 7"):
        read_posetrack18(_pt18(tmp_path / "b.json", [ok | {"image_id": 7}]))
    p17 = tmp_path / "c.json"
    p17.write_text(json.dumps({"annolist": [{"image": [{"name": "a/0.jpg"}], "annorect": [{"annopoints": [{}]}]}]}))
    read_posetrack17(p17)  # annopoints without 'point': kept as a person without points (rectHasPoints False)
    p17.write_text(
        json.dumps({"annolist": [{"image": [{"name": "a"}], "annorect": [{"annopoints": [{"point": [{}]}]}]}]})
    )
    with pytest.raises(FormatError, match=r"c\.json: annolist\[0\]\.annorect\[0\]\.point\[0\]: missing 'id'"):
        read_posetrack17(p17)
    (tmp_path / "d.json").write_text("{")
    with pytest.raises(FormatError, match=r"d\.json:1:\d+: invalid JSON"):
        read_posetrack(tmp_path / "d.json")
    gt = video(([person(0, {0: (1, 1)}, head=None)], []))
    with pytest.raises(FormatError, match="person 0: GT person has no head box"):
        evaluate_posetrack_ap(gt, video(([person(0, {0: (1, 1, 1.0)})], [])))


def test_pt18_reader_semantics(tmp_path):
    kps = [0.0] * 51
    kps[0:3] = [10, 20, 0]  # nose at (10, 20), visibility 0: present (only x = y = v = 0 is absent)
    ann = {"image_id": 1, "track_id": 4, "keypoints": kps, "bbox_head": [1, 2, 3, 4], "scores": [0.5] * 17}
    v = read_posetrack18(_pt18(tmp_path / "e.json", [ann]))
    (p,) = v.frames[0].persons
    assert p.points == [PoseTrackPoint(NOSE, 10.0, 20.0, 0.5)] and p.head_box == (1, 2, 4, 6) and p.track_id == 4


def test_pairing_errors(tmp_path):
    gt = video(([person(0, {0: (1, 1)})], []))
    with pytest.raises(FileNotFoundError, match=r"prediction file v\.json"):
        evaluate_posetrack_ap(gt, {})
    with pytest.raises(ValueError, match="# prediction frames 2 <> # GT frames 1"):
        evaluate_posetrack_ap(gt, video(([], []), ([], [])))
    with pytest.raises(ValueError, match="non-unique track ids"):
        evaluate_posetrack_ap(gt, video(([person(1, {0: (1, 1)}), person(1, {0: (2, 2)})], [])))


# ---------------------------------------------------------------------------------------------------------- CLI


def _cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_command(parser.add_subparsers())
    return parser.parse_args(argv)


@needs_data
def test_cli(preds, capsys, tmp_path):
    args = _cli(["posetrack", "--gt", str(PT17), "--pred", str(preds["pert"]), "--no-skip-last-frame", "--json"])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert round(out["ap"]["total"], 1) == 67.6 and out["mot"]["skip_last_frame"] is False
    args = _cli(["posetrack", "--gt", str(PT18), "--pred", str(preds["gt"]), "--format", "2018"])
    assert args.func(args) == 0
    cap = capsys.readouterr()
    assert "100.0" in cap.out and cap.err.startswith("warning: tracking metrics not computed")
    args = _cli(["posetrack", "--gt", str(PT18), "--pred", str(tmp_path / "missing")])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
