"""Pose regression plugins (paper 002 Tables 1-4): the parts a row switches on, each a field of ``regression``.

A backbone plugin names the paper's trunk; under ``smoke`` it builds one of the same family at a CPU size (recorded
in the config): ResNet-18 for ResNet-50, ResNet-34 for ResNet-101, HRNet-W18-small for HRNet-W32.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from crowdbench.bench.config import RunConfig
from crowdbench.bench.registry import Hook, Plugin, Stage, register
from crowdbench.methods.declarative import Option, SettingPlugin, variant


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


@register("pose_regression.feature_align")
class FeatureAlign(SettingPlugin):
    """Adaptive pose feature alignment (paper 002 section 4, eqs. 6-7; Table 1 "+ Align"): deformable convolutions
    sampled where the initial pose's joints are feed a second stage that refines the pose."""

    hook: ClassVar[Hook] = "model"
    stage: ClassVar[Stage] = "train"
    sets: ClassVar[dict[str, Any]] = {
        "regression.model.feature_align": True,
        "regression.model.deform_groups": Option("deform_groups"),
    }

    class Config(_Options):
        deform_groups: int = Field(4, ge=1, description="offset groups of the deformable convs (SMPR: 4)")


@register("pose_regression.center_sampling")
class CenterSampling(SettingPlugin):
    """Centre sampling (paper 002 section 4, Fig. 4; Table 1 "+ Sampling"): only locations within ``radius`` strides
    of the keypoints' pseudo-box centre are positives."""

    hook: ClassVar[Hook] = "loss"
    stage: ClassVar[Stage] = "train"
    sets: ClassVar[dict[str, Any]] = {
        "regression.train.center_sampling": True,
        "regression.train.center_radius": Option("radius"),
    }

    class Config(_Options):
        radius: float = Field(1.5, gt=0, description="in strides (FCOS / SMPR: 1.5; the paper gives none)")


@register("pose_regression.heatmap_aux")
class HeatmapAux(SettingPlugin):
    """Auxiliary keypoint-class heatmaps on P3 trained with focal loss (paper 002 section 4 "Heatmap"; Table 1
    "+ Heatmap"); unused at inference."""

    hook: ClassVar[Hook] = "loss"
    stage: ClassVar[Stage] = "train"
    sets: ClassVar[dict[str, Any]] = {
        "regression.model.heatmap_aux": True,
        "regression.train.loss_heatmap": Option("weight"),
    }

    class Config(_Options):
        weight: float = Field(4.0, ge=0, description="lambda_2 of eq. 9 (SMPR: 4.0; the paper gives none)")


@register("pose_regression.oks_filter")
class OKSFilter(SettingPlugin):
    """OKSFilter (paper 002 section 3.1, Table 3): initial poses whose OKS to their best-matching person is below
    ``threshold`` are not positives of the second stage, the classification or PSM."""

    hook: ClassVar[Hook] = "loss"
    stage: ClassVar[Stage] = "train"
    sets: ClassVar[dict[str, Any]] = {
        "regression.train.oks_filter": True,
        "regression.train.oks_pos": Option("threshold"),
        "regression.train.oks_keep_best": Option("keep_best"),
    }
    edits: ClassVar[tuple[str, ...]] = (*sets, "regression.train.oks_neg")

    class Config(_Options):
        threshold: float = Field(0.5, ge=0, le=1, description="paper section 5.2.2: 0.5")
        negative: float | None = Field(
            None, ge=0, le=1, description="below it a negative, between ignored (SMPR: 0.4); none = threshold"
        )
        keep_best: bool = Field(True, description="each person keeps its best-matching location (SMPR)")

    def apply(self, run: RunConfig) -> None:
        super().apply(run)
        c = self.config
        run.regression.train.oks_neg = c.threshold if c.negative is None else c.negative  # type: ignore[attr-defined]


