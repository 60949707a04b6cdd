"""Frame-to-frame pose tracking: IoU + ReID Hungarian matching and FlowTrack joint propagation.

* Paper 003 (Offset-guided network) section 4.2: "Similar tracking strategy as Detect-and-Track [Girdhar et al.
  2018] is adopted except that the appearance information is taken into account": persons of frame k are matched
  to the tracks of frame k-1 by the Hungarian algorithm on a cost mixing the spatial similarity (IoU) and the
  appearance similarity (Euclidean distance of ReID features). Here (project choice, ``matching_cost``)
  ``C = ((1 - IoU) + lambda ||f_a - f_b||_2 / 2) / (1 + lambda)`` with L2-normalised features, so ``C`` is in
  [0, 1]; ``lambda = 0`` and ``max_age = 1`` is Detect-and-Track's IoU-only frame-to-frame matching.
* FlowTrack (Xiao, Wu and Wei, ECCV 2018, "Simple baselines for human pose estimation and tracking", section 3):
  joints of frame k-1 are propagated into frame k by optical flow (``propagate_poses``), a box is taken around
  them (``pose_box``) and unified with the detector's boxes (``merge_propagated``); the flow-moved boxes of the
  tracks can replace their last boxes in the IoU term (``IoUReIDTracker.step(prev_boxes=...)``), FlowTrack's
  flow-based similarity.

Written from the papers' descriptions; flow convention of ``crowdbench.methods.tracking.flow``:
``compute_flow(I_a, I_b)`` moves points of frame a into frame b.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from crowdbench.methods.tracking.deepsort import iou_matrix
from crowdbench.methods.tracking.flow import propagate_points


@dataclass(frozen=True)
class IoUReIDParams:
    """Parameters of ``IoUReIDTracker`` (paper 003 section 4.2)."""

    appearance_weight: float = 1.0  # lambda; 0 = IoU only (Detect-and-Track)
    max_cost: float = 0.7  # pairs with a larger cost are not matched
    max_age: int = 1  # a track unmatched for up to this many frames can still be matched (1 = previous frame only)
    min_score: float = 0.0  # persons scoring below this get no id (-1) and are not tracked

    def __post_init__(self) -> None:
        if self.appearance_weight < 0:
            raise ValueError(f"IoUReIDParams: appearance_weight must be >= 0, got {self.appearance_weight}")
        if self.max_age < 0:
            raise ValueError(f"IoUReIDParams: max_age must be >= 0, got {self.max_age}")


def _boxes(boxes: np.ndarray) -> np.ndarray:
    """``N x >=4`` -> ``N x 4`` float64 (x1, y1, x2, y2); extra columns (e.g. a score) are ignored."""
    b = np.asarray(boxes, dtype=np.float64)
    if b.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if b.ndim != 2 or b.shape[1] < 4:
        raise ValueError(f"boxes must be N x 4 (x1, y1, x2, y2), got shape {b.shape}")
    return b[:, :4]


def _unit(features: np.ndarray) -> np.ndarray:
    """Rows L2-normalised (zero rows stay zero)."""
    f = np.asarray(features, dtype=np.float64)
    norm = np.linalg.norm(f, axis=1, keepdims=True)
    return f / np.where(norm > 0, norm, 1.0)


def matching_cost(
    prev_boxes: np.ndarray,
    prev_features: np.ndarray | None,
    boxes: np.ndarray,
    features: np.ndarray | None,
    appearance_weight: float,
) -> np.ndarray:
    """``M x N`` cost of paper 003 section 4.2: ``((1 - IoU) + lambda ||f_a - f_b||_2 / 2) / (1 + lambda)``.

    Features are L2-normalised here (a no-op for normalised ReID embeddings), so the Euclidean distance is in
    [0, 2] and the cost in [0, 1]. Without features (either ``None``) or ``lambda = 0``: ``1 - IoU``
    (Detect-and-Track).
    """
    cost = 1.0 - iou_matrix(_boxes(prev_boxes), _boxes(boxes))
    if prev_features is None or features is None or appearance_weight == 0:
        return cost
    fa, fb = _unit(prev_features), _unit(features)
    if fa.shape[0] != cost.shape[0] or fb.shape[0] != cost.shape[1] or fa.shape[1] != fb.shape[1]:
        raise ValueError(f"matching_cost: features {fa.shape} / {fb.shape} do not fit boxes {cost.shape}")
    # ||a - b||^2 = 2 - 2 a.b for unit rows; clip rounding below 0.
    dist = np.sqrt(np.clip(2.0 - 2.0 * (fa @ fb.T), 0.0, 4.0))
    return (cost + appearance_weight * dist / 2.0) / (1.0 + appearance_weight)


class IoUReIDTracker:
    """Online IoU + ReID tracker of paper 003 section 4.2 (Detect-and-Track with appearance).

    A track keeps its id, last box, last feature (that of its most recently matched person with a feature) and
    age (frames since its last match, counted after each ``step``). Tracks with ``age < max_age`` are live: they
    take part in the next ``step``; a track whose age reaches ``max_age`` is dropped, i.e. at the next frame its
    frames-since-last-match would exceed ``max_age``.
    """

    def __init__(self, params: IoUReIDParams = IoUReIDParams()) -> None:
        self.params = params
        self._ids = np.zeros(0, dtype=np.int64)
        self._boxes = np.zeros((0, 4), dtype=np.float64)
        self._features: np.ndarray | None = None  # K x D, NaN rows for tracks without a feature
        self._age = np.zeros(0, dtype=np.int64)
        self._next_id = 1

    def live_ids(self) -> np.ndarray:
        """Ids of the tracks that can be matched at the next ``step``, ascending (creation order)."""
        return self._ids.copy()

    def live_boxes(self) -> np.ndarray:
        """Last boxes ``K x 4`` of the live tracks, in the order of ``live_ids``."""
        return self._boxes.copy()

    def _cost(self, prev_boxes: np.ndarray, boxes: np.ndarray, features: np.ndarray | None) -> np.ndarray:
        """``matching_cost`` of the live tracks; rows of tracks without a feature use IoU only."""
        lam = self.params.appearance_weight
        cost = matching_cost(prev_boxes, None, boxes, None, lam)
        if features is None or self._features is None or lam == 0:
            return cost
        has = ~np.isnan(self._features).any(axis=1)
        if has.any():
            cost[has] = matching_cost(prev_boxes[has], self._features[has], boxes, features, lam)
        return cost

    def step(
        self,
        boxes: np.ndarray,
        scores: np.ndarray,
        features: np.ndarray | None = None,
        prev_boxes: np.ndarray | None = None,
    ) -> np.ndarray:
        """Ids (int64, N) of this frame's persons (paper 003 section 4.2).

        Hungarian (``linear_sum_assignment``) on ``matching_cost`` between the live tracks and the persons scoring
        ``>= min_score``; costs are clamped to ``max_cost + 1e-5`` before the assignment (so impossible pairs do not
        steer it) and pairs with cost ``> max_cost`` are rejected. Unmatched persons start new ids 1, 2, ... in
        detection order (ids are never reused); persons below ``min_score`` get -1. ``prev_boxes`` (same order and
        length as ``live_ids()``) replaces the tracks' last boxes in the IoU term, e.g. moved into this frame by
        optical flow (FlowTrack's flow-based similarity); the stored boxes of unmatched tracks are not changed.
        With ``features=None`` the cost is IoU only and the tracks' features are not updated.
        """
        p = self.params
        det = _boxes(boxes)
        n = len(det)
        sc = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(sc) != n:
            raise ValueError(f"IoUReIDTracker.step: {n} boxes but {len(sc)} scores")
        feats = None
        if features is not None and n:
            feats = np.asarray(features, dtype=np.float64)
            if feats.ndim != 2 or len(feats) != n:
                raise ValueError(f"IoUReIDTracker.step: features {feats.shape} for {n} boxes")
        track_boxes = self._boxes
        if prev_boxes is not None:
            track_boxes = _boxes(prev_boxes)
            if len(track_boxes) != len(self._ids):
                raise ValueError(f"IoUReIDTracker.step: {len(track_boxes)} prev_boxes for {len(self._ids)} tracks")

        ids = np.full(n, -1, dtype=np.int64)
        cand = np.flatnonzero(sc >= p.min_score)
        matched_tracks = np.zeros(len(self._ids), dtype=bool)
        if len(cand) and len(self._ids):
            cost = self._cost(track_boxes, det[cand], None if feats is None else feats[cand])
            rows, cols = linear_sum_assignment(np.minimum(cost, p.max_cost + 1e-5))
            ok = cost[rows, cols] <= p.max_cost
            rows, cols = rows[ok], cols[ok]
            ids[cand[cols]] = self._ids[rows]
            matched_tracks[rows] = True
            self._boxes[rows] = det[cand[cols]]
            if feats is not None:
                self._features = self._with_features(feats.shape[1])
                self._features[rows] = feats[cand[cols]]
            self._age[rows] = 0
        self._age[~matched_tracks] += 1

        new = cand[ids[cand] < 0]
        new_ids = np.arange(self._next_id, self._next_id + len(new), dtype=np.int64)
        self._next_id += len(new)
        ids[new] = new_ids
        new_feats = None
        if feats is not None:
            self._features = self._with_features(feats.shape[1])
            new_feats = feats[new]
        elif self._features is not None:
            new_feats = np.full((len(new), self._features.shape[1]), np.nan)
        self._ids = np.concatenate([self._ids, new_ids])
        self._boxes = np.concatenate([self._boxes, det[new]])
        self._age = np.concatenate([self._age, np.zeros(len(new), dtype=np.int64)])
        if self._features is not None and new_feats is not None:
            self._features = np.concatenate([self._features, new_feats])

        keep = self._age < p.max_age
        self._ids, self._boxes, self._age = self._ids[keep], self._boxes[keep], self._age[keep]
        if self._features is not None:
            self._features = self._features[keep]
        return ids

    def _with_features(self, dim: int) -> np.ndarray:
        """The tracks' feature matrix (``K x dim``, NaN rows where unknown), created on first use."""
        if self._features is None:
            return np.full((len(self._ids), dim), np.nan)
        if self._features.shape[1] != dim:
            raise ValueError(f"IoUReIDTracker: feature size changed from {self._features.shape[1]} to {dim}")
        return self._features


def track_poses(
    frames: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray | None]],
    params: IoUReIDParams = IoUReIDParams(),
) -> list[np.ndarray]:
    """Ids per frame for one video (paper 003 section 4.2).

    ``frames`` are (boxes N x 4, scores N, features N x D or None); a fresh ``IoUReIDTracker`` steps through them.
    """
    tracker = IoUReIDTracker(params)
    return [tracker.step(boxes, scores, features) for boxes, scores, features in frames]


