"""Pose regression plugins (paper 002 Tables 1-4): the parts a row switches on, each a field of ``regression``.

A backbone plugin names the paper's trunk; under ``smoke`` it builds one of the same family at a CPU size (recorded
in the config): ResNet-18 for ResNet-50, ResNet-34 for ResNet-101, HRNet-W18-small for HRNet-W32.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from crowdbench.bench.config import RunConfig
from crowdbench.bench.registry import Hook, Plugin, Stage, register


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


@register("pose_regression.feature_align")
class FeatureAlign(Plugin):
    """Adaptive pose feature alignment (paper 002 section 4, eqs. 6-7; Table 1 "+ Align"): deformable convolutions
    sampled where the initial pose's joints are feed a second stage that refines the pose."""

    hook: ClassVar[Hook] = "model"
    stage: ClassVar[Stage] = "train"
    edits: ClassVar[tuple[str, ...]] = ("regression.model.feature_align", "regression.model.deform_groups")

    class Config(_Options):
        deform_groups: int = Field(4, ge=1, description="offset groups of the deformable convs (SMPR: 4)")

    def apply(self, run: RunConfig) -> None:
        run.regression.model.feature_align = True
        run.regression.model.deform_groups = self.config.deform_groups  # type: ignore[attr-defined]


@register("pose_regression.center_sampling")
class CenterSampling(Plugin):
    """Centre sampling (paper 002 section 4, Fig. 4; Table 1 "+ Sampling"): only locations within ``radius`` strides
    of the keypoints' pseudo-box centre are positives."""

    hook: ClassVar[Hook] = "loss"
    stage: ClassVar[Stage] = "train"
    edits: ClassVar[tuple[str, ...]] = ("regression.train.center_sampling", "regression.train.center_radius")

    class Config(_Options):
        radius: float = Field(1.5, gt=0, description="in strides (FCOS / SMPR: 1.5; the paper gives none)")

    def apply(self, run: RunConfig) -> None:
        run.regression.train.center_sampling = True
        run.regression.train.center_radius = self.config.radius  # type: ignore[attr-defined]


@register("pose_regression.heatmap_aux")
class HeatmapAux(Plugin):
    """Auxiliary keypoint-class heatmaps on P3 trained with focal loss (paper 002 section 4 "Heatmap"; Table 1
    "+ Heatmap"); unused at inference."""

    hook: ClassVar[Hook] = "loss"
    stage: ClassVar[Stage] = "train"
    edits: ClassVar[tuple[str, ...]] = ("regression.model.heatmap_aux", "regression.train.loss_heatmap")

    class Config(_Options):
        weight: float = Field(4.0, ge=0, description="lambda_2 of eq. 9 (SMPR: 4.0; the paper gives none)")

    def apply(self, run: RunConfig) -> None:
        run.regression.model.heatmap_aux = True
        run.regression.train.loss_heatmap = self.config.weight  # type: ignore[attr-defined]


@register("pose_regression.oks_filter")
class OKSFilter(Plugin):
    """OKSFilter (paper 002 section 3.1, Table 3): initial poses whose OKS to their best-matching person is below
    ``threshold`` are not positives of the second stage, the classification or PSM."""

    hook: ClassVar[Hook] = "loss"
    stage: ClassVar[Stage] = "train"
    edits: ClassVar[tuple[str, ...]] = (
        "regression.train.oks_filter",
        "regression.train.oks_pos",
        "regression.train.oks_neg",
        "regression.train.oks_keep_best",
    )

    class Config(_Options):
        threshold: float = Field(0.5, ge=0, le=1, description="paper section 5.2.2: 0.5")
        negative: float | None = Field(
            None, ge=0, le=1, description="below it a negative, between ignored (SMPR: 0.4); none = threshold"
        )
        keep_best: bool = Field(True, description="each person keeps its best-matching location (SMPR)")

    def apply(self, run: RunConfig) -> None:
        c = self.config
        t = run.regression.train
        t.oks_filter = True
        t.oks_pos = c.threshold  # type: ignore[attr-defined]
        t.oks_neg = c.threshold if c.negative is None else c.negative  # type: ignore[attr-defined]
        t.oks_keep_best = c.keep_best  # type: ignore[attr-defined]


