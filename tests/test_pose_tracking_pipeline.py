"""The pose-tracking pipeline (hie-tracking Table 7, offset-guided Table 5): poseval scoring of per-frame poses,
DeepSORT-box and IoU + ReID pipelines, flow smoothing and propagation wired to the stages they claim."""

from __future__ import annotations

import numpy as np
import pytest

from crowdbench.bench.cache import StageCache
from crowdbench.bench.matrix import expand
from crowdbench.bench.metrics.pose_tracks import FramePoses, evaluate_pose_tracks
from crowdbench.bench.metrics.registry import metric_for
from crowdbench.bench.registry import get_plugin
from crowdbench.bench.specs import load_spec
from crowdbench.bench.stages.data import load_frames
from crowdbench.bench.stages.pose_tracking import load_poses
from crowdbench.bench.stages.tracking import load_tracks
from crowdbench.bench.tasks import run_cell, stage_keys
from crowdbench.datasets.keypoints import POSETRACK_17

# tiny videos, ground-truth boxes, a pose model trained for one short epoch, a ReID trained for 30 steps
TINY = {
    "data.preset": "tiny",
    "tracking.boxes": "gt",
    "pose.test.boxes": "gt",
    "pose.train.epoch_scale": 0.005,
    "pose.train.samples_per_epoch": 64,
    "pose.train.eval_every": 0,
    "tracking.reid.iterations": 30,
    "pose_tracking.kp_thr": 0.0,  # the one-epoch model scores every joint low
}


def _cfg(table: str, row: int, **over):
    return expand(load_spec(table), overrides={**TINY, **over}, rows=[row])[0].config


def _gt_poses(frames):
    out = []
    for f in frames:
        people = [i for i in f.instances if not i.ignore]
        kp = np.array([i.keypoints for i in people], dtype=np.float64).reshape(-1, 17, 3)
        kp[..., 2] = (kp[..., 2] > 0).astype(float)
        ids = np.array([i.track_id for i in people], dtype=np.int64)
        out.append(FramePoses(kp, np.ones(len(people)), ids, np.array([i.box for i in people]).reshape(-1, 4)))
    return out


def test_ground_truth_poses_score_perfectly_and_an_id_swap_costs_mota():
    frames = load_frames(_cfg("hie-tracking/table7", 0).data, "val", "posetrack17")
    poses = _gt_poses(frames)
    m = evaluate_pose_tracks(frames, poses, POSETRACK_17)
    assert m["AP"] == pytest.approx(1.0) and m["MOTA"] == pytest.approx(1.0) and m["Rec"] == pytest.approx(1.0)
    first = next(i for i, p in enumerate(poses) if len(p.ids) >= 2)
    video = frames[first].video
    for i, f in enumerate(frames):  # swap two people's ids from the middle of that video on
        if f.video == video and f.index >= frames[first].index + 3 and len(poses[i].ids) >= 2:
            poses[i].ids[[0, 1]] = poses[i].ids[[1, 0]]
    swapped = evaluate_pose_tracks(frames, poses, POSETRACK_17)
    assert swapped["AP"] == pytest.approx(1.0) and swapped["MOTA"] < 1.0
    # joints scoring at or below kp_thr are not written: all of them gone -> nothing found
    assert evaluate_pose_tracks(frames, poses, POSETRACK_17, kp_thr=1.0)["Rec"] == 0.0


def test_deepsort_pipeline_poses_carry_track_ids_and_smoothing_reruns_smooth_only(tmp_path):
    cache = StageCache(tmp_path / "cache")
    cfg = _cfg("hie-tracking/table7", 0)
    assert cfg.task == "pose_tracking" and cfg.pose_tracking.tracker == "deepsort" and cfg.pose_tracking.smoothing
    first = run_cell(cfg, cache, "cpu")
    assert {"boxes.track", "train", "ensemble0.train", "poses", "smooth", "evaluate"} <= set(first.stages_run)
    assert 0.0 < first.metrics["AP"] <= 1.0 and -1.0 <= first.metrics["MOTA"] <= 1.0
    frames = load_frames(cfg.data, "val", "posetrack17")
    keys = stage_keys(cfg)
    raw = load_poses(cache.path("poses", keys["poses"]) / "poses.npz", len(frames))
    smoothed = load_poses(cache.path("smooth", keys["smooth"]) / "poses.npz", len(frames))
    tracks = load_tracks(cache.path("track", keys["track"]) / "tracks.npz", len(frames))
    assert sum(len(t) for t in tracks) > 0
    for t, p in zip(tracks, raw, strict=True):  # a pose in every DeepSORT box, carrying that track's id
        assert p.ids.tolist() == t[:, 4].astype(int).tolist()
        np.testing.assert_allclose(p.boxes, t[:, :4])
    moved = np.concatenate([np.abs(s.keypoints - r.keypoints).ravel() for s, r in zip(smoothed, raw, strict=True)])
    assert moved.max() > 0.0  # eq. 1 moved joints
    from crowdbench.reports.qualitative import draw_cell

    figure = draw_cell(cfg, keys, tmp_path / "cache")  # the report's before / after smoothing frame
    assert figure is not None and len(figure["png"]) > 1000 and "after optical-flow smoothing" in figure["caption"]

    other = cfg.model_copy(deep=True)
    other.pose_tracking.smoothing = 0.0  # alpha 0: eq. 1 is the identity
    again = run_cell(other, cache, "cpu")
    assert again.stages_run == ["smooth", "evaluate"]
    plain = cfg.model_copy(deep=True)
    plain.pose_tracking.smoothing = None
    assert run_cell(plain, cache, "cpu").metrics == again.metrics


