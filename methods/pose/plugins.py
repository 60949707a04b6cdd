"""Pose plugins: networks, UDP, occlusion augmentation, schedules and test-time options (issue 5 tables).

A network plugin names the paper's model; under the ``smoke`` profile it builds the same architecture at a size
that trains on a CPU in minutes (``smoke_*`` options, recorded in the run's config), never a different one.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from crowdbench.bench.config import PoseTestConfig, RunConfig
from crowdbench.bench.registry import Hook, Plugin, Stage, get_plugin, register
from crowdbench.methods.declarative import Option, SettingPlugin, variant
from crowdbench.methods.weights import appended_weight


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _HRNetOptions(_Options):
    smoke_width: int = Field(18, description="HRNet width under smoke: 18 = timm's HRNet-W18-small, 8 = tiny")


class _WideHRNetOptions(_HRNetOptions):
    smoke_width: int = Field(27, description="HRNet width under smoke: 27 = HRNet-W18-small x 1.5 (W48 / W32)")


class _HRNet(Plugin):
    """HRNet of width ``width`` (``smoke_width`` under the smoke profile)."""

    hook: ClassVar[Hook] = "model"
    stage: ClassVar[Stage] = "train"
    Config = _HRNetOptions
    edits: ClassVar[tuple[str, ...]] = ("pose.model.arch", "pose.model.hrnet_width")
    width: ClassVar[int]

    def apply(self, run: RunConfig) -> None:
        run.pose.model.arch = "hrnet"
        run.pose.model.hrnet_width = self.config.smoke_width if run.profile == "smoke" else self.width  # type: ignore[attr-defined]


HRNetW32 = variant("pose_model.hrnet_w32", _HRNet, width=32, doc=(
    "HRNet-W32 (Sun et al., CVPR 2019) top-down pose network: stage-4 high-resolution branch, 1x1 conv to K."
))  # fmt: skip
HRNetW48 = variant("pose_model.hrnet_w48", _HRNet, width=48, Config=_WideHRNetOptions, doc=(
    "HRNet-W48 (Sun et al., CVPR 2019); smoke: HRNet-W18-small 1.5x wider (branches 24-192), the paper's 48/32 ratio\n"
    "over the W32 row's stand-in, so wider stays wider (not tuned to a result)."
))  # fmt: skip


class _ResNetOptions(_Options):
    smoke_depth: Literal[18, 34, 48, 50] = Field(18, description="ResNet depth under the smoke profile")
    deconv_layers: int = Field(3, ge=1, le=3, description="deconvolutions: heatmap stride 32 / 2^n (paper 003 Table 1)")


class _DeepResNetOptions(_ResNetOptions):
    smoke_depth: Literal[18, 34, 48, 50] = Field(34, description="ResNet depth under the smoke profile")


class _DeepestResNetOptions(_ResNetOptions):
    smoke_depth: Literal[18, 34, 48, 50] = Field(48, description="ResNet depth under the smoke profile")


class _SimpleBaseline(Plugin):
    """SimpleBaseline on a ResNet of depth ``depth`` (``smoke_depth`` under the smoke profile), with an FPN when
    ``fpn``."""

    hook: ClassVar[Hook] = "model"
    stage: ClassVar[Stage] = "train"
    Config = _DeepResNetOptions
    edits: ClassVar[tuple[str, ...]] = (
        "pose.model.arch",
        "pose.model.backbone",
        "pose.model.deconv_layers",
        "pose.model.fpn",
    )
    depth: ClassVar[int]
    fpn: ClassVar[bool] = False

    def apply(self, run: RunConfig) -> None:
        m, c = run.pose.model, self.config
        m.arch = "simplebaseline"
        m.backbone = f"resnet{c.smoke_depth if run.profile == 'smoke' else self.depth}"  # type: ignore[attr-defined]
        m.deconv_layers = c.deconv_layers  # type: ignore[attr-defined]
        m.fpn = self.fpn


SimpleBaselineR50 = variant("pose_model.simplebaseline_r50", _SimpleBaseline, depth=50, Config=_ResNetOptions, doc=(
    "SimpleBaseline (Xiao et al., ECCV 2018): ResNet-50 + three 4x4 deconvolutions + 1x1 conv."
))  # fmt: skip
SimpleBaselineR101 = variant("pose_model.simplebaseline_r101", _SimpleBaseline, depth=101, doc=(
    "SimpleBaseline with ResNet-101 (smoke: ResNet-34, so it stays deeper than the R-50 row's ResNet-18)."
))  # fmt: skip
SimpleBaselineR152 = variant("pose_model.simplebaseline_r152", _SimpleBaseline, depth=152, doc=(
    "SimpleBaseline with ResNet-152 (smoke: BasicBlock ResNet-48 [3, 8, 9, 3], ResNet-34 with ResNet-152/101's stage\n"
    "ratios, ``methods.pose.models.STANDIN_RESNETS``; deeper than the R-101 row's ResNet-34)."
), Config=_DeepestResNetOptions)  # fmt: skip
SimpleNetR152FPN = variant("pose_model.simplenet_r152_fpn", _SimpleBaseline, depth=152, fpn=True, doc=(
    "SimpleNet of the HIE papers (paper 000 section 3.1): SimpleBaseline with a ResNet-152 backbone plus an FPN "
    "whose\nfinest level feeds the deconvolution head (smoke: ResNet-48, the ResNet-152 stand-in)."
), Config=_DeepestResNetOptions)  # fmt: skip


@register("udp")
class UDP(SettingPlugin):
    """Unbiased data processing (Huang et al., CVPR 2020; methods.md section 3): unit-length crop transform,
    sub-pixel Gaussian targets, no flip shift. Off = the MSRA pipeline."""

    hook: ClassVar[Hook] = "augmentation"
    stage: ClassVar[Stage] = "train"
    sets: ClassVar[dict[str, Any]] = {"pose.train.udp": True}


class _OAOptions(_Options):
    prob: float = Field(1.0, ge=0.0, le=1.0, description="probability per crop")


def _occlusion(kind: str):
    class OA(SettingPlugin):
        hook: ClassVar[Hook] = "augmentation"
        stage: ClassVar[Stage] = "train"
        Config = _OAOptions
        sets: ClassVar[dict[str, Any]] = {"pose.train.occlusion": kind, "pose.train.occlusion_prob": Option("prob")}

    return OA


KeypointAwareOA = register("occlusion_aug.keypoint_aware")(_occlusion("keypoint_aware"))
KeypointAwareOA.__doc__ = """Keypoint-aware occlusion augmentation (paper 001 section 3.1): a disk around a random
annotated keypoint (radius 0.1-0.2 x input width, centre shifted with probability 0.5) is zeroed; targets kept."""
CutoutOA = register("occlusion_aug.cutout")(_occlusion("cutout"))
CutoutOA.__doc__ = "AID Cutout (methods.md section 3): one random ellipse of radii 0.2-0.4 x input width zeroed."
CutoutOA.library_only = (
    "paper 001 names Cutout as related work only (section 2) and no table compares it; the transform of the public "
    "AID code (methods.md section 3), the baseline keypoint-aware OA departs from"
)
HideAndSeekOA = register("occlusion_aug.hide_and_seek")(_occlusion("hide_and_seek"))
HideAndSeekOA.__doc__ = "Hide-and-Seek (methods.md section 3): grid cells zeroed with probability 0.5."
HideAndSeekOA.library_only = (
    "paper 001 names Hide-and-Seek as related work only (section 2) and no table compares it; the public AID code's "
    "sibling transform (methods.md section 3)"
)


def _schedule(name: str):
    class Schedule(SettingPlugin):
        hook: ClassVar[Hook] = "schedule"
        stage: ClassVar[Stage] = "train"
        sets: ClassVar[dict[str, Any]] = {"pose.train.schedule": name}

    return Schedule


ScheduleS1 = register("schedule.s1")(_schedule("s1"))
ScheduleS1.__doc__ = "S1 (paper 001 section 4.3.1): 210 epochs, LR x 0.1 at 170 and 200."
ScheduleS2 = register("schedule.s2")(_schedule("s2"))
ScheduleS2.__doc__ = "S2 (paper 001 section 4.3.1): 420 epochs, LR x 0.1 at 380 and 410."
ScheduleS3 = register("schedule.s3")(_schedule("s3"))
ScheduleS3.__doc__ = """S3 (paper 001 section 4.3.1): S1 without occlusion augmentation, then S1 again (LR restarted)
from that model with it; the first phase is shared with the S1 row of the same table."""


def _input(height: int, width: int):
    class Input(Plugin):
        hook: ClassVar[Hook] = "model"
        stage: ClassVar[Stage] = "train"
        edits: ClassVar[tuple[str, ...]] = ("pose.model.input_size",)

        def apply(self, run: RunConfig) -> None:
            run.pose.model.input_size = profile_input(run, height, width)

    Input.__doc__ = f"""Network input {height} x {width} (height x width) instead of 256 x 192; under the smoke profile
    the same enlargement of the smoke input ({round(height / 16) * 4} x {round(width / 16) * 4})."""
    return Input


Input352x256 = register("pose_input.352x256")(_input(352, 256))
Input384x288 = register("pose_input.384x288")(_input(384, 288))
Input512x384 = register("pose_input.512x384")(_input(512, 384))


@register("pose_postproc.flip")
class FlipTest(SettingPlugin):
    """Flip test (methods.md section 8): average the heatmaps of the crop and of its mirror image (flipped back,
    left/right channels swapped; one-pixel shift only without UDP)."""

    hook: ClassVar[Hook] = "postprocess"
    stage: ClassVar[Stage] = "infer"
    sets: ClassVar[dict[str, Any]] = {"pose.test.flip_test": True}


class _MultiscaleOptions(_Options):
    scales: tuple[float, ...] = Field((0.7, 1.0, 1.3), description="input scales (reading A of methods.md 8)")


@register("pose_postproc.multiscale")
class MultiscaleTest(SettingPlugin):
    """Multi-scale test (paper 000 Table 5; methods.md section 8, reading A): the same crop at several input
    resolutions, each with the flip test, heatmaps resized to one size and averaged."""

    hook: ClassVar[Hook] = "postprocess"
    stage: ClassVar[Stage] = "infer"
    Config = _MultiscaleOptions
    sets: ClassVar[dict[str, Any]] = {
        "pose.test.multiscale": Option("scales", tuple),
        "pose.test.multiscale_mode": "input",
        "pose.test.flip_test": True,
    }
    library_only: ClassVar[str] = (
        "reading A of methods.md section 8, the alternative to the reading B hie-pose/table5 runs "
        "(pose_postproc.multiscale_flip); the same config as {pose_postproc.multiscale_flip: {mode: input}}"
    )


class _MultiscaleFlipOptions(_Options):
    scales: tuple[float, ...] = Field((0.7, 1.0, 1.3), description="box scale factors (paper 000 section 4.3)")
    mode: Literal["box", "input"] = Field(
        "box", description="box: rescaled boxes, same input (reading B, the paper's); input: resized input (A)"
    )


@register("pose_postproc.multiscale_flip")
class MultiscaleFlipTest(SettingPlugin):
    """Multi-scale evaluation of paper 000 (HIE pose, section 4.3; Table 5): the detection box rescaled by 0.7, 1.0
    and 1.3 about its centre, each cropped to the same input size and flipped, all heatmaps averaged before the
    peak search (methods.md section 8, reading B: each heatmap warped into the s = 1 crop's frame)."""

    hook: ClassVar[Hook] = "postprocess"
    stage: ClassVar[Stage] = "infer"
    Config = _MultiscaleFlipOptions
    sets: ClassVar[dict[str, Any]] = {
        "pose.test.multiscale": Option("scales", tuple),
        "pose.test.multiscale_mode": Option("mode"),
        "pose.test.flip_test": True,
    }


class _OKSOptions(_Options):
    thr: float = Field(0.9, gt=0.0, le=1.0, description="OKS threshold (HRNet COCO default 0.9)")


@register("pose_postproc.oks_nms")
class OKSNMS(SettingPlugin):
    """OKS-NMS after pose (HRNet / mmpose; methods.md section 8): greedy by pose score, OKS > thr suppressed."""

    hook: ClassVar[Hook] = "postprocess"
    stage: ClassVar[Stage] = "postprocess"
    Config = _OKSOptions
    sets: ClassVar[dict[str, Any]] = {"pose.test.oks_nms": Option("thr")}
    library_only: ClassVar[str] = (
        "HRNet's COCO protocol on detector boxes (methods.md section 8); the table rows test on ground-truth boxes, "
        "where it does nothing (results/recipes/pose.yaml: pose.test.oks_nms); occlusion-aug/table1 with a "
        "detection file (its notes) is where it belongs"
    )


class _SoftOKSOptions(_Options):
    thr: float = Field(0.3, gt=0.0, le=1.0, description="Gaussian parameter / linear threshold (mmpose default 0.3)")
    method: Literal["gaussian", "linear"] = "gaussian"
    max_dets: int = Field(20, ge=1, description="poses kept per image")


@register("pose_postproc.soft_oks_nms")
class SoftOKSNMS(SettingPlugin):
    """Soft-OKS-NMS (mmpose; methods.md section 8): overlapping poses are rescored, s * exp(-OKS^2 / thr) or
    s * (1 - OKS) above thr, instead of removed; the top ``max_dets`` per image are kept."""

    hook: ClassVar[Hook] = "postprocess"
    stage: ClassVar[Stage] = "postprocess"
    Config = _SoftOKSOptions
    sets: ClassVar[dict[str, Any]] = {
        "pose.test.soft_oks_nms": Option("thr"),
        "pose.test.soft_oks_method": Option("method"),
        "pose.test.soft_oks_max_dets": Option("max_dets"),
    }
    library_only: ClassVar[str] = (
        "mmpose's alternative to OKS-NMS (methods.md section 8); no paper table uses soft-OKS-NMS"
    )


class _OffsetOptions(_Options):
    radius: float = Field(0.0546875, gt=0.0, description="disk radius as a fraction of the heatmap height (UDP)")
    min_radius: float = Field(1.5, ge=0.0, description="floor of the radius in heatmap pixels (R is not in paper 003)")


@register("offset_guided.offset")
class OffsetFusion(SettingPlugin):
    """Offset-guided fusion (paper 003 sections 3.1.2-3.1.3): a 2K-channel offset branch beside the K heatmaps,
    disk targets of radius R, Smooth-L1 on both; decoding = argmax of the Gaussian-smoothed disk map + offset x R."""

    hook: ClassVar[Hook] = "model"
    stage: ClassVar[Stage] = "train"
    Config = _OffsetOptions
    sets: ClassVar[dict[str, Any]] = {
        "pose.model.offsets": True,
        "pose.train.target": "disk_offset",
        "pose.train.disk_radius": Option("radius"),
        "pose.train.disk_radius_min": Option("min_radius"),
    }


class _GBGOptions(_Options):
    min_size: float = Field(0.0, ge=0.0, description="minimum box side in pixels (value not given in the paper)")
    egt_thr: float = 0.8
    drop_iou: float = 0.5
    group_iou: float = 0.7
    top_n: int = 4
    rule: Literal["and", "or", "sequential"] = Field("and", description="how box IoU and OKS combine in pose NMS")


@register("offset_guided.gbg")
class GreedyBoxGeneration(SettingPlugin):
    """Greedy Box Generation (paper 003 section 3.1.1): the detector's boxes without NMS, minimum size, score > 0.8
    as expected ground truth, drop boxes with IoU < 0.5 to every one, groups at IoU >= 0.7 keep their top 4; then
    pose NMS with box IoU 0.6 and OKS 0.75 (combination rule unstated: ``rule``, default both must exceed)."""

    hook: ClassVar[Hook] = "postprocess"
    stage: ClassVar[Stage] = "infer"
    Config = _GBGOptions
    sets: ClassVar[dict[str, Any]] = {
        "pose.test.boxes": "detector",
        "pose.test.gbg": True,
        **{f"pose.test.gbg_{name}": Option(name) for name in ("min_size", "egt_thr", "drop_iou", "group_iou", "top_n")},
        "pose.test.pose_nms": Option("rule"),
    }


class _FusionOptions(_Options):
    model: str = Field("pose_model.simplenet_r152_fpn", description="the second model's plugin")
    options: dict[str, Any] = Field(default_factory=dict, description="that plugin's options")
    weight: float = Field(1.0, gt=0.0, description="its heatmap weight relative to the cell's model (paper: 1:1)")


@register("pose_postproc.model_fusion")
class ModelFusion(Plugin):
    """Heatmap fusion of two networks (paper 000 sections 3.1 and 4.2: HRNet + SimpleNet): a second model, trained
    like the cell's own on the same data, predicts every crop too, and the two heatmaps are averaged (weights
    ``1 : weight``) before decoding. The second model is its own ``train`` stage, shared with any row training it."""

    hook: ClassVar[Hook] = "postprocess"
    stage: ClassVar[Stage] = "infer"
    Config = _FusionOptions
    edits: ClassVar[tuple[str, ...]] = ("pose.test.ensemble", "pose.test.ensemble_weights")

    def apply(self, run: RunConfig) -> None:
        c = self.config
        other = run.model_copy(deep=True)
        plugin = get_plugin(c.model, c.options)  # type: ignore[attr-defined]
        if plugin.hook != "model":
            raise ValueError(f"pose_postproc.model_fusion: {c.model!r} is not a pose model plugin")  # type: ignore[attr-defined]
        plugin.apply(other)
        t = run.pose.test
        t.ensemble_weights = appended_weight(t.ensemble_weights, 1 + len(t.ensemble), c.weight)  # type: ignore[attr-defined]
        t.ensemble.append(other.pose.model)


def current_weights(test: PoseTestConfig) -> list[float]:
    """The heatmap weights of the cell's model and its ensemble members so far (empty config = all equal)."""
    return list(test.ensemble_weights or [1.0] * (1 + len(test.ensemble)))


def parse_size(text: str) -> tuple[int, int]:
    """``"256x192"`` (height x width, as the papers print it) -> ``(256, 192)``; a bad one names itself."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"input size {text!r} is not HEIGHTxWIDTH, e.g. 256x192") from None
    return h, w


def profile_input(run: RunConfig, height: int, width: int) -> tuple[int, int]:
    """The network input (width, height) for a paper input ``height x width`` under the run's profile: itself in
    ``full``; under ``smoke`` the same enlargement of the 48 x 64 smoke input, to a multiple of 4 pixels."""
    return (round(width / 16) * 4, round(height / 16) * 4) if run.profile == "smoke" else (width, height)


class _MultiInputOptions(_Options):
    input_sizes: tuple[str, ...] = Field(("256x192", "384x288"), description="input sizes (height x width) fused")


@register("pose_postproc.multi_input_fusion")
class MultiInputFusion(Plugin):
    """Multi-scale input (paper 000 Table 5, section 4.2): each network is trained at every listed input size and
    the heatmaps of all of them are averaged at test time (resized to the cell model's heatmap size). Applies to the
    cell's model and to every model already fused (``pose_postproc.model_fusion`` before this plugin)."""

    hook: ClassVar[Hook] = "postprocess"
    stage: ClassVar[Stage] = "infer"
    Config = _MultiInputOptions
    edits: ClassVar[tuple[str, ...]] = ("pose.test.ensemble", "pose.test.ensemble_weights")

    def apply(self, run: RunConfig) -> None:
        sizes = [profile_input(run, *parse_size(text)) for text in self.config.input_sizes]  # type: ignore[attr-defined]
        t = run.pose.test
        weights = current_weights(t)
        new_weights = list(weights)
        for model, weight in zip([run.pose.model, *t.ensemble], weights, strict=True):
            for size in sizes:
                if tuple(size) != tuple(model.input_size):
                    t.ensemble.append(model.model_copy(update={"input_size": size}, deep=True))
                    new_weights.append(weight)
        t.ensemble_weights = tuple(new_weights) if t.ensemble_weights else ()
