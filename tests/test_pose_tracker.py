"""Pose tracker of paper 003 section 4.2 (IoU + ReID, Detect-and-Track style) and FlowTrack propagation helpers.

Expectations are worked out by hand on small synthetic scenes (boxes 40 x 100 px, unit features).
"""

from __future__ import annotations

import numpy as np
import pytest

from crowdbench.methods.tracking.pose_tracker import (
    IoUReIDParams,
    IoUReIDTracker,
    matching_cost,
    merge_propagated,
    pose_box,
    propagate_poses,
    track_poses,
)

E0 = np.array([1.0, 0.0])
E1 = np.array([0.0, 1.0])


def box(cx: float, cy: float = 200.0, w: float = 40.0, h: float = 100.0) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def frame(boxes: list[list[float]], feats: list[np.ndarray] | None = None, scores: list[float] | None = None):
    b = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    s = np.ones(len(b)) if scores is None else np.array(scores, dtype=np.float64)
    f = None if feats is None else np.array(feats, dtype=np.float64)
    return b, s, f


def test_matching_cost_hand_case() -> None:
    a = np.array([[0.0, 0.0, 10.0, 10.0]])
    b = np.array([[5.0, 0.0, 15.0, 10.0], [0.0, 0.0, 10.0, 10.0]])  # IoU 50 / 150 = 1/3, and 1
    fa = np.array([E0])
    fb = np.array([E1, 2.0 * E0])  # distances sqrt(2) and 0 (the second is normalised first)
    np.testing.assert_allclose(matching_cost(a, fa, b, fb, 0.0), [[2 / 3, 0.0]])
    np.testing.assert_allclose(matching_cost(a, None, b, fb, 1.0), [[2 / 3, 0.0]])
    np.testing.assert_allclose(matching_cost(a, fa, b, fb, 1.0), [[(2 / 3 + np.sqrt(2) / 2) / 2, 0.0]])
    np.testing.assert_allclose(matching_cost(a, fa, b, fb, 3.0), [[(2 / 3 + 3 * np.sqrt(2) / 2) / 4, 0.0]])


def test_constant_velocity_ids_new_person_and_no_reuse() -> None:
    frames = []
    for t in range(10):
        people = [box(100 + 5 * t), box(400 - 5 * t)]
        if t >= 5:
            people.append(box(700))
        frames.append(frame(people))
    ids = track_poses(frames, IoUReIDParams(appearance_weight=0.0))
    for t in range(5):
        np.testing.assert_array_equal(ids[t], [1, 2])
    for t in range(5, 10):
        np.testing.assert_array_equal(ids[t], [1, 2, 3])
    assert all(i.dtype == np.int64 for i in ids)

    # Person 1 vanishes for a frame (max_age=1 drops it) and comes back: a fresh id, 1 is never reused.
    tracker = IoUReIDTracker(IoUReIDParams(appearance_weight=0.0))
    np.testing.assert_array_equal(tracker.step(*frame([box(100), box(400)])[:2]), [1, 2])
    np.testing.assert_array_equal(tracker.step(*frame([box(400)])[:2]), [2])
    np.testing.assert_array_equal(tracker.live_ids(), [2])
    np.testing.assert_array_equal(tracker.step(*frame([box(100), box(400)])[:2]), [3, 2])
    np.testing.assert_array_equal(tracker.live_ids(), [2, 3])
    np.testing.assert_allclose(tracker.live_boxes(), [box(400), box(100)])


def test_appearance_disambiguates_equal_iou() -> None:
    tracker = IoUReIDTracker(IoUReIDParams(appearance_weight=1.0))
    tracker.step(*frame([[0.0, 0.0, 10.0, 10.0]], [E0]))
    # Both candidates overlap the track with IoU 80 / 120; the second carries the track's feature.
    ids = tracker.step(*frame([[-2.0, 0.0, 8.0, 10.0], [2.0, 0.0, 12.0, 10.0]], [E1, E0]))
    np.testing.assert_array_equal(ids, [2, 1])


def test_features_kept_through_a_frame_without_features() -> None:
    tracker = IoUReIDTracker(IoUReIDParams(appearance_weight=1.0))
    tracker.step(*frame([[0.0, 0.0, 10.0, 10.0]], [E0]))
    np.testing.assert_array_equal(tracker.step(*frame([[0.0, 0.0, 10.0, 10.0]])), [1])  # IoU only, feature kept
    ids = tracker.step(*frame([[-2.0, 0.0, 8.0, 10.0], [2.0, 0.0, 12.0, 10.0]], [E1, E0]))
    np.testing.assert_array_equal(ids, [2, 1])