def test_iou_reid_pipeline_and_flow_propagation(tmp_path):
    cache = StageCache(tmp_path / "cache")
    weak = {"pose_tracking.min_score": 0.0}  # the one-epoch model scores every pose low
    base = _cfg("offset-guided/table5", 4, **weak)
    pt = base.pose_tracking
    assert pt.tracker == "iou_reid" and base.tracking.reid.enabled and not pt.propagation
    first = run_cell(base, cache, "cpu")
    assert {"pose.train", "pose.postprocess", "reid", "embed", "poses", "evaluate"} <= set(first.stages_run)
    frames = load_frames(base.data, "val", "posetrack17")
    poses = load_poses(cache.path("poses", stage_keys(base)["poses"]) / "poses.npz", len(frames))
    assert all((p.ids >= 1).all() and (p.scores >= base.pose_tracking.min_score).all() for p in poses)
    assert len({int(t) for p in poses for t in p.ids}) < sum(len(p.ids) for p in poses)  # ids carry across frames

    flow = _cfg("offset-guided/table5", 5, **weak)
    assert flow.pose_tracking.propagation
    k0, k1 = stage_keys(base), stage_keys(flow)
    assert k0["embed"] == k1["embed"] and k0["poses"] != k1["poses"]
    second = run_cell(flow, cache, "cpu")
    assert second.stages_run == ["poses", "evaluate"]
    assert 0.0 <= second.metrics["AP"] <= 1.0


def test_flow_propagation_needs_the_iou_reid_tracker():
    from crowdbench.bench.config import RunConfig

    with pytest.raises(ValueError, match=r"needs pose_tracking\.iou_reid"):
        get_plugin("pose_tracking.optical_flow").apply(RunConfig(task="pose_tracking"))


def test_propagation_fills_a_missed_detection_with_the_same_id(tmp_path):
    from crowdbench.bench.stages.pose_tracking import PropagationTally, track_iou_reid

    cfg = _cfg("offset-guided/table5", 5, **{"pose_tracking.min_score": 0.0})
    frames = load_frames(cfg.data, "val", "posetrack17")
    video = [i for i, f in enumerate(frames) if f.video == frames[0].video][:3]
    frames = [frames[i] for i in video]
    poses = _gt_poses(frames)
    person = 0
    poses[1] = FramePoses(  # frame 1 misses the first person
        np.delete(poses[1].keypoints, person, 0),
        np.delete(poses[1].scores, person),
        np.delete(poses[1].ids, person),
        np.delete(poses[1].boxes, person, 0),
    )
    calls = []

    def estimate(i, boxes, scores):
        calls.append((i, len(boxes)))
        kp = np.zeros((len(boxes), 17, 3))
        kp[:, :, :2] = boxes[:, None, :2] + 1.0
        kp[:, :, 2] = 0.9
        return FramePoses(kp, scores * 0.9, np.full(len(boxes), -1), boxes)

    tally = PropagationTally()
    with_flow = track_iou_reid(cfg, frames, poses, None, tmp_path / "flow", estimate, None, tally)
    assert calls and calls[0][0] == 1  # the pose model was asked for the propagated box in frame 1
    assert tally.added == sum(n for _, n in calls) >= 1 and tally.moved >= tally.boxed >= tally.added
    assert "WARNING" not in tally.report(cfg.pose_tracking.propagation_kp_thr, cfg.pose_tracking.min_score)
    first_id = int(with_flow[0].ids[person])
    assert first_id in with_flow[1].ids.tolist()  # the missed person keeps its id through frame 1
    assert first_id in with_flow[2].ids.tolist()
    plain = cfg.model_copy(deep=True)
    plain.pose_tracking.propagation = False
    without = track_iou_reid(plain, frames, poses, None, tmp_path / "flow")
    assert first_id not in without[1].ids.tolist() and first_id not in without[2].ids.tolist()  # max_age 1: lost


