"""MOTChallenge tracking metrics: CLEAR MOT, Identity (IDF1) and HOTA, vectorised, with TrackEval semantics.

Reference (metrics.md section 6): ``JonathonLuiten/TrackEval: trackeval/metrics/clear.py`` (``CLEAR.eval_sequence``),
``identity.py`` (``Identity.eval_sequence``), ``hota.py`` (``HOTA.eval_sequence``), box IoU from
``datasets/_base_dataset.py`` (``_calculate_box_ious``, reproduced bit for bit) and the MOTChallenge preprocessing of
``datasets/mot_challenge_2d_box.py`` (``get_preprocessed_seq_data``). Our own implementation (no code copied):

* IoUs of all same-frame GT x prediction pairs are computed at once per sequence (frame chunks).
* Per-frame Hungarian matchings decompose into connected components of the candidate-pair graph. Single-edge
  components (the vast majority) are matched without a solver; for HOTA and the preprocessing, one-to-many "stars"
  take their best edge vectorised; the remaining components go to ``scipy.optimize.linear_sum_assignment``. CLEAR's
  continuation bonus depends on the previous frame, so its ambiguous components are solved in frame order.
* IDSW, Frag, MT/PT/ML, identity counts and HOTA association are then computed with sorts and ``bincount``.

TrackEval conventions kept: CLEAR matches need IoU >= 0.5 - eps with score ``1000 * [same tracker as this GT's match
in the previous frame] + IoU``, where "previous frame" is the previous frame having both GT and predictions
(TrackEval skips empty frames without resetting its state); IDSW against the last-ever match; MT ratio > 0.8, PT >= 0.2;
Frag = (times tracked after not tracked in the previous such frame) - 1; IDF1 pairs need IoU >= 0.5 (no eps); HOTA
over alpha = ``np.arange(0.05, 0.99, 0.05)``; sequences combined by summing counts (HOTA: AssA/AssRe/AssPr/LocA
weighted by HOTA_TP). Integer counts and the CLEAR / Identity floats equal TrackEval's bit for bit (MOTP is summed in
TrackEval's order); HOTA floats agree to ~1e-15 (summation order). Exactly tied Hungarian optima could resolve
differently (not seen on real or synthetic data).

Deviation: for a sequence without GT or without predictions TrackEval leaves the derived per-sequence fields (MOTA,
IDF1, ...) at 0; we compute them from the counts with the same ``max(1, .)`` denominators (MOTA = -FP without GT).
Combined results are unaffected.

Input (issue 20): files are read and validated by ``crowdbench.datasets.formats.mot`` (``read_mot`` with
``role="gt"``/``"results"``, ``check_mot_pair``), the one validation layer of the format; bad input is a one-line
``FormatError`` naming file, line and field. ``lenient=True`` (``crowdbench eval mot --lenient``) accepts what
TrackEval (``MotChallenge2DBox``) accepts and computes a defined number from, and gives TrackEval's number:

* negative box widths / heights: TrackEval's IoU of such a box is 0 (area <= eps, or no overlap), so a GT box is a
  miss (FN) and a predicted one a false positive, and neither removes nor is removed by distractor matching;
* ground-truth conf (consider flag) any finite number below 2**31: the row is considered when
  ``int(conf) != 0``;
* result scores, ground-truth visibility and columns 9-10 (which TrackEval never reads for these metrics) any
  number, NaN and inf included; more than 10 columns (the extra ones are ignored);
* result classes any integer <= 1 (TrackEval refuses only classes > 1);
* MOT16/17/20 ground-truth classes outside TrackEval's table (1-13) in frames without predictions: dropped as
  non-pedestrians (TrackEval checks the classes only in frames having both GT and predictions, and refuses them
  there, as we do).

Still refused with ``lenient`` (TrackEval raises, or its number is not defined): non-numeric fields and ragged rows,
frames outside ``[1, seqLength]``, ids outside int64 or negative (TrackEval relabels ids by indexing an array with
them: a negative id aliases another, ``10**30`` overflows), duplicate ids in a frame, non-finite frames / ids /
boxes / GT conf / classes, non-integer frames, ids and classes (TrackEval truncates them with ``int()``; refused as
certainly corrupt), coordinates beyond ``MAX_COORD`` (10**6 px), result classes > 1 and GT classes outside the table
in frames with predictions.

``semantics="motmetrics"`` reproduces py-motmetrics 1.4.0 (metrics.md 6.2/6.4: last-ever-match continuation,
MT >= 0.8, its Frag, ``motp`` = mean 1 - IoU) by feeding our IoU distances (NaN where 1 - IoU > 0.5) into
``motmetrics.MOTAccumulator`` (its own ``iou_matrix`` fails on numpy 2). HOTA is not defined there (``None``).

MOTP: ``MOTP`` is the overlap convention (TrackEval / MOTChallenge devkit: mean IoU of matches, higher is better) and
``MOTP_distance`` = 1 - MOTP the py-motmetrics convention (mean 1 - IoU, lower is better). HIE (paper 004 Table 4)
reports 0.131 on train and 0.78 on test: the train figure is likely the motmetrics distance, the test figure likely the
server's overlap convention (likely, not certain).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

from crowdbench.bench.errors import fail
from crowdbench.bench.jsonout import dumps as strict_dumps
from crowdbench.bench.metrics.bootstrap import batched_values, load_npz, save_npz
from crowdbench.bench.metrics.cli import (
    add_bootstrap_arguments,
    bootstrap_summary,
    check_bootstrap_arguments,
    pct,
    print_intervals,
)
from crowdbench.bench.metrics.eval_args import add_eval_parser
from crowdbench.datasets.formats.errors import FormatError
from crowdbench.datasets.formats.mot import MOT_CLASSES, MotTable, check_mot_pair, mot_sequence_files, read_mot

__all__ = [
    "HOTA_ALPHAS",
    "MOTMetrics",
    "MOTResult",
    "MotResampler",
    "MotSequence",
    "add_command",
    "cmd_eval_mot",
    "evaluate_mot",
    "evaluate_mot_bootstrap",
    "evaluate_mot_files",
    "load_mot_sequences",
    "preprocess_sequence",
    "run_trackeval",
    "sequence_from_frames",
]

EPS = float(np.finfo(float).eps)
#: TrackEval ``HOTA.array_labels`` (exactly, e.g. 0.15000000000000002).
HOTA_ALPHAS: np.ndarray = np.arange(0.05, 0.99, 0.05)
BENCHMARKS = ("MOT15", "MOT16", "MOT17", "MOT20")
_PAIR_CHUNK = 1 << 22


# ----------------------------------------------------------------------------------------------------------- inputs
@dataclass
class MotSequence:
    """One sequence, already preprocessed: flat arrays of GT and predicted boxes (``x, y, w, h``).

    ``*_frames`` are 1-based frame numbers ``<= num_frames``; ids need only be unique within a frame.
    """

    name: str
    num_frames: int
    gt_frames: np.ndarray
    gt_ids: np.ndarray
    gt_boxes: np.ndarray
    pred_frames: np.ndarray
    pred_ids: np.ndarray
    pred_boxes: np.ndarray

    def __post_init__(self) -> None:
        for side in ("gt", "pred"):
            fr = np.asarray(getattr(self, f"{side}_frames"), dtype=np.int64).reshape(-1)
            ids = np.asarray(getattr(self, f"{side}_ids"), dtype=np.int64).reshape(-1)
            boxes = np.asarray(getattr(self, f"{side}_boxes"), dtype=np.float64).reshape(-1, 4)
            if not len(fr) == len(ids) == len(boxes):
                raise ValueError(f"{self.name}: {side} frames, ids and boxes differ in length")
            if len(fr) and (fr.min() < 1 or fr.max() > self.num_frames):
                raise ValueError(f"{self.name}: {side} frame outside 1..{self.num_frames}")
            if len(fr):
                order = np.lexsort((ids, fr))
                dup = (fr[order][1:] == fr[order][:-1]) & (ids[order][1:] == ids[order][:-1])
                if dup.any():
                    k = order[1:][np.argmax(dup)]
                    raise ValueError(f"{self.name}: {side} id {ids[k]} appears twice in frame {fr[k]}")
            setattr(self, f"{side}_frames", fr)
            setattr(self, f"{side}_ids", ids)
            setattr(self, f"{side}_boxes", boxes)


def sequence_from_frames(
    name: str,
    gt: Sequence[tuple[np.ndarray, np.ndarray]],
    pred: Sequence[tuple[np.ndarray, np.ndarray]],
    num_frames: int | None = None,
) -> MotSequence:
    """Build a :class:`MotSequence` from per-frame ``(ids (n,), boxes (n, 4) xywh)`` lists (index t = frame t + 1)."""
    num_frames = max(len(gt), len(pred)) if num_frames is None else num_frames

    def flat(frames: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ids = [np.asarray(i, dtype=np.int64).reshape(-1) for i, _ in frames]
        boxes = [np.asarray(b, dtype=np.float64).reshape(-1, 4) for _, b in frames]
        fr = [np.full(len(i), t + 1, dtype=np.int64) for t, i in enumerate(ids)]
        if not ids:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4))
        return np.concatenate(fr), np.concatenate(ids), np.concatenate(boxes)

    return MotSequence(name, num_frames, *flat(gt), *flat(pred))


# ---------------------------------------------------------------------------------------------------------- results
@dataclass
class MOTMetrics:
    """CLEAR MOT + Identity (+ HOTA) of one sequence or of the combination (TrackEval field meanings).

    ``TP`` = TrackEval ``CLR_TP`` (motmetrics: num_matches + num_switches). ``MOTP`` is the overlap (mean IoU),
    ``MOTP_distance`` = 1 - MOTP (py-motmetrics ``motp``). HOTA fields are alpha-averaged; ``HOTA_alpha`` etc. hold
    the 19 per-alpha values (``None`` in motmetrics mode).
    """

    num_frames: int = 0
    num_gt_dets: int = 0
    num_pred_dets: int = 0
    num_gt_ids: int = 0
    num_pred_ids: int = 0
    TP: int = 0
    FP: int = 0
    FN: int = 0
    IDSW: int = 0
    Frag: int = 0
    MT: int = 0
    PT: int = 0
    ML: int = 0
    MOTP_sum: float = 0.0
    MOTA: float = 0.0
    MODA: float = 0.0
    MOTP: float = 0.0
    MOTP_distance: float = 1.0
    recall: float = 0.0
    precision: float = 0.0
    IDTP: int = 0
    IDFP: int = 0
    IDFN: int = 0
    IDF1: float = 0.0
    IDP: float = 0.0
    IDR: float = 0.0
    HOTA: float | None = None
    DetA: float | None = None
    AssA: float | None = None
    LocA: float | None = None
    DetRe: float | None = None
    DetPr: float | None = None
    AssRe: float | None = None
    AssPr: float | None = None
    HOTA_alpha: list[float] | None = None
    DetA_alpha: list[float] | None = None
    AssA_alpha: list[float] | None = None
    LocA_alpha: list[float] | None = None
    HOTA_TP_alpha: list[int] | None = None
    HOTA_FN_alpha: list[int] | None = None
    HOTA_FP_alpha: list[int] | None = None
    _hota_arrays: dict[str, np.ndarray] | None = field(default=None, repr=False)

    def finalize_clear(self) -> None:
        """TrackEval ``CLEAR._compute_final_fields`` / ``Identity._compute_final_fields``."""
        gt = max(1.0, self.TP + self.FN)
        self.MOTA = (self.TP - self.FP - self.IDSW) / gt
        self.MODA = (self.TP - self.FP) / gt
        self.MOTP = self.MOTP_sum / max(1.0, self.TP)
        self.MOTP_distance = 1.0 - self.MOTP
        self.recall = self.TP / gt
        self.precision = self.TP / max(1.0, self.TP + self.FP)
        self.IDR = self.IDTP / max(1.0, self.IDTP + self.IDFN)
        self.IDP = self.IDTP / max(1.0, self.IDTP + self.IDFP)
        self.IDF1 = self.IDTP / max(1.0, self.IDTP + 0.5 * self.IDFP + 0.5 * self.IDFN)

    def set_hota(self, tp: np.ndarray, fn: np.ndarray, fp: np.ndarray, ass: dict[str, np.ndarray]) -> None:
        """TrackEval ``HOTA._compute_final_fields`` from per-alpha counts and AssA/AssRe/AssPr/LocA arrays."""
        det_re = tp / np.maximum(1, tp + fn)
        det_pr = tp / np.maximum(1, tp + fp)
        det_a = tp / np.maximum(1, tp + fn + fp)
        hota = np.sqrt(det_a * ass["AssA"])
        arrays = {"HOTA": hota, "DetA": det_a, "DetRe": det_re, "DetPr": det_pr, **ass}
        self._hota_arrays = {**arrays, "HOTA_TP": tp, "HOTA_FN": fn, "HOTA_FP": fp}
        for k, v in arrays.items():
            setattr(self, k, float(np.mean(v)))
        self.HOTA_alpha, self.DetA_alpha = hota.tolist(), det_a.tolist()
        self.AssA_alpha, self.LocA_alpha = ass["AssA"].tolist(), ass["LocA"].tolist()
        self.HOTA_TP_alpha, self.HOTA_FN_alpha, self.HOTA_FP_alpha = ([int(x) for x in a] for a in (tp, fn, fp))

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("_hota_arrays")
        return d


@dataclass
class MOTResult:
    """Per-sequence and combined metrics."""

    semantics: str
    benchmark: str | None
    sequences: dict[str, MOTMetrics]
    combined: MOTMetrics

    def to_dict(self) -> dict:
        return {
            "semantics": self.semantics,
            "benchmark": self.benchmark,
            "combined": self.combined.to_dict(),
            "sequences": {k: v.to_dict() for k, v in self.sequences.items()},
        }


# ------------------------------------------------------------------------------------------------------------- core
def _box_iou_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of row-aligned ``xywh`` boxes, arithmetic of TrackEval ``_calculate_box_ious`` (bit-identical)."""
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.maximum(np.minimum(ax2, bx2) - np.maximum(a[:, 0], b[:, 0]), 0)
    ih = np.maximum(np.minimum(ay2, by2) - np.maximum(a[:, 1], b[:, 1]), 0)
    inter = iw * ih
    area_a = (ax2 - a[:, 0]) * (ay2 - a[:, 1])
    area_b = (bx2 - b[:, 0]) * (by2 - b[:, 1])
    union = area_a + area_b - inter
    bad = (area_a <= EPS) | (area_b <= EPS) | (union <= EPS)
    inter[bad] = 0
    union[union <= EPS] = 1
    return inter / union