class _ScoreBranch(SettingPlugin):
    """A score branch (``sets``); with option ``use_at_test`` its output multiplies the classification score
    (``regression.test.scorer = scorer``)."""

    hook: ClassVar[Hook] = "model"
    stage: ClassVar[Stage] = "train"
    scorer: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.edits = (*cls.sets, "regression.test.scorer")

    def apply(self, run: RunConfig) -> None:
        super().apply(run)
        if self.config.use_at_test:  # type: ignore[attr-defined]
            run.regression.test.scorer = self.scorer  # type: ignore[assignment]


@register("pose_regression.psm")
class PSM(_ScoreBranch):
    """Pose scoring module (paper 002 section 3.2, Tables 2-3): a branch trained with BCE towards the OKS of the
    predicted pose; with ``use_at_test`` the final score is classification x PSM."""

    sets: ClassVar[dict[str, Any]] = {"regression.model.psm": True, "regression.train.psm_target": Option("target")}
    scorer = "psm"

    class Config(_Options):
        use_at_test: bool = Field(True, description="score = cls x PSM (Table 2 'using PSM')")
        target: Literal["refined", "initial"] = Field(
            "refined", description="OKS of the refined pose (the paper's 'predicted pose') or the initial one (SMPR)"
        )


@register("pose_regression.centerness")
class Centerness(_ScoreBranch):
    """FCOS centre-ness branch (Tian et al., ICCV 2019), the scorer PSM replaces (paper 002 section 3.2, Table 2)."""

    sets: ClassVar[dict[str, Any]] = {"regression.model.centerness": True}
    scorer = "centerness"

    class Config(_Options):
        use_at_test: bool = Field(True, description="score = cls x centre-ness (Table 2 'using centerness')")


@register("pose_regression.hard_nms")
class HardNMS(SettingPlugin):
    """Greedy NMS of the pseudo boxes instead of the paper's soft-NMS (section 5.1), to measure what soft-NMS adds."""

    hook: ClassVar[Hook] = "postprocess"
    stage: ClassVar[Stage] = "postprocess"
    sets: ClassVar[dict[str, Any]] = {"regression.test.nms": "hard", "regression.test.nms_iou": Option("iou")}
    library_only: ClassVar[str] = (
        "paper 002 tests with soft-NMS only (section 5.1) and no table compares NMS types; a check of what soft-NMS "
        "adds (methods.md section 4 lists the toggle)"
    )

    class Config(_Options):
        iou: float = Field(0.5, gt=0, le=1)


class _Backbone(Plugin):
    """The trunk ``full`` (option ``smoke`` under the smoke profile)."""

    hook: ClassVar[Hook] = "model"
    stage: ClassVar[Stage] = "train"
    edits: ClassVar[tuple[str, ...]] = ("regression.model.backbone",)
    full: ClassVar[str]

    def apply(self, run: RunConfig) -> None:
        run.regression.model.backbone = self.config.smoke if run.profile == "smoke" else self.full  # type: ignore[attr-defined]


def _trunk(name: str, full: str, smoke: str, doc: str) -> type[Plugin]:
    """Register ``_Backbone`` with the trunk ``full`` as ``name``, ``smoke`` its default smoke stand-in."""
    option = Field(smoke, description="the trunk under the smoke profile")
    return variant(
        name, _Backbone, doc, full=full, Config=create_model("Config", __base__=_Options, smoke=(str, option))
    )


ResNet50 = _trunk("pose_regression.resnet50", "resnet50", "resnet18",
                  'ResNet-50 trunk (paper 002 Table 4 "Ours(R50)"; smoke: ResNet-18).')  # fmt: skip
ResNet101 = _trunk("pose_regression.resnet101", "resnet101", "resnet34",
                   'ResNet-101 trunk (paper 002 Table 4 "Ours(R101)"; smoke: ResNet-34).')  # fmt: skip
HRNetW32 = _trunk("pose_regression.hrnet_w32", "hrnet_w32", "hrnet_w18_small", (
    'HRNet-W32 trunk (timm; its stride 8/16/32 branches feed the FPN; paper 002 Table 4 "Ours(HRNet-w32)";\n'
    "    smoke: HRNet-W18-small)."
))  # fmt: skip
