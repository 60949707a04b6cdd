"""Detector model fusion (paper 000 section 2.3: "Then two models are fused with weights 1:1"): the boxes of two
(or more) detectors, each after its own NMS, are merged by weighted box fusion (Solovyev, Wang, Gabruseva,
"Weighted boxes fusion: Ensembling boxes from different object detection models", Image Vis. Comput. 2021).

WBF (the paper's algorithm, section 3): every box of model t keeps score ``s * w_t``; boxes are visited by
decreasing score and join the fused box (cluster) they overlap most if that IoU exceeds ``iou_thr``, else start a
new cluster. A cluster's box is the score-weighted mean of its members' boxes, its score the mean member score,
finally rescaled by ``min(T, n) / sum(w)`` (T models, n boxes in the cluster; with unit weights this is the paper's
``C * min(T, n) / T``): a box seen by only one of two equal-weight models keeps half its score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from crowdbench.bench.config import FusionMember, set_dotted
from crowdbench.bench.registry import Hook, Plugin, Stage, get_plugin, register

if TYPE_CHECKING:
    from crowdbench.bench.config import RunConfig


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-12)


def weighted_box_fusion(
    boxes_list: Sequence[np.ndarray],
    scores_list: Sequence[np.ndarray],
    weights: Sequence[float] | None = None,
    iou_thr: float = 0.55,
    skip_thr: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Fuse per-model boxes ``[N_t, 4]`` (xyxy) and scores ``[N_t]``; returns fused ``boxes [M,4]``, ``scores [M]``
    by decreasing score. Boxes scoring below ``skip_thr`` are dropped first."""
    n_models = len(boxes_list)
    w = np.ones(n_models) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(w) != n_models or len(scores_list) != n_models:
        raise ValueError(f"{n_models} box sets, {len(scores_list)} score sets, {len(w)} weights")
    entries = [
        (float(s) * w[t], b)
        for t, (bs, ss) in enumerate(zip(boxes_list, scores_list, strict=True))
        for b, s in zip(np.asarray(bs, np.float64).reshape(-1, 4), np.asarray(ss).reshape(-1), strict=True)
        if s >= skip_thr
    ]
    entries.sort(key=lambda e: -e[0])
    members: list[list[tuple[float, np.ndarray]]] = []
    fused = np.zeros((0, 4))
    for score, box in entries:
        best = -1
        if len(fused):
            ious = _iou(box, fused)
            best = int(ious.argmax()) if ious.max() > iou_thr else -1
        if best < 0:
            members.append([(score, box)])
            fused = np.vstack([fused, box[None]])
            continue
        members[best].append((score, box))
        s = np.array([m[0] for m in members[best]])
        fused[best] = (s[:, None] * np.stack([m[1] for m in members[best]])).sum(0) / max(s.sum(), 1e-12)
    scores = np.array([np.mean([m[0] for m in c]) * min(n_models, len(c)) / w.sum() for c in members])
    order = np.argsort(-scores, kind="stable") if len(scores) else np.zeros(0, np.int64)
    return fused[order].astype(np.float32), scores[order].astype(np.float32)


class _FusionOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(None, description="plugin that makes the second detector (e.g. a backbone plugin)")
    options: dict[str, Any] = Field(default_factory=dict, description="that plugin's options")
    set: dict[str, Any] = Field(default_factory=dict, description="dotted overrides of the second detector's config")
    weight: float = Field(1.0, gt=0.0, description="its weight relative to the cell's detector (paper: 1:1)")
    iou_thr: float = Field(0.55, gt=0.0, le=1.0, description="WBF cluster IoU (Solovyev et al. default 0.55)")
    skip_thr: float = Field(0.0, ge=0.0, description="WBF: drop boxes scoring below this")


@register("detector.model_fusion")
class DetectorModelFusion(Plugin):
    """Fuse the cell's detector with a second one (paper 000 section 2.3: ResNet152 and ResNeXt101 Cascade R-CNN
    fused 1:1) by weighted box fusion after each model's NMS. The second detector is the cell's config at this
    point of the row, changed by plugin ``model`` (``options``) and dotted ``set`` overrides; it trains, infers and
    post-processes as its own cell (shared with any row training it). The fused boxes are the cell's
    ``postprocess`` output (what pose and tracking read), keyed on both models' NMS keys (``nms``: the cell's own)."""

    hook: ClassVar[Hook] = "postprocess"
    stage: ClassVar[Stage] = "postprocess"
    Config = _FusionOptions
    edits: ClassVar[tuple[str, ...]] = ("postprocess.fusion", "postprocess.fusion_iou", "postprocess.fusion_skip")
    library_only: ClassVar[str] = (
        "no detection table has a fusion row: paper 000 fuses its two detectors only for hie-pose/table4 'Ours' (a "
        "pose row, pending: HIE test annotations are not public; it names 'model_fusion'), whose detector a pose "
        "cell takes from pose.test.detector_set, not from detection plugins"
    )

    def apply(self, run: RunConfig) -> None:
        c: _FusionOptions = self.config  # type: ignore[assignment]
        other = run.model_copy(deep=True)
        other.postprocess.fusion = []
        if c.model is not None:
            plugin = get_plugin(c.model, c.options)
            if plugin.stage not in ("train", "infer", "postprocess") or plugin.name == self.name:
                raise ValueError(f"detector.model_fusion: {c.model!r} does not make a detector")
            plugin.apply(other)
        for key, value in c.set.items():
            set_dotted(other, key, value)
        member = FusionMember(
            model=other.model,
            train=other.train,
            nms=other.postprocess.nms,
            nms_iou=other.postprocess.nms_iou,
            weight=c.weight,
        )
        run.postprocess.fusion = [*run.postprocess.fusion, member]
        run.postprocess.fusion_iou, run.postprocess.fusion_skip = c.iou_thr, c.skip_thr


def member_config(run: RunConfig, member: Any) -> RunConfig:
    """The detection cell of one fusion member: the cell's data/infer/evaluate, the member's model/train/NMS."""
    cfg = run.model_copy(deep=True)
    cfg.postprocess.fusion = []
    cfg.model = member.model.model_copy(deep=True)
    cfg.train = member.train.model_copy(deep=True)
    cfg.postprocess.nms, cfg.postprocess.nms_iou = member.nms, member.nms_iou
    return cfg