def test_max_cost_rejects_far_box() -> None:
    tracker = IoUReIDTracker(IoUReIDParams(appearance_weight=0.0, max_cost=0.7))
    np.testing.assert_array_equal(tracker.step(*frame([box(100)])[:2]), [1])
    np.testing.assert_array_equal(tracker.step(*frame([box(300)])[:2]), [2])  # IoU 0 -> cost 1 > 0.7


@pytest.mark.parametrize(("max_age", "expected"), [(1, 2), (2, 1)])
def test_max_age_allows_skipping_frames(max_age: int, expected: int) -> None:
    frames = [frame([box(100)]), frame([]), frame([box(102)])]
    ids = track_poses(frames, IoUReIDParams(appearance_weight=0.0, max_age=max_age))
    np.testing.assert_array_equal(ids[0], [1])
    assert len(ids[1]) == 0
    np.testing.assert_array_equal(ids[2], [expected])


def test_min_score_gives_minus_one_and_is_not_tracked() -> None:
    tracker = IoUReIDTracker(IoUReIDParams(min_score=0.5))
    np.testing.assert_array_equal(tracker.step(*frame([box(100), box(300)], scores=[0.9, 0.1])[:2]), [1, -1])
    np.testing.assert_array_equal(tracker.live_ids(), [1])
    np.testing.assert_array_equal(tracker.step(*frame([box(100), box(300)], scores=[0.9, 0.9])[:2]), [1, 2])


def test_prev_boxes_override_iou_term() -> None:
    params = IoUReIDParams(appearance_weight=0.0)
    far = frame([box(300)])[:2]
    moved = IoUReIDTracker(params)
    moved.step(*frame([box(100)])[:2])
    np.testing.assert_array_equal(moved.step(*far, prev_boxes=np.array([box(301)])), [1])
    plain = IoUReIDTracker(params)
    plain.step(*frame([box(100)])[:2])
    np.testing.assert_array_equal(plain.step(*far), [2])
    with pytest.raises(ValueError, match="prev_boxes"):
        moved.step(*far, prev_boxes=np.zeros((0, 4)))


def test_propagate_poses_constant_flow() -> None:
    flow = np.zeros((50, 60, 2), dtype=np.float32)
    flow[..., 0], flow[..., 1] = 3.0, -2.0
    poses = np.array(
        [[[10.0, 20.0, 0.9], [12.5, 30.25, 0.1], [0.0, 0.0, 0.0]], [[59.0, 49.0, 0.5], [30.0, 1.0, 1.0], [7, 8, 0.3]]]
    )
    out = propagate_poses(poses, flow)
    np.testing.assert_array_equal(out[..., 0], poses[..., 0] + 3.0)
    np.testing.assert_array_equal(out[..., 1], poses[..., 1] - 2.0)
    np.testing.assert_array_equal(out[..., 2], poses[..., 2])
    assert propagate_poses(np.zeros((0, 17, 3)), flow).shape == (0, 17, 3)


def test_pose_box_hand_case() -> None:
    pose = np.array([[10.0, 20.0, 0.9], [30.0, 60.0, 0.8], [100.0, 100.0, 0.1], [25.0, 30.0, 0.6]])
    # Extent x 10..30, y 20..60 (the 0.1 joint ignored); centre (20, 40), size 20 x 40 -> 23 x 46.
    np.testing.assert_allclose(pose_box(pose, kp_thr=0.5), [8.5, 17.0, 31.5, 63.0])
    np.testing.assert_allclose(pose_box(pose, kp_thr=0.5, margin=0.0), [10.0, 20.0, 30.0, 60.0])
    assert pose_box(pose, kp_thr=0.85) is None
    assert pose_box(np.zeros((0, 3)), kp_thr=0.0) is None


def test_merge_propagated() -> None:
    det = np.array([[0.0, 0.0, 10.0, 10.0]])
    prop = np.array(
        [
            [1.0, 0.0, 11.0, 10.0],  # IoU 9 / 11 with the detection: dropped even though it scores highest
            [100.0, 0.0, 110.0, 10.0],  # overlaps the next one (IoU 9 / 11) and scores lower: dropped
            [101.0, 0.0, 111.0, 10.0],
            [200.0, 0.0, 210.0, 10.0],  # separate: kept
        ]
    )
    scores = np.array([0.99, 0.5, 0.9, 0.3])
    np.testing.assert_array_equal(merge_propagated(det, np.array([0.1]), prop, scores), [2, 3])
    np.testing.assert_array_equal(merge_propagated(det, np.array([0.1]), prop, scores, iou_thr=0.9), [0, 1, 2, 3])
    np.testing.assert_array_equal(merge_propagated(np.zeros((0, 4)), np.zeros(0), prop, scores), [0, 2, 3])
