"""Cascade R-CNN (Cai & Vasconcelos, "Cascade R-CNN: Delving into High Quality Object Detection", CVPR 2018).

A sequence of R-CNN stages t = 1..T, each with its own box head, predictor, IoU threshold u_t (0.5, 0.6, 0.7) and
box-coder weights ((10, 10, 5, 5), (20, 20, 10, 10), (30, 30, 15, 15): the regression targets shrink as the boxes
improve, section 4.2). Stage t + 1 is trained on stage t's regressed (detached) boxes, re-labelled at u_{t+1} and
re-sampled (GT boxes appended again), and the losses are summed with weights (1, 0.5, 0.25) (eq. 6-7 with the
published implementation's weights). Inference: the last stage's boxes, scored by the person probabilities of all
stages averaged (the "ensemble" of section 4.3), each stage scoring its own input boxes.

Per-stage target assignment and loss are the plain-baseline ones of ``crowddet.py`` (``assign_slots`` with K = 1:
ignore regions respected; ``emd_loss`` with K = 1 = cross-entropy + SmoothL1), so a Cascade row differs from its
Faster R-CNN row by the cascade only. Not composable with CrowdDet's K > 1 / refinement head yet: ``build_detector``
raises ``ValueError("cascade_rcnn with crowddet k>1 is not supported: ...")``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.ops import clip_boxes_to_image, remove_small_boxes

from crowdbench.bench.registry import Hook, Stage, register
from crowdbench.methods.declarative import Option, SettingPlugin
from crowdbench.methods.detection.crowddet import PERSON, MultiInstancePredictor, assign_slots, emd_loss

if TYPE_CHECKING:
    from crowdbench.bench.config import RunConfig

STAGE_REG_WEIGHTS: tuple[tuple[float, float, float, float], ...] = (
    (10.0, 10.0, 5.0, 5.0),
    (20.0, 20.0, 10.0, 10.0),
    (30.0, 30.0, 15.0, 15.0),
)


class CascadeRoIHeads(RoIHeads):
    """torchvision ``RoIHeads`` with T cascaded stages; ``box_head``/``box_predictor`` are ``ModuleList``s.

    Training returns ``{"loss_stage1": ..., ..., "loss_stageT"}`` (already weighted). Inference returns per image the
    raw pre-NMS ``{"boxes", "scores", "groups"}`` of :class:`crowddet.MultiInstanceRoIHeads` (groups = proposal).
    """

    box_head: nn.ModuleList
    box_predictor: nn.ModuleList

    def __init__(
        self,
        box_roi_pool: nn.Module,
        box_heads: Sequence[nn.Module],
        box_predictors: Sequence[MultiInstancePredictor],
        *,
        ious: Sequence[float] = (0.5, 0.6, 0.7),
        stage_weights: Sequence[float] = (1.0, 0.5, 0.25),
        reg_weights: Sequence[tuple[float, float, float, float]] = STAGE_REG_WEIGHTS,
        batch_size_per_image: int = 512,
        positive_fraction: float = 0.5,
        score_thresh: float = 0.01,
        detections_per_img: int = 1000,
    ) -> None:
        n = len(ious)
        if not (len(box_heads) == len(box_predictors) == len(stage_weights) == n) or len(reg_weights) < n or n == 0:
            raise ValueError(
                f"cascade: {len(box_heads)} heads, {len(box_predictors)} predictors, ious {tuple(ious)}, "
                f"weights {tuple(stage_weights)}, {len(reg_weights)} box-coder weights: need one of each per stage"
            )
        if any(p.k != 1 or p.refine for p in box_predictors):
            raise ValueError("cascade_rcnn with crowddet k>1 is not supported: one prediction per proposal and stage")
        super().__init__(
            box_roi_pool,
            nn.ModuleList(box_heads),
            nn.ModuleList(box_predictors),
            ious[0],
            ious[0],
            batch_size_per_image,
            positive_fraction,
            reg_weights[0],
            score_thresh,
            0.5,
            detections_per_img,
        )
        self.ious = tuple(float(u) for u in ious)
        self.stage_weights = tuple(float(w) for w in stage_weights)
        self.box_coders = [BoxCoder(w) for w in reg_weights[:n]]

    @property
    def num_stages(self) -> int:
        return len(self.ious)

    def label_stage(
        self, proposals: list[Tensor], targets: list[dict[str, Tensor]], stage: int
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """GT appended, labels at IoU ``ious[stage]`` (ignore regions as the baseline), balanced sampling, deltas
        encoded with the stage's box coder. Returns per image proposals ``[n,4]``, labels ``[n,1]``, deltas
        ``[n,1,4]``."""
        gt_boxes = [t["boxes"].to(proposals[0].dtype) for t in targets]
        ignore = [t.get("ignore_boxes", g.new_zeros((0, 4))).to(g) for t, g in zip(targets, gt_boxes, strict=True)]
        proposals = self.add_gt_proposals(proposals, gt_boxes)
        iou = self.ious[stage]
        assigned = [assign_slots(p, g, i, 1, iou) for p, g, i in zip(proposals, gt_boxes, ignore, strict=True)]
        pos, neg = self.fg_bg_sampler([sample for _, _, sample in assigned])
        out_props, out_labels, out_deltas = [], [], []
        for props, (labels, matched, _), p, n in zip(proposals, assigned, pos, neg, strict=True):
            keep = torch.where((p | n).bool())[0]
            props = props[keep]
            out_props.append(props)
            out_labels.append(labels[keep])
            out_deltas.append(self.box_coders[stage].encode_single(matched[keep, 0], props)[:, None])
        return out_props, out_labels, out_deltas

    def run_stage(
        self, stage: int, features: dict[str, Tensor], proposals: list[Tensor], image_shapes: list[tuple[int, int]]
    ) -> dict[str, Tensor]:
        """Stage ``stage``'s predictions ``{"logits" [N,1,2], "deltas" [N,1,4]}`` for the boxes ``proposals``."""
        return self.box_predictor[stage](self.box_head[stage](self.box_roi_pool(features, proposals, image_shapes)))

    def regress(
        self, stage: int, deltas: Tensor, proposals: list[Tensor], image_shapes: list[tuple[int, int]]
    ) -> list[Tensor]:
        """Stage ``stage``'s boxes (float32 decode, clipped, detached, at least 1 px wide and high) per image."""
        deltas = deltas.detach().float().reshape(-1, 4)
        boxes = self.box_coders[stage].decode_single(deltas, torch.cat(proposals).float())
        out = []
        for b, shape in zip(boxes.split([len(p) for p in proposals]), image_shapes, strict=True):
            b = clip_boxes_to_image(b, shape)
            b = torch.cat([b[:, :2], torch.maximum(b[:, 2:], b[:, :2] + 1.0)], dim=1)  # no zero-size boxes
            out.append(b.to(proposals[0].dtype))
        return out

    def forward(  # type: ignore[override]
        self,
        features: dict[str, Tensor],
        proposals: list[Tensor],
        image_shapes: list[tuple[int, int]],
        targets: list[dict[str, Tensor]] | None = None,
    ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        if self.training and targets is None:
            raise ValueError("CascadeRoIHeads needs targets in training mode")
        losses: dict[str, Tensor] = {}
        probs: list[Tensor] = []
        for t in range(self.num_stages):
            if self.training:
                proposals, labels, reg_targets = self.label_stage(proposals, targets, t)  # type: ignore[arg-type]
            out = self.run_stage(t, features, proposals, image_shapes)
            if self.training:
                loss = emd_loss(out["logits"], out["deltas"], torch.cat(labels), torch.cat(reg_targets))
                losses[f"loss_stage{t + 1}"] = self.stage_weights[t] * loss
            else:
                probs.append(F.softmax(out["logits"].float(), dim=-1)[:, 0, PERSON])
            if t + 1 < self.num_stages:
                proposals = self.regress(t, out["deltas"], proposals, image_shapes)
        if self.training:
            return [], losses
        return self.postprocess(torch.stack(probs).mean(0), out["deltas"], proposals, image_shapes), {}

    def postprocess(
        self, scores: Tensor, deltas: Tensor, proposals: list[Tensor], image_shapes: list[tuple[int, int]]
    ) -> list[dict[str, Tensor]]:
        """Raw per-image results: the last stage's boxes with the stage-averaged scores, thresholded, no NMS."""
        boxes = self.box_coders[-1].decode_single(deltas.float().reshape(-1, 4), torch.cat(proposals).float())
        results = []
        sizes = [len(p) for p in proposals]
        for b, s, shape in zip(boxes.split(sizes), scores.split(sizes), image_shapes, strict=True):
            b = clip_boxes_to_image(b, shape)
            keep = torch.where(s > self.score_thresh)[0]
            keep = keep[remove_small_boxes(b[keep], min_size=1e-2)]
            results.append({"boxes": b[keep], "scores": s[keep], "groups": keep})
        return results


@register("detector.cascade_rcnn")
class CascadeRCNNPlugin(SettingPlugin):
    """Cascade R-CNN (Cai & Vasconcelos, CVPR 2018; paper 000, hie-pose Table 1 rows 6-7): T R-CNN stages trained at
    increasing IoU thresholds, each on the previous stage's boxes. Sets ``model.cascade`` and its stage options."""

    hook: ClassVar[Hook] = "model"
    stage: ClassVar[Stage] = "train"
    sets: ClassVar[dict[str, Any]] = {
        "model.cascade": True,
        "model.cascade_ious": Option("ious"),
        "model.cascade_weights": Option("weights"),
    }

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")
        ious: tuple[float, ...] = Field((0.5, 0.6, 0.7), description="stage IoU thresholds (paper: 0.5, 0.6, 0.7)")
        weights: tuple[float, ...] = Field((1.0, 0.5, 0.25), description="stage loss weights")

    def apply(self, run: RunConfig) -> None:
        ious, weights = self.config.ious, self.config.weights  # type: ignore[attr-defined]
        if len(ious) != len(weights) or not 1 <= len(ious) <= len(STAGE_REG_WEIGHTS):
            raise ValueError(f"detector.cascade_rcnn: {len(ious)} ious and {len(weights)} weights; need 1-3 of each")
        super().apply(run)
