"""Tracking plugins (issue 6): DeepSORT and its parameters, the team's own ReID with flip / multi-scale features
(paper 004 Tables 4-5), and optical-flow box smoothing (paper 004 section 2.1)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from crowdbench.bench.config import RunConfig
from crowdbench.bench.registry import Hook, Plugin, Stage, register
from crowdbench.methods.declarative import Option, SettingPlugin


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _DeepSortOptions(_Options):
    max_cosine_distance: float = Field(0.2, gt=0.0, description="appearance gate (reference app default 0.2)")
    nn_budget: int | None = Field(100, description="features kept per track (paper / README example 100)")
    max_age: int = Field(30, ge=1, description="frames a confirmed track survives without a match")
    n_init: int = Field(3, ge=1, description="hits that confirm a tentative track")
    max_iou_distance: float = Field(0.7, gt=0.0, le=1.0, description="IoU-matching gate (1 - IoU)")
    min_confidence: float = Field(0.8, description="detections scoring below this are not tracked (app default)")


@register("deepsort")
class DeepSort(Plugin):
    """DeepSORT (Wojke et al., ICIP 2017; methods.md section 7) on the detection pipeline's boxes: Kalman motion gate,
    appearance matching cascade, IoU matching. Alone it runs WITHOUT appearance features (IoU matching only): the
    baseline's MARS-trained ReID is a TensorFlow checkpoint that cannot be obtained here; a ReID trained elsewhere
    can be given with ``--set tracking.reid.enabled=true --set tracking.reid.weights=PATH``."""

    hook: ClassVar[Hook] = "tracker"
    stage: ClassVar[Stage] = "postprocess"
    edits: ClassVar[tuple[str, ...]] = (
        *(f"tracking.deepsort.{name}" for name in _DeepSortOptions.model_fields),
        "tracking.reid.enabled",
    )
    Config = _DeepSortOptions

    def apply(self, run: RunConfig) -> None:
        d = run.tracking.deepsort
        for name in type(self.config).model_fields:
            setattr(d, name, getattr(self.config, name))
        run.tracking.reid.enabled = False


@register("deepsort.reid")
class OwnReID(SettingPlugin):
    """The team's own ReID network (paper 004 section 3.2, Table 5 '+ Own ReID'): trained on the identities of the
    training split (smoke: a small CNN on the synthetic crowds; full: ResNet-50), 128-D cosine embeddings."""

    hook: ClassVar[Hook] = "model"
    stage: ClassVar[Stage] = "train"
    sets: ClassVar[dict[str, Any]] = {"tracking.reid.enabled": True}


@register("deepsort.reid_flip")
class ReIDFlip(SettingPlugin):
    """Features of the crop and of its horizontal mirror summed, then L2-normalised (paper 004 Table 5 row 3)."""

    hook: ClassVar[Hook] = "postprocess"
    stage: ClassVar[Stage] = "infer"
    sets: ClassVar[dict[str, Any]] = {"tracking.reid.flip": True}


class _ScaleOptions(_Options):
    scales: tuple[float, ...] = Field((0.9, 1.0, 1.1), description="box scales (HIE's values were not published)")


@register("deepsort.reid_multiscale")
class ReIDMultiscale(SettingPlugin):
    """Features of the box rescaled about its centre by each scale, summed and L2-normalised (paper 004 Table 5
    row 4; methods.md section 7 reading: test-time scales of one model, not several models trained per scale)."""

    hook: ClassVar[Hook] = "postprocess"
    stage: ClassVar[Stage] = "infer"
    sets: ClassVar[dict[str, Any]] = {"tracking.reid.scales": Option("scales", tuple)}
    Config = _ScaleOptions


_FLOW: dict[str, Option] = {"tracking.flow": Option("flow"), "tracking.flow_scale": Option("scale")}
"""The optical flow (method, resolution) of the flow-smoothing plugins: options ``flow`` and ``scale``."""


class _BoxSmoothingOptions(_Options):
    weight: float = Field(0.5, ge=0.0, le=1.0, description="weight of the propagated previous box (paper: 0.5)")
    flow: Literal["dis_fast", "dis_medium", "dis_ultrafast", "farneback"] = "dis_medium"
    scale: float = Field(1.0, gt=0.0, le=1.0, description="flow resolution as a fraction of the frame's")


@register("box_flow_smoothing")
class BoxFlowSmoothing(SettingPlugin):
    """Optical-flow box smoothing (paper 004 section 2.1): each tracked box blended with the same track's previous
    box moved by the flow between the frames (DIS optical flow; the paper's flow network is not available)."""

    hook: ClassVar[Hook] = "postprocess"
    stage: ClassVar[Stage] = "postprocess"
    sets: ClassVar[dict[str, Any]] = {"tracking.box_smoothing": Option("weight"), **_FLOW}
    Config = _BoxSmoothingOptions


class _FlowSmoothingOptions(_Options):
    alpha: float = Field(0.25, ge=0.0, le=0.5, description="a of paper 000 eq. 1 (not given; methods.md 6 sweep)")
    threshold: float = Field(0.2, description="neighbour joints scoring at or below this are not used")
    missing: Literal["keep", "renormalise"] = Field("keep", description="keep: only joints both neighbours have")
    flow: Literal["dis_fast", "dis_medium", "dis_ultrafast", "farneback"] = "dis_medium"
    scale: float = Field(1.0, gt=0.0, le=1.0, description="flow resolution as a fraction of the frame's")


@register("flow_smoothing")
class FlowSmoothing(SettingPlugin):
    """Optical-flow pose smoothing (paper 000 section 3.2 eq. 1; paper 004 section 4.2): every tracked pose
    averaged with the same id's poses of the previous and next frames moved into it by optical flow, weights
    ``a, a, 1 - 2a`` (DIS flow; the papers' flow network is not available)."""

    hook: ClassVar[Hook] = "postprocess"
    stage: ClassVar[Stage] = "postprocess"
    sets: ClassVar[dict[str, Any]] = {
        "pose_tracking.smoothing": Option("alpha"),
        "pose_tracking.smoothing_thr": Option("threshold"),
        "pose_tracking.smoothing_missing": Option("missing"),
        **_FLOW,
    }
    Config = _FlowSmoothingOptions


class _IoUReIDOptions(_Options):
    appearance_weight: float = Field(1.0, ge=0.0, description="lambda of the ReID Euclidean distance (0: IoU only)")
    max_cost: float = Field(0.7, gt=0.0, description="pairs costing more start a new track")
    max_age: int = Field(1, ge=1, description="frames a track may go unmatched (1: the previous frame only)")
    min_score: float = Field(0.5, description="poses scoring below this are not tracked")


@register("pose_tracking.iou_reid")
class IoUReIDTracking(SettingPlugin):
    """Pose tracking of paper 003 section 4.2: Detect-and-Track's frame-to-frame Hungarian matching on box IoU, plus
    the Euclidean distance of ReID features (the team's own ReID, ``deepsort.reid``'s network), cost
    ``((1 - IoU) + lambda d / 2) / (1 + lambda)`` (a project choice: the paper gives no formula)."""

    hook: ClassVar[Hook] = "tracker"
    stage: ClassVar[Stage] = "postprocess"
    sets: ClassVar[dict[str, Any]] = {
        "pose_tracking.tracker": "iou_reid",
        **{f"pose_tracking.{name}": Option(name) for name in _IoUReIDOptions.model_fields},
    }
    edits: ClassVar[tuple[str, ...]] = (*sets, "tracking.reid.enabled")
    Config = _IoUReIDOptions

    def apply(self, run: RunConfig) -> None:
        super().apply(run)
        run.tracking.reid.enabled = self.config.appearance_weight > 0  # type: ignore[attr-defined]


class _PropagationOptions(_Options):
    margin: float = Field(0.15, ge=0.0, description="enlargement of a propagated pose's box (FlowTrack extends it)")
    nms: float = Field(0.5, gt=0.0, le=1.0, description="propagated boxes overlapping a detection more are dropped")
    kp_thr: float = Field(0.3, description="joints scoring above this span the propagated box")
    flow: Literal["dis_fast", "dis_medium", "dis_ultrafast", "farneback"] = "dis_medium"
    scale: float = Field(1.0, gt=0.0, le=1.0, description="flow resolution as a fraction of the frame's")


@register("pose_tracking.optical_flow")
class FlowPropagation(SettingPlugin):
    """MSRA's optical flow in pose tracking (paper 003 Table 5 'with optical flow' = FlowTrack, Xiao et al. 2018):
    the previous frame's tracked poses are moved into the frame by optical flow; the box around each, where no
    detection covers it, is added to the detections and gets a pose from the model; the IoU term matches the
    tracks' flow-moved boxes. Needs ``pose_tracking.iou_reid``."""

    hook: ClassVar[Hook] = "tracker"
    stage: ClassVar[Stage] = "postprocess"
    sets: ClassVar[dict[str, Any]] = {
        "pose_tracking.propagation": True,
        "pose_tracking.propagation_margin": Option("margin"),
        "pose_tracking.propagation_nms": Option("nms"),
        "pose_tracking.propagation_kp_thr": Option("kp_thr"),
        **_FLOW,
    }
    Config = _PropagationOptions

    def apply(self, run: RunConfig) -> None:
        if run.pose_tracking.tracker != "iou_reid":
            raise ValueError("pose_tracking.optical_flow needs pose_tracking.iou_reid before it in the row's plugins")
        super().apply(run)
