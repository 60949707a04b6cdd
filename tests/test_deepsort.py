"""DeepSORT (``crowdbench.methods.tracking``): Kalman filter, gating, track life cycle, cascade, gallery, preprocessing.

Expectations are worked out by hand from methods.md section 7 (Kalman numbers for ``z = (100, 200, 0.5, 80)``) or
follow from the life-cycle rules on small synthetic scenes (boxes 40 x 100 px).
"""

from __future__ import annotations

import numpy as np
import pytest

from crowdbench.methods.tracking import kalman
from crowdbench.methods.tracking.deepsort import DeepSort, DeepSortParams, TrackState, nms, track_sequence

E = np.eye(8, dtype=np.float32)
Z = np.array([100.0, 200.0, 0.5, 80.0])


def box(cx: float, cy: float = 200.0, w: float = 40.0, h: float = 100.0) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def frame(boxes: list[list[float]], feats: list[np.ndarray] | None, scores: list[float] | None = None):
    b = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    s = np.ones(len(b)) if scores is None else np.array(scores, dtype=np.float64)
    f = None if feats is None else np.array(feats, dtype=np.float32).reshape(len(b), 8)
    return b, s, f


def ids_by_det(out: np.ndarray) -> dict[int, int]:
    """det_index -> track id of one frame's output (matched tracks only)."""
    return {int(r[5]): int(r[4]) for r in out if r[5] >= 0}


# --- Kalman filter ------------------------------------------------------------------------------------------------


def test_initiate():
    mean, cov = kalman.initiate(Z)
    np.testing.assert_array_equal(mean, [100, 200, 0.5, 80, 0, 0, 0, 0])
    # std = [2/20 h, 2/20 h, 1e-2, 2/20 h, 10/160 h, 10/160 h, 1e-5, 10/160 h] with h = 80 -> 8, 1e-2, 5, 1e-5
    np.testing.assert_allclose(cov, np.diag([64, 64, 1e-4, 64, 25, 25, 1e-10, 25]), rtol=1e-12, atol=0)


def test_predict_hand_computed():
    mean, cov = kalman.initiate(Z)
    mean[4:] = [2.0, -1.0, 0.0, 0.5]
    m, p = kalman.predict(mean, cov)
    np.testing.assert_allclose(m, [102, 199, 0.5, 80.5, 2, -1, 0, 0.5])
    # Q from the height before the step (80): std_p h = 4 -> 16, std_v h = 0.5 -> 0.25
    for k in (0, 1, 3):
        assert p[k, k] == pytest.approx(64 + 25 + 16)
        assert p[k, k + 4] == pytest.approx(25) and p[k + 4, k] == pytest.approx(25)
        assert p[k + 4, k + 4] == pytest.approx(25.25)
    assert p[2, 2] == pytest.approx(1e-4 + 1e-10 + 1e-4, rel=1e-12)
    assert p[6, 6] == pytest.approx(2e-10, rel=1e-12)
    assert p[2, 6] == pytest.approx(1e-10, rel=1e-12)
    assert np.count_nonzero(p) == 16  # 4 coordinates x 2 x 2 blocks, nothing across coordinates
    # batch predict == per-track predict
    means = np.stack([mean, mean * 1.5])
    covs = np.stack([cov, cov * 2.0])
    bm, bp = kalman.predict(means, covs)
    for i in range(2):
        sm, sp = kalman.predict(means[i], covs[i])
        np.testing.assert_allclose(bm[i], sm, rtol=1e-14)
        np.testing.assert_allclose(bp[i], sp, rtol=1e-14)


def test_update_hand_computed():
    mean, cov = kalman.predict(*kalman.initiate(Z))  # position variances 105, cross 25, velocity 25.25
    z = np.array([111.0, 195.0, 0.6, 84.0])
    m, p = kalman.update(mean, cov, z)
    # cx, cy, h: S = 105 + (80 / 20)^2 = 121, K = (105 / 121, 25 / 121)
    for k, innov in ((0, 11.0), (1, -5.0), (3, 4.0)):
        assert m[k] == pytest.approx(Z[k] + 105 / 121 * innov)
        assert m[k + 4] == pytest.approx(25 / 121 * innov)
        assert p[k, k] == pytest.approx(105 - 105**2 / 121)
        assert p[k, k + 4] == pytest.approx(25 - 105 * 25 / 121)
        assert p[k + 4, k + 4] == pytest.approx(25.25 - 25**2 / 121)
    # independent full-matrix computation with an explicit inverse
    f = np.eye(8)
    f[:4, 4:] = np.eye(4)
    h_mat = np.hstack([np.eye(4), np.zeros((4, 4))])
    r = np.diag([4.0**2, 4.0**2, 0.1**2, 4.0**2])
    s = h_mat @ cov @ h_mat.T + r
    k_gain = cov @ h_mat.T @ np.linalg.inv(s)
    np.testing.assert_allclose(m, mean + k_gain @ (z - h_mat @ mean), rtol=1e-12)
    np.testing.assert_allclose(p, cov - k_gain @ s @ k_gain.T, rtol=1e-9, atol=1e-15)
    # batched update == single update
    bm, bp = kalman.update_batch(mean[None], cov[None], z[None])
    np.testing.assert_allclose(bm[0], m, rtol=1e-12)
    np.testing.assert_allclose(bp[0], p, rtol=1e-9, atol=1e-15)


