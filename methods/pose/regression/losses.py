"""OKS, OKSFilter and the loss of the pose regression network (paper 002 eqs. 5, 8, 9; SMPR where the paper is
silent, methods.md section 4).

``L = l_cls L_cls + l_hm L_hm + l_init L_init + l_ref L_ref + l_psm L_psm (+ l_ctr L_ctr)`` (eq. 9):

* ``L_cls``: sigmoid focal loss (alpha 0.25, gamma 2) of the person classification, target 1 on the final positives,
  summed and divided by (#final positives + #images). With OKSFilter, FCOS positives whose initial pose has an OKS
  in ``[oks_neg, oks_pos)`` are left out of it (SMPR: 0.4 / 0.5; the paper's single threshold: both 0.5).
* ``L_hm``: focal loss of the P3 keypoint-class maps, divided by (#labelled joints + #images).
* ``L_init``: pose loss of the initial poses on every FCOS positive; ``L_ref`` of the refined poses on the final
  positives. Pose loss of a location: Smooth-L1 (paper) or L1 (SMPR code) over its labelled joints' coordinates, in
  strides, weighted by the location's OKS (``reg_weighting = "oks"``, section 3.2) and divided by the sum of weights.
* ``L_psm``: binary cross-entropy of the pose score against the OKS of the predicted pose with its person
  (``psm_target``: the refined pose, the paper's reading; or the initial pose, SMPR's code), over the final positives.
* ``L_ctr``: binary cross-entropy of centre-ness against FCOS's centre-ness target (Table 2's alternative scorer).

**OKSFilter** (section 3.1): the initial poses of the FCOS positives are compared by OKS with every person of the
image; a location stays positive for the classification, refinement and PSM only when its best OKS reaches
``oks_pos``, and then learns that best-matching person. With ``oks_keep_best`` each person also keeps the location
whose initial pose matches it best (SMPR's assigner, ``min_pos_iou = 0``), so nobody loses every positive early on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import sigmoid_focal_loss

from crowdbench.bench.config import RegressionModelConfig, RegressionTrainConfig
from crowdbench.methods.pose.regression.targets import (
    People,
    assign,
    centerness_targets,
    heatmap_targets,
    pose_targets,
)


def _oks(d2: Tensor, labelled: Tensor, areas: Tensor, sigmas: Tensor) -> Tensor:
    """Mean over labelled joints of ``exp(-d^2 / (2 sigma)^2 / (area + eps) / 2)`` (pycocotools' operation order)."""
    e = d2 / (2 * sigmas) ** 2 / (areas[..., None] + torch.finfo(d2.dtype).eps) / 2
    return torch.where(labelled, torch.exp(-e), torch.zeros_like(e)).sum(-1) / labelled.sum(-1).clamp(min=1)


def oks_matrix(poses: Tensor, keypoints: Tensor, areas: Tensor, sigmas: Tensor) -> Tensor:
    """OKS ``[N, G]`` (eq. 5) of predicted poses ``[N, K, 2]`` against people ``[G, K, 3]`` (v > 0 = labelled) with
    scales ``areas [G]``; 0 for a person without a labelled joint."""
    d2 = ((poses[:, None] - keypoints[None, :, :, :2]) ** 2).sum(-1)  # [N, G, K]
    labelled = (keypoints[..., 2] > 0)[None].expand_as(d2)
    return _oks(d2, labelled, areas[None].expand(d2.shape[:2]), sigmas)


def oks_pairs(poses: Tensor, keypoints: Tensor, areas: Tensor, sigmas: Tensor) -> Tensor:
    """OKS ``[N]`` of each pose ``[N, K, 2]`` with its own person ``[N, K, 3]`` and scale ``areas [N]``."""
    d2 = ((poses - keypoints[..., :2]) ** 2).sum(-1)
    return _oks(d2, keypoints[..., 2] > 0, areas, sigmas)


@dataclass
class FilterResult:
    """OKSFilter on a set of FCOS positives: ``keep`` (refinement / classification positives), ``ignore`` (left out
    of the classification loss), ``person`` (the best-matching person) and ``oks`` (its OKS), all ``[P]``."""

    keep: Tensor
    ignore: Tensor
    person: Tensor
    oks: Tensor


def oks_filter(
    poses: Tensor,
    people: People,
    sigmas: Tensor,
    *,
    pos: float = 0.5,
    neg: float = 0.5,
    keep_best: bool = True,
) -> FilterResult:
    """OKSFilter (paper 002 section 3.1) of initial poses ``[P, K, 2]`` (pixels) against the image's people."""
    if poses.shape[0] == 0 or len(people) == 0:
        empty = torch.zeros(poses.shape[0], dtype=torch.bool, device=poses.device)
        return FilterResult(empty, empty.clone(), empty.long(), poses.new_zeros(poses.shape[0]))
    oks = oks_matrix(poses, people.keypoints, people.areas, sigmas)  # [P, G]
    best, person = oks.max(1)
    keep = best >= pos
    if keep_best:
        top_oks, top = oks.max(0)  # each person's best location
        has = top_oks > 0
        keep[top[has]] = True
        person[top[has]] = torch.arange(len(people), device=poses.device)[has]
        best = oks.gather(1, person[:, None])[:, 0]
    ignore = ~keep & (best >= neg)
    return FilterResult(keep, ignore, person, best)


def pose_loss_sums(
    pred: Tensor, target: Tensor, mask: Tensor, weight: Tensor, kind: str, beta: float
) -> tuple[Tensor, Tensor]:
    """``(sum over locations of weight * sum_{labelled joints, x and y} loss(pred - target), sum of weights)``: the
    pose loss is their ratio; ``pred``/``target`` ``[P, K, 2]`` in strides, ``mask [P, K]``, ``weight [P]``."""
    per = (pred - target).abs() if kind == "l1" else F.smooth_l1_loss(pred, target, reduction="none", beta=beta)
    per = (per.sum(-1) * mask).sum(-1)  # [P]
    return (per * weight).sum(), weight.sum()


class GlobalBatch:
    """Normalisers over the whole batch when it is split over ``world`` DDP ranks (``bench/distributed.py``), as FCOS
    implementations reduce their positive counts: each rank divides its sum by the denominator summed over the ranks,
    times ``world`` since DDP averages gradients, so the gradient and the mean loss over ranks are those of the
    single-process batch. ``sum_over_ranks`` is ``all_reduce``; none = one process (plain ``num / den``)."""

    def __init__(self, sum_over_ranks: Callable[[Tensor], Tensor] | None = None, world: int = 1) -> None:
        self.sum_over_ranks, self.world = sum_over_ranks, world

    def ratio(self, num: Tensor, den: Tensor | float) -> Tensor:
        """``num / den`` of the global batch; the denominator is floored at 1e-6 (a batch whose OKS weights all
        underflow to 0 gives 0, not NaN)."""
        den = torch.as_tensor(den, dtype=num.dtype, device=num.device)
        if self.sum_over_ranks is None:
            return num / den.clamp(min=1e-6)
        return self.world * num / self.sum_over_ranks(den.detach().clone()).clamp(min=1e-6)


@dataclass
class _BatchTargets:
    """What the images of a batch contribute: classification targets and weights (0 = ignored by OKSFilter), the
    final-positive count, and per loss term the ``(prediction, target, ...)`` rows of each image."""

    cls_target: Tensor
    cls_weight: Tensor
    n_final: int = 0
    init: list[tuple[Tensor, Tensor, Tensor, Tensor]] = field(default_factory=list)
    ref: list[tuple[Tensor, Tensor, Tensor, Tensor]] = field(default_factory=list)
    psm: list[tuple[Tensor, Tensor]] = field(default_factory=list)
    ctr: list[tuple[Tensor, Tensor]] = field(default_factory=list)


def _add_image(
    acc: _BatchTargets,
    b: int,
    persons: People,
    out: dict[str, Tensor | None],
    model_cfg: RegressionModelConfig,
    train: RegressionTrainConfig,
    sigmas: Tensor,
) -> None:
    """Targets of image ``b``: FCOS positives learn the initial pose of their person (OKS-weighted); the final
    positives (OKSFilter's, or all of them) the class, the refined pose, the pose score and centre-ness."""
    points, strides, levels, initial = out["locations"], out["strides"], out["levels"], out["initial"]
    assert points is not None and strides is not None and levels is not None and initial is not None
    refined, psm, ctr = out["refined"], out["psm"], out["centerness"]
    owner = assign(
        points,
        strides,
        levels,
        persons,
        model_cfg.size_bounds,
        center_sampling=train.center_sampling,
        radius=train.center_radius,
    )
    pos = (owner >= 0).nonzero(as_tuple=True)[0]
    if pos.numel() == 0:
        return
    s, p = strides[pos], points[pos]
    kps, areas = persons.keypoints[owner[pos]], persons.areas[owner[pos]]
    init_px = (p[:, None] + initial[b, pos].detach() * s[:, None, None]).detach()
    init_oks = oks_pairs(init_px, kps, areas, sigmas)
    target, mask = pose_targets(p, s, kps)
    init_w = init_oks if train.reg_weighting == "oks" else torch.ones_like(init_oks)
    acc.init.append((initial[b, pos], target, mask, init_w))
    # final positives and the person each learns (OKSFilter: the best-matching one)
    if train.oks_filter:
        f = oks_filter(init_px, persons, sigmas, pos=train.oks_pos, neg=train.oks_neg, keep_best=train.oks_keep_best)
        acc.cls_weight[b, pos[f.ignore]] = 0.0
        final, person, final_oks = pos[f.keep], f.person[f.keep], f.oks[f.keep]
        fs, fp = s[f.keep], p[f.keep]
    else:
        final, person, final_oks, fs, fp = pos, owner[pos], init_oks, s, p
    acc.cls_target[b, final] = 1.0
    acc.n_final += int(final.numel())
    if final.numel() == 0:
        return
    fk, fa = persons.keypoints[person], persons.areas[person]
    f_target, f_mask = pose_targets(fp, fs, fk)
    weight = final_oks if train.reg_weighting == "oks" else torch.ones_like(final_oks)
    if refined is not None:
        acc.ref.append((refined[b, final], f_target, f_mask, weight))
    if psm is not None:
        chosen = refined if (refined is not None and train.psm_target == "refined") else initial
        pose_px = fp[:, None] + chosen[b, final].detach() * fs[:, None, None]
        acc.psm.append((psm[b, final], oks_pairs(pose_px, fk, fa, sigmas)))
    if ctr is not None:
        acc.ctr.append((ctr[b, final], centerness_targets(fp, persons.boxes[owner[final]])))


def regression_losses(
    out: dict[str, Tensor | None],
    people: Sequence[People],
    model_cfg: RegressionModelConfig,
    train: RegressionTrainConfig,
    sigmas: Tensor,
    batch: GlobalBatch | None = None,
) -> dict[str, Tensor]:
    """The weighted loss terms of one batch (eq. 9; ``out`` from ``PoseRegressionNet.forward``, one ``People`` per
    image); ``batch`` makes the normalisers those of the global batch under DDP."""
    batch = batch or GlobalBatch()
    cls, initial = out["cls"], out["initial"]
    assert cls is not None and initial is not None
    refined, psm, ctr = out["refined"], out["psm"], out["centerness"]
    acc = _BatchTargets(torch.zeros_like(cls), torch.ones_like(cls))
    for b, persons in enumerate(people):
        _add_image(acc, b, persons, out, model_cfg, train, sigmas)
    n_img = len(people)
    losses: dict[str, Tensor] = {}
    focal = sigmoid_focal_loss(cls, acc.cls_target, alpha=0.25, gamma=2.0, reduction="none")
    losses["cls"] = train.loss_cls * batch.ratio((focal * acc.cls_weight).sum(), acc.n_final + n_img)
    losses["initial"] = train.loss_initial * _pose_term(acc.init, train, initial, batch)
    if refined is not None:
        losses["refined"] = train.loss_refined * _pose_term(acc.ref, train, refined, batch)
    if psm is not None:
        losses["psm"] = train.loss_psm * _bce_term(acc.psm, psm, batch)
    if ctr is not None:
        losses["centerness"] = train.loss_centerness * _bce_term(acc.ctr, ctr, batch)
    heatmap = out.get("heatmap")
    if heatmap is not None:
        h, w = heatmap.shape[-2:]
        stride = int(model_cfg.strides[0])
        target = torch.stack([heatmap_targets(q.keypoints, stride, h, w) for q in people])
        n_joints = int(target.sum())
        fl = sigmoid_focal_loss(heatmap, target, alpha=0.25, gamma=2.0, reduction="sum")
        losses["heatmap"] = train.loss_heatmap * batch.ratio(fl, n_joints + n_img)
    return losses


def _pose_term(
    terms: list[tuple[Tensor, Tensor, Tensor, Tensor]], train: RegressionTrainConfig, like: Tensor, batch: GlobalBatch
) -> Tensor:
    if not terms:  # still a term of the graph (and a 0 in the denominators' reduction on every rank)
        return batch.ratio(like.sum() * 0.0, 1e-6)
    pred, target, mask, weight = (torch.cat(parts) for parts in zip(*terms, strict=True))
    num, den = pose_loss_sums(pred, target, mask, weight, train.reg_loss, train.smooth_l1_beta)
    return batch.ratio(num, den)


def _bce_term(terms: list[tuple[Tensor, Tensor]], like: Tensor, batch: GlobalBatch) -> Tensor:
    if not terms:
        return batch.ratio(like.sum() * 0.0, 1e-6)
    logits, target = (torch.cat(parts) for parts in zip(*terms, strict=True))
    if batch.sum_over_ranks is None:
        return F.binary_cross_entropy_with_logits(logits, target.clamp(0, 1), reduction="mean")
    return batch.ratio(F.binary_cross_entropy_with_logits(logits, target.clamp(0, 1), reduction="sum"), len(logits))