@dataclass
class _Pairs:
    """Same-frame GT x prediction pairs with IoU > 0 (indices into frame-sorted arrays), frame-major, GT-major."""

    gt: np.ndarray
    pred: np.ndarray
    iou: np.ndarray


def _frame_pairs(gt_fr: np.ndarray, pr_fr: np.ndarray, gt_box: np.ndarray, pr_box: np.ndarray, nf: int) -> _Pairs:
    """All overlapping same-frame pairs; inputs sorted by frame."""
    npr = np.bincount(pr_fr, minlength=nf + 1)
    pr_start = np.concatenate([[0], np.cumsum(npr)[:-1]])
    per_gt = npr[gt_fr]  # pairs of each GT det
    gx1, px1 = gt_box[:, 0].copy(), pr_box[:, 0].copy()
    gx2, px2 = gt_box[:, 0] + gt_box[:, 2], pr_box[:, 0] + pr_box[:, 2]
    out_g, out_p, out_v = [], [], []
    csum = np.cumsum(per_gt)
    start = 0
    while start < len(gt_fr):
        base = csum[start - 1] if start else 0
        stop = int(np.searchsorted(csum, base + _PAIR_CHUNK, side="right"))
        stop = max(stop, start + 1)
        cnt = per_gt[start:stop]
        total = int(cnt.sum())
        if total:
            gi = np.repeat(np.arange(start, stop), cnt)
            offs = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            pi = pr_start[gt_fr[gi]] + offs
            # cheap pre-filter on x overlap (same arithmetic as the IoU, so no pair with IoU > 0 is lost)
            xo = np.minimum(gx2[gi], px2[pi]) - np.maximum(gx1[gi], px1[pi]) > 0
            gi, pi = gi[xo], pi[xo]
            v = _box_iou_pairs(gt_box[gi], pr_box[pi])
            keep = v > 0
            out_g.append(gi[keep])
            out_p.append(pi[keep])
            out_v.append(v[keep])
        start = stop
    if not out_g:
        return _Pairs(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    return _Pairs(np.concatenate(out_g), np.concatenate(out_p), np.concatenate(out_v))


def _components(gt: np.ndarray, pred: np.ndarray, n_gt: int, n_pred: int) -> np.ndarray:
    """Connected-component label of each edge of the bipartite GT-det / pred-det graph."""
    if len(gt) == 0:
        return np.zeros(0, np.int64)
    n = n_gt + n_pred
    graph = coo_array((np.ones(len(gt), np.int8), (gt, pred + n_gt)), shape=(n, n)).tocsr()
    _, labels = connected_components(graph, directed=False)
    return labels[gt]


def _match_static(gt: np.ndarray, pred: np.ndarray, w: np.ndarray, n_gt: int, n_pred: int) -> np.ndarray:
    """Maximum-weight matching (per frame, positive weights): boolean mask of the chosen edges."""
    chosen = np.zeros(len(gt), bool)
    if len(gt) == 0:
        return chosen
    comp = _components(gt, pred, n_gt, n_pred)
    order = np.argsort(comp, kind="stable")
    comp_s = comp[order]
    starts = np.flatnonzero(np.r_[True, comp_s[1:] != comp_s[:-1]])
    sizes = np.diff(np.r_[starts, len(comp_s)])
    # distinct gt / pred per component
    n_g = np.bincount(comp, minlength=comp.max() + 1)
    g_first = np.zeros(len(gt), bool)
    g_first[np.unique(gt, return_index=True)[1]] = True
    p_first = np.zeros(len(pred), bool)
    p_first[np.unique(pred, return_index=True)[1]] = True
    ng = np.bincount(comp[g_first], minlength=len(n_g))
    npd = np.bincount(comp[p_first], minlength=len(n_g))
    star = (ng == 1) | (npd == 1)  # includes single edges
    # stars: best edge (first of the maxima, like the solver on a single row/column)
    in_star = star[comp]
    if in_star.any():
        idx = np.flatnonzero(in_star)
        o = np.lexsort((idx, -w[idx], comp[idx]))
        sidx = idx[o]
        first = np.r_[True, comp[sidx][1:] != comp[sidx][:-1]]
        chosen[sidx[first]] = True
    for s, z in zip(starts, sizes, strict=True):
        c = comp_s[s]
        if star[c]:
            continue
        e = order[s : s + z]
        rows, ri = np.unique(gt[e], return_inverse=True)
        cols, ci = np.unique(pred[e], return_inverse=True)
        m = np.zeros((len(rows), len(cols)))
        m[ri, ci] = w[e]
        r, cc = linear_sum_assignment(m, maximize=True)
        lut = {(a, b): k for k, a, b in zip(e, ri, ci, strict=True)}
        for a, b in zip(r, cc, strict=True):
            k = lut.get((a, b))
            if k is not None and w[k] > EPS:
                chosen[k] = True
    return chosen


def _seq_sum_by_frame(values: np.ndarray, frames: np.ndarray) -> float:
    """Sum ``values`` frame by frame left to right, then the frame sums in order (TrackEval's Python ``sum``)."""
    if len(values) == 0:
        return 0.0
    starts = np.flatnonzero(np.r_[True, frames[1:] != frames[:-1]])
    pos = np.arange(len(values)) - np.repeat(starts, np.diff(np.r_[starts, len(values)]))
    grid = np.zeros((len(starts), int(pos.max()) + 1))
    grid[np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(values)])), pos] = values
    acc = np.zeros(len(starts))
    for j in range(grid.shape[1]):
        acc = acc + grid[:, j]
    return float(np.cumsum(acc)[-1])


