"""Bootstrap resamplers of the tracking / video metrics (issue 19): MOT (sequence / frame-block units), PoseTrack
and HIE w-AP (videos). Unit weights reproduce the point estimates; paired effects; coverage on a known truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crowdbench.bench.metrics.bootstrap import paired_effect, percentile_interval, replicate_weights, verdict
from crowdbench.bench.metrics.hie_wap import HieWapResampler, evaluate_hie_wap, evaluate_hie_wap_bootstrap
from crowdbench.bench.metrics.mot import (
    MotResampler,
    MotSequence,
    evaluate_mot,
    evaluate_mot_bootstrap,
    load_mot_sequences,
    sequence_from_frames,
)
from crowdbench.bench.metrics.posetrack import (
    PoseTrackResampler,
    evaluate_posetrack,
    evaluate_posetrack_bootstrap,
    read_posetrack_dir,
)

EXACT = ("MOTA", "IDF1", "IDP", "IDR", "HOTA", "DetA", "AssA", "AssRe", "AssPr", "DetRe", "DetPr")
PT18 = Path(__file__).resolve().parents[2] / "shared" / "data" / "posetrack18" / "annotations" / "val"


def tud_sequences() -> list[MotSequence]:
    mm = pytest.importorskip("motmetrics")
    d = Path(mm.__file__).parent / "data"
    return load_mot_sequences(d, d, benchmark="MOT15")


def random_sequence(rng: np.random.Generator, name: str, n_frames: int, n_obj: int, *, switch: float, miss: float):
    """Objects on a jittered grid (no GT overlap), predictions with misses, id switches and false positives."""
    base = rng.uniform(0, 50, (n_obj, 2)) + np.stack(np.divmod(np.arange(n_obj), 8), 1) * 120.0
    pid = np.arange(n_obj) + 100
    gt, pred = [], []
    for t in range(n_frames):
        here = np.flatnonzero(rng.random(n_obj) < 0.9)
        boxes = np.column_stack([base[here] + rng.normal(0, 1, (len(here), 2)), np.full((len(here), 2), 40.0)])
        pid = np.where(rng.random(n_obj) < switch, 1000 + t * n_obj + np.arange(n_obj), pid)  # new unique ids
        keep = rng.random(len(here)) > miss
        pb = boxes[keep] + rng.normal(0, 4, (int(keep.sum()), 4))
        n_fp = rng.poisson(1.0)
        fp = np.column_stack([rng.uniform(0, 1000, (n_fp, 2)), np.full((n_fp, 2), 40.0)])
        gt.append((here + 1, boxes))
        pred.append((np.r_[pid[here[keep]], 5 * 10**6 + np.arange(n_fp)], np.r_[pb, fp]))
    return sequence_from_frames(name, gt, pred)


def check_exact(seqs: list[MotSequence], block: int | None) -> MotResampler:
    point = evaluate_mot(seqs).combined
    res, rs = evaluate_mot_bootstrap(seqs, block_frames=block)
    ones = rs.values(np.ones((2, len(rs.units)), np.int32))
    for k in EXACT:
        assert ones[k][0] == getattr(point, k) == getattr(res.combined, k), k
    for k in ("MOTP", "LocA"):
        assert ones[k][0] == pytest.approx(getattr(point, k), rel=1e-13), k
    return rs


# ----------------------------------------------------------------------------------------------------------- MOT
@pytest.mark.parametrize("block", [None, 50, 7])
def test_mot_unit_weights_tud_and_npz_round_trip(block, tmp_path):
    rs = check_exact(tud_sequences(), block)
    if block is None:
        assert rs.unit == "sequence" and rs.units == ["TUD-Campus", "TUD-Stadtmitte"]
    else:
        assert rs.unit == f"frame block ({block}) of a sequence" and rs.units[0] == f"TUD-Campus:1-{block}"
        assert len(rs.units) == -(-71 // block) + -(-179 // block)
    rs.save(tmp_path / "mot.npz")
    back = MotResampler.load(tmp_path / "mot.npz")
    w = replicate_weights(len(rs.units), 40, seed=3)
    a, b = rs.values(w), back.values(w)
    assert (back.unit, back.units) == (rs.unit, rs.units)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="not a HieWapResampler"):
        HieWapResampler.load(tmp_path / "mot.npz")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mot_unit_weights_random(seed):
    rng = np.random.default_rng(seed)
    seqs = [random_sequence(rng, f"s{i}", int(rng.integers(30, 90)), 12, switch=0.03, miss=0.2) for i in range(3)]
    seqs.append(sequence_from_frames("empty-pred", [(np.array([1]), np.array([[0, 0, 10, 10.0]]))], [], 5))
    check_exact(seqs, None)
    check_exact(seqs, 10)


def test_mot_sequence_weights_and_id_matching_recomputed():
    tud = tud_sequences()
    res, rs = evaluate_mot_bootstrap(tud, block_frames=None)
    v = rs.values(np.array([[2, 0], [0, 3]]))
    for k in ("MOTA", "IDF1", "HOTA", "AssA"):
        assert v[k] == pytest.approx([getattr(res.sequences[s], k) for s in rs.units], abs=1e-14), k
    # one GT track, predicted by id 7 in frames 1-10 and by id 8 in frames 11-30: blocks of 10 frames
    box = np.array([[0.0, 0.0, 10.0, 10.0]])
    gt = [(np.array([1]), box)] * 30
    pred = [(np.array([7 if t < 10 else 8]), box) for t in range(30)]
    _, rs = evaluate_mot_bootstrap([sequence_from_frames("s", gt, pred)], block_frames=10)
    v = rs.values(np.array([[1, 1, 1], [3, 0, 0], [2, 1, 0], [0, 1, 2]]))
    # the ID matching follows the weights: id 7 wins when its block is drawn 3 times
    np.testing.assert_array_equal(v["IDF1"], [20 / 30, 1.0, 20 / 30, 1.0])
    np.testing.assert_array_equal(v["MOTA"], [29 / 30, 1.0, 29 / 30, 29 / 30])


def test_mot_paired_effects():
    rng = np.random.default_rng(5)
    clean = [random_sequence(np.random.default_rng(10 + i), f"s{i}", 80, 16, switch=0.0, miss=0.05) for i in range(3)]
    noisy = [random_sequence(np.random.default_rng(10 + i), f"s{i}", 80, 16, switch=0.15, miss=0.05) for i in range(3)]
    _, rs_b = evaluate_mot_bootstrap(clean, block_frames=20)
    _, rs_a = evaluate_mot_bootstrap(noisy, block_frames=20)
    _, rs_b2 = evaluate_mot_bootstrap(clean, block_frames=20)
    assert rs_a.units == rs_b.units
    w = replicate_weights(len(rs_b.units), 300, seed=int(rng.integers(1000)))
    vb, va = rs_b.values(w), rs_a.values(w)
    zero = paired_effect(vb, rs_b2.values(w))
    assert all(zero[k] == (0.0, 0.0) for k in ("MOTA", "IDF1", "HOTA"))
    res_b, res_a = evaluate_mot(clean).combined, evaluate_mot(noisy).combined
    centre = {k: getattr(res_b, k) - getattr(res_a, k) for k in rs_b.centre}
    effect = paired_effect(vb, va, centre=centre)
    for k in ("IDF1", "HOTA"):  # replicates of identity metrics sit above the point; centred effect intervals
        assert np.mean(vb[k]) > getattr(res_b, k) or np.mean(va[k]) > getattr(res_a, k)
        lo, hi = effect[k]
        assert lo <= centre[k] <= hi and effect[k] != paired_effect(vb, va)[k]
    assert paired_effect(vb, rs_b2.values(w), centre=dict.fromkeys(centre, 0.0))["IDF1"] == (0.0, 0.0)
    for k in ("MOTA", "IDF1", "HOTA", "AssA"):
        assert verdict(+1.0, *effect[k]) == "agrees", k
        assert verdict(-1.0, *effect[k]) == "opposes", k
    assert effect["IDF1"][0] > 0.2


def mota_set(rng: np.random.Generator, n_blocks: int, frames: int, n_obj: int, p_miss: float, fp_rate: float):
    """Frames with ``n_obj`` well separated objects, each missed with ``p_miss``, ``Poisson(fp_rate)`` FPs."""
    box = np.column_stack([np.arange(n_obj) * 100.0, np.zeros(n_obj), np.full((n_obj, 2), 50.0)])
    gt, pred = [], []
    for _ in range(n_blocks * frames):
        hit = rng.random(n_obj) >= p_miss
        n_fp = rng.poisson(fp_rate)
        fp = np.column_stack(
            [np.full(n_fp, 0.0), np.full(n_fp, 500.0) + 100 * np.arange(n_fp), np.full((n_fp, 2), 50.0)]
        )
        gt.append((np.arange(n_obj), box))
        pred.append((np.r_[np.arange(n_obj)[hit], 1000 + np.arange(n_fp)], np.r_[box[hit], fp]))
    return sequence_from_frames("sim", gt, pred)


def test_mota_interval_coverage():
    """MOTA = 1 - (FN + FP) / GT with per-frame misses at 0.2 and Poisson(1) FPs over 5 objects: truth 0.6."""
    rng = np.random.default_rng(0)
    truth, covered, n_sets = 1 - 0.2 - 1 / 5, 0, 200
    for s in range(n_sets):
        seq = mota_set(rng, 20, 5, 5, 0.2, 1.0)
        _, rs = evaluate_mot_bootstrap([seq], block_frames=5, hota=False)
        lo, hi = percentile_interval(rs.values(replicate_weights(len(rs.units), 200, seed=s))["MOTA"])
        covered += lo <= truth <= hi
    assert covered / n_sets >= 0.9, covered


# ------------------------------------------------------------------------------------------------------ PoseTrack
@pytest.fixture(scope="module")
def pt_pred(tmp_path_factory) -> Path:
    if not PT18.is_dir():
        pytest.skip("shared PoseTrack sample missing")
    import json

    out = tmp_path_factory.mktemp("ptb")
    for i, f in enumerate(sorted(PT18.glob("*.json"))):
        d = json.loads(f.read_text())
        for a in d["annotations"]:
            k = a["keypoints"]
            for j in range(17):
                k[3 * j] *= 0.98 - 0.01 * i
                k[3 * j + 1] *= 1.02
            a["scores"] = [0.8 * k[3 * j + 2] * (1 + 0.1 * ((a["id"] * 7 + j) % 5)) for j in range(17)]
        (out / f.name).write_text(json.dumps(d))
    return out


@pytest.mark.parametrize("skip_last_frame", [True, False])
def test_posetrack_unit_weights_and_single_video(pt_pred, skip_last_frame, tmp_path):
    point = evaluate_posetrack(PT18, pt_pred, skip_last_frame=skip_last_frame)
    res, rs = evaluate_posetrack_bootstrap(PT18, pt_pred, skip_last_frame=skip_last_frame)
    assert res == point and rs.unit == "video" and len(rs.units) == 3
    ones = rs.values(np.ones((2, 3), np.int32))
    for k, v in point.ap.row().items():
        assert ones[f"AP {k}"][0] == v, k
    assert ones["AP"][0] == point.ap.total / 100.0
    if skip_last_frame:
        assert point.mot is None and "MOTA Total" not in ones
    else:
        for k, v in point.mot.row().items():
            np.testing.assert_array_equal(ones[k][0], v, err_msg=k)
    # one video drawn twice = that video alone (TP, detections and GT all double)
    gt_v, pr_v = read_posetrack_dir(PT18), read_posetrack_dir(pt_pred)
    v = rs.values(np.array([[0, 2, 0]]))
    name = rs.units[1]
    alone = evaluate_posetrack({name: gt_v[name]}, {name: pr_v[name]}, skip_last_frame=skip_last_frame)
    assert v["AP Total"][0] == alone.ap.total
    rs.save(tmp_path / "pt.npz")
    w = replicate_weights(3, 30, seed=1)
    a, b = rs.values(w), PoseTrackResampler.load(tmp_path / "pt.npz").values(w)
    assert all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)


# ------------------------------------------------------------------------------------------------------------ HIE
def test_hie_wap_video_weights(tmp_path):
    from test_metrics_hie import two_videos

    gt, preds = two_videos()
    for weighting in ("people", "frames", "uniform"):
        res, rs = evaluate_hie_wap_bootstrap(gt, preds, weighting=weighting)
        assert res == evaluate_hie_wap(gt, preds, weighting=weighting)
        v = rs.values(np.array([[1, 1], [2, 0], [0, 2], [1, 2]]))
        assert (rs.unit, rs.units) == ("video", ["a", "b"])
        assert v["w_AP@avg"][0] == res.w_AP_avg and v["w_AP@75"][0] == res.w_AP_75
        wa, wb = (x.weight for x in res.videos)
        np.testing.assert_allclose(v["w_AP@avg"][1:], [1.0, 0.0, wa / (wa + 2 * wb)], rtol=1e-15)
    rs.save(tmp_path / "hie.npz")
    assert HieWapResampler.load(tmp_path / "hie.npz").values(np.ones((1, 2)))["w_AP@50"][0] == res.w_AP_50
    # random per-video APs: bit for bit with the point formula (weighted sum in video order), -1 without videos
    rng = np.random.default_rng(0)
    ap = np.round(rng.random((40, 3)), 3)
    ap[rng.random((40, 3)) < 0.1] = -1.0
    weight = rng.integers(0, 50, 40).astype(float)
    rs = HieWapResampler("video", [str(i) for i in range(40)], {"ap": ap, "weight": weight})
    ones = rs.values(np.ones((1, 40), np.int32))
    for col, key in enumerate(HieWapResampler.keys):
        pairs = [(w, a) for w, a in zip(weight, ap[:, col], strict=True) if a >= 0 and w > 0]
        assert ones[key][0] == sum(w * a for w, a in pairs) / sum(w for w, _ in pairs)
    assert rs.values(np.zeros((1, 40), np.int32))["w_AP@avg"][0] == -1.0


def test_pose_tracks_bootstrap_matches_the_stage_metrics():
    from test_pose_tracking_pipeline import _cfg, _gt_poses

    from crowdbench.bench.metrics.pose_tracks import evaluate_pose_tracks, evaluate_pose_tracks_bootstrap
    from crowdbench.bench.stages.data import load_frames
    from crowdbench.datasets.keypoints import POSETRACK_17

    frames = load_frames(_cfg("hie-tracking/table7", 0).data, "val", "posetrack17")
    poses = _gt_poses(frames)
    for i, p in enumerate(poses):  # swap ids in every other frame having two people: MOTA < 1
        if i % 2 and len(p.ids) >= 2:
            p.ids[[0, 1]] = p.ids[[1, 0]]
    metrics, rs = evaluate_pose_tracks_bootstrap(frames, poses, POSETRACK_17)
    assert metrics == evaluate_pose_tracks(frames, poses, POSETRACK_17) and metrics["MOTA"] < 1.0
    ones = rs.values(np.ones((1, len(rs.units)), np.int32))
    assert all(ones[k][0] == v for k, v in metrics.items())
    assert len(set(rs.units)) == len({f.video for f in frames})


# ------------------------------------------------------------------------------------------------------------ CLI
def _eval(argv: list[str]) -> int:
    import argparse

    from crowdbench.bench.metrics.cli import add_eval_commands

    parser = argparse.ArgumentParser(prog="crowdbench eval")
    add_eval_commands(parser.add_subparsers(dest="metric", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_bootstrap(capsys, pt_pred, tmp_path):
    import json

    mm = pytest.importorskip("motmetrics")
    d = str(Path(mm.__file__).parent / "data")
    base = ["mot", "--gt", d, "--pred", d, "--benchmark", "MOT15"]
    assert _eval([*base, "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert "bootstrap" not in plain and "MOTA" not in plain
    assert _eval([*base, "--json", "--bootstrap", "50", "--bootstrap-seed", "4", "--block-frames", "0"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["bootstrap"] == {
        "resamples": 50, "unit": "sequence", "seed": 4, "level": 0.95,
        "centred": ["AssA", "HOTA", "IDF1", "IDP", "IDR"],
    }  # fmt: skip
    assert out["MOTA"]["value"] == plain["combined"]["MOTA"] and out["combined"] == plain["combined"]
    assert out["IDF1"]["low"] <= out["IDF1"]["high"] and set(out) >= {"HOTA", "DetA", "AssA", "MOTP", "IDP", "IDR"}
    assert _eval([*base, "--bootstrap", "20", "--level", "0.9"]) == 0
    text = capsys.readouterr().out
    assert "unit frame block (50) of a sequence, seed 0, 90 % intervals" in text and "    HOTA" in text
    assert _eval([*base, "--bootstrap", "0"]) == 2 and "--bootstrap must be >= 1" in capsys.readouterr().err
    assert _eval([*base, "--bootstrap", "5", "--semantics", "motmetrics"]) == 2
    capsys.readouterr()
    pt = ["posetrack", "--gt", str(PT18), "--pred", str(pt_pred), "--no-skip-last-frame", "--json"]
    assert _eval([*pt, "--bootstrap", "30"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["AP Total"]["value"] == out["ap"]["total"] and out["MOTA Total"]["value"] == out["mot"]["total_mota"]
    assert out["bootstrap"]["unit"] == "video"
    from test_metrics_hie import two_videos

    gt, preds = two_videos()
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "p.json").write_text(json.dumps(preds))
    hie = ["hie-wap", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "p.json")]
    assert _eval([*hie, "--json", "--bootstrap", "30"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["w_AP@avg"]["value"] == 0.75 and out["w_AP@avg"]["low"] <= 0.75 <= out["w_AP@avg"]["high"]
    assert _eval([*hie, "--bootstrap", "30"]) == 0 and "w_AP@50" in capsys.readouterr().out


def test_centred_interval():
    from crowdbench.bench.metrics.bootstrap import centred_interval

    x = np.array([1.0, 2.0, 3.0, 4.0, np.nan])
    assert centred_interval(x, 2.0, 0.5) == pytest.approx(percentile_interval(x - 0.5, 0.5))
    assert centred_interval(x, float("nan")) == percentile_interval(x)
    assert np.isnan(centred_interval(np.full(3, np.nan), 1.0)[0])