def test_propagation_says_when_it_adds_nothing_and_carries_box_scores(tmp_path):
    """offset-guided Table 5 in session 13: the offset model's joints score <= 0.25, the default propagation
    threshold was 0.3, so flow propagation added no pose and its row equalled the row without it (+0.0 AP); then
    its propagated poses were scored with the joint factor twice and all fell under min_score."""
    from crowdbench.bench.stages.pose_tracking import PropagationTally, track_iou_reid

    cfg = _cfg("offset-guided/table5", 5, **{"pose_tracking.min_score": 0.0})
    frames = load_frames(cfg.data, "val", "posetrack17")
    frames = [f for f in frames if f.video == frames[0].video][:3]
    poses = _gt_poses(frames)
    for p in poses:
        p.keypoints[..., 2] = np.minimum(p.keypoints[..., 2], 0.25)
    poses[1] = FramePoses(poses[1].keypoints[1:], poses[1].scores[1:], poses[1].ids[1:], poses[1].boxes[1:])
    cfg.pose_tracking.propagation_kp_thr = 0.3
    tally = PropagationTally()
    track_iou_reid(
        cfg, frames, poses, None, tmp_path / "flow", lambda *a: pytest.fail("nothing to estimate"), None, tally
    )
    assert tally.moved > 0 and tally.boxed == tally.added == 0 and tally.max_joint_score == pytest.approx(0.25)
    assert "WARNING: the highest joint score was 0.250" in tally.report(0.3, 0.0)
    cfg.pose_tracking.propagation_kp_thr = 0.15  # the table's setting: the missed person is propagated
    calls = []

    def estimate(i, boxes, scores):
        calls.append((i, scores.tolist()))
        kp = np.zeros((len(boxes), 17, 3))
        kp[:, :, :2] = boxes[:, None, :2] + 1.0
        kp[:, :, 2] = 0.2
        return FramePoses(kp, scores * 0.2, np.full(len(boxes), -1), boxes)  # box score x mean joint score

    # the detected poses score box x mean joint = 0.9 x 0.2; a propagated box carries its source's box score 0.9
    for p in poses:
        p.scores[:] = 0.9 * 0.2
    box_scores = [np.full(len(p.scores), 0.9) for p in poses]
    cfg.pose_tracking.min_score = 0.15
    tally = PropagationTally()
    tracked = track_iou_reid(cfg, frames, poses, None, tmp_path / "flow", estimate, None, tally, box_scores)
    assert calls[0][0] == 1 and set(calls[0][1]) == {0.9}  # the box score, not the pose score 0.18
    assert tally.added == tally.kept >= 1  # each scored 0.9 x 0.2 = 0.18 >= min_score 0.15: kept
    assert len(tracked[1].scores) == len(poses[1].scores) + len(calls[0][1])
    calls.clear()
    tally = PropagationTally()  # without box scores the pose score 0.18 stands in: 0.18 x 0.2 < 0.15, dropped
    tracked = track_iou_reid(cfg, frames, poses, None, tmp_path / "flow", estimate, None, tally)
    assert calls[0][1] == pytest.approx([0.18] * len(calls[0][1])) and tally.added >= 1 and tally.kept == 0
    assert "WARNING: every added pose scored under pose_tracking.min_score 0.15" in tally.report(0.15, 0.15)
    assert len(tracked[1].scores) == len(poses[1].scores)


def test_hie_wap_scores_the_tracked_poses_and_keys_only_evaluate():
    """hie-tracking Table 6: the same cell as Table 7 scored with HIE w-AP; ground-truth poses give w-AP 1, a shifted
    copy less, and switching the metric changes only the evaluate key (and the schema-dependent pose stages)."""
    from crowdbench.bench.stages import pose
    from crowdbench.bench.stages.pose_tracking import coco_results

    cfg = _cfg("hie-tracking/table6", 0)
    assert cfg.evaluate.metric == "hie_wap" and pose.schema_of(cfg).name == "hie14"
    frames = load_frames(cfg.data, "val", "hie14")
    gt = []
    for f in frames:
        people = [i for i in f.instances if not i.ignore]
        kp = np.array([i.keypoints for i in people], dtype=np.float64).reshape(len(people), -1, 3)
        gt.append(FramePoses(kp, np.ones(len(people)), np.arange(len(people)), np.zeros((len(people), 4))))
    hie_wap = metric_for("pose_tracking", "hie_wap")
    perfect = hie_wap.evaluate(frames, coco_results(frames, gt), schema=pose.schema_of(cfg)).values
    assert perfect["wAP"] == pytest.approx(1.0)
    for p in gt:
        p.keypoints[..., :2] += 6.0
    assert hie_wap.evaluate(frames, coco_results(frames, gt), schema=pose.schema_of(cfg)).values["wAP"] < 0.9
    t7 = stage_keys(_cfg("hie-tracking/table7", 0))
    t6 = stage_keys(cfg)
    assert t6["track"] == t7["track"] and t6["reid"] == t7["reid"]  # the box-tracking cell is shared
    assert t6["evaluate"] != t7["evaluate"]
