"""PoseTrack 2017/2018 multi-person pose metrics (per-joint AP with PCKh@0.5, per-joint MOTA) as ``poseval`` does.

Reference: ``leonid-pishchulin/poseval`` (BSD-2) at commit ``4258a157``: ``poseval/eval_helpers.py``
(``load_data_dir``, ``cleanupData``, ``removeIgnoredPoints``, ``assignGTmulti``, ``computeRPC``, ``VOCap``,
``getCum``), ``evaluateAP.computeMetrics``, ``evaluateTracking.computeMetrics``, ``convert.py`` (PT18 -> PT17) and
motmetrics 1.4 ``MOTAccumulator.update``; summary in metrics.md section 5. Re-implemented, not copied.

Pipeline, in poseval's order: per video file, GT and prediction frames are paired by index; frames whose GT has no
person are dropped; persons without ``annopoints`` are dropped; in frames with GT ignore regions, GT and predicted
points strictly inside a polygon are removed and persons left without points dropped. Per frame, poses are assigned
by PCKh (distance / (0.6 x head-box diagonal) <= 0.5): every prediction keeps its best GT (first argmax), every GT
takes the prediction with the highest remaining PCKh (0 -> none). AP per joint: every predicted joint is a sample
(label 1 iff its pose is assigned and the joint matches), sorted with ``np.argsort`` reversed as poseval does (ties
keep numpy's order), VOC all-point AP x 100; Total = mean of the 15 joint APs.

Tracking: one accumulator per joint per sequence with motmetrics 1.4 semantics (continue previous matches, then a
min-cost maximum-cardinality assignment); the poseval quirks are named options of
:func:`evaluate_posetrack_tracking` (``skip_last_frame``, ``empty_frame_dummy``, ``motp_all_events``).

Known differences: point-in-polygon is our own strict-interior test (shapely ``Polygon.contains`` for valid
polygons; polygons with fewer than 3 vertices contain nothing where shapely raises); sequences are processed in
sorted file-name order (poseval uses ``glob`` order, which only matters for tied scores and the dummy-id quirk);
the tracking assignment uses scipy's solver (motmetrics picks ``lap`` when installed): identical unless two
assignments tie exactly; joint distances are ``sqrt(dx*dx + dy*dy)`` (poseval: ``np.linalg.norm`` of the 2-vector,
which may differ in the last bit); MOTP sums distances in another order than pandas (last-bit differences); a
PT18 file spanning several video folders is read whole (poseval's converter keeps only the first video).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from crowdbench.bench.jsonout import dumps as strict_dumps
from crowdbench.bench.metrics.eval_args import add_eval_parser
from crowdbench.datasets.formats.errors import FormatError
from crowdbench.datasets.formats.poseval import (  # the readers and their checks (issue 20)
    JOINT_NAMES,
    N_JOINTS,
    PT18_KEYPOINT_NAMES,
    PoseTrackFrame,
    PoseTrackPerson,
    PoseTrackPoint,
    PoseTrackVideo,
    read_posetrack,
    read_posetrack17,
    read_posetrack18,
    read_posetrack_dir,
)

__all__ = [
    "JOINT_NAMES",
    "PT18_KEYPOINT_NAMES",
    "PoseTrackAPResult",
    "PoseTrackFrame",
    "PoseTrackMOTResult",
    "PoseTrackPerson",
    "PoseTrackPoint",
    "PoseTrackResampler",
    "PoseTrackResult",
    "PoseTrackVideo",
    "add_command",
    "cmd_eval_posetrack",
    "evaluate_posetrack",
    "evaluate_posetrack_ap",
    "evaluate_posetrack_bootstrap",
    "evaluate_posetrack_tracking",
    "read_posetrack",
    "read_posetrack17",
    "read_posetrack18",
    "read_posetrack_dir",
]

#: poseval's 15 joint ids (``eval_helpers.Joint``); ``head_bottom`` is poseval's ``neck``.
#: printed columns (``eval_helpers.getCum``): joint ids averaged per column
GROUPS: dict[str, tuple[int, ...]] = {
    "Head": (14, 12, 13),
    "Shou": (8, 9),
    "Elb": (7, 10),
    "Wri": (6, 11),
    "Hip": (2, 3),
    "Knee": (1, 4),
    "Ankl": (0, 5),
}
DIST_THRESHOLD = 0.5
MIN_SCORE = -9999.0  # eval_helpers.MIN_SCORE: score of a predicted joint without one
MAX_TRACK_ID = 10000  # eval_helpers.MAX_TRACK_ID: track ids are offset by video index x this


# ------------------------------------------------------------------------------------------------ preprocessing


def _polygon_contains(poly: np.ndarray, x: float, y: float) -> bool:
    """Strict interior test (shapely ``Polygon.contains``): boundary points are not contained; even-odd rule."""
    n = len(poly)
    if n < 3:
        return False
    inside = False
    for k in range(n):
        x1, y1 = poly[k]
        x2, y2 = poly[(k + 1) % n]
        cross = (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1)
        if cross == 0 and min(x1, x2) <= x <= max(x1, x2) and min(y1, y2) <= y <= max(y1, y2):
            return False  # on the boundary
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def _drop_ignored(persons: list[PoseTrackPerson], regions: list[np.ndarray]) -> list[PoseTrackPerson]:
    """``removeIgnoredPointsRects``: drop points inside any region, then persons without points."""
    out = []
    for p in persons:
        pts = [q for q in p.points if not any(_polygon_contains(r, q.x, q.y) for r in regions)]
        if pts:
            out.append(PoseTrackPerson(p.track_id, pts, p.head_box, p.has_annopoints, p.ref))
    return out


@dataclass
class _Frame:
    seq: int
    gt: list[PoseTrackPerson]
    pr: list[PoseTrackPerson]


def _as_list(videos: Mapping[str, PoseTrackVideo] | Iterable[PoseTrackVideo]) -> dict[str, PoseTrackVideo]:
    if isinstance(videos, Mapping):
        return dict(videos)
    return {v.name: v for v in videos}


def _prepare(gt_videos: Any, pr_videos: Any) -> tuple[list[_Frame], list[str]]:
    """``load_data_dir`` + ``cleanupData`` + ``removeIgnoredPoints``: the evaluated frames, in order."""
    gt_map, pr_map = _as_list(gt_videos), _as_list(pr_videos)
    frames: list[_Frame] = []
    names = sorted(gt_map)
    for seq, name in enumerate(names):
        gt = gt_map[name]
        if name not in pr_map:
            raise FileNotFoundError(f"prediction file {name} does not exist")
        pr = pr_map[name]
        if len(pr.frames) != len(gt.frames):
            raise ValueError(f"{name}: # prediction frames {len(pr.frames)} <> # GT frames {len(gt.frames)}")
        for fg, fp in zip(gt.frames, pr.frames, strict=True):
            ids = [p.track_id for p in fp.persons if p.track_id is not None]
            if len(ids) != len(set(ids)):
                raise ValueError(f"{name}: non-unique track ids in prediction frame {fp.name}")
            for p in (*fg.persons, *fp.persons):
                if p.track_id is not None and p.track_id >= MAX_TRACK_ID:
                    raise ValueError(f"{p.ref}: track_id {p.track_id} >= {MAX_TRACK_ID} (poseval's limit)")
            if not fg.persons:
                continue  # cleanupData: frames without GT persons are not evaluated
            gts = [p for p in fg.persons if p.has_annopoints]
            prs = [p for p in fp.persons if p.has_annopoints]
            if fg.ignore_regions:
                gts = _drop_ignored(gts, fg.ignore_regions)
                prs = _drop_ignored(prs, fg.ignore_regions)
            frames.append(_Frame(seq, gts, prs))
    return frames, names


def _joint_arrays(persons: list[PoseTrackPerson]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(P, 15, 2)`` coordinates, ``(P, 15)`` presence, ``(P, 15)`` scores; the first point of an id wins."""
    xy = np.zeros((len(persons), N_JOINTS, 2))
    has = np.zeros((len(persons), N_JOINTS), dtype=bool)
    score = np.full((len(persons), N_JOINTS), np.nan)
    for i, p in enumerate(persons):
        for q in p.points:
            if 0 <= q.id < N_JOINTS and not has[i, q.id]:
                has[i, q.id] = True
                xy[i, q.id] = (q.x, q.y)
                score[i, q.id] = MIN_SCORE if q.score is None else q.score
    return xy, has, score