@dataclass
class _Prepared:
    """A sequence sorted by frame with contiguous ids and its overlapping pairs."""

    seq: MotSequence
    gfr: np.ndarray
    gid: np.ndarray
    pfr: np.ndarray
    pid: np.ndarray
    n_gid: int
    n_pid: int
    pairs: _Pairs


def _prepare(seq: MotSequence) -> _Prepared:
    go = np.argsort(seq.gt_frames, kind="stable")
    po = np.argsort(seq.pred_frames, kind="stable")
    gfr, pfr = seq.gt_frames[go], seq.pred_frames[po]
    ug, gid = np.unique(seq.gt_ids[go], return_inverse=True)
    up, pid = np.unique(seq.pred_ids[po], return_inverse=True)
    pairs = _frame_pairs(gfr, pfr, seq.gt_boxes[go], seq.pred_boxes[po], seq.num_frames)
    return _Prepared(seq, gfr, gid.reshape(-1), pfr, pid.reshape(-1), len(ug), len(up), pairs)


def _prev_active_rows(p: _Prepared) -> np.ndarray:
    """For each GT detection, the row of the same GT id in the previous active frame (frames having both GT and
    predictions, TrackEval skips the others without resetting its state); -1 where there is none."""
    active = np.zeros(p.seq.num_frames + 2, bool)
    active[np.intersect1d(p.gfr, p.pfr)] = True
    act_rank = np.cumsum(active)  # index of each active frame
    rows_act = np.flatnonzero(active[p.gfr])
    o = rows_act[np.lexsort((p.gfr[rows_act], p.gid[rows_act]))]
    prev_row = np.full(len(p.gfr), -1, np.int64)
    same = p.gid[o][1:] == p.gid[o][:-1]
    ok = same & (act_rank[p.gfr[o][1:]] - act_rank[p.gfr[o][:-1]] == 1)
    prev_row[o[1:][ok]] = o[:-1][ok]
    return prev_row


def _clear_matches(p: _Prepared, eg: np.ndarray, ep: np.ndarray, ev: np.ndarray, prev_row: np.ndarray) -> np.ndarray:
    """The matched prediction of each GT detection (-1: none) over candidate pairs ``eg``, ``ep`` of IoU ``ev``:
    single-pair components directly, the others by Hungarian in frame order on ``IoU + 1000 * continuation``."""
    ng, npd = len(p.gfr), len(p.pfr)
    match = np.full(ng, -1, np.int64)
    comp = _components(eg, ep, ng, npd)
    if not len(comp):
        return match
    csize = np.bincount(comp)
    single = csize[comp] == 1
    match[eg[single]] = ep[single]
    multi = np.flatnonzero(~single)
    if not len(multi):
        return match
    mo = multi[np.lexsort((multi, comp[multi]))]
    cs = comp[mo]
    starts = np.flatnonzero(np.r_[True, cs[1:] != cs[:-1]])
    ends = np.r_[starts[1:], len(mo)]
    for s in starts[np.argsort(p.gfr[eg[mo[starts]]], kind="stable")]:  # components in frame order
        e = mo[s : ends[np.searchsorted(starts, s)]]
        rows, ri = np.unique(eg[e], return_inverse=True)
        cols, ci = np.unique(ep[e], return_inverse=True)
        prev = prev_row[eg[e]]
        prev_pred = np.where(prev >= 0, match[prev], -1)
        prev_pid = np.where(prev_pred >= 0, p.pid[prev_pred], -1)
        mat = np.zeros((len(rows), len(cols)))
        mat[ri, ci] = ev[e] + 1000.0 * (p.pid[ep[e]] == prev_pid)
        r, c = linear_sum_assignment(mat, maximize=True)
        good = mat[r, c] > EPS
        match[rows[r[good]]] = cols[c[good]]
    return match


