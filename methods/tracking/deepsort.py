"""DeepSORT multi-object tracker (Wojke, Bewley and Paulus, ICIP 2017), written from methods.md section 7.

Per frame (methods.md section 7 "Per-frame association (exact order)"):

1. detection preprocessing of the reference app: ``score >= min_confidence``, box height ``>= min_height``, greedy
   box NMS (``nms_max_overlap``, 1.0 = off);
2. Kalman predict of every track (``kalman.predict``, batched);
3. matching cascade over confirmed tracks, level ``l = 0 .. max_age - 1`` taking the tracks with
   ``time_since_update == l + 1``: cost = smallest cosine distance to the track's feature gallery, 1e5 where the
   squared Mahalanobis distance exceeds ``CHI2_95[4]``, clamp to ``max_cosine_distance + 1e-5``, Hungarian
   (``scipy.optimize.linear_sum_assignment``), reject pairs above ``max_cosine_distance`` (lambda = 0);
4. IoU matching of unconfirmed tracks and cascade leftovers with ``time_since_update == 1`` against the unmatched
   detections: cost ``1 - IoU`` (1e5 for ``time_since_update > 1``), threshold ``max_iou_distance``, same clamp and
   reject;
5. Kalman update of matched tracks, missed tracks marked (tentative -> deleted, confirmed -> deleted once
   ``time_since_update > max_age``), new tentative track per unmatched detection;
6. gallery update: pending features of confirmed tracks appended to the per-id gallery, trimmed to the last
   ``nn_budget``; galleries of ids that are not confirmed and alive are dropped;
7. output: confirmed tracks with ``time_since_update <= 1``, box = Kalman state.

Without appearance features (``features=None``) the cascade is skipped and every track goes to the IoU matching
(SORT-like fallback); tracks with ``time_since_update > 1`` keep the 1e5 IoU cost, so a track that missed a frame
cannot be re-associated and a new id starts when the person reappears.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from scipy.optimize import linear_sum_assignment

from crowdbench.methods.tracking import kalman

__all__ = ["DeepSort", "DeepSortParams", "Track", "TrackState", "iou_matrix", "nms", "track_sequence"]

INFTY_COST = 1e5
_EPS = 1e-5


@dataclass(frozen=True)
class DeepSortParams:
    """DeepSORT parameters (methods.md section 7 "Defaults"; the five HIE grid parameters come first).

    ``max_cosine_distance`` 0.2 (reference app default), ``nn_budget`` 100 (paper / README example; the app's default is
    None = unbounded), ``max_age`` 30, ``n_init`` 3, ``max_iou_distance`` 0.7 (reference ``Tracker`` defaults). HIE's
    best grid point (paper 004, Table 4): 0.3, 256, 30, 3, 0.7.

    Detection preprocessing: the reference app's defaults are ``min_confidence`` 0.8 (its README MOT16 example uses
    0.3), ``nms_max_overlap`` 1.0 (off) and ``min_detection_height`` 0; here ``min_confidence`` defaults to 0.0 (keep
    everything) so that the detector's own threshold decides.
    """

    max_cosine_distance: float = 0.2
    nn_budget: int | None = 100
    max_age: int = 30
    n_init: int = 3
    max_iou_distance: float = 0.7
    min_confidence: float = 0.0
    nms_max_overlap: float = 1.0
    min_height: float = 0.0


class TrackState(IntEnum):
    TENTATIVE = 1
    CONFIRMED = 2
    DELETED = 3


@dataclasses.dataclass(eq=False)
class Track:
    """One track: Kalman state, counters, and the features not yet moved to the gallery (``pending``)."""

    mean: np.ndarray
    cov: np.ndarray
    track_id: int
    hits: int = 1
    age: int = 1
    time_since_update: int = 0
    state: TrackState = TrackState.TENTATIVE
    pending: list[np.ndarray] = dataclasses.field(default_factory=list)
    det_index: int = -1

    def box(self) -> np.ndarray:
        """Kalman state as ``(x1, y1, x2, y2)``."""
        return _xyah_to_xyxy(self.mean[None, :4])[0]


def _xyxy_to_xyah(boxes: np.ndarray) -> np.ndarray:
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return np.stack([boxes[:, 0] + w / 2, boxes[:, 1] + h / 2, w / h, h], axis=1)


def _xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    w = xyah[:, 2] * xyah[:, 3]
    x1 = xyah[:, 0] - w / 2
    y1 = xyah[:, 1] - xyah[:, 3] / 2
    return np.stack([x1, y1, x1 + w, y1 + xyah[:, 3]], axis=1)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` IoU of ``(x1, y1, x2, y2)`` boxes (continuous coordinates, no +1)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0.0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, max_overlap: float) -> np.ndarray:
    """Greedy NMS by descending score; suppresses boxes with IoU > ``max_overlap`` to a kept one. Sorted kept indices.

    methods.md does not spell out the overlap measure of the reference app's NMS; IoU is used here. ``max_overlap >= 1``
    keeps everything (even identical boxes).
    """
    n = len(boxes)
    if max_overlap >= 1.0 or n <= 1:
        return np.arange(n)
    order = np.argsort(-scores, kind="stable")
    iou = iou_matrix(boxes, boxes)
    alive = np.ones(n, dtype=bool)
    keep = []
    for i in order:
        if alive[i]:
            keep.append(i)
            alive &= iou[i] <= max_overlap
    return np.sort(np.asarray(keep, dtype=np.int64))


def _min_cost_matching(
    cost: np.ndarray, max_distance: float, rows: np.ndarray, cols: np.ndarray
) -> tuple[list[tuple[int, int]], np.ndarray, np.ndarray]:
    """Clamp-and-reject Hungarian matching on ``cost`` (``len(rows) x len(cols)``), returning ids from rows / cols."""
    if cost.size == 0:
        return [], rows, cols
    cost = np.where(cost > max_distance, max_distance + _EPS, cost)
    r, c = linear_sum_assignment(cost)
    ok = cost[r, c] <= max_distance
    r, c = r[ok], c[ok]
    matched_rows = np.zeros(len(rows), dtype=bool)
    matched_rows[r] = True
    matched_cols = np.zeros(len(cols), dtype=bool)
    matched_cols[c] = True
    return list(zip(rows[r].tolist(), cols[c].tolist(), strict=True)), rows[~matched_rows], cols[~matched_cols]


class DeepSort:
    """Online DeepSORT tracker; feed one frame at a time to :meth:`step`.

    Public state for inspection: ``tracks`` (alive tracks, creation order) and ``gallery`` (track id -> ``(k, D)``
    L2-normalised features, the last ``nn_budget`` of a confirmed track).
    """

    def __init__(self, params: DeepSortParams) -> None:
        self.params = params
        self.tracks: list[Track] = []
        self.gallery: dict[int, np.ndarray] = {}
        self._next_id = 1

    def step(self, boxes: np.ndarray, scores: np.ndarray, features: np.ndarray | None) -> np.ndarray:
        """Process one frame; returns ``(M, 6)`` rows ``[x1, y1, x2, y2, track_id, det_index]`` of the output tracks.

        ``boxes`` ``(N, 4)`` ``(x1, y1, x2, y2)`` pixels, ``scores`` ``(N,)``, ``features`` ``(N, D)`` L2-normalised
        or None. ``det_index`` indexes the input arrays (-1: track not matched this frame).
        """
        keep, det_boxes, det_feats = self._detections(boxes, scores, features)
        det_xyah = _xyxy_to_xyah(det_boxes)
        means, covs = self._predict()
        tsu = np.array([t.time_since_update for t in self.tracks], dtype=np.int64)
        unmatched_dets = np.arange(len(keep))
        if det_feats is not None:
            matches, unmatched_dets, iou_tracks = self._cascade(means, covs, tsu, det_xyah, det_feats, unmatched_dets)
        else:
            matches, iou_tracks = [], np.arange(len(self.tracks))
        m, unmatched_dets = self._iou_matching(means, tsu, iou_tracks, det_boxes, unmatched_dets)
        self._update(means, covs, matches + m, unmatched_dets, keep, det_xyah, det_feats)
        self.tracks = [t for t in self.tracks if t.state != TrackState.DELETED]
        self._update_gallery()
        return self._output()

    def _detections(
        self, boxes: np.ndarray, scores: np.ndarray, features: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Detection preprocessing (step 1): indices kept by the score, height and NMS filters, their boxes and
        their L2-normalised features (None without appearance)."""
        p = self.params
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        keep = np.flatnonzero((scores >= p.min_confidence) & (boxes[:, 3] - boxes[:, 1] >= p.min_height))
        keep = keep[nms(boxes[keep], scores[keep], p.nms_max_overlap)]
        if features is None:
            return keep, boxes[keep], None
        f = np.asarray(features)
        f = f.reshape(len(boxes), -1)[keep] if len(boxes) else np.zeros((0, f.shape[-1] if f.ndim == 2 else 1))
        norm = np.linalg.norm(f, axis=1, keepdims=True)
        return keep, boxes[keep], f / np.where(norm > 0, norm, 1.0)

    def _predict(self) -> tuple[np.ndarray, np.ndarray]:
        """Kalman predict of every track (step 2, batched); ages the tracks and clears their ``det_index``."""
        tracks = self.tracks
        if tracks:
            means, covs = kalman.predict(np.stack([t.mean for t in tracks]), np.stack([t.cov for t in tracks]))
        else:
            means, covs = np.zeros((0, 8)), np.zeros((0, 8, 8))
        for i, t in enumerate(tracks):
            t.mean, t.cov = means[i], covs[i]
            t.age += 1
            t.time_since_update += 1
            t.det_index = -1
        return means, covs

    def _cascade(
        self,
        means: np.ndarray,
        covs: np.ndarray,
        tsu: np.ndarray,
        det_xyah: np.ndarray,
        det_feats: np.ndarray,
        unmatched_dets: np.ndarray,
    ) -> tuple[list[tuple[int, int]], np.ndarray, np.ndarray]:
        """Matching cascade (step 3: appearance cost, Mahalanobis gate, one Hungarian matching per level); returns
        the matches, the unmatched detections and the tracks left for the IoU matching (unconfirmed tracks and
        cascade leftovers that missed no frame)."""
        p, n_tracks = self.params, len(self.tracks)
        confirmed = np.array([t.state == TrackState.CONFIRMED for t in self.tracks], dtype=bool)
        conf_idx = np.flatnonzero(confirmed)
        matches: list[tuple[int, int]] = []
        if len(conf_idx) and len(unmatched_dets):
            cost = self._appearance_cost(conf_idx, det_feats)
            gate = kalman.gating_distance_batch(means[conf_idx], covs[conf_idx], det_xyah)
            cost[gate > kalman.CHI2_95[4]] = INFTY_COST
            row_of = np.full(n_tracks, -1)
            row_of[conf_idx] = np.arange(len(conf_idx))
            for level in range(p.max_age):
                if not len(unmatched_dets):
                    break
                level_tracks = conf_idx[tsu[conf_idx] == level + 1]
                if not len(level_tracks):
                    continue
                sub = cost[np.ix_(row_of[level_tracks], unmatched_dets)]
                m, _, unmatched_dets = _min_cost_matching(sub, p.max_cosine_distance, level_tracks, unmatched_dets)
                matches += m
        matched = np.zeros(n_tracks, dtype=bool)
        matched[[i for i, _ in matches]] = True
        leftover = np.flatnonzero(confirmed & ~matched & (tsu == 1))
        return matches, unmatched_dets, np.concatenate([np.flatnonzero(~confirmed), leftover])

    def _iou_matching(
        self,
        means: np.ndarray,
        tsu: np.ndarray,
        iou_tracks: np.ndarray,
        det_boxes: np.ndarray,
        unmatched_dets: np.ndarray,
    ) -> tuple[list[tuple[int, int]], np.ndarray]:
        """IoU matching (step 4): cost ``1 - IoU``, 1e5 for tracks that missed a frame; matches and unmatched
        detections."""
        if not (len(iou_tracks) and len(unmatched_dets)):
            return [], unmatched_dets
        track_boxes = _xyah_to_xyxy(means[iou_tracks, :4])
        cost = 1.0 - iou_matrix(track_boxes, det_boxes[unmatched_dets])
        cost[tsu[iou_tracks] > 1] = INFTY_COST
        m, _, unmatched_dets = _min_cost_matching(cost, self.params.max_iou_distance, iou_tracks, unmatched_dets)
        return m, unmatched_dets

    def _update(
        self,
        means: np.ndarray,
        covs: np.ndarray,
        matches: list[tuple[int, int]],
        unmatched_dets: np.ndarray,
        keep: np.ndarray,
        det_xyah: np.ndarray,
        det_feats: np.ndarray | None,
    ) -> None:
        """Step 5: Kalman update of matched tracks, missed tracks marked deleted (tentative, or confirmed past
        ``max_age``), a new tentative track per unmatched detection."""
        p, tracks = self.params, self.tracks
        matched = np.zeros(len(tracks), dtype=bool)
        if matches:
            ti = np.array([i for i, _ in matches])
            di = np.array([j for _, j in matches])
            matched[ti] = True
            new_means, new_covs = kalman.update_batch(means[ti], covs[ti], det_xyah[di])
            for k, (i, j) in enumerate(matches):
                t = tracks[i]
                t.mean, t.cov = new_means[k], new_covs[k]
                if det_feats is not None:
                    t.pending.append(det_feats[j])
                t.hits += 1
                t.time_since_update = 0
                t.det_index = int(keep[j])
                if t.state == TrackState.TENTATIVE and t.hits >= p.n_init:
                    t.state = TrackState.CONFIRMED
        for i in np.flatnonzero(~matched):
            t = tracks[i]
            if t.state == TrackState.TENTATIVE or t.time_since_update > p.max_age:
                t.state = TrackState.DELETED
        for j in unmatched_dets:
            mean, cov = kalman.initiate(det_xyah[j])
            pending = [det_feats[j]] if det_feats is not None else []
            tracks.append(Track(mean, cov, self._next_id, pending=pending, det_index=int(keep[j])))
            self._next_id += 1

    def _update_gallery(self) -> None:
        """Step 6: pending features of confirmed tracks join their gallery (last ``nn_budget`` kept); galleries of
        ids that are not confirmed and alive are dropped."""
        budget = self.params.nn_budget
        gallery: dict[int, np.ndarray] = {}
        for t in self.tracks:
            if t.state != TrackState.CONFIRMED:
                continue
            g = self.gallery.get(t.track_id)
            if t.pending:
                new = np.stack(t.pending)
                g = new if g is None else np.concatenate([g, new])
                t.pending = []
            if g is not None:
                gallery[t.track_id] = g if budget is None else g[-budget:]
        self.gallery = gallery

    def _output(self) -> np.ndarray:
        """Step 7: confirmed tracks updated this frame or last, box = Kalman state."""
        out = [t for t in self.tracks if t.state == TrackState.CONFIRMED and t.time_since_update <= 1]
        if not out:
            return np.zeros((0, 6))
        xyxy = _xyah_to_xyxy(np.stack([t.mean[:4] for t in out]))
        ids = np.array([[t.track_id, t.det_index] for t in out], dtype=np.float64)
        return np.concatenate([xyxy, ids], axis=1)

    def _appearance_cost(self, track_idx: np.ndarray, det_feats: np.ndarray) -> np.ndarray:
        """``(len(track_idx), N)`` smallest cosine distance between each track's gallery and each detection."""
        galleries = [self.gallery.get(self.tracks[i].track_id) for i in track_idx]
        sizes = np.array([0 if g is None else len(g) for g in galleries])
        cost = np.full((len(track_idx), len(det_feats)), INFTY_COST)
        has = sizes > 0
        if has.any():
            stacked = np.concatenate([g for g in galleries if g is not None and len(g)])
            sim = stacked @ det_feats.T.astype(stacked.dtype)
            starts = np.concatenate([[0], np.cumsum(sizes[has])[:-1]])
            cost[has] = 1.0 - np.maximum.reduceat(sim, starts, axis=0)  # min cosine distance = 1 - max similarity
        return cost


def track_sequence(
    detections: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray | None]], params: DeepSortParams
) -> list[np.ndarray]:
    """Run a fresh :class:`DeepSort` over one video's per-frame ``(boxes, scores, features)``; per-frame outputs."""
    tracker = DeepSort(params)
    return [tracker.step(boxes, scores, features) for boxes, scores, features in detections]