@dataclass
class _Assigned:
    """``assignGTmulti`` output for one frame."""

    scores: list[np.ndarray]  # per joint: scores of the predicted joints
    labels: list[np.ndarray]  # per joint: 1 iff pose assigned and joint matched
    n_gt: np.ndarray  # (15,) annotated GT joints
    mot: list[tuple[list[int], list[int], np.ndarray]]  # per joint: GT ids, predicted ids, distances (NaN = no)
    dummy: bool  # frame without predictions or without GT (poseval's dummy MOT entry)


def _assign(frame: _Frame, need_tracks: bool) -> _Assigned:
    gxy, ghas, _ = _joint_arrays(frame.gt)
    pxy, phas, pscore = _joint_arrays(frame.pr)
    n_gt = ghas.sum(axis=0).astype(np.float64)
    n_pr, n_g = len(frame.pr), len(frame.gt)
    if n_pr == 0 or n_g == 0:
        scores = [pscore[phas[:, j], j] for j in range(N_JOINTS)]
        labels = [np.zeros(len(s), dtype=np.int8) for s in scores]
        if n_g:  # GT but no predictions: nothing to rank
            scores = [np.zeros(0) for _ in range(N_JOINTS)]
            labels = [np.zeros(0, dtype=np.int8) for _ in range(N_JOINTS)]
        return _Assigned(scores, labels, n_gt, [], True)
    head = np.empty(n_g)
    for g, p in enumerate(frame.gt):
        if p.head_box is None:
            raise FormatError(f"{p.ref}: GT person has no head box (needed for PCKh)")
        x1, y1, x2, y2 = p.head_box
        head[g] = 0.6 * np.linalg.norm(np.subtract([x2, y2], [x1, y1]))
    d = pxy[:, None, :, :] - gxy[None, :, :, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.sqrt(d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1]) / head[None, :, None]
    both = phas[:, None, :] & ghas[None, :, :]
    dist = np.where(both, dist, np.inf)
    match = dist <= DIST_THRESHOLD
    n_gtp = ghas.sum(axis=1)
    pck = match.sum(axis=2).astype(np.float64)
    pck = np.where(n_gtp[None, :] > 0, pck / np.maximum(n_gtp, 1)[None, :], pck)
    best = np.argmax(pck, axis=1)
    keep = np.zeros_like(pck)
    keep[np.arange(n_pr), best] = pck[np.arange(n_pr), best]
    pr_to_gt = np.argmax(keep, axis=0)
    pr_to_gt[np.max(keep, axis=0) == 0] = -1
    gt_of_pr = np.full(n_pr, -1)
    for g, p in enumerate(pr_to_gt):
        if p >= 0:
            gt_of_pr[p] = g
    lab = np.zeros((n_pr, N_JOINTS), dtype=np.int8)
    assigned = gt_of_pr >= 0
    lab[assigned] = match[np.flatnonzero(assigned), gt_of_pr[assigned]]
    scores = [pscore[phas[:, j], j] for j in range(N_JOINTS)]
    labels = [lab[phas[:, j], j] for j in range(N_JOINTS)]
    mot = []
    if need_tracks:
        for p in (*frame.gt, *frame.pr):
            if p.track_id is None:
                raise FormatError(f"{p.ref}: person has no track_id (needed for tracking)")
        off = frame.seq * MAX_TRACK_ID
        gid = np.array([p.track_id + off for p in frame.gt])
        pid = np.array([p.track_id + off for p in frame.pr])
        for j in range(N_JOINTS):
            gi, pi = np.flatnonzero(ghas[:, j]), np.flatnonzero(phas[:, j])
            sub = dist[np.ix_(pi, gi, [j])][..., 0].T
            sub = np.where(match[np.ix_(pi, gi, [j])][..., 0].T, sub, np.nan)
            mot.append((gid[gi].tolist(), pid[pi].tolist(), sub))
    return _Assigned(scores, labels, n_gt, mot, False)


