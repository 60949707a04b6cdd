"""CrowdHuman detection metrics AP, mMR and JI, computed exactly as CrowdDet's evaluation code does.

Definitions (metrics.md section 3; reference code ``Purkialo/CrowdDet: lib/evaluate/``, MIT):

* Shao et al. 2018, CrowdHuman (arXiv:1805.00123): full-body AP and log-average miss rate ``mMR`` over FPPI in
  ``[1e-2, 1]`` (Dollár et al. 2012, PAMI, "Pedestrian Detection: An Evaluation of the State of the Art").
* Chu et al. 2020, CrowdDet (CVPR, "Detection in Crowded Scenes: One Proposal, Multiple Predictions"): Jaccard
  index ``JI = mean_img k / (m + n - k)`` with ``k`` the size of a maximum-weight IoU matching.

Conventions reproduced bit for bit (the parity test compares against the vendored reference to 1e-9 and exactly):
boxes clipped (x1 to ``[0, W-1]``, y1 to ``[0, H-1]``, x2 to ``[0, W]``, y2 to ``[0, H]``; not if the size is unknown);
IoU / IoA with ``eps = 1e-6`` and no ``+1``; Caltech greedy matching with IoU ``> 0.5`` and ignore IoA ``> 0.5``;
one dataset-wide stable score sort; trapezoid AP from the first detection; the 9 rounded FPPI references with the
"first point with FPPI >= r" rule and no clamping; JI over score thresholds ``0.1 * i``, ``i = 0..9`` (``score >
s``), ignore discounting, ``+1e-6``, max over thresholds.

Everything is vectorised over the whole dataset (detection x GT pairs per image, flattened in chunks); the only
Python loop is over candidate (IoU > 0.5) pairs for the greedy Caltech match; JI's maximum-weight matchings of all
images are found together (leaf reduction, then enumeration over small components, see ``_max_weight_matching``);
only components with more than 4 detections or GT go one by one to ``scipy.optimize.linear_sum_assignment``.

Lenient (``evaluate_crowdhuman(..., lenient=True)``, ``crowdbench eval crowdhuman --lenient``): by default a box
with negative width or height, or beyond ``MAX_COORD`` px, is an error (:class:`FormatError`; the readers refuse it
too, naming file, line and field, see ``datasets/formats/crowdhuman.py``). With ``lenient`` it is scored as CrowdDet
scores it: ``x2 = x + w`` as given, clipped when the image size is known, so a negative-size box intersects nothing
(every intersection ``max(0, iw) * max(0, ih)`` is 0): a valid GT box of negative size is a miss (it stays in the
GT count: recall and AP drop), an ignore region of negative size absorbs no detection, a detection of negative size
is a false positive (JI: an unmatched detection counted in ``n``). The readers' ``lenient`` also accepts any finite
``extra.ignore`` (ignored iff non-zero, CrowdDet's ``!= 0``). NaN / Infinity are refused with and without it.

JI tie caveat: CrowdDet uses Edmonds' blossom algorithm; we use leaf reduction, enumeration and the Hungarian method.
Both find a maximum-weight matching; if several matchings tie on total weight they may pick different ones, which
can change ``k`` or the ignore discounting. With real-valued IoUs exact ties are practically absent.
"""

from __future__ import annotations

import argparse
import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_array
from scipy.sparse.csgraph import connected_components

from crowdbench.bench.errors import fail, need_file
from crowdbench.bench.jsonout import dumps as strict_dumps
from crowdbench.bench.metrics import bootstrap as _boot
from crowdbench.bench.metrics.cli import pct
from crowdbench.bench.metrics.eval_args import add_eval_parser
from crowdbench.datasets.formats.crowdhuman import (
    DetectionRecord,
    check_boxes,
    read_detections,
    read_id_hw,
    read_odgt,
    record_id,
)
from crowdbench.datasets.formats.errors import FormatError
from crowdbench.datasets.model import Frame

__all__ = [
    "FPPI_REFS",
    "JI_SCORE_THRESHOLDS",
    "CrowdHumanImage",
    "CrowdHumanImageResampler",
    "CrowdHumanResult",
    "check_images",
    "evaluate_crowdhuman",
    "evaluate_images",
    "images_from_frames",
]

IOU_THRESHOLD = 0.5
EPS = 1e-6
#: CrowdDet ``eval_MR(ref="CALTECH_-2")``: 10^(-2:0.25:0) rounded to 4 decimals, exactly as hard-coded there.
FPPI_REFS: tuple[float, ...] = (0.0100, 0.0178, 0.03160, 0.0562, 0.1000, 0.1778, 0.3162, 0.5623, 1.000)
#: ``1e-1 * i`` as in ``compute_JI.evaluation_all`` (so 0.30000000000000004, not 0.3).
JI_SCORE_THRESHOLDS: tuple[float, ...] = tuple(1e-1 * i for i in range(10))
_PAIR_CHUNK = 1 << 20  # detection x GT pairs materialised at once (~100 MB peak at CrowdHuman-val scale)


@dataclass
class CrowdHumanImage:
    """One image: GT boxes (``N x 4``, x1 y1 x2 y2) with an ignore flag each, detections ``M x 4`` with scores.

    ``width``/``height`` (pixels) are used for clipping; <= 0 means unknown and disables clipping for the image.
    """

    id: str
    width: int
    height: int
    gt_boxes: np.ndarray
    gt_ignore: np.ndarray
    det_boxes: np.ndarray
    det_scores: np.ndarray

    def __post_init__(self) -> None:
        self.gt_boxes = np.asarray(self.gt_boxes, dtype=np.float64).reshape(-1, 4)
        self.gt_ignore = np.asarray(self.gt_ignore, dtype=bool).reshape(-1)
        self.det_boxes = np.asarray(self.det_boxes, dtype=np.float64).reshape(-1, 4)
        self.det_scores = np.asarray(self.det_scores, dtype=np.float64).reshape(-1)
        if len(self.gt_ignore) != len(self.gt_boxes):
            raise ValueError(f"image {self.id!r}: {len(self.gt_boxes)} GT boxes but {len(self.gt_ignore)} flags")
        if len(self.det_scores) != len(self.det_boxes):
            raise ValueError(f"image {self.id!r}: {len(self.det_boxes)} boxes but {len(self.det_scores)} scores")