def pose_box(pose: np.ndarray, kp_thr: float, margin: float = 0.15) -> np.ndarray | None:
    """FlowTrack's box of a (propagated) pose (Xiao et al. 2018 section 3.2): ``(x1, y1, x2, y2)`` float64.

    The extent of the joints (``K x 3``: x, y, score) scoring ``> kp_thr``, enlarged about its centre to
    ``1 + margin`` times its width and height (FlowTrack extends the box; ``margin = 0.15`` is a project choice);
    ``None`` when fewer than 2 joints pass.
    """
    joints = np.asarray(pose, dtype=np.float64).reshape(-1, 3)
    xy = joints[joints[:, 2] > kp_thr, :2]
    if len(xy) < 2:
        return None
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    centre, half = (lo + hi) / 2.0, (hi - lo) * (1.0 + margin) / 2.0
    return np.concatenate([centre - half, centre + half])


def propagate_poses(poses: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """FlowTrack joint propagation: ``M x K x 3`` poses of frame k-1 moved into frame k, scores kept.

    ``flow = compute_flow(I_{k-1}, I_k)``; each joint moves by the flow sampled bilinearly at it (``propagate_points``).
    """
    p = np.asarray(poses, dtype=np.float64)
    if p.ndim != 3 or p.shape[2] != 3:
        raise ValueError(f"propagate_poses: poses must be M x K x 3, got shape {p.shape}")
    out = p.copy()
    out[..., :2] = propagate_points(p.reshape(-1, 3), flow).reshape(p.shape[0], p.shape[1], 2)
    return out


def merge_propagated(
    det_boxes: np.ndarray,
    det_scores: np.ndarray,
    prop_boxes: np.ndarray,
    prop_scores: np.ndarray,
    iou_thr: float = 0.5,
) -> np.ndarray:
    """Indices (ascending, into ``prop_boxes``) of the propagated boxes to add to the detections.

    FlowTrack (Xiao et al. 2018 section 3.2) unifies detector and propagated boxes with box NMS. Here (project
    choice) a detection always wins over a propagated box (``det_scores`` only checked for length), and among
    propagated boxes the higher score wins (stable order on ties): a propagated box is kept when its IoU with every
    detection and with every kept higher-scoring propagated box is ``<= iou_thr``.
    """
    det, prop = _boxes(det_boxes), _boxes(prop_boxes)
    ps = np.asarray(prop_scores, dtype=np.float64).reshape(-1)
    if len(np.asarray(det_scores).reshape(-1)) != len(det) or len(ps) != len(prop):
        raise ValueError("merge_propagated: boxes and scores differ in length")
    alive = np.ones(len(prop), dtype=bool)
    if len(det) and len(prop):
        alive &= (iou_matrix(prop, det) <= iou_thr).all(axis=1)
    iou = iou_matrix(prop, prop)
    keep = []
    for i in np.argsort(-ps, kind="stable"):
        if alive[i]:
            keep.append(i)
            alive &= iou[i] <= iou_thr
    return np.sort(np.asarray(keep, dtype=np.int64))