# ------------------------------------------------------------------------------------------------------------ AP


def _group(values: np.ndarray) -> dict[str, float]:
    """``getCum``: printed columns (mean of left/right; Head = head_top, neck, nose)."""
    return {k: float(values[list(ids)].reshape(-1, 1).mean()) for k, ids in GROUPS.items()}


def _nanmean_like_poseval(values: np.ndarray) -> float:
    idx = np.argwhere(~np.isnan(values))
    return float(values[idx].mean()) if len(idx) else math.nan


@dataclass(frozen=True)
class PoseTrackAPResult:
    """Per-joint AP / precision / recall in percent (``evaluateAP.computeMetrics``), joint order ``JOINT_NAMES``.

    ``grouped`` holds the printed columns Head..Ankl; ``total`` the mean of the non-NaN joint APs.
    """

    ap: tuple[float, ...]
    precision: tuple[float, ...]
    recall: tuple[float, ...]
    total: float
    total_precision: float
    total_recall: float
    grouped: dict[str, float]
    num_frames: int
    num_gt_joints: tuple[int, ...]

    def row(self) -> dict[str, float]:
        """The 8 printed values (Head, Shou, Elb, Wri, Hip, Knee, Ankl, Total)."""
        return {**self.grouped, "Total": self.total}

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("ap", "precision", "recall", "num_gt_joints"):
            d[key] = list(d[key])
        d["joint_names"] = list(JOINT_NAMES)
        return d