CURVE_POINTS = 200
_CURVES = ("recall", "precision", "fppi", "miss")


@dataclass(frozen=True)
class CrowdHumanResult:
    """AP, mMR, JI as fractions (0.8718, not 87.18); NaN where not computed or undefined (no valid GT)."""

    AP: float
    mMR: float
    JI: float
    JI_per_threshold: tuple[float, ...] = ()
    JI_thresholds: tuple[float, ...] = JI_SCORE_THRESHOLDS
    #: per JI threshold: (k matched pairs, n counted detections, m counted GT), summed over images
    JI_counts: tuple[tuple[int, int, int], ...] = ()
    #: miss rate picked at each of ``FPPI_REFS``
    MR_at_fppi: tuple[float, ...] = ()
    #: the curves behind AP and mMR, thinned to at most ``CURVE_POINTS`` points: recall, precision, fppi, miss rate
    curve: dict[str, tuple[float, ...]] = field(default_factory=dict)
    num_images: int = 0
    num_gt: int = 0
    num_ignore: int = 0
    num_det: int = 0
    num_tp: int = 0
    num_fp: int = 0
    num_dropped: int = 0  # detections matched to an ignore region (neither TP nor FP)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["JI_counts"] = [list(c) for c in self.JI_counts]
        for key in ("JI_per_threshold", "JI_thresholds", "MR_at_fppi"):
            d[key] = list(d[key])
        d["curve"] = {k: list(v) for k, v in self.curve.items()}
        return d


# ------------------------------------------------------------------------------------------------ data preparation


@dataclass
class _Flat:
    """All images flattened: clipped boxes, per-box image index, and the candidate pair sets."""

    n_img: int
    det_img: np.ndarray
    det_scores: np.ndarray
    val_img: np.ndarray  # valid (non-ignore) GT
    n_val: np.ndarray  # valid GT per image
    n_ign_total: int
    # det x valid GT pairs with IoU > 0.5
    e_det: np.ndarray
    e_gt: np.ndarray
    e_iou: np.ndarray
    det_in_ign_caltech: np.ndarray  # IoA (unclamped det area, image.py) > 0.5 with an ignore box
    det_in_ign_ji: np.ndarray  # IoA (clamped det area, JI_tools.py) > 0.5 with an ignore box
    gt_in_ign_ji: np.ndarray  # valid GT: IoA (clamped GT area) > 0.5 with an ignore box


def _clip(boxes: np.ndarray, width: np.ndarray, height: np.ndarray) -> np.ndarray:
    """CrowdDet ``clip_boundary`` per box (``width``/``height`` per box; rows with unknown size are left alone)."""
    out = boxes.copy()
    known = (width > 0) & (height > 0)
    if known.any():
        b, w, h = out[known], width[known], height[known]
        b[:, 0] = np.minimum(np.maximum(b[:, 0], 0), w - 1)
        b[:, 1] = np.minimum(np.maximum(b[:, 1], 0), h - 1)
        b[:, 2] = np.maximum(np.minimum(b[:, 2], w), 0)
        b[:, 3] = np.maximum(np.minimum(b[:, 3], h), 0)
        out[known] = b
    return out


