"""CrowdDet: one proposal, multiple predictions (Chu, Zheng, Zhang, Sun, "Detection in Crowded Scenes:
One Proposal, Multiple Predictions", CVPR 2020). Spec: ``shared/reference/methods.md`` section 1.

The technique, top to bottom:

1. ``targets_from_frame`` / ``IgnoreAwareTransform``: our data model -> torchvision targets with ignore regions.
2. ``assign_slots``: per-proposal top-K GT targets (paper: instance set G(b_i); reference ``fpn_roi_target``).
3. ``emd_loss``: the paper's EMD loss L(b_i) = min over permutations of the summed slot losses.
4. ``MultiInstancePredictor``: K (logits, deltas) per proposal + the refinement module (paper: "Refinement module").
5. ``MultiInstanceRoIHeads``: torchvision ``RoIHeads`` with 2-4; inference returns raw, pre-NMS boxes.
6. ``set_nms`` / ``normal_nms`` / ``apply_nms``: paper: "Set NMS", run as a separate post-processing stage.
7. Plugins ``crowddet.emd_loss``, ``crowddet.refine_module``, ``crowddet.set_nms``: the columns of CrowdDet's ablation
   (MIP/EMD/RM/Set NMS) and of paper 000 (hie-pose) Table 3, which switches the CrowdDet pieces on one by one.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes
from torchvision.ops import box_iou, clip_boxes_to_image, nms, remove_small_boxes

from crowdbench.bench.registry import Hook, Stage, register
from crowdbench.methods.declarative import Option, SettingPlugin

if TYPE_CHECKING:
    from crowdbench.datasets.model import Frame

PERSON = 1  # person-only detection: class 0 = background, 1 = person


# ----------------------------------------------------------------------------------------------------------------
# 1. Targets: our Frame -> torchvision target dict with ignore regions
# ----------------------------------------------------------------------------------------------------------------


def targets_from_frame(frame: Frame, device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """Target dict ``{"boxes" [N,4], "labels" [N] (ones), "ignore_boxes" [M,4]}`` for one frame (xyxy pixels).

    Instances flagged ``ignore`` join ``frame.ignore_regions`` in ``ignore_boxes`` (CrowdHuman "mask" boxes).
    Degenerate normal boxes (width or height <= 0) are dropped: torchvision rejects them and they cannot match.
    """
    normal = [inst.box for inst in frame.instances if not inst.ignore]
    ignored = [inst.box for inst in frame.instances if inst.ignore]
    boxes = np.asarray(normal, dtype=np.float32).reshape(-1, 4)
    boxes = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
    ignore = np.concatenate([frame.ignore_regions, np.asarray(ignored).reshape(-1, 4)]).astype(np.float32)
    return {
        "boxes": torch.as_tensor(boxes, device=device),
        "labels": torch.full((len(boxes),), PERSON, dtype=torch.int64, device=device),
        "ignore_boxes": torch.as_tensor(ignore.reshape(-1, 4), device=device),
    }


class IgnoreAwareTransform(GeneralizedRCNNTransform):
    """torchvision's resize/normalise/batch transform that also rescales ``target["ignore_boxes"]``.

    (The stock transform only rescales ``boxes``/``masks``/``keypoints``; ignore regions would stay in the
    original image's pixels.)
    """

    def resize(self, image: Tensor, target: dict[str, Tensor] | None = None) -> tuple[Tensor, Any]:
        h, w = image.shape[-2:]
        image, target = super().resize(image, target)
        if target is not None and "ignore_boxes" in target:
            target["ignore_boxes"] = resize_boxes(target["ignore_boxes"], (h, w), image.shape[-2:])
        return image, target


# ----------------------------------------------------------------------------------------------------------------
# 2. Target assignment: each proposal gets the K GT boxes it overlaps most (methods.md "Target assignment")
# ----------------------------------------------------------------------------------------------------------------


def box_ioa(boxes: Tensor, regions: Tensor) -> Tensor:
    """Intersection over the area of ``boxes`` (rows) against ``regions`` (columns): ``[N, M]``."""
    lt = torch.maximum(boxes[:, None, :2], regions[None, :, :2])
    rb = torch.minimum(boxes[:, None, 2:], regions[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(min=1e-6)
    return inter / area[:, None]


def _pad_columns(x: Tensor, k: int) -> Tensor:
    """Zero-pad an ``[N, M]`` overlap matrix to at least ``k`` columns (dummy GT with overlap 0)."""
    return F.pad(x, (0, max(0, k - x.shape[1])))


def assign_slots(
    proposals: Tensor, gt_boxes: Tensor, ignore_boxes: Tensor, k: int, fg_iou: float = 0.5
) -> tuple[Tensor, Tensor, Tensor]:
    """Slot targets for every proposal (CrowdDet reference ``fpn_roi_target`` with ``top_k = k``).

    Returns ``labels [P, K]`` (1 person, 0 background/dummy/ignore), ``matched [P, K, 4]`` (GT box of a person
    slot; the proposal itself otherwise, i.e. zero deltas, never regressed) and ``sample [P]`` for the slot-1
    sampler (1 foreground, 0 background, -1 never sampled: slot 1 covered by an ignore region with IoA >= 0.5).
    """
    num_props, num_gt = proposals.shape[0], gt_boxes.shape[0]
    # Step 2: IoU against normal GT, IoA against ignore regions; sort each row, keep the top K (zero-padded).
    iou = box_iou(proposals, gt_boxes) if num_gt else proposals.new_zeros((num_props, 0))
    ioa = box_ioa(proposals, ignore_boxes) if ignore_boxes.numel() else proposals.new_zeros((num_props, 0))
    iou_top, iou_idx = _pad_columns(iou, k).topk(k, dim=1)
    ioa_top, _ = _pad_columns(ioa, k).topk(k, dim=1)
    # Step 3: a slot takes the ignore match when its normal IoU < fg_iou and the ignore IoA is larger.
    use_ignore = (iou_top < fg_iou) & (ioa_top > iou_top)
    overlap = torch.where(use_ignore, ioa_top, iou_top)
    # Step 4: person if the overlap reaches fg_iou with a normal GT (padded columns have IoU 0, never person).
    labels = ((overlap >= fg_iou) & ~use_ignore).long() * PERSON
    gt_ext = torch.cat([gt_boxes, proposals.new_zeros((1, 4))])  # index num_gt = a padded (dummy) column
    matched_gt = gt_ext[iou_idx.clamp(max=num_gt)]
    matched = torch.where(labels[..., None] > 0, matched_gt, proposals[:, None, :].expand(-1, k, -1))
    # Step 5: sampling uses slot 1 only; background = slot-1 overlap in [0, fg_iou).
    sample = torch.where(labels[:, 0] > 0, 1, torch.where(overlap[:, 0] < fg_iou, 0, -1))
    return labels, matched, sample


# ----------------------------------------------------------------------------------------------------------------
# 3. EMD loss (paper: "EMD loss"; methods.md "EMD loss (exact)")
# ----------------------------------------------------------------------------------------------------------------


def emd_loss(
    logits: Tensor,
    deltas: Tensor,
    labels: Tensor,
    targets: Tensor,
    *,
    emd: bool = True,
    kd: Callable[[Tensor, Tensor, Tensor | None], Tensor] | None = None,
    teacher_logits: Tensor | None = None,
) -> Tensor:
    """``mean_b min_pi sum_j [CE(c_pi(j), y_j) + 1[y_j > 0] SmoothL1_beta=1(delta_pi(j), t_j)]``.

    ``logits [N,K,2]``, ``deltas [N,K,4]`` (predictions), ``labels [N,K]`` (-1 ignore: zero CE, 0 background,
    1 person), ``targets [N,K,4]`` (encoded deltas). SmoothL1 is summed over the four coordinates; the result is
    the plain mean over the N proposals. ``emd=False`` is the paper's "without EMD" row: only the identity
    permutation (slot j <-> j-th ranked target). The argmin is discrete: gradients flow through the chosen one.

    ``kd`` (Tf-KD, ``methods/detection/kd.py``): the slot classification loss ``kd(logits [N,C], labels [N],
    teacher [N,C] | None)`` replaces the CE after the matching -- see :func:`_emd_loss_kd`.
    """
    n, k = labels.shape
    if n == 0:
        return logits.sum() * 0.0 + deltas.sum() * 0.0
    # cost[b, p, t]: prediction p of proposal b against target slot t.
    lg = logits[:, :, None, :].expand(n, k, k, logits.shape[-1])
    lb = labels[:, None, :].expand(n, k, k)
    ce = F.cross_entropy(lg.reshape(-1, logits.shape[-1]), lb.reshape(-1), ignore_index=-1, reduction="none")
    reg = F.smooth_l1_loss(
        deltas[:, :, None, :].expand(n, k, k, 4), targets[:, None, :, :].expand(n, k, k, 4), beta=1.0, reduction="none"
    ).sum(-1)
    cost = ce.view(n, k, k) + torch.where(lb > 0, reg, 0.0)  # no regression for background/ignore slots
    perms = list(itertools.permutations(range(k))) if emd else [tuple(range(k))]
    slot = torch.arange(k, device=cost.device)
    per_perm = torch.stack([cost[:, list(p), slot].sum(-1) for p in perms], dim=1)  # [N, K!]
    if kd is not None:
        reg = torch.where(lb > 0, reg, 0.0)
        return _emd_loss_kd(per_perm, perms, logits, reg, labels, kd, teacher_logits)
    return per_perm.min(dim=1).values.mean()


def _emd_loss_kd(
    per_perm: Tensor,
    perms: list[tuple[int, ...]],
    logits: Tensor,
    reg: Tensor,
    labels: Tensor,
    kd: Callable[[Tensor, Tensor, Tensor | None], Tensor],
    teacher_logits: Tensor | None,
) -> Tensor:
    """EMD loss with the class term replaced by ``kd`` (methods.md 2, "With the CrowdDet head"): the permutation
    minimising the plain EMD cost is chosen (detached), each target slot j is paired with its predicted slot
    pi(j) (the teacher's slot pi(j) too), and ``sum_j kd(...)`` replaces the CE; regression is unchanged."""
    n, k = labels.shape
    order = torch.as_tensor(perms, device=logits.device)[per_perm.detach().argmin(dim=1)]  # [N, K]: pred of slot j
    rows = torch.arange(n, device=logits.device)[:, None]
    slot = torch.arange(k, device=logits.device)[None, :]
    reg_loss = reg[rows, order, slot].sum(-1).mean()
    student = logits[rows, order]  # [N, K, C], aligned with the target slots
    teacher = teacher_logits[rows, order] if teacher_logits is not None else None
    cls = [kd(student[:, j], labels[:, j], None if teacher is None else teacher[:, j]) for j in range(k)]
    return reg_loss + torch.stack(cls).sum()


# ----------------------------------------------------------------------------------------------------------------
# 4. Multi-instance predictor with the refinement module (paper: "Refinement module")
# ----------------------------------------------------------------------------------------------------------------


def _init_normal(layers: list[nn.Linear], std: float) -> None:
    for layer in layers:
        nn.init.normal_(layer.weight, std=std)
        nn.init.constant_(layer.bias, 0.0)


def init_fc_kaiming(layer: nn.Linear) -> None:
    """Reference init of the hidden FCs: Kaiming-uniform (a = 1), bias 0."""
    nn.init.kaiming_uniform_(layer.weight, a=1)
    nn.init.constant_(layer.bias, 0.0)


class MultiInstancePredictor(nn.Module):
    """K predictions per proposal: per-slot 2-way logits and class-agnostic deltas from the box-head feature h.

    With ``refine``: per slot, (4 deltas, person probability) tiled x4 (20 values) is concatenated to h, passed
    through one FC + ReLU shared across slots, then slot-specific refined predictors. No stop-gradient.
    ``forward`` returns ``{"logits" [N,K,2], "deltas" [N,K,4]}`` plus ``"refined_logits"``/``"refined_deltas"``.
    Init: predictors N(0, 0.001) (class layers N(0, 0.01) without refine), refine FC Kaiming-uniform (a=1).
    """

    def __init__(self, in_features: int, k: int = 2, refine: bool = False) -> None:
        super().__init__()
        self.k, self.refine = k, refine
        self.cls = nn.ModuleList(nn.Linear(in_features, 2) for _ in range(k))
        self.delta = nn.ModuleList(nn.Linear(in_features, 4) for _ in range(k))
        _init_normal(list(self.cls), 0.001 if refine else 0.01)
        _init_normal(list(self.delta), 0.001)
        if refine:
            self.refine_fc = nn.Linear(in_features + 20, in_features)
            self.refined_cls = nn.ModuleList(nn.Linear(in_features, 2) for _ in range(k))
            self.refined_delta = nn.ModuleList(nn.Linear(in_features, 4) for _ in range(k))
            init_fc_kaiming(self.refine_fc)
            _init_normal([*self.refined_cls, *self.refined_delta], 0.001)

    def forward(self, h: Tensor) -> dict[str, Tensor]:
        logits = [cls(h) for cls in self.cls]
        deltas = [delta(h) for delta in self.delta]
        out = {"logits": torch.stack(logits, 1), "deltas": torch.stack(deltas, 1)}
        if self.refine:
            ref_logits, ref_deltas = [], []
            for j in range(self.k):
                prob = F.softmax(logits[j], dim=-1)[:, PERSON : PERSON + 1]
                fed_back = torch.cat([deltas[j], prob], dim=1).repeat(1, 4)  # 5-vector tiled x4 = 20 values
                r = F.relu(self.refine_fc(torch.cat([h, fed_back], dim=1)))
                ref_logits.append(self.refined_cls[j](r))
                ref_deltas.append(self.refined_delta[j](r))
            out["refined_logits"] = torch.stack(ref_logits, 1)
            out["refined_deltas"] = torch.stack(ref_deltas, 1)
        return out


# ----------------------------------------------------------------------------------------------------------------
# 5. RoI heads: assignment + sampling, EMD losses, raw (pre-NMS) inference
# ----------------------------------------------------------------------------------------------------------------


class MultiInstanceRoIHeads(RoIHeads):
    """torchvision ``RoIHeads`` with CrowdDet's multi-instance head (K = 1 is the plain Faster R-CNN baseline).

    Training returns ``{"loss_emd"}`` (+ ``"loss_emd_refine"``). Inference returns, per image, the raw pre-NMS
    ``{"boxes" [M,4], "scores" [M], "groups" [M] (proposal index)}``: all K boxes of every proposal, decoded,
    clipped, ``score > self.score_thresh``, tiny boxes removed. NMS is :func:`apply_nms`, a separate stage.
    """

    box_predictor: MultiInstancePredictor
    kd: Any = None  # a methods.detection.kd.DetectorKD when Tf-KD is on (set by kd.attach_kd after building)

    def __init__(
        self,
        box_roi_pool: nn.Module,
        box_head: nn.Module,
        box_predictor: MultiInstancePredictor,
        *,
        batch_size_per_image: int = 512,
        positive_fraction: float = 0.5,
        fg_iou_thresh: float = 0.5,
        bbox_reg_weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0),
        score_thresh: float = 0.01,
        detections_per_img: int = 1000,
        emd: bool = True,
    ) -> None:
        super().__init__(
            box_roi_pool,
            box_head,
            box_predictor,
            fg_iou_thresh,
            fg_iou_thresh,
            batch_size_per_image,
            positive_fraction,
            bbox_reg_weights,
            score_thresh,
            0.5,
            detections_per_img,
        )
        self.fg_iou_thresh = fg_iou_thresh
        self.emd = emd

    @property
    def k(self) -> int:
        return self.box_predictor.k

    def select_training_samples(  # type: ignore[override]
        self, proposals: list[Tensor], targets: list[dict[str, Tensor]] | None
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """GT appended to proposals, top-K slot targets, slot-1 balanced sampling (methods.md steps 1-6).

        Returns per image the sampled proposals ``[n,4]``, slot labels ``[n,K]`` and slot deltas ``[n,K,4]``.
        """
        if targets is None:
            raise ValueError("MultiInstanceRoIHeads needs targets in training mode")
        gt_boxes = [t["boxes"].to(proposals[0].dtype) for t in targets]
        ignore = [t.get("ignore_boxes", gt.new_zeros((0, 4))).to(gt) for t, gt in zip(targets, gt_boxes, strict=True)]
        proposals = self.add_gt_proposals(proposals, gt_boxes)
        assigned = [
            assign_slots(p, g, i, self.k, self.fg_iou_thresh)
            for p, g, i in zip(proposals, gt_boxes, ignore, strict=True)
        ]
        pos, neg = self.fg_bg_sampler([sample for _, _, sample in assigned])
        out_props, out_labels, out_targets = [], [], []
        for props, (labels, matched, _), p, n in zip(proposals, assigned, pos, neg, strict=True):
            keep = torch.where((p | n).bool())[0]
            props, matched = props[keep], matched[keep]
            deltas = self.box_coder.encode_single(matched.reshape(-1, 4), props.repeat_interleave(self.k, 0))
            out_props.append(props)
            out_labels.append(labels[keep])
            out_targets.append(deltas.view(-1, self.k, 4))
        return out_props, out_labels, out_targets

    def forward(  # type: ignore[override]
        self,
        features: dict[str, Tensor],
        proposals: list[Tensor],
        image_shapes: list[tuple[int, int]],
        targets: list[dict[str, Tensor]] | None = None,
    ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        if self.training:
            proposals, labels, reg_targets = self.select_training_samples(proposals, targets)
        h = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        out = self.box_predictor(h)
        if self.training:
            y, t = torch.cat(labels), torch.cat(reg_targets)
            # Tf-KD (methods/detection/kd.py attach_kd): per-slot class loss and, for "self", the teacher's logits.
            kd = self.kd.loss if self.kd is not None else None
            teacher = self.kd.teacher_outputs(proposals, image_shapes) if self.kd is not None else {}
            losses = {
                "loss_emd": emd_loss(
                    out["logits"], out["deltas"], y, t, emd=self.emd, kd=kd, teacher_logits=teacher.get("logits")
                )
            }
            if "refined_logits" in out:  # the refined predictions get their own EMD loss, same targets
                t_ref = teacher.get("refined_logits", teacher.get("logits"))
                losses["loss_emd_refine"] = emd_loss(
                    out["refined_logits"], out["refined_deltas"], y, t, emd=self.emd, kd=kd, teacher_logits=t_ref
                )
            return [], losses
        prefix = "refined_" if "refined_logits" in out else ""  # at test time only the refined outputs are used
        return self.postprocess_detections(out[f"{prefix}logits"], out[f"{prefix}deltas"], proposals, image_shapes), {}

    def postprocess_detections(  # type: ignore[override]
        self, class_logits: Tensor, box_regression: Tensor, proposals: list[Tensor], image_shapes: list[tuple[int, int]]
    ) -> list[dict[str, Tensor]]:
        """Raw per-image results: K decoded boxes per proposal, clipped, thresholded, tiny boxes removed, no NMS."""
        k = class_logits.shape[1]
        # float32 decode: BoxCoder casts the proposals to the deltas' dtype (fp16 under autocast loses pixels)
        scores_all = F.softmax(class_logits.float(), dim=-1)[..., PERSON].split([len(p) for p in proposals])
        deltas_all = box_regression.float().split([len(p) for p in proposals])
        results = []
        for props, scores, deltas, shape in zip(proposals, scores_all, deltas_all, image_shapes, strict=True):
            boxes = self.box_coder.decode_single(deltas.reshape(-1, 4), props.float().repeat_interleave(k, 0))
            boxes = clip_boxes_to_image(boxes, shape)
            groups = torch.arange(len(props), device=props.device).repeat_interleave(k)
            scores = scores.reshape(-1)
            keep = torch.where(scores > self.score_thresh)[0]
            keep = keep[remove_small_boxes(boxes[keep], min_size=1e-2)]
            results.append({"boxes": boxes[keep], "scores": scores[keep], "groups": groups[keep]})
        return results


# ----------------------------------------------------------------------------------------------------------------
# 6. Set NMS (paper: "Set NMS") and the post-processing stage entry point
# ----------------------------------------------------------------------------------------------------------------


def set_nms(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float, block: int = 1024) -> Tensor:
    """Greedy NMS in which boxes of the same group (proposal) never suppress each other.

    A kept box suppresses a later (lower-score) box iff IoU > ``iou_threshold`` and the groups differ. Blockwise:
    each block of ``block`` score-sorted boxes is first checked against all earlier kept boxes at once, then
    resolved greedily inside the block. Returns kept indices into ``boxes``, by decreasing score (like ``nms``).
    """
    n = boxes.shape[0]
    order = torch.argsort(scores, descending=True, stable=True)
    if n == 0:
        return order
    b, g = boxes[order].cpu(), groups[order].cpu()
    keep = np.zeros(n, dtype=bool)
    for s in range(0, n, block):
        e = min(s + block, n)
        bb, gb = b[s:e], g[s:e]
        alive = np.ones(e - s, dtype=bool)
        kept = torch.from_numpy(np.flatnonzero(keep[:s]))
        if len(kept):  # suppression by every kept box of the earlier blocks
            sup = (box_iou(b[kept], bb) > iou_threshold) & (g[kept, None] != gb[None, :])
            alive &= ~sup.any(0).numpy()
        sup_in = ((box_iou(bb, bb) > iou_threshold) & (gb[:, None] != gb[None, :])).triu(1).numpy()
        for i in np.flatnonzero(sup_in.any(1)):  # greedy inside the block, in score order
            if alive[i]:
                alive &= ~sup_in[i]
        keep[s:e] = alive
    return order[torch.from_numpy(keep).to(order.device)]


def normal_nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Ordinary greedy NMS (``torchvision.ops.nms``): kept indices by decreasing score."""
    return nms(boxes, scores, iou_threshold)


def apply_nms(
    raw: dict[str, Any],
    kind: Literal["normal", "set", "none"] = "set",
    iou: float = 0.5,
    score_thresh: float = 0.01,
    max_dets: int | None = None,
) -> dict[str, Tensor]:
    """Post-processing stage for one image: ``score > score_thresh``, then NMS ``kind``, then the top ``max_dets``.

    ``raw`` is one :class:`MultiInstanceRoIHeads` result (tensors or arrays). Returns ``boxes``/``scores``/``groups``
    by decreasing score. CrowdDet's test default: Set NMS at 0.5, score > 0.01, no cap.
    """
    boxes = torch.as_tensor(raw["boxes"], dtype=torch.float32).reshape(-1, 4)
    scores = torch.as_tensor(raw["scores"], dtype=torch.float32).reshape(-1)
    groups = torch.as_tensor(raw["groups"], dtype=torch.int64).reshape(-1)
    idx = torch.where(scores > score_thresh)[0]
    if kind == "set":
        keep = idx[set_nms(boxes[idx], scores[idx], groups[idx], iou)]
    elif kind == "normal":
        keep = idx[normal_nms(boxes[idx], scores[idx], iou)]
    elif kind == "none":
        keep = idx[torch.argsort(scores[idx], descending=True, stable=True)]
    else:
        raise ValueError(f"unknown NMS kind {kind!r}; valid: normal, set, none")
    if max_dets is not None:
        keep = keep[:max_dets]
    return {"boxes": boxes[keep], "scores": scores[keep], "groups": groups[keep]}


# ----------------------------------------------------------------------------------------------------------------
# 7. Plugins (table rows)
# ----------------------------------------------------------------------------------------------------------------


@register("crowddet.emd_loss")
class EMDLossPlugin(SettingPlugin):
    """K predictions per proposal trained with the EMD loss, L(b) = min_pi sum_k [L_cls + L_reg] (Chu et al. 2020;
    "MIP" + "EMD" columns of CrowdDet's ablation; "+ emd loss" row of paper 000, hie-pose Table 3).

    Sets ``model.k`` and ``model.emd``. (K > 1 without EMD, the paper's fixed-order row, is ``model.emd=false``.)
    """

    hook: ClassVar[Hook] = "loss"
    stage: ClassVar[Stage] = "train"
    sets: ClassVar[dict[str, Any]] = {"model.k": Option("k"), "model.emd": True}

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")
        k: int = Field(2, ge=1, le=3, description="predictions per proposal (paper default 2)")


@register("crowddet.refine_module")
class RefineModulePlugin(SettingPlugin):
    """Refinement module (Chu et al. 2020; "RM" column of CrowdDet's ablation; "+ refine module" row of paper 000,
    hie-pose Table 3): each prediction is fed back with the proposal feature to a second predictor.

    Sets ``model.refine``; works with any ``model.k`` (also 1: refine with one slot).
    """

    hook: ClassVar[Hook] = "model"
    stage: ClassVar[Stage] = "train"
    sets: ClassVar[dict[str, Any]] = {"model.refine": True}


@register("crowddet.set_nms")
class SetNMSPlugin(SettingPlugin):
    """Set NMS (Chu et al. 2020; "Set NMS" column of CrowdDet's ablation; "+ set NMS" row of paper 000, hie-pose
    Table 3): boxes from the same proposal never suppress each other. Sets ``postprocess.nms``/``nms_iou``."""

    hook: ClassVar[Hook] = "postprocess"
    stage: ClassVar[Stage] = "postprocess"
    sets: ClassVar[dict[str, Any]] = {"postprocess.nms": "set", "postprocess.nms_iou": Option("iou")}

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")
        iou: float = Field(0.5, gt=0.0, le=1.0, description="NMS IoU threshold (reference test default 0.5)")
