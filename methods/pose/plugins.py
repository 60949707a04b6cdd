"""Pose plugins: networks, UDP, occlusion augmentation, schedules and test-time options (issue 5 tables).

A network plugin names the paper's model; under the ``smoke`` profile it builds the same architecture at a size
that trains on a CPU in minutes (``smoke_*`` options, recorded in the run's config), never a different one.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from crowdbench.bench.config import RunConfig
from crowdbench.bench.registry import Hook, Plugin, Stage, register


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _hrnet(run: RunConfig, width: int, smoke_width: int) -> None:
    run.pose.model.arch = "hrnet"
    run.pose.model.hrnet_width = smoke_width if run.profile == "smoke" else width


def _simplebaseline(run: RunConfig, depth: int, smoke_depth: int, fpn: bool = False) -> None:
    m = run.pose.model
    m.arch = "simplebaseline"
    m.backbone = f"resnet{smoke_depth if run.profile == 'smoke' else depth}"
    m.fpn = fpn


class _HRNetOptions(_Options):
    smoke_width: int = Field(8, description="HRNet width under the smoke profile (channels w, 2w, 4w, 8w)")


@register("pose_model.hrnet_w32")
class HRNetW32(Plugin):
    """HRNet-W32 (Sun et al., CVPR 2019) top-down pose network: stage-4 high-resolution branch, 1x1 conv to K."""

    hook: ClassVar[Hook] = "model"
    stage: ClassVar[Stage] = "train"
    Config = _HRNetOptions

    def apply(self, run: RunConfig) -> None:
        _hrnet(run, 32, self.config.smoke_width)  # type: ignore[attr-defined]


@register("pose_model.hrnet_w48")
class HRNetW48(Plugin):
    """HRNet-W48 (Sun et al., CVPR 2019)."""

    hook: ClassVar[Hook] = "model"
    stage: ClassVar[Stage] = "train"
    Config = _HRNetOptions

    def apply(self, run: RunConfig) -> None:
        _hrnet(run, 48, self.config.smoke_width)  # type: ignore[attr-defined]


class _ResNetOptions(_Options):
    smoke_depth: Literal[18, 34] = Field(18, description="ResNet depth under the smoke profile")


@register("pose_model.simplebaseline_r50")
class SimpleBaselineR50(Plugin):
    """SimpleBaseline (Xiao et al., ECCV 2018): ResNet-50 + three 4x4 deconvolutions + 1x1 conv."""

    hook: ClassVar[Hook] = "model"
    stage: ClassVar[Stage] = "train"
    Config = _ResNetOptions

    def apply(self, run: RunConfig) -> None:
        _simplebaseline(run, 50, self.config.smoke_depth)  # type: ignore[attr-defined]


@register("pose_model.simplebaseline_r152")
class SimpleBaselineR152(Plugin):
    """SimpleBaseline with ResNet-152."""

    hook: ClassVar[Hook] = "model"
    stage: ClassVar[Stage] = "train"
    Config = _ResNetOptions

    def apply(self, run: RunConfig) -> None:
        _simplebaseline(run, 152, self.config.smoke_depth)  # type: ignore[attr-defined]


@register("udp")
class UDP(Plugin):
    """Unbiased data processing (Huang et al., CVPR 2020; methods.md section 3): unit-length crop transform,
    sub-pixel Gaussian targets, no flip shift. Off = the MSRA pipeline."""

    hook: ClassVar[Hook] = "augmentation"
    stage: ClassVar[Stage] = "train"

    def apply(self, run: RunConfig) -> None:
        run.pose.train.udp = True


class _OAOptions(_Options):
    prob: float = Field(1.0, ge=0.0, le=1.0, description="probability per crop")


def _occlusion(kind: str):
    class OA(Plugin):
        hook: ClassVar[Hook] = "augmentation"
        stage: ClassVar[Stage] = "train"
        Config = _OAOptions

        def apply(self, run: RunConfig) -> None:
            run.pose.train.occlusion = kind  # type: ignore[assignment]
            run.pose.train.occlusion_prob = self.config.prob  # type: ignore[attr-defined]

    return OA


KeypointAwareOA = register("occlusion_aug.keypoint_aware")(_occlusion("keypoint_aware"))
KeypointAwareOA.__doc__ = """Keypoint-aware occlusion augmentation (paper 001 section 3.1): a disk around a random
annotated keypoint (radius 0.1-0.2 x input width, centre shifted with probability 0.5) is zeroed; targets kept."""
CutoutOA = register("occlusion_aug.cutout")(_occlusion("cutout"))
CutoutOA.__doc__ = "AID Cutout (methods.md section 3): one random ellipse of radii 0.2-0.4 x input width zeroed."
HideAndSeekOA = register("occlusion_aug.hide_and_seek")(_occlusion("hide_and_seek"))
HideAndSeekOA.__doc__ = "Hide-and-Seek (methods.md section 3): grid cells zeroed with probability 0.5."


def _schedule(name: str):
    class Schedule(Plugin):
        hook: ClassVar[Hook] = "schedule"
        stage: ClassVar[Stage] = "train"

        def apply(self, run: RunConfig) -> None:
            run.pose.train.schedule = name  # type: ignore[assignment]

    return Schedule


ScheduleS1 = register("schedule.s1")(_schedule("s1"))
ScheduleS1.__doc__ = "S1 (paper 001 section 4.3.1): 210 epochs, LR x 0.1 at 170 and 200."
ScheduleS2 = register("schedule.s2")(_schedule("s2"))
ScheduleS2.__doc__ = "S2 (paper 001 section 4.3.1): 420 epochs, LR x 0.1 at 380 and 410."
ScheduleS3 = register("schedule.s3")(_schedule("s3"))
ScheduleS3.__doc__ = """S3 (paper 001 section 4.3.1): S1 without occlusion augmentation, then S1 again (LR restarted)
from that model with it; the first phase is shared with the S1 row of the same table."""