def _ap_from_frames(
    assigned: Sequence[_Assigned], keep: dict | None = None, seqs: Sequence[int] = ()
) -> PoseTrackAPResult:
    """``evaluateAP.computeMetrics``; ``keep`` (with each frame's video index ``seqs``) gets the score-sorted
    labels and videos per joint, for :class:`PoseTrackResampler`."""
    ap = np.zeros(N_JOINTS)
    pre = np.zeros(N_JOINTS)
    rec = np.zeros(N_JOINTS)
    n_gt = np.zeros(N_JOINTS)
    for a in assigned:
        n_gt += a.n_gt
    for j in range(N_JOINTS):
        scores = np.concatenate([np.zeros(0), *(a.scores[j] for a in assigned)]).astype(np.float64)
        labels = np.concatenate([np.zeros(0, dtype=np.int8), *(a.labels[j] for a in assigned)])
        if len(scores) == 0:
            continue  # computeMetrics leaves 0 for a joint without predictions
        order = np.array(scores).argsort()[::-1]  # computeRPC: default (unstable) argsort, reversed
        if keep is not None:
            vid = np.concatenate([np.full(len(a.scores[j]), q, np.int64) for a, q in zip(assigned, seqs, strict=True)])
            keep[j] = (labels[order] == 1, vid[order])
        tp = np.cumsum(labels[order] == 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            recall = 1.0 * tp / n_gt[j]
        precision = 1.0 * tp / np.arange(1, len(tp) + 1)
        ap[j] = _voc_ap(recall, precision) * 100
        pre[j] = precision[-1] * 100
        rec[j] = recall[-1] * 100
    return PoseTrackAPResult(
        ap=tuple(float(v) for v in ap),
        precision=tuple(float(v) for v in pre),
        recall=tuple(float(v) for v in rec),
        total=_nanmean_like_poseval(ap),
        total_precision=_nanmean_like_poseval(pre),
        total_recall=_nanmean_like_poseval(rec),
        grouped=_group(ap),
        num_frames=len(assigned),
        num_gt_joints=tuple(int(v) for v in n_gt),
    )


def _voc_ap(rec: np.ndarray, prec: np.ndarray) -> float:
    """``eval_helpers.VOCap``: monotone precision envelope, sum over recall changes (sentinels 0 and 1)."""
    mpre = np.concatenate([[0.0], prec, [0.0]])
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(~np.equal(mrec[1:], mrec[:-1])) + 1
    return float(np.sum(np.multiply(np.subtract(mrec[i], mrec[i - 1]), mpre[i])))


def evaluate_posetrack_ap(gt_videos: Any, pr_videos: Any) -> PoseTrackAPResult:
    """Per-joint AP with PCKh@0.5 (``evaluateAP.evaluateAP`` with ``bSaveSeq=False``).

    ``gt_videos`` / ``pr_videos``: ``{file name: PoseTrackVideo}`` or iterables of videos (paired by name).
    """
    frames, _ = _prepare(gt_videos, pr_videos)
    return _ap_from_frames([_assign(f, need_tracks=False) for f in frames])


# ------------------------------------------------------------------------------------------------------ tracking


class _Accumulator:
    """motmetrics 1.4 ``MOTAccumulator(auto_id=True)`` reduced to the counts poseval reads.

    ``sum_all`` is ``acc.events['D'].sum()`` (RAW pair distances + MATCH/SWITCH + ASCEND/TRANSFER/MIGRATE rows);
    ``sum_matched`` is the textbook sum over MATCH and SWITCH only.
    """

    def __init__(self) -> None:
        self.m: dict[int, int] = {}
        self.res_m: dict[int, int] = {}
        self.last_match: set[int] = set()
        self.hyp_history: set[int] = set()
        self.matches = self.switches = self.misses = self.fps = self.objects = 0
        self.sum_all = 0.0
        self.sum_matched = 0.0

    def update(self, oids: list[int], hids: list[int], dists: np.ndarray) -> None:
        dists = np.array(dists, dtype=np.float64).reshape(len(oids), len(hids))
        finite = np.isfinite(dists)
        self.sum_all += float(dists[finite].sum())
        omask = np.zeros(len(oids), dtype=bool)
        hmask = np.zeros(len(hids), dtype=bool)
        if len(oids) and len(hids):
            for i, o in enumerate(oids):  # 1. continue previous correspondences
                if o not in self.m:
                    continue
                js = [j for j, h in enumerate(hids) if not hmask[j] and h == self.m[o]]
                if js and finite[i, js[0]]:
                    j = js[0]
                    omask[i] = hmask[j] = True
                    self._event(dists[i, j])
                    self.matches += 1
                    self.last_match.add(o)
                    self.hyp_history.add(hids[j])
            d = dists.copy()
            d[omask, :] = np.nan
            d[:, hmask] = np.nan
            for i, j in zip(*_lsa(d), strict=True):  # 2. min-cost assignment of the rest
                o, h = oids[i], hids[j]
                dij = d[i, j]
                switch = o in self.m and self.m[o] != h
                if switch and h not in self.hyp_history:
                    self.sum_all += dij  # ASCEND row
                if h in self.res_m and self.res_m[h] != o:
                    if o not in self.last_match:
                        self.sum_all += dij  # MIGRATE row
                    self.sum_all += dij  # TRANSFER row
                self.hyp_history.add(h)
                self.last_match.add(o)
                self._event(dij)
                if switch:
                    self.switches += 1
                else:
                    self.matches += 1
                omask[i] = hmask[j] = True
                self.m[o] = h
                self.res_m[h] = o
        self.misses += int((~omask).sum())
        self.fps += int((~hmask).sum())
        self.objects += len(oids)

    def _event(self, dist: float) -> None:
        self.sum_all += dist
        self.sum_matched += dist


def _lsa(costs: np.ndarray) -> tuple[list[int], list[int]]:
    """motmetrics ``lap.linear_sum_assignment``: NaN = no edge; large finite cost, then drop non-edges."""
    if costs.size == 0:
        return [], []
    valid = np.isfinite(costs)
    if not valid.any():
        return [], []
    c = np.abs(costs[valid]).max() + 1
    filled = np.where(valid, costs, 2 * min(costs.shape) * c + 1)
    rows, cols = linear_sum_assignment(filled)
    keep = [(int(r), int(k)) for r, k in zip(rows, cols, strict=True) if valid[r, k]]
    return [r for r, _ in keep], [k for _, k in keep]


@dataclass(frozen=True)
class PoseTrackMOTResult:
    """Per-joint MOTA / MOTP / precision / recall in percent (``evaluateTracking.computeMetrics``) and totals.

    Totals are the mean over joints of the non-NaN per-joint values (not pooled counts); ``grouped_mota`` holds
    the printed MOTA columns Head..Ankl. Counts are summed over sequences.
    """

    mota: tuple[float, ...]
    motp: tuple[float, ...]
    precision: tuple[float, ...]
    recall: tuple[float, ...]
    total_mota: float
    total_motp: float
    total_precision: float
    total_recall: float
    grouped_mota: dict[str, float]
    num_misses: tuple[int, ...]
    num_switches: tuple[int, ...]
    num_false_positives: tuple[int, ...]
    num_objects: tuple[int, ...]
    num_detections: tuple[int, ...]
    skip_last_frame: bool = True
    empty_frame_dummy: bool = True
    motp_all_events: bool = True

    def row(self) -> dict[str, float]:
        """The 11 printed values (MOTA Head..Ankl, MOTA / MOTP / Prec / Rec Total)."""
        return {
            **{f"MOTA {k}": v for k, v in self.grouped_mota.items()},
            "MOTA Total": self.total_mota,
            "MOTP Total": self.total_motp,
            "Prec Total": self.total_precision,
            "Rec Total": self.total_recall,
        }

    def to_dict(self) -> dict:
        d = asdict(self)
        for key, val in d.items():
            if isinstance(val, tuple):
                d[key] = list(val)
        d["joint_names"] = list(JOINT_NAMES)
        return d


def _mot_counts(
    frames: Sequence[_Frame],
    assigned: Sequence[_Assigned],
    names: Sequence[str],
    skip_last_frame: bool,
    empty_frame_dummy: bool,
    motp_all_events: bool,
) -> dict[int, np.ndarray]:
    """Per video index: ``(6, 15)`` misses, switches, fps, objects, detections, sumD per joint."""
    out = {}
    for seq in sorted({f.seq for f in frames}):
        idx = [k for k, f in enumerate(frames) if f.seq == seq]
        if skip_last_frame:
            idx = idx[:-1]
            if not idx:
                raise ValueError(
                    f"{names[seq]}: only one evaluated frame; poseval drops the last frame of each sequence and "
                    "crashes here (IndexError). Use skip_last_frame=False"
                )
        accs = [_Accumulator() for _ in range(N_JOINTS)]
        for k in idx:
            a, f = assigned[k], frames[k]
            for j in range(N_JOINTS):
                if not a.dummy:
                    accs[j].update(*a.mot[j])
                elif empty_frame_dummy:
                    accs[j].update([0], [0], np.full((1, 1), np.nan))  # eval_helpers: dummy ids 0, no match
                else:
                    off = f.seq * MAX_TRACK_ID
                    gids = [p.track_id + off for p in f.gt if any(q.id == j for q in p.points)]  # type: ignore[operator]
                    pids = [p.track_id + off for p in f.pr if any(q.id == j for q in p.points)]  # type: ignore[operator]
                    accs[j].update(gids, pids, np.full((len(gids), len(pids)), np.nan))
        counts = np.zeros((6, N_JOINTS))
        for j, acc in enumerate(accs):
            counts[:, j] = (
                acc.misses,
                acc.switches,
                acc.fps,
                acc.objects,
                acc.matches + acc.switches,
                acc.sum_all if motp_all_events else acc.sum_matched,
            )
        out[seq] = counts
    return out


def _mot_rates(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``evaluateTracking.computeMetrics`` per joint, vectorised: counts ``(..., 6, 15)`` -> MOTA, MOTP, Prec, Rec
    ``(..., 15)`` in percent (NaN where undefined, MOTP 0 without detections)."""
    misses, switches, fps, objects, dets, sum_d = np.moveaxis(counts, -2, 0)
    n_obj = np.where(objects > 0, objects, np.nan)
    mota = 100 * (1.0 - (misses + switches + fps) / n_obj)
    bad = (dets == 0) | np.isnan(sum_d)
    motp = np.where(bad, 0.0, 100 * (1.0 - (sum_d / np.where(bad, 1.0, dets))))
    total_det = np.where(fps + dets > 0, fps + dets, np.nan)
    return mota, motp, 100 * (1.0 * dets / total_det), 100 * (1.0 * dets / n_obj)


def _mot_from_frames(
    frames: Sequence[_Frame],
    assigned: Sequence[_Assigned],
    names: Sequence[str],
    skip_last_frame: bool,
    empty_frame_dummy: bool,
    motp_all_events: bool,
    keep: dict | None = None,
) -> PoseTrackMOTResult:
    per = _mot_counts(frames, assigned, names, skip_last_frame, empty_frame_dummy, motp_all_events)
    if keep is not None:
        keep.update(per)
    counts = np.zeros((6, N_JOINTS))
    for c in per.values():
        counts = counts + c
    misses, switches, fps, objects, dets, _ = counts
    mota, motp, pre, rec = _mot_rates(counts)
    return PoseTrackMOTResult(
        mota=tuple(float(v) for v in mota),
        motp=tuple(float(v) for v in motp),
        precision=tuple(float(v) for v in pre),
        recall=tuple(float(v) for v in rec),
        total_mota=_nanmean_like_poseval(mota),
        total_motp=_nanmean_like_poseval(motp),
        total_precision=_nanmean_like_poseval(pre),
        total_recall=_nanmean_like_poseval(rec),
        grouped_mota=_group(mota),
        num_misses=tuple(int(v) for v in misses),
        num_switches=tuple(int(v) for v in switches),
        num_false_positives=tuple(int(v) for v in fps),
        num_objects=tuple(int(v) for v in objects),
        num_detections=tuple(int(v) for v in dets),
        skip_last_frame=skip_last_frame,
        empty_frame_dummy=empty_frame_dummy,
        motp_all_events=motp_all_events,
    )


def evaluate_posetrack_tracking(
    gt_videos: Any,
    pr_videos: Any,
    *,
    skip_last_frame: bool = True,
    empty_frame_dummy: bool = True,
    motp_all_events: bool = True,
) -> PoseTrackMOTResult:
    """Per-joint MOTA / MOTP / Prec / Rec (``evaluateTracking.evaluateTracking``).

    poseval quirks, each on by default as poseval (with motmetrics 1.4) does:

    * ``skip_last_frame``: ``computeMetrics`` drops the last evaluated frame of every sequence (``imgidxs[:-1]``);
      a sequence with one evaluated frame then makes poseval crash, here a :class:`ValueError`.
    * ``empty_frame_dummy``: a frame without predictions (or without GT after ignore regions) enters every joint's
      accumulator as one GT id 0 and one prediction id 0 that cannot match (1 miss + 1 false positive), whatever
      the number of persons. Off: the real GT / predicted persons having the joint, all unmatched.
    * ``motp_all_events``: MOTP uses ``acc.events['D'].sum()``, which in motmetrics >= 1.2 also sums the RAW rows
      (every GT-prediction pair within the threshold) and ASCEND/TRANSFER/MIGRATE rows. Off: matches only.
    """
    frames, names = _prepare(gt_videos, pr_videos)
    assigned = [_assign(f, need_tracks=True) for f in frames]
    return _mot_from_frames(frames, assigned, names, skip_last_frame, empty_frame_dummy, motp_all_events)


@dataclass(frozen=True)
class PoseTrackResult:
    """AP and (when it could be computed) tracking results; ``mot_error`` says why tracking is missing."""

    ap: PoseTrackAPResult
    mot: PoseTrackMOTResult | None
    mot_error: str | None = None
    num_videos: int = 0

    def to_dict(self) -> dict:
        return {
            "ap": self.ap.to_dict(),
            "mot": None if self.mot is None else self.mot.to_dict(),
            "mot_error": self.mot_error,
            "num_videos": self.num_videos,
        }


def evaluate_posetrack(
    gt: str | os.PathLike | Mapping[str, PoseTrackVideo],
    pred: str | os.PathLike | Mapping[str, PoseTrackVideo],
    *,
    fmt: str | None = None,
    skip_last_frame: bool = True,
    empty_frame_dummy: bool = True,
    motp_all_events: bool = True,
    lenient: bool = False,
) -> PoseTrackResult:
    """AP and MOTA from folders of per-video JSON (poseval ``--groundTruth`` / ``--predictions``) or videos.

    Tracking errors (a sequence with one evaluated frame under ``skip_last_frame``, missing track ids) leave
    ``mot`` as ``None`` with the reason in ``mot_error``; AP is still returned. Files are read with the checks of
    :mod:`crowdbench.datasets.formats.poseval` (``lenient``: keep poseval's behaviour where it gives a number).
    """
    quirks = {"skip_last_frame": skip_last_frame, "empty_frame_dummy": empty_frame_dummy}
    return _evaluate(gt, pred, fmt, motp_all_events=motp_all_events, resample=False, lenient=lenient, **quirks)[0]


# ------------------------------------------------------------------------------------------------------ bootstrap
class PoseTrackResampler:
    """Videos as bootstrap units of PoseTrack AP and MOTA (:class:`crowdbench.bench.metrics.bootstrap.Resampler`).

    AP: per joint the score-sorted match labels and video of every predicted joint (the order of the point estimate)
    and per video the GT joint counts; a replicate re-accumulates TP / detections with the video multiplicities as
    weights (``cumsum(w[video] * tp)``, recall = TP / sum w nGT) and takes poseval's VOC AP. MOTA: per video and
    joint the misses, switches, false positives, objects, detections and distance sums, summed with the weights.
    Keys: the printed columns of :meth:`PoseTrackAPResult.row` prefixed ``"AP "`` and of
    :meth:`PoseTrackMOTResult.row` (percent), plus ``AP``, ``MOTA``, ``MOTP``, ``Prec``, ``Rec`` as fractions
    (the keys of :func:`crowdbench.bench.metrics.pose_tracks.evaluate_pose_tracks`). Bit for bit with weights 1.
    """

    kind = "PoseTrackResampler"

    def __init__(self, unit: str, units: Sequence[str], arrays: Mapping[str, np.ndarray]) -> None:
        self.unit, self.units = unit, list(units)
        self.arrays = {k: np.asarray(v) for k, v in arrays.items()}

    def values(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """``weights`` (R x videos) -> metric key -> R replicate values."""
        from crowdbench.bench.metrics.bootstrap import batched_values

        return batched_values(weights, len(self.units), self._batch, batch=32)

    def _batch(self, w: np.ndarray) -> dict[str, np.ndarray]:
        a, r = self.arrays, len(w)
        wi = w.astype(np.int64)
        ap = np.zeros((r, N_JOINTS))
        n_gt = (wi @ a["n_gt"].astype(np.int64)).astype(np.float64)  # R x joints
        start = a["ap_start"]
        for j in range(N_JOINTS):
            lab, vid = a["ap_label"][start[j] : start[j + 1]], a["ap_video"][start[j] : start[j + 1]]
            if len(lab) == 0:
                continue
            wv = wi[:, vid]
            tp, cnt = np.cumsum(wv * lab, axis=1), np.cumsum(wv, axis=1)
            for i in range(r):
                k = wv[i] > 0
                with np.errstate(divide="ignore", invalid="ignore"):
                    recall = 1.0 * tp[i][k] / n_gt[i, j]
                    precision = 1.0 * tp[i][k] / cnt[i][k]
                ap[i, j] = _voc_ap(recall, precision) * 100
        out: dict[str, np.ndarray] = {}
        rows = [{**_group(x), "Total": _nanmean_like_poseval(x)} for x in ap]
        for k in rows[0]:
            out[f"AP {k}"] = np.array([row[k] for row in rows])
        out["AP"] = out["AP Total"] / 100.0
        if "mot" in a:
            counts = np.zeros((r, 6, N_JOINTS))
            for v in range(len(self.units)):
                counts = counts + w[:, v, None, None] * a["mot"][v]
            mota, motp, pre, rec = _mot_rates(counts)
            for i in range(r):
                for k, v in _group(mota[i]).items():
                    out.setdefault(f"MOTA {k}", np.zeros(r))[i] = v
            for name, key, x in (("MOTA", "MOTA", mota), ("MOTP", "MOTP", motp), ("Prec", "Prec", pre)):
                out[f"{name} Total"] = np.array([_nanmean_like_poseval(row) for row in x])
                out[key] = out[f"{name} Total"] / 100.0
            out["Rec Total"] = np.array([_nanmean_like_poseval(row) for row in rec])
            out["Rec"] = out["Rec Total"] / 100.0
        return out

    def save(self, path: str | os.PathLike) -> None:
        """Write the per-video statistics to one ``.npz``."""
        from crowdbench.bench.metrics.bootstrap import save_npz

        save_npz(path, self.kind, self.unit, self.units, self.arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> PoseTrackResampler:
        """Read a :meth:`save` file."""
        from crowdbench.bench.metrics.bootstrap import load_npz

        return cls(*load_npz(path, cls.kind))


def evaluate_posetrack_bootstrap(
    gt: str | os.PathLike | Mapping[str, PoseTrackVideo],
    pred: str | os.PathLike | Mapping[str, PoseTrackVideo],
    *,
    fmt: str | None = None,
    skip_last_frame: bool = True,
    empty_frame_dummy: bool = True,
    motp_all_events: bool = True,
    lenient: bool = False,
) -> tuple[PoseTrackResult, PoseTrackResampler]:
    """:func:`evaluate_posetrack` (same arguments) and its :class:`PoseTrackResampler` (videos as units; without
    the MOTA keys when tracking could not be scored)."""
    quirks = {"skip_last_frame": skip_last_frame, "empty_frame_dummy": empty_frame_dummy}
    res, resampler = _evaluate(gt, pred, fmt, motp_all_events=motp_all_events, resample=True, lenient=lenient, **quirks)
    assert resampler is not None
    return res, resampler


def _evaluate(
    gt: str | os.PathLike | Mapping[str, PoseTrackVideo],
    pred: str | os.PathLike | Mapping[str, PoseTrackVideo],
    fmt: str | None,
    *,
    skip_last_frame: bool,
    empty_frame_dummy: bool,
    motp_all_events: bool,
    resample: bool,
    lenient: bool = False,
) -> tuple[PoseTrackResult, PoseTrackResampler | None]:
    """AP and MOTA (:func:`evaluate_posetrack`); with ``resample`` also the per-video statistics of the bootstrap."""

    def read(x: Any, role: str) -> dict[str, PoseTrackVideo]:
        return read_posetrack_dir(x, fmt, role=role, lenient=lenient) if isinstance(x, str | os.PathLike) else dict(x)

    gt_v, pr_v = read(gt, "gt"), read(pred, "pred")
    if not gt_v:
        raise FileNotFoundError(f"{gt}: no *.json ground-truth files")
    frames, names = _prepare(gt_v, pr_v)
    assigned_ap = [_assign(f, need_tracks=False) for f in frames]
    if not resample:
        ap = _ap_from_frames(assigned_ap)
        mot, err = _mot_or_error(frames, names, skip_last_frame, empty_frame_dummy, motp_all_events)
        return PoseTrackResult(ap=ap, mot=mot, mot_error=err, num_videos=len(names)), None
    keep_ap: dict = {}
    ap = _ap_from_frames(assigned_ap, keep_ap, [f.seq for f in frames])
    n_gt = np.zeros((len(names), N_JOINTS))
    for f, a in zip(frames, assigned_ap, strict=True):
        n_gt[f.seq] += a.n_gt
    labels = [keep_ap.get(j, (np.zeros(0, bool), np.zeros(0, np.int64))) for j in range(N_JOINTS)]
    arrays = {
        "n_gt": n_gt,
        "ap_label": np.concatenate([x[0] for x in labels]).astype(np.int64),
        "ap_video": np.concatenate([x[1] for x in labels]),
        "ap_start": np.cumsum([0] + [len(x[0]) for x in labels]),
    }
    keep_mot: dict = {}
    mot, err = _mot_or_error(frames, names, skip_last_frame, empty_frame_dummy, motp_all_events, keep_mot)
    if mot is not None:
        arrays["mot"] = np.stack([keep_mot.get(v, np.zeros((6, N_JOINTS))) for v in range(len(names))])
    res = PoseTrackResult(ap=ap, mot=mot, mot_error=err, num_videos=len(names))
    return res, PoseTrackResampler("video", names, arrays)


def _mot_or_error(
    frames: Sequence[_Frame],
    names: Sequence[str],
    skip_last_frame: bool,
    empty_frame_dummy: bool,
    motp_all_events: bool,
    keep: dict | None = None,
) -> tuple[PoseTrackMOTResult | None, str | None]:
    """Tracking results, or None and why they cannot be computed (a video with one evaluated frame, missing ids)."""
    try:
        assigned = [_assign(f, need_tracks=True) for f in frames]
        quirks = (skip_last_frame, empty_frame_dummy, motp_all_events)
        return _mot_from_frames(frames, assigned, names, *quirks, keep=keep), None
    except (FormatError, ValueError) as exc:
        return None, str(exc)


# ------------------------------------------------------------------------------------------------------------ CLI


def add_command(eval_subparsers: argparse._SubParsersAction) -> None:
    """Register ``crowdbench eval posetrack`` on the ``crowdbench eval`` subparsers."""
    p = add_eval_parser(
        eval_subparsers,
        "posetrack",
        help="PoseTrack 2017/2018 per-joint AP (PCKh@0.5) and MOTA (poseval protocol)",
        description="PoseTrack per-joint AP and MOTA exactly as leonid-pishchulin/poseval computes them.",
        gt=("DIR", "folder of per-video GT JSON files"),
        pred=("DIR", "folder of per-video prediction JSON"),
    )
    p.add_argument("--format", choices=("2017", "2018"), default=None, help="file format (default: detect)")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument(
        "--no-skip-last-frame",
        action="store_true",
        help="evaluate MOTA on every frame (poseval drops the last frame of each sequence)",
    )
    p.add_argument(
        "--lenient",
        action="store_true",
        help="accept what poseval accepts and scores (head boxes with swapped corners, joint ids beyond 14, "
        "visibility outside 0-2, integral float ids); refused by default (datasets/formats/poseval.py)",
    )
    from crowdbench.bench.metrics.cli import add_bootstrap_arguments

    add_bootstrap_arguments(p)
    p.set_defaults(func=cmd_eval_posetrack)


def _fmt(v: float) -> str:
    return "  n/a" if math.isnan(v) else f"{v:5.1f}"  # poseval formatCell: "%1.1f" right-aligned in 5


def cmd_eval_posetrack(args: argparse.Namespace) -> int:
    """Run ``crowdbench eval posetrack``; 0 on success, 2 with a one-line ``error: ...`` on stderr."""
    from crowdbench.bench.metrics.cli import bootstrap_summary, check_bootstrap_arguments, print_intervals

    boot = getattr(args, "bootstrap", None)
    summary: dict = {}
    try:
        for path in (args.gt, args.pred):
            if not path.is_dir():
                raise FileNotFoundError(f"{path}: no such directory")
        kw = {"fmt": args.format, "skip_last_frame": not args.no_skip_last_frame, "lenient": args.lenient}
        if boot is None:
            result = evaluate_posetrack(args.gt, args.pred, **kw)
        else:
            check_bootstrap_arguments(args)
            result, rs = evaluate_posetrack_bootstrap(args.gt, args.pred, **kw)
            point = {f"AP {k}": v for k, v in result.ap.row().items()}
            point.update(result.mot.row() if result.mot is not None else {})
            summary = bootstrap_summary(rs, point, args)
    except (FormatError, OSError, ValueError, RecursionError, MemoryError) as exc:
        from crowdbench.bench.errors import fail

        return fail(exc)
    if result.mot_error is not None:
        print("warning: tracking metrics not computed: " + " ".join(result.mot_error.split()), file=sys.stderr)
    if args.json:
        print(strict_dumps({**result.to_dict(), **summary}))
        return 0
    print(f"PoseTrack ({args.gt} vs {args.pred}): {result.num_videos} videos, {result.ap.num_frames} frames")
    row = result.ap.row()
    print("  AP   " + " ".join(f"{k:>5}" for k in row))
    print("       " + " ".join(_fmt(v) for v in row.values()))
    if result.mot is not None:
        mrow = result.mot.row()
        print("  MOT  " + " ".join(f"{k.split()[0]:>5}" for k in mrow))
        print("       " + " ".join(f"{k.split()[1]:>5}" for k in mrow))
        print("       " + " ".join(_fmt(v) for v in mrow.values()))
    if summary:
        print_intervals(summary)
    return 0