def _pair_chunks(a_img: np.ndarray, nb: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every a-box paired with every b-box of its image, as flat index arrays, in chunks of ~``_PAIR_CHUNK`` pairs.

    ``a_img``: image of each a-box; ``nb[i]``: number of b-boxes of image ``i`` (b-boxes stored image after image).
    """
    off_b = np.concatenate(([0], np.cumsum(nb)[:-1])).astype(np.int64)
    reps = nb[a_img].astype(np.int64)
    cum = np.cumsum(reps)
    start, n = 0, len(a_img)
    while start < n:
        base = int(cum[start - 1]) if start else 0
        stop = max(int(np.searchsorted(cum, base + _PAIR_CHUNK, side="right")), start + 1)
        r = reps[start:stop]
        ia = np.repeat(np.arange(start, stop), r)
        block_start = cum[start:stop] - r - base  # where each a-box's run of pairs starts within the chunk
        ib = np.arange(len(ia), dtype=np.int64) + np.repeat(off_b[a_img[start:stop]] - block_start, r)
        if len(ia):
            yield ia, ib
        start = stop


def _columns(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return tuple(np.ascontiguousarray(boxes[:, k]) for k in range(4))  # type: ignore[return-value]


def _inter(a: tuple, ia: np.ndarray, b: tuple, ib: np.ndarray) -> np.ndarray:
    """Intersection areas of pairs (``image.py`` ``box_overlap_opr`` / ``JI_tools`` formulas, no +1)."""
    iw = np.minimum(a[2][ia], b[2][ib]) - np.maximum(a[0][ia], b[0][ib])
    ih = np.minimum(a[3][ia], b[3][ib]) - np.maximum(a[1][ia], b[1][ib])
    return np.maximum(0, iw) * np.maximum(0, ih)


def _prepare(images: Sequence[CrowdHumanImage]) -> _Flat:
    n_img = len(images)
    nd = np.array([len(im.det_boxes) for im in images], dtype=np.int64)
    ng = np.array([len(im.gt_boxes) for im in images], dtype=np.int64)
    wh = np.array([(im.width, im.height) for im in images], dtype=np.float64).reshape(-1, 2)
    cat = np.concatenate
    det_img = np.repeat(np.arange(n_img), nd)
    gt_img = np.repeat(np.arange(n_img), ng)
    det = _clip(cat([im.det_boxes for im in images]) if n_img else np.zeros((0, 4)), wh[det_img, 0], wh[det_img, 1])
    scores = cat([im.det_scores for im in images]) if n_img else np.zeros(0)
    gt = _clip(cat([im.gt_boxes for im in images]) if n_img else np.zeros((0, 4)), wh[gt_img, 0], wh[gt_img, 1])
    ign = cat([im.gt_ignore for im in images]) if n_img else np.zeros(0, bool)
    # CrowdDet sorts GT valid-first (stable): valid GT keep their file order, ignore boxes follow in theirs.
    val, igb = gt[~ign], gt[ign]
    val_img, ign_img = gt_img[~ign], gt_img[ign]
    n_val = np.bincount(val_img, minlength=n_img)
    n_ign = np.bincount(ign_img, minlength=n_img)

    def area(b: np.ndarray) -> np.ndarray:
        return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])

    def area_clamped(b: np.ndarray) -> np.ndarray:
        return np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)

    d_area, v_area = area(det), area(val)
    dc, vc, ic = _columns(det), _columns(val), _columns(igb)
    e_det, e_gt, e_iou = [], [], []
    for a, b in _pair_chunks(det_img, n_val):
        inter = _inter(dc, a, vc, b)
        iou = inter / (d_area[a] + v_area[b] - inter + EPS)
        hit = np.flatnonzero(iou > IOU_THRESHOLD)
        e_det.append(a[hit])
        e_gt.append(b[hit])
        e_iou.append(iou[hit])
    det_in_ign_caltech = np.zeros(len(det), bool)
    det_in_ign_ji = np.zeros(len(det), bool)
    d_area_c = area_clamped(det)
    for a, b in _pair_chunks(det_img, n_ign):
        inter = _inter(dc, a, ic, b)
        det_in_ign_caltech[a[inter / (d_area[a] + EPS) > IOU_THRESHOLD]] = True
        det_in_ign_ji[a[inter / (d_area_c[a] + EPS) > IOU_THRESHOLD]] = True
    gt_in_ign_ji = np.zeros(len(val), bool)
    v_area_c = area_clamped(val)
    for a, b in _pair_chunks(val_img, n_ign):
        inter = _inter(vc, a, ic, b)
        gt_in_ign_ji[a[inter / (v_area_c[a] + EPS) > IOU_THRESHOLD]] = True
    ints = np.zeros(0, np.int64)
    return _Flat(
        n_img=n_img,
        det_img=det_img,
        det_scores=scores,
        val_img=val_img,
        n_val=n_val,
        n_ign_total=int(n_ign.sum()),
        e_det=cat(e_det) if e_det else ints,
        e_gt=cat(e_gt) if e_gt else ints,
        e_iou=cat(e_iou) if e_iou else np.zeros(0),
        det_in_ign_caltech=det_in_ign_caltech,
        det_in_ign_ji=det_in_ign_ji,
        gt_in_ign_ji=gt_in_ign_ji,
    )


# ---------------------------------------------------------------------------------------------------------- AP / MR


def _caltech_match(flat: _Flat) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The greedy Caltech match of :func:`_caltech`: (stable descending score order, TP flags, dropped flags)."""
    n_det = len(flat.det_scores)
    order = np.argsort(-flat.det_scores, kind="stable")
    rank = np.empty(n_det, np.int64)
    rank[order] = np.arange(n_det)
    # candidate pairs by (detection rank, IoU descending, GT index): the greedy pass takes the first free GT
    srt = np.lexsort((flat.e_gt, -flat.e_iou, rank[flat.e_det]))
    tp = np.zeros(n_det, bool)
    used = bytearray(len(flat.val_img))
    last = -1
    for d, g in zip(flat.e_det[srt].tolist(), flat.e_gt[srt].tolist(), strict=True):
        if d == last or used[g]:
            continue
        used[g] = 1
        tp[d] = True
        last = d
    return order, tp, ~tp & flat.det_in_ign_caltech


def _caltech(flat: _Flat) -> dict:
    """Caltech matching (``Image.compare_caltech``) + ``Database.eval_AP`` / ``eval_MR``, metrics.md 3.2-3.3.

    Per image, detections in descending score order each take the unmatched valid GT of highest IoU > 0.5 (first
    in GT order on ties) -> TP; otherwise, IoA > 0.5 with an ignore box -> dropped; otherwise FP. The global order is
    one stable descending sort of all detections (image order, then within-image order breaks ties), which restricted
    to one image is that image's own stable order, so it serves for the greedy match too.

    AP = sum_i (r_i - r_{i-1}) (p_{i-1} + p_i) / 2 over the TP/FP list (first point included, no anchor);
    mMR = exp(mean(log MR(k_r))), k_r = first index with FPPI >= r (else the last), r in ``FPPI_REFS``.
    """
    order, tp, dropped = _caltech_match(flat)
    seq = tp[order][~dropped[order]]
    n_gt = len(flat.val_img)
    out = {
        "num_tp": int(tp.sum()),
        "num_dropped": int(dropped.sum()),
        "num_fp": int(len(seq) - tp.sum()),
    }
    if n_gt == 0:  # CrowdDet divides by zero here
        return out | {"AP": math.nan, "mMR": math.nan, "MR_at_fppi": ()}
    tps = np.cumsum(seq, dtype=np.float64)
    fps = np.cumsum(~seq, dtype=np.float64)
    recall = tps / (tps + (n_gt - tps))
    precision = tps / (tps + fps)
    terms = (recall[1:] - recall[:-1]) * ((precision[:-1] + precision[1:]) / 2)
    ap = float(np.cumsum(terms)[-1]) if len(terms) else 0.0  # cumsum: the reference's sequential float sum
    if len(seq) == 0:  # CrowdDet: mean of an empty list -> NaN
        return out | {"AP": ap, "mMR": math.nan, "MR_at_fppi": ()}
    fppi = fps / flat.n_img
    miss = 1.0 - recall
    idx = np.searchsorted(fppi, FPPI_REFS, side="left")
    picks = miss[np.minimum(idx, len(seq) - 1)]
    with np.errstate(divide="ignore"):
        mmr = float(np.exp(np.log(picks).mean()))
    thin = np.unique(np.linspace(0, len(seq) - 1, min(len(seq), CURVE_POINTS)).round().astype(np.int64))
    curve = {k: tuple(float(x) for x in v[thin]) for k, v in zip(_CURVES, (recall, precision, fppi, miss), strict=True)}
    return out | {"AP": ap, "mMR": mmr, "MR_at_fppi": tuple(float(v) for v in picks), "curve": curve}


# --------------------------------------------------------------------------------------------------------------- JI


def _first_per_group(key: np.ndarray) -> np.ndarray:
    """Index of the first element of each distinct key."""
    _, idx = np.unique(key, return_index=True)
    return idx


def _assignments(k: int) -> np.ndarray:
    """All partial matchings of ``k`` rows into ``k`` columns: ``(n, k)`` column per row, ``k`` = unmatched."""
    grid = np.array(list(itertools.product(range(k + 1), repeat=k)))
    ok = [len(set(a[a < k].tolist())) == int((a < k).sum()) for a in grid]
    return grid[np.array(ok)]


_SMALL = 4  # components with at most this many detections and GT are solved by enumeration
_SMALL_ASSIGNMENTS = _assignments(_SMALL)  # 209 partial matchings of 4 x 4


def _local_index(label: np.ndarray, n_comp: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rank of each element among those with the same label (index order); also the elements grouped by label
    (``order``, ranks ascending within a group) and where each group starts in ``order``."""
    order = np.argsort(label, kind="stable")
    size = np.bincount(label, minlength=n_comp)
    first = np.cumsum(size) - size
    pos = np.empty(len(label), np.int64)
    pos[order] = np.arange(len(label)) - first[label[order]]
    return pos, order, first


def _match_components(ed: np.ndarray, eg: np.ndarray, ew: np.ndarray, m_det: np.ndarray, m_gt: np.ndarray) -> None:
    """Exact maximum-weight matching of an arbitrary edge set, component by component (flags set in place).

    Components with at most 4 detections and 4 GT (nearly all of them) are solved together by scoring all 209
    partial matchings of a padded 4 x 4 weight block; larger ones go through ``linear_sum_assignment`` one by one.
    """
    rows, ri = np.unique(ed, return_inverse=True)
    cols, ci = np.unique(eg, return_inverse=True)
    nr = len(rows)
    adj = csr_array((np.ones(len(ed)), (ri, nr + ci)), shape=(nr + len(cols), nr + len(cols)))
    n_comp, label = connected_components(adj, directed=False)
    lab_r, lab_c = label[:nr], label[nr:]
    loc_r, order_r, first_r = _local_index(lab_r, n_comp)
    loc_c, order_c, first_c = _local_index(lab_c, n_comp)
    size_r, size_c = np.bincount(lab_r, minlength=n_comp), np.bincount(lab_c, minlength=n_comp)
    small = (size_r <= _SMALL) & (size_c <= _SMALL)
    e_comp = lab_r[ri]
    k = _SMALL
    if small.any():
        idx = np.cumsum(small) - 1  # component -> slot among the small ones
        n_small = int(small.sum())
        sel = small[e_comp]
        w = np.full((n_small, k, k + 1), -np.inf)
        w[:, :, k] = 0.0  # column k = "row unmatched"
        w[idx[e_comp[sel]], loc_r[ri[sel]], loc_c[ci[sel]]] = ew[sel]
        table = _SMALL_ASSIGNMENTS
        best = np.empty((n_small, k), np.int64)
        for lo in range(0, n_small, 8192):  # (slots, 209, 4) temporaries: ~55 MB per chunk
            total = w[lo : lo + 8192][:, np.arange(k), table].sum(axis=-1)  # (slots, n_assignments)
            best[lo : lo + 8192] = table[np.argmax(total, axis=1)]
        row_of = np.full((n_small, k), -1)
        in_small = small[lab_r]
        row_of[idx[lab_r[in_small]], loc_r[in_small]] = rows[in_small]
        col_of = np.full((n_small, k), -1)
        in_small_c = small[lab_c]
        col_of[idx[lab_c[in_small_c]], loc_c[in_small_c]] = cols[in_small_c]
        slot, r_loc = np.nonzero(best < k)
        m_det[row_of[slot, r_loc]] = True
        m_gt[col_of[slot, best[slot, r_loc]]] = True
    large = np.flatnonzero(~small[e_comp])
    if len(large):
        large = large[np.argsort(e_comp[large], kind="stable")]
        bounds = np.flatnonzero(np.diff(e_comp[large])) + 1
        for part in np.split(large, bounds):
            comp = e_comp[part[0]]
            wm = np.zeros((size_r[comp], size_c[comp]))
            wm[loc_r[ri[part]], loc_c[ci[part]]] = ew[part]
            r, c = linear_sum_assignment(wm, maximize=True)
            ok = wm[r, c] > 0
            m_det[rows[order_r[first_r[comp] + r[ok]]]] = True
            m_gt[cols[order_c[first_c[comp] + c[ok]]]] = True


def _max_weight_matching(
    ed: np.ndarray, eg: np.ndarray, ew: np.ndarray, n_det: int, n_gt: int
) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-weight bipartite matching of the edge list ``(ed, eg, ew)``; returns matched det / GT flags.

    Leaf reduction, vectorised over all images: if a GT's only edge is also its detection's heaviest edge (or a
    detection's only edge is its GT's heaviest), some maximum-weight matching contains that edge (swap it in for
    the detection's other edge: the weight cannot drop). Such edges are fixed and their endpoints removed, in rounds,
    until none is left; stars and chains ending in such a leaf vanish this way. The remaining components are solved
    exactly by :func:`_match_components`. Either way the matching has the same maximum total weight as the one
    CrowdDet's blossom algorithm finds.
    """
    m_det = np.zeros(n_det, bool)
    m_gt = np.zeros(n_gt, bool)
    alive = np.arange(len(ed))
    while len(alive):
        d, g, w = ed[alive], eg[alive], ew[alive]
        deg_d = np.bincount(d, minlength=n_det)
        deg_g = np.bincount(g, minlength=n_gt)
        max_d = np.zeros(n_det)
        np.maximum.at(max_d, d, w)
        max_g = np.zeros(n_gt)
        np.maximum.at(max_g, g, w)
        leaf_g = np.flatnonzero((deg_g[g] == 1) & (w == max_d[d]))
        leaf_d = np.flatnonzero((deg_d[d] == 1) & (w == max_g[g]))
        # one fixed edge per detection among GT leaves, one per GT among detection leaves; the two sets cannot
        # conflict (an edge in both is the same edge)
        take = np.union1d(leaf_g[_first_per_group(d[leaf_g])], leaf_d[_first_per_group(g[leaf_d])])
        if len(take) == 0:
            break
        m_det[d[take]] = True
        m_gt[g[take]] = True
        alive = alive[~(m_det[d] | m_gt[g])]
    if len(alive):
        _match_components(ed[alive], eg[alive], ew[alive], m_det, m_gt)
    return m_det, m_gt


def _ji_counts(flat: _Flat) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per JI score threshold and image (``10 x n_img`` each): matched pairs k, counted detections n, counted GT m."""
    n_img, n_det, n_gt = flat.n_img, len(flat.det_scores), len(flat.val_img)
    ks, ns, ms = [], [], []
    for s in JI_SCORE_THRESHOLDS:
        keep = flat.det_scores > s
        ek = keep[flat.e_det]
        m_det, m_gt = _max_weight_matching(flat.e_det[ek], flat.e_gt[ek], flat.e_iou[ek], n_det, n_gt)
        k = np.bincount(flat.det_img[m_det], minlength=n_img)
        n = np.bincount(flat.det_img[keep & ~m_det & ~flat.det_in_ign_ji], minlength=n_img)
        n += np.bincount(flat.det_img[keep & m_det], minlength=n_img)
        m = flat.n_val - np.bincount(flat.val_img[~m_gt & flat.gt_in_ign_ji], minlength=n_img)
        ks.append(k)
        ns.append(n)
        ms.append(m)
    shape = (len(JI_SCORE_THRESHOLDS), n_img)
    return tuple(np.asarray(x, dtype=np.int64).reshape(shape) for x in (ks, ns, ms))  # type: ignore[return-value]


def _ji(flat: _Flat) -> dict:
    """JI per ``compute_JI_with_ignore`` + ``gather`` (metrics.md 3.3), for each of ``JI_SCORE_THRESHOLDS``.

    Per image: keep detections with score > s; k = size of the maximum-weight matching (weight IoU, edges IoU > 0.5)
    between them and the valid GT; n = kept detections minus unmatched ones with IoA > 0.5 on an ignore box;
    m = valid GT minus unmatched ones with IoA > 0.5 on an ignore box; JI_img = k / (m + n - k + 1e-6).
    JI(s) = sum of JI_img / number of images with m > 0 or n > 0; JI = max over s.
    """
    per_thr, counts = [], []
    for k, n, m in zip(*_ji_counts(flat), strict=True):
        ratio = k / (m + n - k + EPS)
        counted = int(((n != 0) | (m != 0)).sum())
        per_thr.append(float(np.sum(ratio) / counted) if counted else math.nan)
        counts.append((int(k.sum()), int(n.sum()), int(m.sum())))
    defined = [v for v in per_thr if not math.isnan(v)]
    ji = max(defined) if defined else math.nan
    return {"JI": ji, "JI_per_threshold": tuple(per_thr), "JI_counts": tuple(counts)}


# -------------------------------------------------------------------------------------------------------------- API


# -------------------------------------------------------------------------------------------------------- bootstrap


class CrowdHumanImageResampler:
    """Per-image sufficient statistics of AP, mMR and JI (a :class:`~..bootstrap.Resampler` over images).

    Kept: the Caltech-matched detections in their one stable descending score order (image and TP flag each;
    dropped ones removed) and each image's valid-GT count; per JI score threshold and image, the counts k, n, m.
    A replicate with image weights ``w`` (shared/reference/uncertainty.md): TP(i) = cumsum(w·tp), FP(i) =
    cumsum(w·fp), recall = TP / Σ w·nGT, FPPI = FP / Σ w; AP's trapezoid terms are non-zero only at TP entries and
    mMR's FPPI crossings only at FP entries, so only those are evaluated, with CrowdDet's float operations (a term
    needs a non-empty prefix: the first point has no anchor); JI(s) = Σ w·k/(m+n-k+1e-6) / Σ w·[m>0 or n>0],
    max over s. All-ones weights reproduce :func:`evaluate_images` bit for bit; a weight ``c > 1`` puts an image's
    detections ``c`` times at once on the curve (one trapezoid step per TP instead of ``c``).
    """

    unit = "image"

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.arrays = dict(arrays)
        self.units = [str(u) for u in self.arrays["units"].tolist()]
        a = self.arrays
        seq = a["seq_tp"]
        self._tp_pos = np.flatnonzero(seq)
        self._fp_pos = np.flatnonzero(~seq)
        self._fp_before_tp = np.searchsorted(self._fp_pos, self._tp_pos)  # FP entries before each TP entry
        self._tp_before_fp = np.searchsorted(self._tp_pos, self._fp_pos)

    @classmethod
    def from_flat(
        cls, flat: _Flat, ids: Sequence[str], ap_mr: bool = True, ji: bool = True
    ) -> CrowdHumanImageResampler:
        arrays: dict[str, np.ndarray] = {
            "units": np.asarray(list(ids), dtype=str),
            "n_val": flat.n_val.astype(np.int64),
        }
        if ap_mr:
            order, tp, dropped = _caltech_match(flat)
            keep = ~dropped[order]
            arrays["seq_tp"] = tp[order][keep]
            arrays["seq_img"] = flat.det_img[order][keep].astype(np.int32)
        else:
            arrays["seq_tp"], arrays["seq_img"] = np.zeros(0, bool), np.zeros(0, np.int32)
        arrays["has_ap_mr"] = np.asarray(ap_mr)
        if ji:
            arrays["ji_k"], arrays["ji_n"], arrays["ji_m"] = _ji_counts(flat)
        return cls(arrays)

    def save(self, path: str | Path) -> None:
        """One compressed ``.npz``."""
        np.savez_compressed(path, **self.arrays)

    @classmethod
    def load(cls, path: str | Path) -> CrowdHumanImageResampler:
        with np.load(path, allow_pickle=False) as z:
            return cls({k: z[k] for k in z.files})

    def values(self, weights: np.ndarray, batch: int | None = None) -> dict[str, np.ndarray]:
        """``AP``, ``mMR``, ``JI`` -> ``R`` replicate values for ``weights [R, n_images]`` (NaN where undefined)."""
        w = np.asarray(weights)
        if w.ndim != 2 or w.shape[1] != len(self.units):
            raise ValueError(f"weights must be R x {len(self.units)}, got {w.shape}")
        w = w.astype(np.int32)
        out: dict[str, list[np.ndarray]] = {}
        if batch is None:
            batch = int(max(1, min(len(w), 1_000_000 // max(1, len(self.arrays["seq_tp"])))))  # cache-sized
        for s in range(0, len(w), batch):
            part = w[s : s + batch]
            res: dict[str, np.ndarray] = {}
            if bool(self.arrays["has_ap_mr"]):
                res |= self._ap_mr(part)
            if "ji_k" in self.arrays:
                res["JI"] = self._ji(part)
            for k, v in res.items():
                out.setdefault(k, []).append(v)
        return {k: np.concatenate(v) for k, v in out.items()}

    def _ap_mr(self, w: np.ndarray) -> dict[str, np.ndarray]:
        a = self.arrays
        n_b = len(w)
        n_gt = w.astype(np.float64) @ a["n_val"].astype(np.float64)
        n_img = w.sum(axis=1, dtype=np.int64).astype(np.float64)
        wd = w[:, a["seq_img"]]
        tpc = np.zeros((n_b, len(self._tp_pos) + 1), np.int64)
        np.cumsum(wd[:, self._tp_pos], axis=1, out=tpc[:, 1:])
        fpc = np.zeros((n_b, len(self._fp_pos) + 1), np.int64)
        np.cumsum(wd[:, self._fp_pos], axis=1, out=fpc[:, 1:])
        g = n_gt[:, None]
        # AP: the trapezoid terms of each TP entry; an entry of weight c is c consecutive TPs (c steps of 1 / nGT)
        c = wd[:, self._tp_pos]
        t0 = tpc[:, :-1]
        fps = fpc[:, self._fp_before_tp].astype(np.float64)
        terms = self._steps(t0, fps, g, 1, c >= 1)
        for j in range(2, int(c.max(initial=0)) + 1):
            rows, cols = np.nonzero(c >= j)
            terms[rows, cols] += self._steps(t0[rows, cols], fps[rows, cols], g[rows, 0], j, None)
        ap = np.cumsum(terms, axis=1)[:, -1] if terms.shape[1] else np.zeros(n_b)
        # mMR: first FP entry whose FPPI reaches each reference (else the last entry)
        fppi = fpc[:, 1:] / n_img[:, None]
        refs = np.asarray(FPPI_REFS)
        tp_at = np.empty((n_b, len(refs)), np.int64)
        total_tp = tpc[:, -1]
        for j in range(n_b):
            q = np.searchsorted(fppi[j], refs, side="left")
            ok = q < len(self._fp_pos)
            tp_at[j] = total_tp[j]
            tp_at[j, ok] = tpc[j, self._tp_before_fp[q[ok]]]
        t = tp_at.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            picks = 1.0 - t / (t + (g - t))
            mmr = np.exp(np.log(picks).mean(axis=1))
        empty = (tpc[:, -1] + fpc[:, -1]) == 0
        mmr[empty] = np.nan
        ap[n_gt == 0] = np.nan
        mmr[n_gt == 0] = np.nan
        return {"AP": ap, "mMR": mmr}

    @staticmethod
    def _steps(t0: np.ndarray, fps: np.ndarray, g: np.ndarray, j: int, active: np.ndarray | None) -> np.ndarray:
        """CrowdDet's trapezoid term from TP count ``t0 + j - 1`` to ``t0 + j`` at ``fps`` FP (0 without a prefix)."""
        a, b = (t0 + (j - 1)).astype(np.float64), (t0 + j).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            term = (b / (b + (g - b)) - a / (a + (g - a))) * ((a / (a + fps) + b / (b + fps)) / 2)
        ok = (a + fps) > 0 if active is None else active & ((a + fps) > 0)
        return np.where(ok, term, 0.0)

    def _ji(self, w: np.ndarray) -> np.ndarray:
        a = self.arrays
        k, n, m = a["ji_k"], a["ji_n"], a["ji_m"]
        ratio = k / (m + n - k + EPS)
        counted = ((n != 0) | (m != 0)).astype(np.float64)
        wf = w.astype(np.float64)
        per = np.full((len(w), len(k)), np.nan)
        for s in range(len(k)):
            c = wf @ counted[s]
            num = np.sum(wf * ratio[s][None, :], axis=1)
            ok = c > 0
            per[ok, s] = num[ok] / c[ok]
        out = np.full(len(w), np.nan)
        defined = np.isfinite(per).any(axis=1)
        out[defined] = np.nanmax(per[defined], axis=1)
        return out


def evaluate_images(
    images: Sequence[CrowdHumanImage], *, ap_mr: bool = True, ji: bool = True, return_resampler: bool = False
) -> Any:
    """AP, mMR and JI of a whole dataset (images in GT-file order; the order breaks score ties as in CrowdDet).

    ``ap_mr=False`` / ``ji=False`` skip a part (its fields are NaN). Images without detections simply have none
    (CrowdDet itself would crash on them), and the image count for FPPI and JI includes every image given.
    ``return_resampler=True``: ``(result, CrowdHumanImageResampler)`` (units = image ids).
    """
    flat = _prepare(images)
    nan = math.nan
    res: dict = {"AP": nan, "mMR": nan, "JI": nan}
    if ap_mr:
        res |= _caltech(flat)
    if ji:
        res |= _ji(flat)
    result = CrowdHumanResult(
        num_images=flat.n_img,
        num_gt=len(flat.val_img),
        num_ignore=flat.n_ign_total,
        num_det=len(flat.det_scores),
        **res,
    )
    if not return_resampler:
        return result
    return result, CrowdHumanImageResampler.from_flat(flat, [im.id for im in images], ap_mr=ap_mr, ji=ji)


Detections = Iterable[Frame | DetectionRecord] | Mapping[str, Frame | DetectionRecord]


def images_from_frames(
    gt_frames: Sequence[Frame], detections: Detections, *, unknown_ids: str = "error"
) -> list[CrowdHumanImage]:
    """Pair GT frames with detections by CrowdHuman ID (:func:`record_id`) into :class:`CrowdHumanImage` s.

    GT = the frame's instances (``Instance.ignore`` honoured) followed by its ``ignore_regions``. The image size is
    the GT frame's if known, else the detection record's (CrowdDet: the GT record's size wins, else the result's).
    Detections for IDs not in the GT raise ``ValueError`` (``unknown_ids="error"``) or are skipped (``"ignore"``).
    """
    if unknown_ids not in ("error", "ignore"):
        raise ValueError(f"unknown_ids must be 'error' or 'ignore', got {unknown_ids!r}")
    items = detections.values() if isinstance(detections, Mapping) else detections
    dets: dict[str, DetectionRecord] = {}
    for item in items:
        rec = DetectionRecord.from_frame(item) if isinstance(item, Frame) else item
        if not isinstance(rec, DetectionRecord):
            raise TypeError(f"detections must be Frame or DetectionRecord items, got {type(item).__name__}")
        if rec.id in dets:
            raise ValueError(f"detections: image {rec.id!r} appears twice")
        dets[rec.id] = rec
    images = []
    seen: set[str] = set()
    for frame in gt_frames:
        rid = record_id(frame)
        if rid in seen:
            raise ValueError(f"ground truth: image {rid!r} appears twice")
        seen.add(rid)
        det = dets.get(rid)
        width, height = frame.width, frame.height
        if (width <= 0 or height <= 0) and det is not None:
            width, height = det.width, det.height
        boxes = [inst.box for inst in frame.instances]
        flags = [inst.ignore for inst in frame.instances] + [True] * len(frame.ignore_regions)
        gt = np.concatenate([np.stack(boxes) if boxes else np.zeros((0, 4)), frame.ignore_regions])
        images.append(
            CrowdHumanImage(
                id=rid,
                width=width,
                height=height,
                gt_boxes=gt,
                gt_ignore=np.array(flags, bool),
                det_boxes=det.boxes if det is not None else np.zeros((0, 4)),
                det_scores=det.scores if det is not None else np.zeros(0),
            )
        )
    unknown = [rid for rid in dets if rid not in seen]
    if unknown and unknown_ids == "error":
        shown = ", ".join(repr(u) for u in unknown[:3]) + (", ..." if len(unknown) > 3 else "")
        raise ValueError(f"detections for {len(unknown)} image(s) not in the ground truth: {shown}")
    return images


def check_images(images: Sequence[CrowdHumanImage], *, lenient: bool = False) -> None:
    """The format layer's box rules (:func:`~crowdbench.datasets.formats.crowdhuman.check_boxes`) on in-memory
    images: a non-finite box or score is a :class:`FormatError`; unless ``lenient``, so is a box with negative width /
    height or beyond ``MAX_COORD`` (``lenient``: CrowdDet's numbers for them, see the module docstring)."""
    ids = [im.id for im in images]
    cat = np.concatenate
    gt = cat([im.gt_boxes for im in images]) if images else np.zeros((0, 4))
    check_boxes("ground truth", ids, [len(im.gt_boxes) for im in images], gt, lenient=lenient)
    det = cat([im.det_boxes for im in images]) if images else np.zeros((0, 4))
    scores = cat([im.det_scores for im in images]) if images else np.zeros(0)
    check_boxes("detections", ids, [len(im.det_boxes) for im in images], det, scores, lenient=lenient)


def evaluate_crowdhuman(
    gt_frames: Sequence[Frame],
    detections: Detections,
    *,
    unknown_ids: str = "error",
    ji: bool = True,
    return_resampler: bool = False,
    lenient: bool = False,
) -> Any:
    """AP / mMR / JI of detections (Frames or :class:`DetectionRecord` s) against CrowdHuman GT frames.

    The boxes are checked first (:func:`check_images`): a non-finite box or score raises :class:`FormatError`, and
    unless ``lenient`` so does a box of negative width / height or beyond ``MAX_COORD`` px; ``lenient=True`` scores
    such boxes as CrowdDet does (module docstring, "Lenient").
    ``return_resampler=True``: ``(result, CrowdHumanImageResampler)`` for bootstrap replicates over images."""
    images = images_from_frames(gt_frames, detections, unknown_ids=unknown_ids)
    check_images(images, lenient=lenient)
    return evaluate_images(images, ji=ji, return_resampler=return_resampler)


# ------------------------------------------------------------------------------------------------ command line
def add_command(eval_subparsers: argparse._SubParsersAction) -> None:
    """``crowdbench eval crowdhuman``: reads the files (``datasets/formats/crowdhuman.py``) and scores them."""
    p = add_eval_parser(
        eval_subparsers,
        "crowdhuman",
        help="CrowdHuman AP / mMR / JI (CrowdDet protocol, full-body boxes)",
        description="CrowdHuman full-body AP, mMR and JI exactly as CrowdDet's evaluation code computes them.",
        gt=("FILE.odgt", "ground truth, CrowdHuman .odgt"),
        pred=("FILE.json", "detections: CrowdDet JSON lines (ID, height, width, dtboxes) or a COCO results list"),
    )
    p.add_argument("--id-hw", type=Path, metavar="FILE", help="image sizes {ID: [height, width]} (mmdet format)")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument(
        "--lenient",
        action="store_true",
        help="score what CrowdDet's evaluation code accepts instead of refusing it: boxes (GT fbox/vbox/hbox, "
        "detection box) with negative width or height (CrowdDet: they intersect nothing, so such a GT box is a miss, "
        "such a detection a false positive, such an ignore region absorbs nothing) or beyond 1e6 px (used as given), "
        "and extra.ignore / head_attr.ignore values other than 0/1 (non-zero = ignore). Without it those are errors. "
        "NaN/inf, wrong types, missing keys, duplicate or unknown IDs and an empty detections file stay errors",
    )
    _boot.add_bootstrap_arguments(p)  # CrowdHuman's image bootstrap, not this module's per-metric options
    p.set_defaults(func=cmd_eval_crowdhuman)


def cmd_eval_crowdhuman(args: argparse.Namespace) -> int:
    try:
        _boot.check_bootstrap_arguments(args)
        for path in (args.gt, args.pred, args.id_hw):
            if path is not None:
                need_file(path)
        id_hw = read_id_hw(args.id_hw) if args.id_hw is not None else None
        gt = read_odgt(args.gt, id_hw=id_hw, lenient=args.lenient)
        dets = read_detections(args.pred, lenient=args.lenient, gt_ids={record_id(f) for f in gt})
        if args.bootstrap:
            result, resampler = evaluate_crowdhuman(gt, dets, return_resampler=True, lenient=args.lenient)
        else:
            result = evaluate_crowdhuman(gt, dets, lenient=args.lenient)
    except (FormatError, OSError, ValueError, RecursionError, MemoryError) as exc:
        return fail(exc)
    if args.bootstrap:
        point = {"AP": result.AP, "mMR": result.mMR, "JI": result.JI}
        summary = _boot.bootstrap_summary(point, resampler, args.bootstrap, args.bootstrap_seed, args.level)
        if args.json:
            print(strict_dumps(result.to_dict() | summary, _crowdhuman_reasons(result)))
        else:
            _boot.print_intervals(
                f"CrowdHuman ({args.gt.name} vs {args.pred.name}): {result.num_images} images (mMR: lower is better)",
                summary,
                ("AP", "mMR", "JI"),
            )
        return 0
    if args.json:
        print(strict_dumps(result.to_dict(), _crowdhuman_reasons(result)))
        return 0
    print(
        f"CrowdHuman ({args.gt.name} vs {args.pred.name}): {result.num_images} images, {result.num_gt} GT "
        f"(+{result.num_ignore} ignore), {result.num_det} detections"
    )
    print(f"  {'AP':<4} {pct(result.AP)}")
    print(f"  {'mMR':<4} {pct(result.mMR)}   (lower is better)")
    print(f"  {'JI':<4} {pct(result.JI)}")
    return 0


def _crowdhuman_reasons(result: object) -> dict[str, str]:
    """Why CrowdHuman's AP / mMR / JI can be undefined (the JSON says so beside the ``null``)."""
    if getattr(result, "num_det", 1) == 0:
        return dict.fromkeys(("AP", "mMR", "JI"), "no detections")
    if getattr(result, "num_gt", 1) == 0:
        return dict.fromkeys(("AP", "mMR", "JI"), "no ground-truth boxes")
    return {}
