"""Detector backbones by name (paper 000, hie-pose Table 1: ResNet-50/152, ResNeXt-101, SENet-154) and their plugins.

Full-size trunks come from torchvision (ResNet-18/34/50/101/152, ResNeXt-101 32x8d) and timm (SENet-154, the SE
ResNeXt of Hu et al., CVPR 2018, as ``timm.models.resnet``). Nothing is downloaded: local ImageNet weights load
through ``model.weights``. Every trunk exposes torchvision's ResNet layout (stem, ``layer1``..``layer4``), which the
FPN and C4 detectors of ``faster_rcnn.py`` consume.

Under the ``smoke`` profile each ``backbone.*`` plugin picks a tiny CPU-trainable stand-in of the same family
(timm ``ResNet``, planes 8-16-32-64, outputs 32-64-128-256, stem width 16, same block type and stem), sized to keep
a smoke training step near the ResNet-18 FPN-64 one (their step times have no benchmark under ``benchmarks/`` yet):

| plugin              | full (``model.backbone``)                | smoke stand-in                                     |
|---------------------|------------------------------------------|----------------------------------------------------|
| backbone.resnet50   | ``resnet50``: Bottleneck [3,4,6,3]       | ``tiny_resnet50``: Bottleneck [1,1,1,1]            |
| backbone.resnet101  | ``resnet101``: Bottleneck [3,4,23,3]     | ``tiny_resnet101``: Bottleneck [1,1,2,1]           |
| backbone.resnet152  | ``resnet152``: Bottleneck [3,8,36,3]     | ``tiny_resnet152``: Bottleneck [1,2,3,1]           |
| backbone.resnext101 | ``resnext101``: 32x8d [3,4,23,3]         | ``tiny_resnext101``: grouped 8x16d [1,1,2,1]       |
| backbone.senet154   | ``senet154``: SE 64x4d [3,8,36,3], deep  | ``tiny_senet154``: SE grouped 8x16d [1,2,3,1], deep |

"deep" = the three-conv stem of SENet; the plugins' ``smoke`` option picks another trunk.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import ClassVar

import timm
import timm.models.resnet as timm_resnet
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torchvision.models import resnet
from torchvision.ops.misc import FrozenBatchNorm2d

from crowdbench.bench.config import RunConfig
from crowdbench.bench.registry import Hook, Plugin, Stage
from crowdbench.methods.declarative import variant

_TINY_PLANES = (8, 16, 32, 64)


def _tiny(layers: tuple[int, ...], **kwargs: object) -> Callable[..., nn.Module]:
    return partial(timm_resnet.ResNet, timm_resnet.Bottleneck, layers, stem_width=16, channels=_TINY_PLANES, **kwargs)


def _torchvision(name: str) -> Callable[..., nn.Module]:
    return partial(getattr(resnet, name), weights=None)


# SENet-154's block and stem (timm ``senet154``: SE attention, deep stem, 3x3 downsample, halved first conv width)
_SE = {"block_args": {"attn_layer": "se"}, "stem_type": "deep", "down_kernel_size": 3, "block_reduce_first": 2}

# name -> constructor taking ``norm_layer``; each builds a classifier whose ``layer1``..``layer4`` the detector uses.
TRUNKS: dict[str, Callable[..., nn.Module]] = {
    "resnet18": _torchvision("resnet18"),
    "resnet34": _torchvision("resnet34"),
    "resnet50": _torchvision("resnet50"),
    "resnet101": _torchvision("resnet101"),
    "resnet152": _torchvision("resnet152"),
    "resnext101": _torchvision("resnext101_32x8d"),
    "senet154": partial(timm.create_model, "senet154", pretrained=False),  # never downloads: pretrained=False
    "tiny_resnet50": _tiny((1, 1, 1, 1)),
    "tiny_resnet101": _tiny((1, 1, 2, 1)),
    "tiny_resnet152": _tiny((1, 2, 3, 1)),
    "tiny_resnext101": _tiny((1, 1, 2, 1), cardinality=8, base_width=16),
    "tiny_senet154": _tiny((1, 2, 3, 1), cardinality=8, base_width=16, **_SE),
}
BACKBONES: tuple[str, ...] = tuple(TRUNKS)


def build_trunk(name: str, frozen_bn: bool = False) -> nn.Module:
    """The classifier network ``name`` (random init), with frozen BatchNorm if ``frozen_bn`` (torchvision's
    convention with pretrained weights); an unknown name lists the valid ones."""
    if name not in TRUNKS:
        raise ValueError(f"unknown backbone {name!r}; valid: {', '.join(BACKBONES)}")
    return TRUNKS[name](norm_layer=_frozen_bn if frozen_bn else nn.BatchNorm2d)


def _frozen_bn(num_features: int, **_factory: object) -> FrozenBatchNorm2d:
    """torchvision's frozen BatchNorm; timm also passes ``device``/``dtype``, which it does not take."""
    return FrozenBatchNorm2d(num_features)


def stage_channels(trunk: nn.Module) -> list[int]:
    """Output channels of ``layer1``..``layer4`` (torchvision or timm ResNet)."""
    if hasattr(trunk, "feature_info"):  # timm: [stem, layer1, ..., layer4]
        return [info["num_chs"] for info in trunk.feature_info[1:]]
    stage2 = trunk.inplanes // 8  # torchvision: 64 (basic blocks) or 256 (bottlenecks)
    return [stage2, stage2 * 2, stage2 * 4, stage2 * 8]


# ----------------------------------------------------------------------------------------------------------------
# Plugins: one per paper backbone; smoke picks the stand-in of the table above
# ----------------------------------------------------------------------------------------------------------------


class _BackboneOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    smoke: str | None = Field(None, description="trunk under the smoke profile (default: the tiny stand-in)")


class _BackbonePlugin(Plugin):
    """The detector trunk ``full`` (torchvision / timm); smoke: option ``smoke``, else its ``tiny_<full>`` stand-in."""

    hook: ClassVar[Hook] = "model"
    stage: ClassVar[Stage] = "train"
    Config = _BackboneOptions
    edits: ClassVar[tuple[str, ...]] = ("model.backbone",)
    full: ClassVar[str]

    def apply(self, run: RunConfig) -> None:
        smoke = self.config.smoke or f"tiny_{self.full}"  # type: ignore[attr-defined]
        run.model.backbone = smoke if run.profile == "smoke" else self.full


_BACKBONES = {  # plugin backbone.<trunk>: its docstring
    "resnet50": "ResNet-50 (He et al., CVPR 2016), torchvision; hie-pose Table 1 baseline.",
    "resnet101": "ResNet-101 (He et al., CVPR 2016), torchvision.",
    "resnet152": "ResNet-152 (He et al., CVPR 2016), torchvision; hie-pose Table 1 rows 2, 3, 7.",
    "resnext101": "ResNeXt-101 32x8d (Xie et al., CVPR 2017), torchvision; hie-pose Table 1 rows 5-6.",
    "senet154": "SENet-154 (Hu et al., CVPR 2018: SE ResNeXt 64x4d, deep stem), timm; hie-pose Table 1 row 4.",
}
BACKBONE_PLUGINS = [variant(f"backbone.{trunk}", _BackbonePlugin, doc, full=trunk) for trunk, doc in _BACKBONES.items()]