def test_gating_distance_hand_computed():
    mean, cov = kalman.predict(*kalman.initiate(Z))  # S = 121 on cx, cy, h
    meas = np.array(
        [[111, 200, 0.5, 80], [100, 222, 0.5, 80], [111, 222, 0.5, 80], [140, 200, 0.5, 80], [100, 200, 0.5, 113]]
    )
    d2 = kalman.gating_distance(mean, cov, meas)
    np.testing.assert_allclose(d2, [1.0, 4.0, 5.0, (40 / 11) ** 2, (33 / 11) ** 2], rtol=1e-12)
    assert kalman.CHI2_95[4] == 9.4877 and kalman.CHI2_95[2] == 5.9915
    assert (d2 > kalman.CHI2_95[4]).tolist() == [False, False, False, True, False]
    batch = kalman.gating_distance_batch(np.stack([mean, mean]), np.stack([cov, 4 * cov]), meas)
    np.testing.assert_allclose(batch[0], d2, rtol=1e-12)
    assert batch[1, 0] < d2[0]


# --- tracker --------------------------------------------------------------------------------------------------------


def _confirmed_still_track() -> DeepSort:
    tracker = DeepSort(DeepSortParams())
    for _ in range(3):
        tracker.step(*frame([box(100)], [E[0]]))
    assert [t.state for t in tracker.tracks] == [TrackState.CONFIRMED]
    return tracker


def test_gating_rejects_far_detection_with_identical_feature():
    tracker = _confirmed_still_track()
    t = tracker.tracks[0]
    mean, cov = kalman.predict(t.mean, t.cov)
    far, near = box(160), box(103)  # far: no box overlap, so IoU matching cannot take it either
    d2 = kalman.gating_distance(mean, cov, np.array([[160, 200, 0.4, 100], [103, 200, 0.4, 100]]))
    assert d2[0] > 9.4877 > d2[1]
    out = tracker.step(*frame([far], [E[0]]))  # appearance cost 0, only the gate forbids the match
    assert out[:, 4:].tolist() == [[1, -1]]
    assert len(tracker.tracks) == 2 and tracker.tracks[1].state == TrackState.TENTATIVE

    tracker = _confirmed_still_track()
    out = tracker.step(*frame([near], [E[0]]))
    assert out[:, 4:].tolist() == [[1, 0]]
    assert len(tracker.tracks) == 1


def _occlusion_scene(with_features: bool) -> tuple[list, list[list[str]]]:
    frames, who = [], []
    for t in range(25):
        people = [("B", 400 - 2 * t, E[1])] if 10 <= t <= 14 else [("A", 100 + 3 * t, E[0]), ("B", 400 - 2 * t, E[1])]
        frames.append(frame([box(cx) for _, cx, _ in people], [f for *_, f in people] if with_features else None))
        who.append([name for name, *_ in people])
    return frames, who


def test_track_survives_short_occlusion():
    frames, who = _occlusion_scene(with_features=True)
    outs = track_sequence(frames, DeepSortParams())
    ids: dict[str, set[int]] = {"A": set(), "B": set()}
    for t, out in enumerate(outs):
        for det, tid in ids_by_det(out).items():
            ids[who[t][det]].add(tid)
    assert ids == {"A": {1}, "B": {2}}
    assert outs[10][:, 4:].tolist() == [[1, -1], [2, 0]]  # missed once: still written (time_since_update = 1)
    for t in range(11, 15):
        assert outs[t][:, 4].tolist() == [2]
    assert ids_by_det(outs[15]) == {0: 1, 1: 2}


def test_without_features_iou_fallback_starts_new_id_after_occlusion():
    frames, _ = _occlusion_scene(with_features=False)
    outs = track_sequence(frames, DeepSortParams())
    assert ids_by_det(outs[9]) == {0: 1, 1: 2}
    assert ids_by_det(outs[15]) == {1: 2}  # A's new track (id 3) is tentative
    assert ids_by_det(outs[17]) == {0: 3, 1: 2}


@pytest.mark.parametrize("n_init", [1, 2, 3, 5])
def test_confirmation_after_n_init_hits(n_init: int):
    outs = track_sequence([frame([box(100)], [E[0]])] * 8, DeepSortParams(n_init=n_init))
    first = max(n_init, 2) - 1  # a new track is tentative; confirmation is checked on each matched update
    assert [len(o) for o in outs] == [0] * first + [1] * (8 - first)
    assert outs[first][0, 4:].tolist() == [1, 0]


