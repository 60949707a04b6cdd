"""Tracking plugins (issue 6): DeepSORT and its parameters, the team's own ReID with flip / multi-scale features
(paper 004 Tables 4-5), and optical-flow box smoothing (paper 004 section 2.1)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from crowdbench.bench.config import RunConfig
from crowdbench.bench.registry import Hook, Plugin, Stage, register


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
    Config = _DeepSortOptions

    def apply(self, run: RunConfig) -> None:
        d = run.tracking.deepsort
        for name in type(self.config).model_fields:
            setattr(d, name, getattr(self.config, name))
        run.tracking.reid.enabled = False


@register("deepsort.reid")
class OwnReID(Plugin):
    """The team's own ReID network (paper 004 section 3.2, Table 5 '+ Own ReID'): trained on the identities of the
    training split (smoke: a small CNN on the synthetic crowds; full: ResNet-50), 128-D cosine embeddings."""

    hook: ClassVar[Hook] = "model"
    stage: ClassVar[Stage] = "train"

    def apply(self, run: RunConfig) -> None:
        run.tracking.reid.enabled = True


@register("deepsort.reid_flip")
class ReIDFlip(Plugin):
    """Features of the crop and of its horizontal mirror summed, then L2-normalised (paper 004 Table 5 row 3)."""

    hook: ClassVar[Hook] = "postprocess"
    stage: ClassVar[Stage] = "infer"

    def apply(self, run: RunConfig) -> None:
        run.tracking.reid.flip = True


class _ScaleOptions(_Options):
    scales: tuple[float, ...] = Field((0.9, 1.0, 1.1), description="box scales (HIE's values were not published)")


@register("deepsort.reid_multiscale")
class ReIDMultiscale(Plugin):
    """Features of the box rescaled about its centre by each scale, summed and L2-normalised (paper 004 Table 5
    row 4; methods.md section 7 reading: test-time scales of one model, not several models trained per scale)."""

    hook: ClassVar[Hook] = "postprocess"
    stage: ClassVar[Stage] = "infer"
    Config = _ScaleOptions

    def apply(self, run: RunConfig) -> None:
        run.tracking.reid.scales = tuple(self.config.scales)  # type: ignore[attr-defined]


class _BoxSmoothingOptions(_Options):
    weight: float = Field(0.5, ge=0.0, le=1.0, description="weight of the propagated previous box (paper: 0.5)")
    flow: Literal["dis_fast", "dis_medium", "dis_ultrafast", "farneback"] = "dis_medium"
    scale: float = Field(1.0, gt=0.0, le=1.0, description="flow resolution as a fraction of the frame's")


@register("box_flow_smoothing")
class BoxFlowSmoothing(Plugin):
    """Optical-flow box smoothing (paper 004 section 2.1): each tracked box blended with the same track's previous
    box moved by the flow between the frames (DIS optical flow; the paper's flow network is not available)."""

    hook: ClassVar[Hook] = "postprocess"
    stage: ClassVar[Stage] = "postprocess"
    Config = _BoxSmoothingOptions

    def apply(self, run: RunConfig) -> None:
        c = self.config
        run.tracking.box_smoothing = c.weight  # type: ignore[attr-defined]
        run.tracking.flow, run.tracking.flow_scale = c.flow, c.scale  # type: ignore[attr-defined]