def _track_counts(p: _Prepared, m: MOTMetrics, match: np.ndarray, prev_row: np.ndarray) -> np.ndarray:
    """IDSW (last-ever match differs), Frag (tracked now, not in the previous active frame) and MT / PT / ML into
    ``m``; returns the GT rows whose match switched id."""
    matched = match >= 0
    mi = np.flatnonzero(matched)
    mo = mi[np.lexsort((p.gfr[mi], p.gid[mi]))]
    mpid = p.pid[match[mo]]
    switched = mo[1:][(p.gid[mo][1:] == p.gid[mo][:-1]) & (mpid[1:] != mpid[:-1])]
    m.IDSW = len(switched)
    prev_tracked = np.zeros(len(match), bool)
    has_prev = prev_row >= 0
    prev_tracked[has_prev] = matched[prev_row[has_prev]]
    starts_count = np.bincount(p.gid[matched & ~prev_tracked], minlength=p.n_gid)
    m.Frag = int(np.sum(starts_count[starts_count > 0] - 1))
    cnt = np.bincount(p.gid, minlength=p.n_gid)
    mcnt = np.bincount(p.gid[matched], minlength=p.n_gid)
    ratio = mcnt[cnt > 0] / cnt[cnt > 0]
    m.MT = int(np.sum(ratio > 0.8))
    m.PT = int(np.sum(ratio >= 0.2)) - m.MT
    m.ML = p.n_gid - m.MT - m.PT
    return switched