@register("pose_regression.psm")
class PSM(Plugin):
    """Pose scoring module (paper 002 section 3.2, Tables 2-3): a branch trained with BCE towards the OKS of the
    predicted pose; with ``use_at_test`` the final score is classification x PSM."""

    hook: ClassVar[Hook] = "model"
    stage: ClassVar[Stage] = "train"
    edits: ClassVar[tuple[str, ...]] = ("regression.model.psm", "regression.train.psm_target", "regression.test.scorer")

    class Config(_Options):
        use_at_test: bool = Field(True, description="score = cls x PSM (Table 2 'using PSM')")
        target: Literal["refined", "initial"] = Field(
            "refined", description="OKS of the refined pose (the paper's 'predicted pose') or the initial one (SMPR)"
        )

    def apply(self, run: RunConfig) -> None:
        run.regression.model.psm = True
        run.regression.train.psm_target = self.config.target  # type: ignore[attr-defined]
        if self.config.use_at_test:  # type: ignore[attr-defined]
            run.regression.test.scorer = "psm"


@register("pose_regression.centerness")
class Centerness(Plugin):
    """FCOS centre-ness branch (Tian et al., ICCV 2019), the scorer PSM replaces (paper 002 section 3.2, Table 2)."""

    hook: ClassVar[Hook] = "model"
    stage: ClassVar[Stage] = "train"
    edits: ClassVar[tuple[str, ...]] = ("regression.model.centerness", "regression.test.scorer")

    class Config(_Options):
        use_at_test: bool = Field(True, description="score = cls x centre-ness (Table 2 'using centerness')")

    def apply(self, run: RunConfig) -> None:
        run.regression.model.centerness = True
        if self.config.use_at_test:  # type: ignore[attr-defined]
            run.regression.test.scorer = "centerness"


@register("pose_regression.hard_nms")
class HardNMS(Plugin):
    """Greedy NMS of the pseudo boxes instead of the paper's soft-NMS (section 5.1), to measure what soft-NMS adds."""

    hook: ClassVar[Hook] = "postprocess"
    stage: ClassVar[Stage] = "postprocess"
    edits: ClassVar[tuple[str, ...]] = ("regression.test.nms", "regression.test.nms_iou")
    library_only: ClassVar[str] = (
        "paper 002 tests with soft-NMS only (section 5.1) and no table compares NMS types; a check of what soft-NMS "
        "adds (methods.md section 4 lists the toggle)"
    )

    class Config(_Options):
        iou: float = Field(0.5, gt=0, le=1)

    def apply(self, run: RunConfig) -> None:
        run.regression.test.nms = "hard"
        run.regression.test.nms_iou = self.config.iou  # type: ignore[attr-defined]


def _backbone(run: RunConfig, full: str, smoke: str) -> None:
    run.regression.model.backbone = smoke if run.profile == "smoke" else full


class _BackboneOptions(_Options):
    smoke: str = Field("resnet18", description="the trunk under the smoke profile")


@register("pose_regression.resnet50")
class ResNet50(Plugin):
    """ResNet-50 trunk (paper 002 Table 4 "Ours(R50)"; smoke: ResNet-18)."""

    hook: ClassVar[Hook] = "model"
    stage: ClassVar[Stage] = "train"
    edits: ClassVar[tuple[str, ...]] = ("regression.model.backbone",)
    Config = _BackboneOptions

    def apply(self, run: RunConfig) -> None:
        _backbone(run, "resnet50", self.config.smoke)  # type: ignore[attr-defined]


@register("pose_regression.resnet101")
class ResNet101(Plugin):
    """ResNet-101 trunk (paper 002 Table 4 "Ours(R101)"; smoke: ResNet-34)."""

    hook: ClassVar[Hook] = "model"
    stage: ClassVar[Stage] = "train"
    edits: ClassVar[tuple[str, ...]] = ("regression.model.backbone",)

    class Config(_BackboneOptions):
        smoke: str = "resnet34"

    def apply(self, run: RunConfig) -> None:
        _backbone(run, "resnet101", self.config.smoke)  # type: ignore[attr-defined]


@register("pose_regression.hrnet_w32")
class HRNetW32(Plugin):
    """HRNet-W32 trunk (timm; its stride 8/16/32 branches feed the FPN; paper 002 Table 4 "Ours(HRNet-w32)";
    smoke: HRNet-W18-small)."""

    hook: ClassVar[Hook] = "model"
    stage: ClassVar[Stage] = "train"
    edits: ClassVar[tuple[str, ...]] = ("regression.model.backbone",)

    class Config(_BackboneOptions):
        smoke: str = "hrnet_w18_small"

    def apply(self, run: RunConfig) -> None:
        _backbone(run, "hrnet_w32", self.config.smoke)  # type: ignore[attr-defined]
