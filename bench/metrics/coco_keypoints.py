"""COCO keypoint AP/AR (OKS), COCO person box AP and AP-vis / AP-invis, with pycocotools semantics.

Reference: ``cocodataset/cocoapi: PythonAPI/pycocotools/cocoeval.py`` + ``coco.py`` (``loadRes``), as summarised in
``shared/reference/metrics.md`` section 1 (10 OKS thresholds ``.50:.05:.95``, 101 recall points, ``maxDets=20``,
areas all / medium ``[32², 96²]`` / large, ignore = ``iscrowd or num_keypoints == 0``, stable score sorts).

Engines (:func:`run_cocoeval` ``engine=``): ``"auto"`` (default) uses **hotcoco** 1.3 (Rust ``COCOeval``, about 10x
faster) wherever it is bit-identical to pycocotools 2.0.11 -- ``keypoints`` with default or custom sigmas and
``bbox``, unique non-zero GT ids, finite scores, GT ``area`` as OKS scale (:func:`hotcoco_identical` lists the
exceptions and why) -- and ``faster_coco_eval`` otherwise (GT id 0 kept, ``allow_duplicate_ids`` with duplicates,
CrowdPose's ``keypoints_crowd``, ``use_area=False``). Bootstrap states come from hotcoco's ``evalImgs`` (same content,
tested array for array against the other engine).
``faster_coco_eval`` engine: ``faster_coco_eval`` 1.8 (``COCOeval_faster``) for OKS / IoU and per-image matching
(C++), then our numpy port of pycocotools' ``accumulate`` (faster_coco_eval's C++ accumulate is off by one ulp
when the top-ranked detection is a TP followed by a FP, see :func:`_accumulate`). ``tests/test_metrics_coco.py``
checks that all 10 (keypoints) and 12 (box) stats are bit-identical to pycocotools 2.0.11 on random sets and on the
shared COCO sample, with each engine.
Sigmas are passed in pycocotools' form ``tenths / 10.0`` (``0.26 / 10`` is not the float ``0.026``).

Conventions (each covered by a test):

* **GT annotation id 0** (metrics.md 1.6): pycocotools cannot count a GT with id 0 as a TP; reproduced by default.
  ``renumber_zero_id=True`` renumbers GT ids to ``1..N`` first (then results equal xtcocotools / hotcoco).
* **Duplicate GT annotation ids**: pycocotools silently evaluates the *last* annotation of that id twice; that is
  a corrupt file, so it is a :class:`FormatError` unless ``allow_duplicate_ids=True`` (then pycocotools' behaviour).
* **Scores**: only their order matters (stable sorts). Negative scores are ordinary values. NaN scores sort *after*
  every other score (numpy ``argsort`` of ``-score``), as in pycocotools; faster_coco_eval rejects NaN, so when a
  score is NaN or infinite all scores are replaced by their dense rank, which keeps order and ties, hence the stats.
* **Empty prediction list**: pycocotools' ``loadRes`` raises IndexError; here AP/AR are 0 (or -1 where no GT).
* Keypoint results containing a non-empty ``bbox`` take pycocotools' bbox branch (detection area = ``w * h``).
* Images in the GT without annotations or without predictions are evaluated as pycocotools does (all FP / all FN).

AP-vis / AP-invis: Huang et al., "How to Train Your Robust Human Pose Estimator" (paper 001, Sec. 4.1 and
Table 1) split COCO val "into two subsets: val-vis only contains visible keypoints and val-invis only contains
invisible keypoints", "based on the predefined metrics in [COCO]". The COCO flags are ``v=2`` labeled and visible,
``v=1`` labeled but not visible. Two readings, selectable with ``split``:

* ``"keypoints"`` (default; the literal reading, "contains only ... keypoints"): every GT keeps only its ``v=2``
  (vis) or ``v=1`` (invis) keypoints, the others become unlabeled ``(0, 0, 0)``; ``num_keypoints`` is recounted, so
  GT left with no keypoint is ignored (COCO rule). OKS is then computed over the kept keypoints only.
* ``"instances"``: persons are split whole: vis = persons whose labeled keypoints are all ``v=2``, invis = persons
  with at least one ``v=1``; persons outside the subset are ignored (``num_keypoints = 0``, COCO's ignore rule).

Paper 001 publishes no code for the split, so neither reading can be verified against its numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from crowdbench.bench.errors import fail, need_file
from crowdbench.bench.jsonout import dumps as strict_dumps
from crowdbench.bench.metrics.eval_args import add_eval_parser
from crowdbench.datasets.formats.coco_checks import CocoGt, CocoResults, check_coco_gt, check_coco_results, renumbered
from crowdbench.datasets.formats.errors import FormatError, read_json_bytes

__all__ = [
    "BOX_STAT_NAMES",
    "KEYPOINT_STAT_NAMES",
    "CocoBoxResult",
    "CocoImageResampler",
    "CocoKeypointResult",
    "CocoVisInvisResult",
    "add_command",
    "evaluate_coco_box",
    "evaluate_coco_keypoints",
    "evaluate_coco_vis_invis",
    "pycocotools_sigmas",
    "split_vis_invis",
]

KEYPOINT_STAT_NAMES = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL")
BOX_STAT_NAMES = ("AP", "AP50", "AP75", "APS", "APM", "APL", "AR1", "AR10", "AR100", "ARS", "ARM", "ARL")

GtSource = Mapping[str, Any] | str | Path
PredSource = Sequence[Mapping[str, Any]] | str | Path


# ------------------------------------------------------------------------------------------------ results


class StatsResult:
    """``stats`` (the values in the reference tool's order, ``STAT_NAMES``) and ``to_dict`` of a result dataclass."""

    STAT_NAMES: ClassVar[tuple[str, ...]] = ()

    @property
    def stats(self) -> tuple[float, ...]:
        return tuple(getattr(self, n) for n in self.STAT_NAMES)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CocoKeypointResult(StatsResult):
    """pycocotools ``stats`` for ``iouType="keypoints"`` as fractions; -1 where a bucket has no GT."""

    AP: float
    AP50: float
    AP75: float
    APM: float
    APL: float
    AR: float
    AR50: float
    AR75: float
    ARM: float
    ARL: float
    num_images: int = 0
    num_gt: int = 0
    num_ignored_gt: int = 0
    num_predictions: int = 0

    STAT_NAMES: ClassVar = KEYPOINT_STAT_NAMES


@dataclass(frozen=True)
class CocoBoxResult(StatsResult):
    """pycocotools ``stats`` for ``iouType="bbox"`` (maxDets 1/10/100, areas small/medium/large)."""

    AP: float
    AP50: float
    AP75: float
    APS: float
    APM: float
    APL: float
    AR1: float
    AR10: float
    AR100: float
    ARS: float
    ARM: float
    ARL: float
    num_images: int = 0
    num_gt: int = 0
    num_ignored_gt: int = 0
    num_predictions: int = 0

    STAT_NAMES: ClassVar = BOX_STAT_NAMES


@dataclass(frozen=True)
class CocoVisInvisResult:
    """AP-vis / AP-invis (paper 001) with the full keypoint results of both subsets."""

    AP_vis: float
    AP_invis: float
    split: str
    vis: CocoKeypointResult
    invis: CocoKeypointResult

    def to_dict(self) -> dict:
        return {
            "AP_vis": self.AP_vis,
            "AP_invis": self.AP_invis,
            "split": self.split,
            "vis": self.vis.to_dict(),
            "invis": self.invis.to_dict(),
        }


# ------------------------------------------------------------------------------------------------ loading / checks


def _read(obj: Any, default: str) -> tuple[Any, str, bool]:
    """``(data, name, exact_types)``: a path is read (``exact_types``: the file holds a ``true`` / ``false``, so
    keypoint lists get the exact type scan); in-memory data is taken as is, bools in keypoint lists counting as
    0 / 1 (Python's ``bool`` is an ``int``)."""
    if isinstance(obj, str | Path):
        data, raw = read_json_bytes(Path(obj))
        return data, str(obj), b"true" in raw or b"false" in raw
    return obj, default, False


def pycocotools_sigmas(sigmas: Sequence[float]) -> np.ndarray:
    """Sigmas as pycocotools builds them (``np.array(tenths) / 10.0``), so OKS is bit-identical to the references."""
    return np.round(np.asarray(sigmas, dtype=np.float64) * 10.0, 6) / 10.0


def validated(
    gt: GtSource | CocoGt,
    preds: PredSource | CocoResults,
    *,
    kind: Literal["keypoints", "bbox"],
    num_keypoints: int | None,
    need_area: bool = True,
    lenient: bool = False,
    allow_duplicate_ids: bool = False,
    image_keys: Sequence[str] = (),
    gt_name: str = "<gt>",
    pred_name: str = "<predictions>",
) -> tuple[CocoGt, CocoResults]:
    """Read (paths) and validate ground truth and results with the one COCO validation layer
    (:mod:`crowdbench.datasets.formats.coco_checks`); already validated objects pass through unchanged."""
    if not isinstance(gt, CocoGt):
        data, src, exact = _read(gt, gt_name)
        gt = check_coco_gt(
            data,
            src,
            kind=kind,
            num_keypoints=num_keypoints,
            need_area=need_area,
            lenient=lenient,
            allow_duplicate_ids=allow_duplicate_ids,
            image_keys=image_keys,
            exact_types=exact,
        )
    elif gt.kind != kind or gt.num_keypoints != (num_keypoints if kind == "keypoints" else None):
        raise ValueError(f"{gt.source} was validated for {gt.kind} ({gt.num_keypoints} keypoints), not {kind}")
    if gt.duplicate_ids and not (allow_duplicate_ids or lenient or gt.relaxed):
        raise FormatError(f"{gt.source}: duplicate annotation ids (allow_duplicate_ids=True accepts them)")
    if not isinstance(preds, CocoResults):
        data, src, exact = _read(preds, pred_name)
        preds = check_coco_results(data, src, gt, lenient=lenient, exact_types=exact)
    return gt, preds


# ------------------------------------------------------------------------------------------------ backend


def _copy_gt(gt: Mapping, renumber_zero_id: bool) -> dict:
    """Shallow copies (the backend adds keys such as ``ignore`` to annotation dicts)."""
    anns = [dict(a) for a in gt["annotations"]]
    if renumber_zero_id and any(a["id"] == 0 for a in anns):
        for i, a in enumerate(anns):
            a["id"] = i + 1
    return {
        "images": [dict(im) for im in gt["images"]],
        "annotations": anns,
        "categories": [dict(c) for c in gt["categories"]],
    }


def _copy_preds(preds: Sequence[Mapping]) -> list[dict]:
    """Shallow copies; scores become dense ranks when any is NaN/inf (order and ties kept, see module doc)."""
    out = [dict(p) for p in preds]
    scores = np.array([float(p["score"]) for p in out], dtype=np.float64)
    if len(scores) and not np.isfinite(scores).all():
        key = -scores  # pycocotools sorts -score ascending, NaN last
        uniq = np.unique(key[~np.isnan(key)])
        rank = np.where(np.isnan(key), len(uniq), np.searchsorted(uniq, np.where(np.isnan(key), 0.0, key)))
        # (not np.nan_to_num: it also turns -inf into the finite -1.8e308, tying an infinite score with the next)
        for p, r in zip(out, rank, strict=True):
            p["score"] = -float(r)
    return out


def _accumulate(states: Sequence[tuple], p: Any) -> dict:
    """pycocotools ``COCOeval.accumulate`` (cocoeval.py) in numpy, from faster_coco_eval's per-image results.

    faster_coco_eval's C++ accumulate computes the precision of a run of exactly one TP and no FP as ``1.0``,
    where pycocotools computes ``1 / (1 + eps) = 0.9999999999999998``; redoing the accumulation here with the very
    same float operations restores bit-identity. ``states`` are ``ImageEvaluation.__getstate__()`` tuples
    (dt matches ``T x D``, gt matches, dt scores, gt ignore, dt ignore ``T x D``, pairs), ordered category, area,
    image, as ``evalImgs`` in pycocotools. GT id 0 counts as unmatched there too (metrics.md 1.6).
    """
    cat_ids = p.catIds if p.useCats else [-1]
    n_t, n_r, n_k, n_a, n_m = len(p.iouThrs), len(p.recThrs), len(cat_ids), len(p.areaRng), len(p.maxDets)
    n_i = len(p.imgIds)
    precision = -np.ones((n_t, n_r, n_k, n_a, n_m))
    recall = -np.ones((n_t, n_k, n_a, n_m))
    scores_out = -np.ones((n_t, n_r, n_k, n_a, n_m))
    rec_thrs = np.asarray(p.recThrs)
    for k in range(n_k):
        for a in range(n_a):
            block = states[(k * n_a + a) * n_i : (k * n_a + a + 1) * n_i]
            if not block:
                continue
            scores = np.concatenate([np.asarray(st[2], dtype=np.float64) for st in block])
            pos = np.concatenate([np.arange(len(st[2])) for st in block])
            dtm = np.concatenate([np.asarray(st[0], dtype=np.float64).reshape(n_t, len(st[2])) for st in block], 1)
            dtig = np.concatenate([np.asarray(st[4], dtype=bool).reshape(n_t, len(st[2])) for st in block], 1)
            npig = int(sum(np.count_nonzero(~np.asarray(st[3], dtype=bool)) for st in block))
            if npig == 0:
                continue
            for m, max_det in enumerate(p.maxDets):
                keep = pos < max_det
                sc = scores[keep]
                inds = np.argsort(-sc, kind="mergesort")
                m_dtm, m_ig = dtm[:, keep][:, inds], dtig[:, keep][:, inds]
                tps = np.logical_and(m_dtm, np.logical_not(m_ig))
                fps = np.logical_and(np.logical_not(m_dtm), np.logical_not(m_ig))
                tp_sum = np.cumsum(tps, axis=1).astype(dtype=float)
                fp_sum = np.cumsum(fps, axis=1).astype(dtype=float)
                nd = tp_sum.shape[1]
                rc = tp_sum / npig
                pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
                recall[:, k, a, m] = rc[:, -1] if nd else 0
                if nd:
                    pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
                sc_sorted = sc[inds]
                for t in range(n_t):
                    q = np.zeros(n_r)
                    ss = np.zeros(n_r)
                    pi = np.searchsorted(rc[t], rec_thrs, side="left")
                    ok = pi < nd
                    q[ok] = pr[t, pi[ok]]
                    ss[ok] = sc_sorted[pi[ok]]
                    precision[t, :, k, a, m] = q
                    scores_out[t, :, k, a, m] = ss
    return {
        "params": p,
        "counts": [n_t, n_r, n_k, n_a, n_m],
        "precision": precision,
        "recall": recall,
        "scores": scores_out,
    }


def _pairwise_sum(a: np.ndarray) -> np.ndarray:
    """Row sums of ``a [R, n]`` computed exactly as numpy's 1-D ``np.sum`` does for each row (its pairwise
    algorithm: a plain loop below 8 values, else 8 interleaved accumulators, then the tail). A 2-D
    ``a.sum(axis=1)`` may add in another order and differ in the last bit, and OKS must stay bit-identical to
    pycocotools, which sums each ground truth's visible keypoints with a 1-D ``np.sum``."""
    rows, n = a.shape
    if n < 8:
        res = np.zeros(rows)
        for i in range(n):
            res = res + a[:, i]
        return res
    r = a[:, :8].copy()
    i = 8
    while i < n - n % 8:
        r = r + a[:, i : i + 8]
        i += 8
    res = ((r[:, 0] + r[:, 1]) + (r[:, 2] + r[:, 3])) + ((r[:, 4] + r[:, 5]) + (r[:, 6] + r[:, 7]))
    for j in range(i, n):
        res = res + a[:, j]
    return res


def _batched_oks(ev: Any, chunk: int = 200_000) -> dict[tuple[int, int], Any]:
    """OKS of every (image, category) at once, value for value what ``COCOeval.computeOks`` returns.

    pycocotools (and faster-coco-eval, which keeps its Python ``computeOks``) loop over ground truths in Python;
    here all (detection, ground truth) pairs of the dataset are computed in a few vectorised passes with the same
    float operations in the same order (``e = (dx**2 + dy**2) / vars / (area + eps) / 2``, the doubled-box distance
    for ground truths without visible keypoints, and the per-pair mean of ``exp(-e)`` over visible keypoints
    summed as numpy's 1-D ``np.sum``), so the matrices are bit-identical (tests: parity with pycocotools).
    """
    p = ev.params
    variances = (np.asarray(p.kpt_oks_sigmas) * 2) ** 2
    cat_ids = p.catIds if p.useCats else [-1]
    out: dict[tuple[int, int], Any] = {}
    blocks: list[tuple[tuple[int, int], int, int, int, int]] = []
    gts_all: list[dict] = []
    dts_all: list[dict] = []
    for img_id in p.imgIds:
        for cat_id in cat_ids:
            gts = ev.gt_dataset.get(img_id, cat_id)
            dts = ev.dt_dataset.get(img_id, cat_id)
            order = np.argsort([-d["score"] for d in dts], kind="mergesort")
            dts = [dts[i] for i in order][: p.maxDets[-1]]
            if not gts or not dts:
                out[img_id, cat_id] = []
                continue
            blocks.append(((img_id, cat_id), len(gts_all), len(gts), len(dts_all), len(dts)))
            gts_all.extend(gts)
            dts_all.extend(dts)
    if not blocks:
        return out
    g_kp = np.asarray([g["keypoints"] for g in gts_all], dtype=np.float64)
    d_kp = np.asarray([d["keypoints"] for d in dts_all], dtype=np.float64)
    bb = np.asarray([g["bbox"] for g in gts_all], dtype=np.float64)
    # GT area, or (CrowdPose official API, use_area=False) 0.53 * w * h in computeOks' operation order
    area = np.asarray([g["area"] for g in gts_all], dtype=np.float64) if ev.use_area else bb[:, 3] * bb[:, 2] * 0.53
    scale = area + np.spacing(1)
    x0, x1 = bb[:, 0] - bb[:, 2], bb[:, 0] + bb[:, 2] * 2
    y0, y1 = bb[:, 1] - bb[:, 3], bb[:, 1] + bb[:, 3] * 2
    xg, yg = np.ascontiguousarray(g_kp[:, 0::3]), np.ascontiguousarray(g_kp[:, 1::3])
    xd_all, yd_all = np.ascontiguousarray(d_kp[:, 0::3]), np.ascontiguousarray(d_kp[:, 1::3])
    # per ground truth: which keypoints count (all of them when none is visible), how many, visible ones first
    vg = g_kp[:, 2::3] > 0
    visible = vg.any(axis=1)
    mask = np.where(visible[:, None], vg, True)
    counts_g = mask.sum(axis=1)
    order_g = np.argsort(~mask, axis=1, kind="stable")
    # pair index arrays, block by block: detection-major, as ious[d, g]
    gi = np.concatenate([g0 + np.tile(np.arange(ng), nd) for _, g0, ng, _, nd in blocks])
    di = np.concatenate([d0 + np.repeat(np.arange(nd), ng) for _, _, ng, d0, nd in blocks])
    oks = np.empty(len(gi))
    for start in range(0, len(gi), chunk):
        g, d = gi[start : start + chunk], di[start : start + chunk]
        xd, yd = xd_all[d], yd_all[d]
        dx, dy = xd - xg[g], yd - yg[g]
        boxed = ~visible[g]
        if boxed.any():  # no visible keypoint: distance to the doubled GT box (computeOks' k1 == 0 branch)
            gb, bx, by = g[boxed], xd[boxed], yd[boxed]
            z = np.zeros_like(bx)
            dx[boxed] = np.maximum(z, x0[gb, None] - bx) + np.maximum(z, bx - x1[gb, None])
            dy[boxed] = np.maximum(z, y0[gb, None] - by) + np.maximum(z, by - y1[gb, None])
        ex = np.exp(-((dx**2 + dy**2) / variances / scale[g, None] / 2))
        compact = np.take_along_axis(ex, order_g[g], axis=1)
        counts = counts_g[g]
        res = np.empty(len(g))
        for n in np.unique(counts):
            rows = counts == n
            res[rows] = _pairwise_sum(compact[rows, :n]) / n
        oks[start : start + chunk] = res
    pos = 0
    for key, _, ng, _, nd in blocks:
        out[key] = oks[pos : pos + ng * nd].reshape(nd, ng)
        pos += ng * nd
    return out


ENGINES = ("auto", "hotcoco", "faster_coco_eval")


def hotcoco_identical(gt: Mapping, preds: Sequence[Mapping], iou_type: str, *, use_area: bool = True) -> str | None:
    """``None`` when hotcoco 1.3 gives pycocotools' stats for this input, else why not (``engine="auto"``).

    hotcoco matches pycocotools 2.0.11 bit for bit on COCO ``keypoints`` (default or custom sigmas) and ``bbox``
    (tests/test_metrics_coco.py, both engines). It departs where pycocotools has a quirk or we have an extension:

    * a GT annotation with id 0: pycocotools cannot count it as a TP (``dtMatches`` holds GT ids, 0 = unmatched),
      hotcoco can (it keeps a separate matched flag), i.e. hotcoco gives what ``renumber_zero_id=True`` gives;
    * duplicate GT annotation ids (``allow_duplicate_ids``): pycocotools evaluates the last annotation twice;
    * NaN / infinite scores: hotcoco's ``loadRes`` rejects NaN (our copies rank them first, so this only matters for
      direct callers of :func:`run_cocoeval`);
    * ``keypoints_crowd`` (CrowdPose) and ``use_area=False`` (OKS scale ``0.53 * w * h``): not in hotcoco's COCOeval.
    """
    if iou_type not in ("keypoints", "bbox"):
        return f"iouType {iou_type!r}"
    if not use_area:
        return "use_area=False"
    ids = [a["id"] for a in gt["annotations"]]
    if 0 in ids:
        return "a GT annotation has id 0"
    if len(set(ids)) != len(ids):
        return "duplicate GT annotation ids"
    if preds and not np.isfinite(np.array([p["score"] for p in preds], dtype=np.float64)).all():
        return "NaN or infinite scores"
    return None


class HotcocoEval:
    """What :func:`run_cocoeval` returns for the hotcoco engine: ``stats``, ``params``, the hotcoco evaluator
    (``ev``) and, with ``keep_states``, the per-image states in faster-coco-eval's / pycocotools' ``evalImgs``
    layout (``_boot_states``, ``_boot_params``) for :meth:`CocoImageResampler.from_eval`."""

    engine = "hotcoco"

    def __init__(self, ev: Any, keep_states: bool) -> None:
        self.ev = ev
        self.params = ev.params
        self.stats = np.asarray(ev.stats, dtype=np.float64)
        self._boot_states: list | None = None
        self._boot_params: Any = None
        if keep_states:
            self._boot_states, self._boot_params = _hotcoco_states(ev), self.params


def _hotcoco_states(ev: Any) -> list[tuple]:
    """hotcoco's ``evalImgs`` (one dict per image, category and area range that has a GT or a detection, in its
    own order) as the ``(dtm T x D, -, scores, gt ignore, dt ignore T x D)`` tuples of :func:`_accumulate`, in
    pycocotools' order (category, area range, image) with ``()`` for the empty ones pycocotools stores as None.
    ``dtMatched`` is hotcoco's matched flag; it equals pycocotools' ``dtMatches != 0`` when no GT id is 0, which is
    when ``engine="auto"`` uses hotcoco."""
    p = ev.params
    cat_ids = p.catIds if p.useCats else [-1]
    n_a, n_i = len(p.areaRng), len(p.imgIds)
    k_of = {c: k for k, c in enumerate(cat_ids)}
    a_of = {tuple(float(v) for v in r): a for a, r in enumerate(p.areaRng)}
    i_of = {i: j for j, i in enumerate(p.imgIds)}
    states: list[tuple] = [()] * (len(cat_ids) * n_a * n_i)
    for e in ev.evalImgs:
        if e is None:
            continue
        k = k_of[e["category_id"] if p.useCats else -1]
        a = a_of[tuple(float(v) for v in e["aRng"])]
        states[(k * n_a + a) * n_i + i_of[e["image_id"]]] = (
            e["dtMatched"],
            None,
            e["dtScores"],
            e["gtIgnore"],
            e["dtIgnore"],
        )
    return states


def resolve_engine(engine: str, gt: Mapping, preds: Sequence[Mapping], iou_type: str, *, use_area: bool = True) -> str:
    """``"auto"`` -> ``"hotcoco"`` where it is identical to pycocotools (:func:`hotcoco_identical`), else
    ``"faster_coco_eval"``; an explicit engine is returned as is."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine != "auto":
        return engine
    return "faster_coco_eval" if hotcoco_identical(gt, preds, iou_type, use_area=use_area) else "hotcoco"


def run_cocoeval(
    gt: dict,
    preds: list[dict],
    iou_type: str,
    *,
    sigmas: np.ndarray | None = None,
    use_area: bool = True,
    keep_states: bool = False,
    engine: str = "auto",
) -> Any:
    """COCO ``evaluate`` + ``accumulate`` + ``summarize`` on checked inputs; the result has ``stats`` and ``params``.

    ``engine``: ``"hotcoco"`` (hotcoco 1.3's Rust COCOeval, about 10x faster), ``"faster_coco_eval"``
    (faster_coco_eval ``evaluate`` with our OKS + our pycocotools ``accumulate``), or ``"auto"``: hotcoco where it is
    bit-identical to pycocotools 2.0.11 (:func:`hotcoco_identical`), else faster_coco_eval. hotcoco does not edit
    its inputs; the faster_coco_eval engine does (pass copies).
    ``keep_states``: keep the first evaluation's per-image states (``_boot_states``, ``_boot_params``) for
    :meth:`CocoImageResampler.from_eval` (hotcoco: derived from its ``evalImgs``)."""
    engine = resolve_engine(engine, gt, preds, iou_type, use_area=use_area)
    if engine == "hotcoco":
        return _run_hotcoco(gt, preds, iou_type, sigmas=sigmas, keep_states=keep_states)
    return _run_faster(gt, preds, iou_type, sigmas=sigmas, use_area=use_area, keep_states=keep_states)


def _run_hotcoco(gt: dict, preds: list[dict], iou_type: str, *, sigmas: Any, keep_states: bool) -> HotcocoEval:
    import hotcoco

    if iou_type not in ("keypoints", "bbox"):
        raise ValueError(f"the hotcoco engine evaluates 'keypoints' and 'bbox', not {iou_type!r}")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        cgt = hotcoco.COCO(gt)
        ev = hotcoco.COCOeval(cgt, cgt.loadRes(preds), iou_type)
        if sigmas is not None:
            p = ev.params  # attribute reads are copies: assign the whole value, then the whole Params
            p.kpt_oks_sigmas = [float(s) for s in sigmas]
            ev.params = p
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return HotcocoEval(ev, keep_states)


def _run_faster(gt: dict, preds: list[dict], iou_type: str, *, sigmas: Any, use_area: bool, keep_states: bool) -> Any:
    """faster_coco_eval ``evaluate`` + our OKS + our pycocotools ``accumulate`` + ``summarize``."""
    from faster_coco_eval import COCO, COCOeval_faster

    class _Eval(COCOeval_faster):
        engine = "faster_coco_eval"
        _oks: dict | None = None
        _boot_states: list | None = None
        _boot_params: Any = None

        def computeOks(self, imgId: int, catId: int) -> Any:  # the faster-coco-eval hook, all pairs at once
            if self._oks is None:
                self._oks = _batched_oks(self)
            return self._oks[imgId, catId]

        def accumulate(self, p: Any = None) -> None:
            states = [e.__getstate__() for e in self._evalImgs_cpp]
            if keep_states and self._boot_states is None:  # the first (full) evaluation, for bootstrap replicates
                self._boot_states, self._boot_params = states, self._paramsEval
            self.eval = _accumulate(states, self._paramsEval)

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        cgt = COCO(gt)
        cdt = cgt.loadRes(preds)
        ev = _Eval(
            cgt,
            cdt,
            iou_type,
            print_function=lambda *a, **k: None,
            kpt_oks_sigmas=None if sigmas is None else list(sigmas),
            use_area=use_area,
            separate_eval=True,
        )
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def _engine_inputs(
    gt: CocoGt, preds: CocoResults, iou_type: str, renumber_zero_id: bool, engine: str
) -> tuple[Any, Any, str]:
    """The (GT, predictions, engine) to evaluate, from what validation learnt (no pass over the records here).

    ``"auto"`` is hotcoco unless pycocotools' quirks or ``--lenient`` values need the pycocotools-parity path
    (a GT id 0 kept, duplicate ids, NaN scores, relaxed values): :func:`hotcoco_identical`. hotcoco reads the
    validated inputs as they are (it edits nothing); copies are made only where ids are renumbered, scores ranked,
    or for the faster_coco_eval engine (it edits them)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    zero = gt.has_zero_id and renumber_zero_id
    if engine == "auto":
        exact = not (gt.has_zero_id and not renumber_zero_id) and not gt.duplicate_ids and not gt.renumber
        exact = exact and preds.finite_scores and not gt.relaxed and not preds.relaxed
        engine = "hotcoco" if exact else "faster_coco_eval"
    if engine == "hotcoco" and not zero and not gt.renumber and preds.finite_scores:
        return gt.data, preds.records, engine
    data = renumbered(gt) if gt.renumber and not zero else gt.data
    return _copy_gt(data, zero), _copy_preds(preds.records), engine


def _counts(gt: Mapping, preds: Sequence, kind: str) -> dict[str, int]:
    ign = 0
    for a in gt["annotations"]:
        ign += bool(a.get("iscrowd", 0)) or (kind == "keypoints" and a.get("num_keypoints", 0) == 0)
    return {
        "num_images": len(gt["images"]),
        "num_gt": len(gt["annotations"]),
        "num_ignored_gt": int(ign),
        "num_predictions": len(preds),
    }


def _stats(ev: Any, n: int) -> list[float]:
    return [float(v) for v in np.asarray(ev.stats, dtype=np.float64)[:n]]


# ------------------------------------------------------------------------------------------------ public API


def evaluate_coco_keypoints(
    gt: GtSource,
    preds: PredSource,
    *,
    sigmas: Sequence[float] | None = None,
    renumber_zero_id: bool = False,
    allow_duplicate_ids: bool = False,
    return_resampler: bool = False,
    engine: str = "auto",
    lenient: bool = False,
) -> Any:
    """COCO OKS keypoint AP/AR (pycocotools ``iouType="keypoints"``; metrics.md section 1).

    ``gt``: COCO GT dict, JSON path or validated :class:`CocoGt`; ``preds``: COCO results list, JSON path or
    :class:`CocoResults` (validated inputs are not checked again, :func:`validated`). ``lenient``: accept the values
    pycocotools accepts (:mod:`crowdbench.datasets.formats.coco_checks`). ``sigmas`` default to COCO-17
    (pycocotools' own array); other sigmas are converted with :func:`pycocotools_sigmas`.
    ``return_resampler=True``: ``(result, CocoImageResampler)``, the per-image statistics for bootstrap replicates.
    ``engine``: see :func:`run_cocoeval` (``"auto"``: hotcoco where identical to pycocotools).
    """
    sig = None if sigmas is None else pycocotools_sigmas(sigmas)
    k = 17 if sig is None else len(sig)
    g, p = validated(
        gt, preds, kind="keypoints", num_keypoints=k, lenient=lenient, allow_duplicate_ids=allow_duplicate_ids
    )
    gd, pd, eng = _engine_inputs(g, p, "keypoints", renumber_zero_id, engine)
    ev = run_cocoeval(gd, pd, "keypoints", sigmas=sig, keep_states=return_resampler, engine=eng)
    res = CocoKeypointResult(*_stats(ev, 10), **_counts(g.data, p.records, "keypoints"))
    return (res, CocoImageResampler.from_eval(ev)) if return_resampler else res


def evaluate_coco_box(
    gt: GtSource,
    dets: PredSource,
    *,
    renumber_zero_id: bool = False,
    allow_duplicate_ids: bool = False,
    return_resampler: bool = False,
    engine: str = "auto",
    lenient: bool = False,
) -> Any:
    """COCO box AP/AR (pycocotools ``iouType="bbox"``), e.g. person detection; same conventions as keypoints.

    ``return_resampler=True``: ``(result, CocoImageResampler)``; ``engine``: see :func:`run_cocoeval`."""
    g, p = validated(
        gt, dets, kind="bbox", num_keypoints=None, lenient=lenient, allow_duplicate_ids=allow_duplicate_ids
    )
    gd, pd, eng = _engine_inputs(g, p, "bbox", renumber_zero_id, engine)
    ev = run_cocoeval(gd, pd, "bbox", keep_states=return_resampler, engine=eng)
    res = CocoBoxResult(*_stats(ev, 12), **_counts(g.data, p.records, "bbox"))
    return (res, CocoImageResampler.from_eval(ev)) if return_resampler else res


def split_vis_invis(gt: Mapping[str, Any], split: Literal["keypoints", "instances"] = "keypoints") -> tuple[dict, dict]:
    """The (val-vis, val-invis) GT dicts of paper 001 under the chosen reading (module docstring)."""
    if split not in ("keypoints", "instances"):
        raise ValueError(f"split must be 'keypoints' or 'instances', got {split!r}")
    out = []
    for keep in (2, 1):
        anns = []
        for a in gt["annotations"]:
            a = dict(a)
            kp = np.asarray(a["keypoints"], dtype=np.float64).reshape(-1, 3)
            v = kp[:, 2]
            if split == "keypoints":
                kp[v != keep] = 0.0
                a["keypoints"] = kp.ravel().tolist()
                a["num_keypoints"] = int(np.count_nonzero(kp[:, 2] > 0))
            else:
                labeled = v > 0
                member = labeled.any() and (bool(np.all(v[labeled] == 2)) if keep == 2 else bool(np.any(v == 1)))
                if not member:
                    a["num_keypoints"] = 0
            anns.append(a)
        out.append({**gt, "annotations": anns})
    return out[0], out[1]


def evaluate_coco_vis_invis(
    gt: GtSource,
    preds: PredSource,
    *,
    split: Literal["keypoints", "instances"] = "keypoints",
    sigmas: Sequence[float] | None = None,
    renumber_zero_id: bool = False,
    allow_duplicate_ids: bool = False,
    lenient: bool = False,
    return_resampler: bool = False,
) -> Any:
    """AP-vis and AP-invis of paper 001 (Table 1): COCO keypoint AP on the val-vis / val-invis GT subsets.
    ``return_resampler=True``: ``(result, (vis resampler, invis resampler))``, over the same images."""
    k = 17 if sigmas is None else len(sigmas)
    g, p = validated(
        gt, preds, kind="keypoints", num_keypoints=k, lenient=lenient, allow_duplicate_ids=allow_duplicate_ids
    )
    vis, invis = split_vis_invis(g.data, split)
    kw = {"sigmas": sigmas, "renumber_zero_id": renumber_zero_id, "allow_duplicate_ids": allow_duplicate_ids}
    kw["return_resampler"] = return_resampler
    rv = evaluate_coco_keypoints(dataclasses.replace(g, data=vis), p, **kw)
    ri = evaluate_coco_keypoints(dataclasses.replace(g, data=invis), p, **kw)
    if not return_resampler:
        return CocoVisInvisResult(AP_vis=rv.AP, AP_invis=ri.AP, split=split, vis=rv, invis=ri)
    (rv, rs_v), (ri, rs_i) = rv, ri
    return CocoVisInvisResult(AP_vis=rv.AP, AP_invis=ri.AP, split=split, vis=rv, invis=ri), (rs_v, rs_i)


# ------------------------------------------------------------------------------------------------ bootstrap


def _stat_spec(iou_type: str, p: Any) -> list[tuple[str, int, float | None, str, int]]:
    """(name, ap, iouThr, area label, maxDets) of each summary stat, in ``COCOeval.summarize`` order."""
    md = int(p.maxDets[-1])
    if iou_type == "bbox":
        names = BOX_STAT_NAMES
        spec = [(1, None, "all", md), (1, 0.5, "all", md), (1, 0.75, "all", md)]
        spec += [(1, None, lbl, md) for lbl in p.areaRngLbl[1:]]
        spec += [(0, None, "all", int(m)) for m in p.maxDets]
        spec += [(0, None, lbl, md) for lbl in p.areaRngLbl[1:]]
    else:
        kp = [(1, None, "all", md), (1, 0.5, "all", md), (1, 0.75, "all", md)]
        ar = [(0, None, "all", md), (0, 0.5, "all", md), (0, 0.75, "all", md)]
        if iou_type == "keypoints":
            names = KEYPOINT_STAT_NAMES
            spec = [*kp, (1, None, "medium", md), (1, None, "large", md)]
            spec += [*ar, (0, None, "medium", md), (0, None, "large", md)]
        else:  # keypoints_crowd: AP, AP50, AP75, AR, AR50, AR75 (easy / medium / hard are added separately)
            names, spec = ("AP", "AP50", "AP75", "AR", "AR50", "AR75"), kp + ar
    return [(n, *s) for n, s in zip(names, spec, strict=True)]


class CocoImageResampler:
    """Per-image sufficient statistics of a pycocotools-protocol evaluation (a :class:`~..bootstrap.Resampler`).

    Kept per (category, area range) and image, as pycocotools' ``evalImgs``: each kept prediction's score, its rank
    in the image (for the ``maxDets`` cuts), matched and ignored flags per IoU / OKS threshold, and the count of
    non-ignored GT. A replicate with image weights ``w`` (shared/reference/uncertainty.md) redoes
    ``COCOeval.accumulate`` on the weighted set: one stable (mergesort) sort on ``-score``, TP(k) = cumsum(w·tp),
    FP(k) = cumsum(w·fp), recall = TP / Σ w·nGT, precision = TP / (TP + FP + eps), its monotone envelope read at the
    101 recall thresholds, then ``summarize``'s means. Only TP positions are evaluated (precision peaks there and
    ``searchsorted`` on recall lands there), with the very same float operations, so all-ones weights reproduce the
    point estimate bit for bit. ``crowd_splits`` (CrowdPose): image masks for AP easy / medium / hard, each
    evaluated as the official API does (mean of ``precision[..., area=all, :]`` including -1, rounded to 4).
    Undefined stats (no GT in the bucket for a replicate) are -1, as pycocotools reports them.
    """

    undefined = -1.0  # a replicate's "no GT in the bucket" value: left out of intervals (bootstrap_record)

    unit = "image"

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.arrays = dict(arrays)
        a = self.arrays
        self.units = [str(i) for i in a["img_ids"].tolist()]
        self.iou_type = str(a["iou_type"])
        self.iou_thrs = a["iou_thrs"]
        self.rec_thrs = a["rec_thrs"]
        self.max_dets = [int(m) for m in a["max_dets"]]
        self.area_lbl = [str(x) for x in a["area_lbl"]]
        self.n_cat = int(a["n_cat"])
        self.split_names = [str(x) for x in a["split_names"]]
        self._combos: dict[tuple[int, int, int], dict] = {}

    # -- construction / persistence

    @classmethod
    def from_eval(cls, ev: Any, crowd_splits: Mapping[str, np.ndarray] | None = None) -> CocoImageResampler:
        """From a :func:`run_cocoeval` result (its first evaluation's per-image states)."""
        states, p = ev._boot_states, ev._boot_params
        cat_ids = p.catIds if p.useCats else [-1]
        n_t, n_a, n_i = len(p.iouThrs), len(p.areaRng), len(p.imgIds)
        arrays: dict[str, np.ndarray] = {
            "img_ids": np.asarray(p.imgIds, dtype=np.int64),
            "iou_type": np.asarray(p.iouType),
            "iou_thrs": np.asarray(p.iouThrs, dtype=np.float64),
            "rec_thrs": np.asarray(p.recThrs, dtype=np.float64),
            "max_dets": np.asarray(p.maxDets, dtype=np.int64),
            "area_lbl": np.asarray(p.areaRngLbl),
            "n_cat": np.asarray(len(cat_ids)),
            "split_names": np.asarray(list(crowd_splits or {}), dtype=str),
        }
        for name, mask in (crowd_splits or {}).items():
            arrays[f"split_{name}"] = np.asarray(mask, dtype=bool)
        for k in range(len(cat_ids)):
            for a in range(n_a):
                block = states[(k * n_a + a) * n_i : (k * n_a + a + 1) * n_i]
                nd = np.array([len(st[2]) if len(st) else 0 for st in block], dtype=np.int64)
                d = int(nd.sum())
                arrays[f"k{k}a{a}_img"] = np.repeat(np.arange(n_i, dtype=np.int32), nd)
                arrays[f"k{k}a{a}_pos"] = (
                    np.concatenate([np.arange(n) for n in nd]).astype(np.int32) if d else np.zeros(0, np.int32)
                )
                arrays[f"k{k}a{a}_score"] = (
                    np.concatenate([np.asarray(st[2], dtype=np.float64) for st in block if len(st)])
                    if d
                    else np.zeros(0)
                )
                for key, j in (("dtm", 0), ("dtig", 4)):
                    parts = [np.asarray(st[j]).reshape(n_t, n) != 0 for st, n in zip(block, nd, strict=True) if n]
                    arrays[f"k{k}a{a}_{key}"] = np.concatenate(parts, 1) if parts else np.zeros((n_t, 0), bool)
                arrays[f"k{k}a{a}_npig"] = np.array(
                    [np.count_nonzero(~np.asarray(st[3], dtype=bool)) if len(st) else 0 for st in block],
                    dtype=np.int64,
                )
        return cls(arrays)

    def save(self, path: str | Path) -> None:
        """One compressed ``.npz`` (what the evaluate stage keeps for later reports)."""
        np.savez_compressed(path, **self.arrays)

    @classmethod
    def load(cls, path: str | Path) -> CocoImageResampler:
        with np.load(path, allow_pickle=False) as z:
            return cls({k: z[k] for k in z.files})

    # -- replicates

    def _combo(self, k: int, a: int, m: int) -> dict:
        """Sorted predictions of one (category, area, maxDets) with, per threshold, TP / ignored positions."""
        key = (k, a, m)
        if key in self._combos:
            return self._combos[key]
        ar = self.arrays
        pre = f"k{k}a{a}_"
        keep = ar[pre + "pos"] < self.max_dets[m]
        sc = ar[pre + "score"][keep]
        inds = np.argsort(-sc, kind="mergesort")
        dtm = ar[pre + "dtm"][:, keep][:, inds]
        dtig = ar[pre + "dtig"][:, keep][:, inds]
        img = ar[pre + "img"][keep][inds]
        live = ~dtig.all(axis=0)  # ignored at every threshold: neither TP nor FP anywhere, dropped
        dtm, dtig, img = dtm[:, live], dtig[:, live], img[live]
        per_t = []
        for t in range(len(self.iou_thrs)):
            tp_pos = np.flatnonzero(dtm[t] & ~dtig[t])
            ig_pos = np.flatnonzero(dtig[t])
            per_t.append((tp_pos, ig_pos, np.searchsorted(ig_pos, tp_pos)))
        out = {"img": img, "per_t": per_t, "npig": ar[pre + "npig"].astype(np.float64), "nd": int(keep.sum())}
        self._combos[key] = out
        return out

    def _pr(self, w: np.ndarray, k: int, a: int, m: int, need_precision: bool) -> tuple[np.ndarray, np.ndarray]:
        """``precision [B, T, R]`` and ``recall [B, T]`` of one (k, a, m) for weights ``w [B, n]`` (-1: no GT)."""
        c = self._combo(k, a, m)
        n_b, n_t, n_r = len(w), len(self.iou_thrs), len(self.rec_thrs)
        npig = w.astype(np.float64) @ c["npig"]
        precision = np.full((n_b, n_t, n_r), -1.0)
        recall = np.full((n_b, n_t), -1.0)
        rows = np.flatnonzero(npig != 0)
        if not len(rows):
            return precision, recall
        wd = w[rows][:, c["img"]]
        cw = np.cumsum(wd, axis=1, dtype=np.int32)
        npig_r = npig[rows, None]
        for t, (tp_pos, ig_pos, ig_before) in enumerate(c["per_t"]):
            if not len(tp_pos):
                recall[rows, t] = 0.0
                precision[rows, t] = 0.0
                continue
            tp = np.cumsum(wd[:, tp_pos], axis=1, dtype=np.int32)
            tpf = tp.astype(np.float64)
            recall[rows, t] = tpf[:, -1] / npig_r[:, 0]
            if not need_precision:
                continue
            # FP + TP = every non-ignored prediction so far: an exact integer, as pycocotools' float sum is
            counted = cw[:, tp_pos]
            if len(ig_pos):
                ig = np.zeros((len(rows), len(ig_pos) + 1), np.int32)
                np.cumsum(wd[:, ig_pos], axis=1, out=ig[:, 1:])
                counted -= ig[:, ig_before]
            pr = tpf / (counted.astype(np.float64) + np.spacing(1))
            rc = tpf / npig_r
            precision[rows, t] = _envelope_at(pr, rc, self.rec_thrs)
        return precision, recall

    def values(self, weights: np.ndarray, batch: int | None = None) -> dict[str, np.ndarray]:
        """Stat name -> ``R`` replicate values for ``weights [R, n_images]`` (summarize's order and rules)."""
        w = np.asarray(weights)
        if w.ndim != 2 or w.shape[1] != len(self.units):
            raise ValueError(f"weights must be R x {len(self.units)}, got {w.shape}")
        w = w.astype(np.int32)
        if batch is None:
            d = max(1, max(len(self.arrays[f"k{k}a0_img"]) for k in range(self.n_cat)))
            batch = int(max(1, min(len(w), 1_200_000 // d)))  # ~1M elements per pass: cache-sized, fastest
        parts = [self._values(w[s : s + batch]) for s in range(0, len(w), batch)]
        return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]} if parts else {}

    def _values(self, w: np.ndarray) -> dict[str, np.ndarray]:
        spec = _stat_spec(self.iou_type, _SpecParams(self.max_dets, self.area_lbl))
        n_k = self.n_cat
        prec: dict[tuple[int, int], np.ndarray] = {}
        rec: dict[tuple[int, int], np.ndarray] = {}
        need_p = {(self.area_lbl.index(s[3]), self.max_dets.index(s[4])) for s in spec if s[1] == 1}
        for _, _, _, lbl, md in spec:
            am = (self.area_lbl.index(lbl), self.max_dets.index(md))
            if am in rec and (am not in need_p or am in prec):
                continue
            ps, rs = zip(*(self._pr(w, k, *am, am in need_p) for k in range(n_k)), strict=True)
            prec[am] = np.stack(ps, axis=-1)  # B, T, R, K
            rec[am] = np.stack(rs, axis=-1)  # B, T, K
        out: dict[str, np.ndarray] = {}
        for name, ap, thr, lbl, md in spec:
            am = (self.area_lbl.index(lbl), self.max_dets.index(md))
            s = prec[am] if ap == 1 else rec[am]
            if thr is not None:
                s = s[:, np.where(thr == self.iou_thrs)[0]]
            out[name] = _batched_mean(s.reshape(len(w), -1))
        if self.split_names:
            n_t, n_r, n_a, n_m = len(self.iou_thrs), len(self.rec_thrs), len(self.area_lbl), len(self.max_dets)
            for name in self.split_names:
                ws = w * self.arrays[f"split_{name}"][None, :]
                full = -np.ones((len(w), n_t, n_r, n_k, n_a, n_m))
                for m in range(n_m):
                    full[:, :, :, :, 0, m] = np.stack([self._pr(ws, k, 0, m, True)[0] for k in range(n_k)], axis=-1)
                if not self.arrays[f"split_{name}"].any():
                    full[:] = -1.0
                out[f"AP_{name}"] = np.array([round(np.mean(f[:, :, :, 0, :]), 4) for f in full])
        return out


@dataclass(frozen=True)
class _SpecParams:
    maxDets: list[int]
    areaRngLbl: list[str]


def _envelope_at(pr: np.ndarray, rc: np.ndarray, rec_thrs: np.ndarray) -> np.ndarray:
    """Per row: the monotone precision envelope ``max(pr[i:])`` at ``i = searchsorted(rc, thr, "left")`` for each
    recall threshold, 0 where ``i`` is past the end (``accumulate``'s ``q``). One ``maximum.reduceat`` over the
    segments between consecutive indices, then a suffix maximum over the few segment maxima."""
    n_b, n = pr.shape
    pi = np.empty((n_b, len(rec_thrs) + 1), np.int64)
    pi[:, 0] = 0  # a leading segment [0, pi_0) so each row's last segment ends where the next row starts
    for j in range(n_b):
        pi[j, 1:] = np.searchsorted(rc[j], rec_thrs, side="left")
    ok = pi[:, 1:] < n
    idx = (np.minimum(pi, n - 1) + n * np.arange(n_b)[:, None]).ravel()
    seg = np.maximum.reduceat(pr.reshape(-1), idx).reshape(n_b, -1)[:, 1:]
    env = np.maximum.accumulate(seg[:, ::-1], axis=1)[:, ::-1]
    return np.where(ok, env, 0.0)


def _batched_mean(s: np.ndarray) -> np.ndarray:
    """Per row ``np.mean(s[s > -1])`` or -1 (``COCOeval._summarize``); full rows in one call (same pairwise sum)."""
    valid = s > -1
    full = valid.all(axis=1)
    out = np.full(len(s), -1.0)
    if full.any() and s.shape[1]:
        out[full] = np.mean(s[full], axis=1)
    for j in np.flatnonzero(~full):
        row = s[j][valid[j]]
        if len(row):
            out[j] = np.mean(row)
    return out


# ------------------------------------------------------------------------------------------------ CLI


def _fmt(v: float) -> str:
    # deferred: import cycle (bench.metrics.cli imports this module)
    from crowdbench.bench.metrics.cli import pct

    return "n/a (no GT)" if v == -1 else pct(v)


def print_stats(title: str, result: Any, names: Sequence[str]) -> None:
    """Human-readable block: title line, then one line per stat (shared by the pose metric commands)."""
    print(title)
    for n in names:
        print(f"  {n:<8} {_fmt(getattr(result, n))}")


def print_bootstrap(args: argparse.Namespace, res: Any, resampler: Any, names: Sequence[str], title: str) -> None:
    """``--bootstrap``: every stat with its percentile interval (-1 replicates, no GT, are left out), as text or
    JSON (the result's fields, each stat replaced by ``{"value", "low", "high"}``, plus ``"bootstrap"``)."""
    # deferred: import cycle (bench.metrics.bootstrap imports this module)
    from crowdbench.bench.metrics.bootstrap import bootstrap_summary, print_intervals

    point = {n: getattr(res, n) for n in names}
    summary = bootstrap_summary(point, resampler, args.bootstrap, args.bootstrap_seed, args.level, undefined=-1.0)
    if args.json:
        print(strict_dumps(res.to_dict() | summary))
    else:
        print_intervals(f"{title}: {len(resampler.units)} images", summary, names)


def score_and_print(
    args: argparse.Namespace,
    evaluate: Callable[..., Any],
    kw: Mapping[str, Any],
    names: Sequence[str],
    title: str,
    ignored: str,
    predictions: str,
    extra: Callable[[Any], str] | None = None,
) -> None:
    """A COCO-protocol eval command's output: with ``--bootstrap`` the intervals, with ``--json`` the result, else
    ``title``, the counts (``ignored``, ``predictions``: what the GT's ignored and the predictions are called, then
    ``extra(result)``) and the stats of ``evaluate(args.gt, args.pred, **kw)``."""
    if args.bootstrap:
        res, rs = evaluate(args.gt, args.pred, return_resampler=True, **kw)
        print_bootstrap(args, res, rs, names, title)
        return
    res = evaluate(args.gt, args.pred, **kw)
    if args.json:
        print(strict_dumps(res.to_dict()))
        return
    counts = f"{res.num_images} images, {res.num_gt} GT ({res.num_ignored_gt} {ignored}), "
    more = extra(res) if extra is not None else ""
    print_stats(f"{title}: {counts}{res.num_predictions} {predictions}{more}", res, names)


def run_command(fn: Any, args: argparse.Namespace) -> int:
    """Call ``fn()``; print its result as JSON or text; bad input → ``error: ...`` on stderr and return 2."""
    try:
        if hasattr(args, "bootstrap"):
            # deferred: import cycle (bench.metrics.bootstrap imports this module)
            from crowdbench.bench.metrics.bootstrap import check_bootstrap_arguments

            check_bootstrap_arguments(args)
        for path in (args.gt, args.pred):
            need_file(path)
        fn()
    except (FormatError, OSError, ValueError, RecursionError, MemoryError) as exc:
        return fail(exc)
    return 0


def _cmd_keypoints(args: argparse.Namespace) -> int:
    def go() -> None:
        kw = {"renumber_zero_id": args.renumber_zero_id, "allow_duplicate_ids": args.allow_duplicate_ids}
        kw["lenient"] = args.lenient
        if args.vis_invis:
            res: Any = evaluate_coco_vis_invis(args.gt, args.pred, split=args.vis_invis, **kw)
            if args.json:
                print(strict_dumps(res.to_dict()))
                return
            print(f"COCO keypoints AP-vis / AP-invis ({args.gt.name} vs {args.pred.name}, split={res.split})")
            print(f"  {'AP-vis':<8} {_fmt(res.AP_vis)}")
            print(f"  {'AP-invis':<8} {_fmt(res.AP_invis)}")
            return
        title = f"COCO keypoints ({args.gt.name} vs {args.pred.name})"
        score_and_print(args, evaluate_coco_keypoints, kw, KEYPOINT_STAT_NAMES, title, "ignored", "predictions")

    return run_command(go, args)


def _cmd_box(args: argparse.Namespace) -> int:
    def go() -> None:
        kw = {"renumber_zero_id": args.renumber_zero_id, "allow_duplicate_ids": args.allow_duplicate_ids}
        kw["lenient"] = args.lenient
        title = f"COCO box ({args.gt.name} vs {args.pred.name})"
        score_and_print(args, evaluate_coco_box, kw, BOX_STAT_NAMES, title, "crowd", "detections")

    return run_command(go, args)


def add_coco_parser(
    eval_subparsers: argparse._SubParsersAction,
    name: str,
    *,
    help: str,
    description: str,
) -> argparse.ArgumentParser:
    """``crowdbench eval <name>`` with ``--gt`` (COCO JSON), ``--pred`` (COCO results) and ``--json`` (the COCO-format
    metric commands)."""
    gt, pred = ("FILE.json", "ground truth, COCO JSON"), ("FILE.json", "predictions, COCO results list")
    p = add_eval_parser(eval_subparsers, name, help=help, description=description, gt=gt, pred=pred)
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    return p


def add_id_options(p: argparse.ArgumentParser) -> None:
    """``--renumber-zero-id`` and ``--allow-duplicate-ids`` (shared by the COCO-protocol commands)."""
    p.add_argument(
        "--renumber-zero-id", action="store_true", help="renumber GT ids 1..N if one is 0 (else pycocotools' bug)"
    )
    p.add_argument(
        "--allow-duplicate-ids", action="store_true", help="accept duplicate GT ids as pycocotools does (else error)"
    )
    add_lenient_argument(p)


def add_lenient_argument(p: argparse.ArgumentParser) -> None:
    """``--lenient`` (the COCO-protocol commands): pycocotools' behaviour on the values it accepts."""
    p.add_argument(
        "--lenient",
        action="store_true",
        help="accept the values pycocotools accepts and scores (negative box sizes, visibility outside 0-2, "
        "ids beyond int64, duplicate ids, NaN scores); the number is pycocotools'. NaN coordinates, strings, "
        "wrong lengths and dangling ids are refused either way (datasets/formats/coco_checks.py)",
    )


def add_command(eval_subparsers: argparse._SubParsersAction) -> None:
    """Register ``crowdbench eval coco-keypoints`` and ``crowdbench eval coco-box``."""
    # deferred: import cycle (bench.metrics.bootstrap imports this module)
    from crowdbench.bench.metrics.bootstrap import add_bootstrap_arguments

    p = add_coco_parser(
        eval_subparsers,
        "coco-keypoints",
        help="COCO keypoint AP/AR (OKS, pycocotools protocol); optionally AP-vis / AP-invis",
        description="COCO keypoint AP/AR bit-identical to pycocotools (faster-coco-eval backend).",
    )
    add_id_options(p)
    p.add_argument(
        "--vis-invis",
        choices=("keypoints", "instances"),
        help="report AP-vis / AP-invis (paper 001) with this reading of the split",
    )
    add_bootstrap_arguments(p)
    p.set_defaults(func=_cmd_keypoints)
    p = add_coco_parser(
        eval_subparsers,
        "coco-box",
        help="COCO box AP/AR (pycocotools protocol), e.g. person detection",
        description="COCO bbox AP/AR bit-identical to pycocotools (faster-coco-eval backend).",
    )
    add_id_options(p)
    add_bootstrap_arguments(p)
    p.set_defaults(func=_cmd_box)