def _identity_tp(p: _Prepared, idp: np.ndarray) -> int:
    """IDTP: the best one-to-one assignment of GT to predicted ids by their counts of pairs ``idp`` (IoU >= t)."""
    key = p.gid[p.pairs.gt[idp]] * p.n_pid + p.pid[p.pairs.pred[idp]]
    uk, kc = np.unique(key, return_counts=True)
    if not len(uk):
        return 0
    ug, gi = np.unique(uk // p.n_pid, return_inverse=True)
    ut, ti = np.unique(uk % p.n_pid, return_inverse=True)
    mat = np.zeros((len(ug), len(ut)))
    mat[gi, ti] = kc
    r, c = linear_sum_assignment(mat, maximize=True)
    return int(mat[r, c].sum())


def _clear_identity(p: _Prepared, threshold: float, keep: dict | None = None) -> MOTMetrics:
    """TrackEval ``CLEAR.eval_sequence`` + ``Identity.eval_sequence`` semantics (``keep``: filled with the matches,
    for :class:`MotResampler`)."""
    ng, npd = len(p.gfr), len(p.pfr)
    m = MOTMetrics(num_gt_dets=ng, num_pred_dets=npd, num_gt_ids=p.n_gid, num_pred_ids=p.n_pid)
    if npd == 0 or ng == 0:
        m.FN, m.FP, m.IDFN, m.IDFP = ng, npd, ng, npd
        m.ML = p.n_gid
        m.finalize_clear()
        return m
    m.num_frames = p.seq.num_frames
    pr = p.pairs
    cand = pr.iou >= threshold - EPS
    eg, ep, ev = pr.gt[cand], pr.pred[cand], pr.iou[cand]
    prev_row = _prev_active_rows(p)
    match = _clear_matches(p, eg, ep, ev, prev_row)
    matched = match >= 0
    tp = int(matched.sum())
    m.TP, m.FN, m.FP = tp, ng - tp, npd - tp
    iou_m = np.zeros(0)
    if tp:  # MOTP in TrackEval's summation order (GT row order inside a frame)
        key_m = np.flatnonzero(matched) * npd + match[matched]
        iou_m = ev[np.searchsorted(eg * npd + ep, key_m)]  # eg sorted frame-major, gt-major, pred ascending
        m.MOTP_sum = _seq_sum_by_frame(iou_m, p.gfr[matched])
    switched = _track_counts(p, m, match, prev_row)
    idp = pr.iou >= threshold
    m.IDTP = _identity_tp(p, idp)
    m.IDFN, m.IDFP = ng - m.IDTP, npd - m.IDTP
    m.finalize_clear()
    if keep is not None:
        keep.update(matched=np.flatnonzero(matched), iou_m=iou_m)
        keep.update(switch_rows=switched, id_gt=pr.gt[idp], id_pred=pr.pred[idp])
    return m


def _ass_sums(mc: np.ndarray, gck: np.ndarray, tck: np.ndarray, tp: np.ndarray) -> dict[str, np.ndarray]:
    """AssA / AssRe / AssPr (``(..., alpha)``) from matched counts ``mc`` (``(..., alpha, pair)``), the pairs' GT and
    predicted track lengths ``gck`` / ``tck`` (``(..., 1, pair)``) and HOTA TP ``(..., alpha)``. Shared by the point
    estimate and :class:`MotResampler` so that unit weights reproduce it bit for bit."""
    t = np.maximum(1.0, tp)
    c = np.ascontiguousarray  # C order: pairwise summation along the last axis, as for the point estimate

    return {
        "AssA": np.sum(c(mc * (mc / np.maximum(1, gck + tck - mc))), axis=-1) / t,
        "AssRe": np.sum(c(mc * (mc / np.maximum(1, gck))), axis=-1) / t,
        "AssPr": np.sum(c(mc * (mc / np.maximum(1, tck))), axis=-1) / t,
    }


def _hota(p: _Prepared, m: MOTMetrics, keep: dict | None = None) -> None:
    """TrackEval ``HOTA.eval_sequence`` semantics; fills the HOTA fields of ``m`` (``keep``: the matches)."""
    na = len(HOTA_ALPHAS)
    ng, npd = len(p.gfr), len(p.pfr)
    if ng == 0 or npd == 0:
        z = np.zeros(na)
        m.set_hota(z, np.full(na, float(ng)), np.full(na, float(npd)), {
            "AssA": z, "AssRe": z, "AssPr": z, "LocA": np.ones(na)
        })  # fmt: skip
        return
    pr = p.pairs
    sim = pr.iou
    rs = np.bincount(pr.gt, weights=sim, minlength=ng)
    cs = np.bincount(pr.pred, weights=sim, minlength=npd)
    denom = rs[pr.gt] + cs[pr.pred] - sim
    sim_iou = np.where(denom > EPS, sim / np.where(denom > EPS, denom, 1.0), 0.0)
    key = p.gid[pr.gt] * p.n_pid + p.pid[pr.pred]
    uk, inv = np.unique(key, return_inverse=True)
    pm = np.bincount(inv, weights=sim_iou)
    gc = np.bincount(p.gid, minlength=p.n_gid).astype(float)
    tc = np.bincount(p.pid, minlength=p.n_pid).astype(float)
    gas = pm / (gc[uk // p.n_pid] + tc[uk % p.n_pid] - pm)
    score = gas[inv] * sim
    chosen = _match_static(pr.gt, pr.pred, score, ng, npd)
    msim, mkey = sim[chosen], inv[chosen]
    mframe = p.gfr[pr.gt[chosen]]
    tp, loc = np.zeros(na), np.zeros(na)
    okm = msim[:, None] >= HOTA_ALPHAS[None, :] - EPS  # matches x alpha
    used = np.unique(mkey[okm[:, 0]])  # pairs with a match at some alpha (the others add 0)
    mc = np.zeros((na, len(used)))
    col = np.searchsorted(used, mkey)
    for a in range(na):
        ok = okm[:, a]
        tp[a] = ok.sum()
        loc[a] = _seq_sum_by_frame(msim[ok], mframe[ok])
        mc[a] = np.bincount(col[ok], minlength=len(used))
    loc_a = np.maximum(1e-10, loc) / np.maximum(1e-10, tp)
    ass = _ass_sums(mc, gc[uk[used] // p.n_pid][None], tc[uk[used] % p.n_pid][None], tp)
    if keep is not None:
        keep.update(hota_gt=pr.gt[chosen], hota_sim=msim, hota_pair=uk[mkey])
    m.set_hota(tp, ng - tp, npd - tp, {**ass, "LocA": loc_a})


def _combine(per: Mapping[str, MOTMetrics], with_hota: bool) -> MOTMetrics:
    """TrackEval ``combine_sequences``: summed counts (HOTA: TP-weighted AssA/AssRe/AssPr/LocA)."""
    c = MOTMetrics()
    summed = ["num_frames", "num_gt_dets", "num_pred_dets", "num_gt_ids", "num_pred_ids", "TP", "FP", "FN", "IDSW"]
    summed += ["Frag", "MT", "PT", "ML", "MOTP_sum", "IDTP", "IDFP", "IDFN"]
    for f in summed:
        setattr(c, f, sum(getattr(v, f) for v in per.values()))
    c.finalize_clear()
    if with_hota and per:
        arr = [v._hota_arrays for v in per.values()]
        tp = sum(a["HOTA_TP"] for a in arr)
        fn = sum(a["HOTA_FN"] for a in arr)
        fp = sum(a["HOTA_FP"] for a in arr)
        ass = {k: sum(a[k] * a["HOTA_TP"] for a in arr) / np.maximum(1.0, tp) for k in ("AssA", "AssRe", "AssPr")}
        ass["LocA"] = np.maximum(1e-10, sum(a["LocA"] * a["HOTA_TP"] for a in arr)) / np.maximum(1e-10, tp)
        c.set_hota(tp, fn, fp, ass)
    return c


def _motmetrics_eval(preps: Sequence[_Prepared], threshold: float) -> MOTResult:
    """py-motmetrics semantics: our IoU distances fed to ``MOTAccumulator``, then ``compute_many``."""
    try:
        import motmetrics as mm
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "semantics='motmetrics' needs the 'motmetrics' package (pip install motmetrics==1.4.0)"
        ) from exc
    accs, names = [], []
    for p in preps:
        acc = mm.MOTAccumulator(auto_id=False)
        seq = p.seq
        gt_ids_raw = np.unique(seq.gt_ids)[p.gid] if len(p.gid) else p.gid
        pr_ids_raw = np.unique(seq.pred_ids)[p.pid] if len(p.pid) else p.pid
        gs = np.searchsorted(p.gfr, np.arange(seq.num_frames + 2))
        ps = np.searchsorted(p.pfr, np.arange(seq.num_frames + 2))
        pair_start = np.searchsorted(p.gfr[p.pairs.gt], np.arange(seq.num_frames + 2))
        frames = np.union1d(p.gfr, p.pfr)
        for f in frames:
            g0, g1, q0, q1 = gs[f], gs[f + 1], ps[f], ps[f + 1]
            d = np.full((g1 - g0, q1 - q0), np.nan) if g1 > g0 and q1 > q0 else np.empty((0, 0))
            if g1 > g0 and q1 > q0:
                e0, e1 = pair_start[f], pair_start[f + 1]
                dist = 1.0 - p.pairs.iou[e0:e1]
                ok = dist <= 1.0 - threshold
                d[p.pairs.gt[e0:e1][ok] - g0, p.pairs.pred[e0:e1][ok] - q0] = dist[ok]
            acc.update(gt_ids_raw[g0:g1], pr_ids_raw[q0:q1], d, frameid=int(f))
        accs.append(acc)
        names.append(seq.name)
    mh = mm.metrics.create()
    wanted = [
        "num_frames", "num_matches", "num_switches", "num_false_positives", "num_misses", "num_fragmentations",
        "mostly_tracked", "partially_tracked", "mostly_lost", "num_objects", "num_predictions", "num_unique_objects",
        "motp", "idtp", "idfp", "idfn",
    ]  # fmt: skip
    df = mh.compute_many(accs, metrics=wanted, names=names, generate_overall=True)

    def conv(row, p: _Prepared | None) -> MOTMetrics:
        m = MOTMetrics(
            num_frames=int(row["num_frames"]),
            num_gt_dets=int(row["num_objects"]),
            num_pred_dets=int(row["num_predictions"]),
            num_gt_ids=int(row["num_unique_objects"]),
            num_pred_ids=p.n_pid if p is not None else sum(q.n_pid for q in preps),
            TP=int(row["num_matches"] + row["num_switches"]),
            FP=int(row["num_false_positives"]),
            FN=int(row["num_misses"]),
            IDSW=int(row["num_switches"]),
            Frag=int(row["num_fragmentations"]),
            MT=int(row["mostly_tracked"]),
            PT=int(row["partially_tracked"]),
            ML=int(row["mostly_lost"]),
            IDTP=int(row["idtp"]),
            IDFP=int(row["idfp"]),
            IDFN=int(row["idfn"]),
        )
        motp = float(row["motp"])
        m.MOTP_sum = (1.0 - motp) * m.TP if m.TP else 0.0
        m.finalize_clear()
        if m.TP:
            m.MOTP_distance, m.MOTP = motp, 1.0 - motp
        return m

    per = {n: conv(df.loc[n], p) for n, p in zip(names, preps, strict=True)}
    return MOTResult("motmetrics", None, per, conv(df.loc["OVERALL"], None))


def evaluate_mot(
    sequences: Sequence[MotSequence],
    *,
    semantics: str = "trackeval",
    threshold: float = 0.5,
    hota: bool = True,
) -> MOTResult:
    """CLEAR MOT + Identity (+ HOTA with TrackEval semantics) of preprocessed sequences, combined in the given order.

    ``semantics``: ``"trackeval"`` (default, the MOTChallenge reference) or ``"motmetrics"`` (py-motmetrics 1.4.0;
    needs the package; no HOTA).
    """
    if semantics not in ("trackeval", "motmetrics"):
        raise ValueError(f"semantics must be 'trackeval' or 'motmetrics', got {semantics!r}")
    names = [s.name for s in sequences]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate sequence names in {names}")
    preps = [_prepare(s) for s in sequences]
    if semantics == "motmetrics":
        return _motmetrics_eval(preps, threshold)
    per = {}
    for p in preps:
        m = _clear_identity(p, threshold)
        if hota:
            _hota(p, m)
        per[p.seq.name] = m
    return MOTResult("trackeval", None, per, _combine(per, hota))


# -------------------------------------------------------------------------------------------------------- bootstrap
DEFAULT_BLOCK_FRAMES = 50


def _pairs_by_unit(unit: np.ndarray, key: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Distinct ``key`` values (sorted) and the sparse ``(unit, key index, count or summed weight)`` entries."""
    uk, kinv = np.unique(key, return_inverse=True)
    ue, einv = np.unique(unit * max(1, len(uk)) + kinv.reshape(-1), return_inverse=True)
    vals = np.bincount(einv.reshape(-1), weights=weights, minlength=len(ue))
    return uk, ue // max(1, len(uk)), ue % max(1, len(uk)), vals


class MotResampler:
    """Per-unit sufficient statistics of a TrackEval-semantics MOT evaluation (:class:`bootstrap.Resampler`).

    Units are frame blocks of ``block_frames`` contiguous frames within a sequence (the last block of a sequence may
    be shorter), or whole sequences (``block_frames=None``). CLEAR counts (TP, FP, FN, IDSW, MOTP's IoU sum) are
    per-block sums. IDF1: per-block GT-track x predicted-track overlap counts (IoU >= threshold, sparse); a
    replicate recomputes the maximum-weight ID matching on the block-weighted overlap matrix (per connected
    component: single pairs and stars in closed form, the rest with ``linear_sum_assignment``). HOTA: the per-frame
    HOTA matching is kept; per block and alpha the matched pair counts, HOTA TP and LocA sums, per block the track
    lengths; a replicate recomputes AssA / AssRe / AssPr per sequence from the weighted sums and combines the
    sequences as TrackEval does. With all weights 1 MOTA, IDF1, IDP, IDR, HOTA, DetA, AssA equal the point estimate
    bit for bit; MOTP and LocA to ~1e-15 (summation order). IDF1 and the association terms are convex in the
    weights, so their replicates sit above the point estimate on average: use the centred interval (``centre``).
    """

    kind = "MotResampler"
    #: keys whose replicates the resampling biases upwards (convex in the block weights): report their
    #: :func:`~crowdbench.bench.metrics.bootstrap.centred_interval`
    centre = ("IDF1", "IDP", "IDR", "HOTA", "AssA", "AssRe", "AssPr")

    def __init__(self, unit: str, units: Sequence[str], arrays: Mapping[str, np.ndarray]) -> None:
        self.unit, self.units, self.arrays = unit, list(units), {k: np.asarray(v) for k, v in arrays.items()}
        a, n = self.arrays, len(self.units)
        self.has_hota = "hota_tp" in a

        def sparse(u: np.ndarray, c: np.ndarray, v: np.ndarray, ncol: int):  # n_units x ncol, CSC for W @ M
            return coo_array((v.astype(float), (u, c)), shape=(n, ncol)).tocsc()

        self._id = sparse(a["id_unit"], a["id_pair"], a["id_count"], len(a["id_g"]))
        self._components()
        if self.has_hota:
            na, npair = len(HOTA_ALPHAS), len(a["hp_g"])
            self._gl = sparse(a["gl_unit"], a["gl_track"], a["gl_count"], int(a["n_tracks"][0]))
            self._tl = sparse(a["tl_unit"], a["tl_track"], a["tl_count"], int(a["n_tracks"][1]))
            cols = (np.arange(na)[None, :] * npair + a["hm_pair"][:, None]).reshape(-1)
            self._hm = sparse(np.repeat(a["hm_unit"], na), cols, a["hm_count"].reshape(-1), na * npair)

    def _components(self) -> None:
        """Connected components of the union ID-overlap graph: singles, stars and general ones."""
        g, t = self.arrays["id_g"], self.arrays["id_t"]
        self._single = self._star_order = self._star_starts = np.zeros(0, np.int64)
        self._general: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        if len(g) == 0:
            return
        ng = int(g.max()) + 1
        comp = _components(g, t, ng, int(t.max()) + 1)
        n_e = np.bincount(comp)
        n_g = np.bincount(comp[np.unique(g, return_index=True)[1]], minlength=len(n_e))
        n_t = np.bincount(comp[np.unique(t, return_index=True)[1]], minlength=len(n_e))
        self._single = np.flatnonzero(n_e[comp] == 1)
        star = ((n_g == 1) | (n_t == 1)) & (n_e > 1)
        idx = np.flatnonzero(star[comp])
        self._star_order = idx[np.argsort(comp[idx], kind="stable")]
        cs = comp[self._star_order]
        self._star_starts = np.flatnonzero(np.r_[True, cs[1:] != cs[:-1]]) if len(cs) else np.zeros(0, np.int64)
        for c in np.flatnonzero(~star & (n_e > 1)):
            e = np.flatnonzero(comp == c)
            _, ri = np.unique(g[e], return_inverse=True)
            _, ci = np.unique(t[e], return_inverse=True)
            self._general.append((e, ri.reshape(-1), ci.reshape(-1)))

    # ---------------------------------------------------------------------------------------------------- values
    def values(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """``weights`` (R x units) -> MOTA, MOTP, IDF1, IDP, IDR (+ HOTA, DetA, AssA, LocA) per replicate."""
        return batched_values(weights, len(self.units), self._batch)

    def _idtp(self, wf: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray((self._id.T @ wf.T).T)  # R x id pairs: weighted overlap counts
        idtp = x[:, self._single].sum(axis=1)
        if len(self._star_order):
            idtp = idtp + np.maximum.reduceat(x[:, self._star_order], self._star_starts, axis=1).sum(axis=1)
        for e, ri, ci in self._general:
            sub = x[:, e]
            mat = np.zeros((ri.max() + 1, ci.max() + 1))
            for r in range(len(x)):
                mat[ri, ci] = sub[r]
                rr, cc = linear_sum_assignment(mat, maximize=True)
                idtp[r] += mat[rr, cc].sum()
        return np.rint(idtp).astype(np.int64)

    def _batch(self, w: np.ndarray) -> dict[str, np.ndarray]:
        a = self.arrays
        wi, wf = w.astype(np.int64), w.astype(np.float64)
        ng, npd, tp, idsw = (wi @ a["clear"]).T  # clear: units x (GT dets, pred dets, TP, IDSW)
        fn, fp = ng - tp, npd - tp
        gt = np.maximum(1.0, tp + fn)
        out = {"MOTA": (tp - fp - idsw) / gt, "MODA": (tp - fp) / gt}
        out.update(FP=fp.astype(np.float64), FN=fn.astype(np.float64), IDSw=idsw.astype(np.float64))  # table counts
        out["MOTP"] = (wf @ a["motp_sum"]) / np.maximum(1.0, tp)
        idtp = self._idtp(wf)
        idfn, idfp = ng - idtp, npd - idtp
        out["IDR"] = idtp / np.maximum(1.0, idtp + idfn)
        out["IDP"] = idtp / np.maximum(1.0, idtp + idfp)
        out["IDF1"] = idtp / np.maximum(1.0, idtp + 0.5 * idfp + 0.5 * idfn)
        if self.has_hota:
            out.update(self._hota_values(wi, wf))
        return out

    def _hota_values(self, wi: np.ndarray, wf: np.ndarray) -> dict[str, np.ndarray]:
        a = self.arrays
        na, npair, r = len(HOTA_ALPHAS), len(a["hp_g"]), len(wi)
        gl = np.ascontiguousarray((self._gl.T @ wf.T).T)
        tl = np.ascontiguousarray((self._tl.T @ wf.T).T)
        mc = np.ascontiguousarray((self._hm.T @ wf.T).T).reshape(r, na, npair)
        seq_of_unit, seq_of_pair = a["unit_seq"], a["hp_seq"]
        tp = fn = fp = ass_acc = loc_acc = 0
        ass_keys = ("AssA", "AssRe", "AssPr")
        for s in range(int(a["n_seq"][0])):
            us = np.flatnonzero(seq_of_unit == s)
            ps = np.flatnonzero(seq_of_pair == s)
            tp_s = (wi[:, us] @ a["hota_tp"][us]).astype(np.float64)  # R x alpha
            ng_s, npd_s = (wi[:, us] @ a["clear"][us, :2]).T.astype(np.float64)
            if len(ps):
                p0, p1 = ps[0], ps[-1] + 1
                ass = _ass_sums(
                    mc[:, :, p0:p1], gl[:, a["hp_g"][p0:p1]][:, None], tl[:, a["hp_t"][p0:p1]][:, None], tp_s
                )
            else:
                ass = {k: np.zeros((r, na)) for k in ass_keys}
            loc_s = np.maximum(1e-10, wf[:, us] @ a["hota_loc"][us]) / np.maximum(1e-10, tp_s)
            tp = tp + tp_s
            fn = fn + (ng_s[:, None] - tp_s)
            fp = fp + (npd_s[:, None] - tp_s)
            ass_acc = ass_acc + np.stack([ass[k] * tp_s for k in ass_keys])
            loc_acc = loc_acc + loc_s * tp_s
        ass_all = ass_acc / np.maximum(1.0, tp)
        det_a = tp / np.maximum(1, tp + fn + fp)
        hota = np.sqrt(det_a * ass_all[0])
        loc = np.maximum(1e-10, loc_acc) / np.maximum(1e-10, tp)
        arrays = {"HOTA": hota, "DetA": det_a, "AssA": ass_all[0], "AssRe": ass_all[1], "AssPr": ass_all[2]}
        arrays.update(DetRe=tp / np.maximum(1, tp + fn), DetPr=tp / np.maximum(1, tp + fp), LocA=loc)
        return {k: np.mean(v, axis=-1) for k, v in arrays.items()}

    # ------------------------------------------------------------------------------------------------------- io
    def save(self, path: str | Path) -> None:
        """Write the statistics to one ``.npz`` (see :meth:`load`)."""
        save_npz(path, self.kind, self.unit, self.units, self.arrays)

    @classmethod
    def load(cls, path: str | Path) -> MotResampler:
        """Read statistics written by :meth:`save`."""
        return cls(*load_npz(path, cls.kind))


def _block_stats(p: _Prepared, k_clear: dict, k_hota: dict | None, block: int | None) -> dict[str, np.ndarray]:
    """One sequence's per-block statistics (local unit, track and pair indices)."""
    nf = max(1, p.seq.num_frames)
    size = nf if block is None else block
    nb = -(-nf // size)
    bg, bp = (p.gfr - 1) // size, (p.pfr - 1) // size
    cnt = lambda rows, w=None: np.bincount(bg[rows], weights=w, minlength=nb)  # noqa: E731
    matched = k_clear.get("matched", np.zeros(0, np.int64))
    clear = np.column_stack([
        np.bincount(bg, minlength=nb), np.bincount(bp, minlength=nb), cnt(matched),
        cnt(k_clear.get("switch_rows", np.zeros(0, np.int64))),
    ]).astype(np.int64)  # fmt: skip
    out = {"nb": np.array(nb), "clear": clear, "motp_sum": cnt(matched, k_clear.get("iou_m", np.zeros(0)))}
    id_gt, id_pred = k_clear.get("id_gt", np.zeros(0, np.int64)), k_clear.get("id_pred", np.zeros(0, np.int64))
    uk, out["id_unit"], out["id_pair"], out["id_count"] = _pairs_by_unit(
        bg[id_gt], p.gid[id_gt] * p.n_pid + p.pid[id_pred]
    )
    out["id_g"], out["id_t"] = uk // max(1, p.n_pid), uk % max(1, p.n_pid)
    if k_hota is not None:
        na = len(HOTA_ALPHAS)
        _, out["gl_unit"], out["gl_track"], out["gl_count"] = _pairs_by_unit(bg, p.gid)
        _, out["tl_unit"], out["tl_track"], out["tl_count"] = _pairs_by_unit(bp, p.pid)
        rows, sim, pair = (
            k_hota.get(k, np.zeros(0, t))
            for k, t in (("hota_gt", np.int64), ("hota_sim", float), ("hota_pair", np.int64))
        )
        okm = sim[:, None] >= HOTA_ALPHAS[None, :] - EPS
        out["hota_tp"] = np.stack([cnt(rows[okm[:, j]]) for j in range(na)], axis=1).astype(np.int64)
        out["hota_loc"] = np.stack([cnt(rows[okm[:, j]], sim[okm[:, j]]) for j in range(na)], axis=1)
        first = okm[:, 0]
        up, pinv = np.unique(pair[first], return_inverse=True)
        ue, einv = np.unique(bg[rows[first]] * max(1, len(up)) + pinv.reshape(-1), return_inverse=True)
        hm = np.zeros((len(ue), na), np.int64)
        for j in range(na):
            hm[:, j] = np.bincount(einv.reshape(-1)[okm[first, j]], minlength=len(ue))
        out["hm_unit"], out["hm_pair"], out["hm_count"] = ue // max(1, len(up)), ue % max(1, len(up)), hm
        out["hp_g"], out["hp_t"] = up // max(1, p.n_pid), up % max(1, p.n_pid)
    return out


def evaluate_mot_bootstrap(
    sequences: Sequence[MotSequence],
    *,
    block_frames: int | None = DEFAULT_BLOCK_FRAMES,
    threshold: float = 0.5,
    hota: bool = True,
) -> tuple[MOTResult, MotResampler]:
    """:func:`evaluate_mot` (TrackEval semantics) plus its :class:`MotResampler` (matching runs once).

    ``block_frames``: units are blocks of that many contiguous frames within each sequence; ``None``: sequences.
    """
    if block_frames is not None and block_frames < 1:
        raise ValueError(f"block_frames must be >= 1 or None, got {block_frames}")
    names = [s.name for s in sequences]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate sequence names in {names}")
    per, stats, units = {}, [], []
    for p in (_prepare(s) for s in sequences):
        kc: dict = {}
        kh: dict | None = {} if hota else None
        m = _clear_identity(p, threshold, kc)
        if hota:
            _hota(p, m, kh)
        per[p.seq.name] = m
        st = _block_stats(p, kc, kh, block_frames)
        nb, nf = int(st["nb"]), p.seq.num_frames
        if block_frames is None:
            units.append(p.seq.name)
        else:
            units += [f"{p.seq.name}:{b * block_frames + 1}-{min(nf, (b + 1) * block_frames)}" for b in range(nb)]
        stats.append((st, p.n_gid, p.n_pid))
    arrays = _concat_stats(stats, hota)
    unit = "sequence" if block_frames is None else f"frame block ({block_frames}) of a sequence"
    return MOTResult("trackeval", None, per, _combine(per, hota)), MotResampler(unit, units, arrays)


def _concat_stats(stats: list[tuple[dict, int, int]], hota: bool) -> dict[str, np.ndarray]:
    """Global unit / track / pair indices over the sequences' :func:`_block_stats`."""
    out: dict[str, list] = {}
    u0 = g0 = t0 = ip0 = hp0 = 0
    for s, (st, n_gid, n_pid) in enumerate(stats):
        nb = int(st["nb"])
        add = {
            "unit_seq": np.full(nb, s), "clear": st["clear"], "motp_sum": st["motp_sum"],
            "id_unit": st["id_unit"] + u0, "id_pair": st["id_pair"] + ip0, "id_count": st["id_count"],
            "id_g": st["id_g"] + g0, "id_t": st["id_t"] + t0,
        }  # fmt: skip
        ip0 += len(st["id_g"])
        if hota:
            add.update({
                "gl_unit": st["gl_unit"] + u0, "gl_track": st["gl_track"] + g0, "gl_count": st["gl_count"],
                "tl_unit": st["tl_unit"] + u0, "tl_track": st["tl_track"] + t0, "tl_count": st["tl_count"],
                "hota_tp": st["hota_tp"], "hota_loc": st["hota_loc"], "hm_unit": st["hm_unit"] + u0,
                "hm_pair": st["hm_pair"] + hp0, "hm_count": st["hm_count"], "hp_g": st["hp_g"] + g0,
                "hp_t": st["hp_t"] + t0, "hp_seq": np.full(len(st["hp_g"]), s),
            })  # fmt: skip
            hp0 += len(st["hp_g"])
        for k, v in add.items():
            out.setdefault(k, []).append(np.asarray(v))
        u0, g0, t0 = u0 + nb, g0 + n_gid, t0 + n_pid
    arrays = {k: np.concatenate(v) for k, v in out.items()}
    arrays["n_seq"] = np.array([len(stats)])
    arrays["n_tracks"] = np.array([g0, t0])
    if hota:
        arrays["hm_count"] = arrays["hm_count"].reshape(-1, len(HOTA_ALPHAS))
        arrays["hota_tp"] = arrays["hota_tp"].reshape(-1, len(HOTA_ALPHAS))
        arrays["hota_loc"] = arrays["hota_loc"].reshape(-1, len(HOTA_ALPHAS))
    return arrays


# ------------------------------------------------------------------------------------------------ files, preprocess
def preprocess_sequence(
    name: str,
    gt: MotTable,
    pred: MotTable,
    *,
    benchmark: str = "MOT17",
    num_frames: int | None = None,
    lenient: bool = False,
) -> MotSequence:
    """TrackEval ``MotChallenge2DBox.get_preprocessed_seq_data`` for one sequence (class ``pedestrian``).

    MOT15: drop GT rows whose ``int(conf)`` is 0 (zero-marked), nothing else. MOT16/17/20: per frame, predictions
    matched (Hungarian on IoU >= 0.5 - eps, all GT rows) to a distractor GT (person_on_vehicle, static_person,
    distractor, reflection; MOT20 also non_mot_vehicle) are removed; then only GT of class 1 with non-zero conf stays.
    The checks that need both files (frames beyond ``num_frames``, classes) are
    :func:`crowdbench.datasets.formats.mot.check_mot_pair`'s (``lenient``: TrackEval's own, per frame).
    """
    if benchmark not in BENCHMARKS:
        raise ValueError(f"benchmark must be one of {BENCHMARKS}, got {benchmark!r}")
    if num_frames is None:
        num_frames = int(max(gt.frames.max(initial=0), pred.frames.max(initial=0)))
    check_mot_pair(gt, pred, benchmark=benchmark, num_frames=num_frames, lenient=lenient)
    keep_pred = np.ones(len(pred), bool)
    zero_marked = gt.conf.astype(np.int64) == 0
    if benchmark == "MOT15":
        keep_gt = ~zero_marked
    else:
        keep_gt = ~zero_marked & (gt.classes == MOT_CLASSES["pedestrian"])
        names = ["person_on_vehicle", "static_person", "distractor", "reflection"]
        names += ["non_mot_vehicle"] if benchmark == "MOT20" else []
        distractor = np.isin(gt.classes, [MOT_CLASSES[n] for n in names])
        if distractor.any() and len(pred):
            go = np.argsort(gt.frames, kind="stable")
            po = np.argsort(pred.frames, kind="stable")
            pr = _frame_pairs(gt.frames[go], pred.frames[po], gt.boxes[go], pred.boxes[po], num_frames)
            c = pr.iou >= 0.5 - EPS
            eg, ep, ev = pr.gt[c], pr.pred[c], pr.iou[c]
            chosen = _match_static(eg, ep, ev, len(go), len(po))
            hit = chosen & distractor[go][eg]
            keep_pred[po[ep[hit]]] = False
    return MotSequence(
        name,
        num_frames,
        gt.frames[keep_gt],
        gt.ids[keep_gt],
        gt.boxes[keep_gt],
        pred.frames[keep_pred],
        pred.ids[keep_pred],
        pred.boxes[keep_pred],
    )


def load_mot_sequences(
    gt: str | Path, pred: str | Path, *, benchmark: str = "MOT17", lenient: bool = False
) -> list[MotSequence]:
    """Read, validate and preprocess MOTChallenge files.

    ``gt`` is a ``gt.txt`` (then ``pred`` is one result file) or a directory of ``<seq>/gt/gt.txt`` (or
    ``<seq>/gt.txt``, the layout of motmetrics' TUD data); ``pred`` then holds ``<seq>.txt`` (or ``data/<seq>.txt``,
    or ``<seq>/test.txt``). ``<seq>/seqinfo.ini`` ``seqLength`` bounds the frames when present. Every file goes
    through :func:`crowdbench.datasets.formats.mot.read_mot` (``role="gt"`` / ``"results"``) and
    :func:`~crowdbench.datasets.formats.mot.check_mot_pair`; ``lenient`` relaxes what TrackEval accepts (see the
    module docstring).
    """
    if benchmark not in BENCHMARKS:
        raise ValueError(f"benchmark must be one of {BENCHMARKS}, got {benchmark!r}")
    seqs = []
    for name, g, p, n in mot_sequence_files(Path(gt), Path(pred)):
        opts = {"benchmark": benchmark, "seq_length": n, "lenient": lenient}
        gt_t, pred_t = read_mot(g, role="gt", **opts), read_mot(p, role="results", **opts)
        seqs.append(preprocess_sequence(name, gt_t, pred_t, benchmark=benchmark, num_frames=n, lenient=lenient))
    return seqs


def evaluate_mot_files(
    gt: str | Path,
    pred: str | Path,
    *,
    benchmark: str = "MOT17",
    semantics: str = "trackeval",
    hota: bool = True,
    lenient: bool = False,
) -> MOTResult:
    """:func:`load_mot_sequences` then :func:`evaluate_mot` (``lenient``: see the module docstring)."""
    seqs = load_mot_sequences(gt, pred, benchmark=benchmark, lenient=lenient)
    res = evaluate_mot(seqs, semantics=semantics, hota=hota)
    res.benchmark = benchmark
    return res


def run_trackeval(
    files: Mapping[str, tuple[str | Path, str | Path, int]],
    *,
    benchmark: str = "MOT17",
    metrics: Sequence[str] = ("HOTA", "CLEAR", "Identity"),
) -> dict[str, dict[str, dict]]:
    """Reference run of PyPI ``trackeval`` in-process (CLEAR, Identity, HOTA; MotChallenge2DBox, class pedestrian).

    ``files`` maps sequence name to ``(gt file, result file, seqLength)``; the files are copied into a temporary
    MOTChallenge layout. Returns ``{seq or "COMBINED_SEQ": {"CLEAR": ..., "Identity": ..., "HOTA": ...}}``.
    For tests and benchmarks (needs ``trackeval``; it prints nothing here).
    """
    import contextlib
    import io
    import shutil
    import tempfile

    with contextlib.redirect_stdout(io.StringIO()):
        import trackeval

        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for seq, (g, r, _) in files.items():
                (root / "gt" / seq / "gt").mkdir(parents=True)
                shutil.copyfile(g, root / "gt" / seq / "gt" / "gt.txt")
                (root / "tr" / "t" / "data").mkdir(parents=True, exist_ok=True)
                shutil.copyfile(r, root / "tr" / "t" / "data" / f"{seq}.txt")
            eval_cfg = {
                "USE_PARALLEL": False, "PRINT_RESULTS": False, "PRINT_CONFIG": False, "TIME_PROGRESS": False,
                "OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False, "PLOT_CURVES": False, "LOG_ON_ERROR": None,
                "DISPLAY_LESS_PROGRESS": True,
            }  # fmt: skip
            ds_cfg = {
                "GT_FOLDER": str(root / "gt"), "TRACKERS_FOLDER": str(root / "tr"), "TRACKERS_TO_EVAL": ["t"],
                "BENCHMARK": benchmark, "SKIP_SPLIT_FOL": True, "PRINT_CONFIG": False,
                "SEQ_INFO": {seq: int(n) for seq, (_, _, n) in files.items()},
            }  # fmt: skip
            evaluator = trackeval.Evaluator(eval_cfg)
            dataset = trackeval.datasets.MotChallenge2DBox(ds_cfg)
            objs = [getattr(trackeval.metrics, name)() for name in metrics]
            out, _ = evaluator.evaluate([dataset], objs)
    res = out["MotChallenge2DBox"]["t"]
    return {seq: v["pedestrian"] for seq, v in res.items()}


# ---------------------------------------------------------------------------------------------------------------- CLI
def add_command(eval_subparsers: argparse._SubParsersAction) -> None:
    """Register ``crowdbench eval mot`` on the ``crowdbench eval`` subparsers."""
    p = add_eval_parser(
        eval_subparsers,
        "mot",
        help="MOTChallenge CLEAR MOT, IDF1 and HOTA (TrackEval semantics)",
        description="MOTChallenge tracking metrics as TrackEval computes them (or py-motmetrics conventions).",
        gt=("GT_DIR_OR_FILE", "gt.txt or dir of <seq>/gt/gt.txt"),
        pred=("PRED_DIR_OR_FILE", "result file or dir of <seq>.txt"),
    )
    p.add_argument("--benchmark", choices=BENCHMARKS, default="MOT17", help="preprocessing (MOT15: none)")
    p.add_argument("--semantics", choices=("trackeval", "motmetrics"), default="trackeval")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument(
        "--lenient",
        action="store_true",
        help="accept what TrackEval accepts and compute its number: negative box widths/heights (IoU 0: a GT box "
        "is a miss, a predicted one a false positive), any GT conf below 2**31 (considered when int(conf) != 0), any "
        "result score and unused column (visibility, columns 9-10; NaN included), result classes <= 1, more than 10 "
        "columns, GT classes outside 1-13 in frames without predictions (dropped; refused where a frame has "
        "predictions, as TrackEval). Everything else is refused as without it.",
    )

    add_bootstrap_arguments(p, block_frames=True)
    p.set_defaults(func=cmd_eval_mot)


def cmd_eval_mot(args: argparse.Namespace) -> int:
    """Run ``crowdbench eval mot``; 0 on success, 2 with a one-line ``error: ...`` on stderr."""
    boot = getattr(args, "bootstrap", None)
    summary: dict = {}
    try:
        if boot is None:
            res = evaluate_mot_files(
                args.gt, args.pred, benchmark=args.benchmark, semantics=args.semantics, lenient=args.lenient
            )
        else:
            check_bootstrap_arguments(args)
            if args.semantics != "trackeval":
                raise ValueError("--bootstrap needs --semantics trackeval")
            seqs = load_mot_sequences(args.gt, args.pred, benchmark=args.benchmark, lenient=args.lenient)
            res, rs = evaluate_mot_bootstrap(seqs, block_frames=args.block_frames or None)
            res.benchmark = args.benchmark
            keys = ("MOTA", "MOTP", "IDF1", "IDP", "IDR", "HOTA", "DetA", "AssA")
            summary = bootstrap_summary(rs, {k: getattr(res.combined, k) for k in keys}, args)
    except (FormatError, OSError, ValueError, RuntimeError, RecursionError, MemoryError) as exc:
        return fail(exc)
    if args.json:
        print(strict_dumps({**res.to_dict(), **summary}))
        return 0
    c = res.combined
    print(
        f"MOT ({args.benchmark}, {res.semantics} semantics): {len(res.sequences)} sequences, {c.num_gt_dets} GT boxes "
        f"({c.num_gt_ids} ids), {c.num_pred_dets} predicted boxes"
    )
    for k in ("MOTA", "IDF1", "HOTA", "DetA", "AssA", "LocA", "MOTP"):
        v = getattr(c, k)
        if v is not None:
            print(f"  {k:<5} {pct(v)}")
    print(f"  MOTP distance (1 - IoU, py-motmetrics) {c.MOTP_distance:.4f}")
    print(f"  TP {c.TP}  FP {c.FP}  FN {c.FN}  IDSW {c.IDSW}  Frag {c.Frag}  MT {c.MT}  PT {c.PT}  ML {c.ML}")
    if summary:
        print_intervals(summary)
    return 0