def test_tentative_track_deleted_on_first_miss_and_id_not_reused():
    tracker = DeepSort(DeepSortParams(n_init=3))
    outs = [tracker.step(*frame([box(100)], [E[0]])) for _ in range(2)]
    assert len(tracker.tracks) == 1
    outs.append(tracker.step(*frame([], [])))
    assert tracker.tracks == []
    outs += [tracker.step(*frame([box(100)], [E[0]])) for _ in range(3)]
    assert [len(o) for o in outs] == [0, 0, 0, 0, 0, 1]
    assert outs[-1][0, 4:].tolist() == [2, 0]


@pytest.mark.parametrize(("back_at", "expected_id"), [(7, 1), (8, 2)])
def test_confirmed_track_deleted_after_max_age_misses(back_at: int, expected_id: int):
    max_age = 5
    tracker = DeepSort(DeepSortParams(max_age=max_age))
    for _ in range(3):  # confirmed on frame 2
        tracker.step(*frame([box(100)], [E[0]]))
    for t in range(3, back_at):
        tracker.step(*frame([], []))
        assert tracker.tracks[0].time_since_update == t - 2 <= max_age
    out = tracker.step(*frame([box(100)], [E[0]]))
    if expected_id == 1:  # time_since_update = max_age after predict: last cascade level still matches
        assert out[:, 4:].tolist() == [[1, 0]]
    else:  # time_since_update = max_age + 1: deleted, a new tentative track takes the detection
        assert len(out) == 0
        assert [t.track_id for t in tracker.tracks] == [2]
        out = [tracker.step(*frame([box(100)], [E[0]])) for _ in range(2)][-1]
        assert out[:, 4:].tolist() == [[2, 0]]


def test_crossing_paths_keep_ids():
    frames, who = [], []
    for t in range(40):
        people = sorted([(100 + 5 * t, "A", E[0]), (300 - 5 * t, "B", E[1])], key=lambda p: (p[0], p[1]))
        frames.append(frame([box(cx) for cx, *_ in people], [f for *_, f in people]))
        who.append([name for _, name, _ in people])
    assert frames[20][0][0].tolist() == frames[20][0][1].tolist()  # identical boxes at the crossing
    outs = track_sequence(frames, DeepSortParams())
    for t in range(2, 40):
        assert {who[t][d]: i for d, i in ids_by_det(outs[t]).items()} == {"A": 1, "B": 2}, t


def test_nn_budget_keeps_last_features():
    feats = [E[0] + 0.05 * t * E[1] for t in range(10)]
    feats = [f / np.linalg.norm(f) for f in feats]
    for budget, expected in ((3, feats[7:]), (None, feats), (20, feats)):
        tracker = DeepSort(DeepSortParams(nn_budget=budget))
        for t in range(10):
            tracker.step(*frame([box(100 + t)], [feats[t]]))
            if t < 2:
                assert tracker.gallery == {}  # tentative: features stay pending
            if t == 2:
                assert len(tracker.gallery[1]) == min(3, budget or 3)
        np.testing.assert_allclose(tracker.gallery[1], np.array(expected), rtol=1e-6)
    # gallery of a deleted track is dropped
    tracker = DeepSort(DeepSortParams(max_age=2))
    for _ in range(3):
        tracker.step(*frame([box(100)], [E[0]]))
    for _ in range(3):
        tracker.step(*frame([], []))
    assert tracker.tracks == [] and tracker.gallery == {}


def _dets_kept(params: DeepSortParams, boxes: list[list[float]], scores: list[float]) -> set[int]:
    outs = track_sequence([frame(boxes, list(E[: len(boxes)]), scores)] * 3, params)
    return {int(d) for d in outs[2][:, 5]}


def test_min_confidence_and_min_height():
    boxes = [box(100), box(300), box(500)]
    assert _dets_kept(DeepSortParams(min_confidence=0.5), boxes, [0.9, 0.2, 0.5]) == {0, 2}
    assert _dets_kept(DeepSortParams(), boxes, [0.9, 0.2, 0.5]) == {0, 1, 2}
    boxes = [box(100, h=100), box(300, h=20), box(500, h=50)]
    assert _dets_kept(DeepSortParams(min_height=50), boxes, [1, 1, 1]) == {0, 2}


def test_nms_max_overlap():
    boxes = [box(100), box(104), box(400)]  # IoU(0, 1) = 36 / 44
    assert _dets_kept(DeepSortParams(nms_max_overlap=0.5), boxes, [0.9, 0.95, 0.8]) == {1, 2}
    assert _dets_kept(DeepSortParams(nms_max_overlap=0.85), boxes, [0.9, 0.95, 0.8]) == {0, 1, 2}
    same = np.array([box(100), box(100)])
    assert nms(same, np.array([0.5, 0.9]), 1.0).tolist() == [0, 1]  # 1.0 = off
    assert nms(same, np.array([0.5, 0.9]), 0.99).tolist() == [1]
