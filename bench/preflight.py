"""Checks of a cell's resolved config before any work starts (``bench/runner.py`` calls :func:`preflight` per cell,
next to ``check_data``): every path-valued setting exists, and every weights file loads into the model it is
configured for, through the same ``load_*_weights`` function training uses. A problem is one line naming the
setting and the path:

- ``model.weights: /x/r50.pth does not exist``
- ``model.weights: /x/r50.pth is not a PyTorch checkpoint (invalid load key, 'h'.)``
- ``model.weights: /x/r18.pth does not fit resnet50: 99 missing keys (...), 51 shape mismatches (...)``

Weights checks build the model on the CPU (a second or two at full size) and are memoised per setting, file
(path, size, modification time) and architecture, so a table of many rows reads each file once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from crowdbench.bench.checkpoints import CheckpointError
from crowdbench.bench.config import (
    DetectorConfig,
    PoseConfig,
    PoseModelConfig,
    RegressionModelConfig,
    ReIDConfig,
    RunConfig,
)

SKIPPED = ("data",)
"""Top-level blocks checked elsewhere: ``data`` by ``bench/stages/data.py: check_data`` (root, files, images)."""


class PreflightError(ValueError):
    """A path-valued setting names nothing; the message names the setting and the path."""


def path_settings(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, BaseModel, str, Path]]:
    """``(dotted setting, owning model, field name, path)`` of every set ``Path`` field below ``model``, nested
    models and lists / tuples of models included (``pose.test.ensemble[0].weights``)."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        dotted = f"{prefix}{name}"
        if isinstance(value, Path):
            yield dotted, model, name, value
        elif isinstance(value, BaseModel):
            yield from path_settings(value, f"{dotted}.")
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    yield from path_settings(item, f"{dotted}[{i}].")


def _detector_backbone(cfg: DetectorConfig, path: Path, setting: str) -> None:
    # deferred: start-up (torch, numpy)
    from crowdbench.methods.detection.faster_rcnn import build_body

    build_body(cfg)  # the trunk as training builds it, cfg.weights (= path) loaded by load_backbone_weights


def _kd_teacher(cfg: DetectorConfig, path: Path, setting: str) -> None:
    # deferred: start-up (torch)
    from crowdbench.methods.detection.kd import load_teacher

    load_teacher(cfg, path, setting)


def _pose_backbone(cfg: PoseModelConfig, path: Path, setting: str) -> None:
    # deferred: start-up (torch, numpy)
    from crowdbench.bench.stages.pose_training import build_model

    # the training's own builder and loader (the head size does not touch the backbone)
    build_model(PoseConfig(model=cfg.model_copy(update={"weights": path})), num_joints=17)


def _regression_trunk(cfg: RegressionModelConfig, path: Path, setting: str) -> None:
    # deferred: start-up (torch)
    from crowdbench.methods.pose.regression.model import Trunk, load_trunk_weights

    load_trunk_weights(Trunk(cfg.backbone), path, setting)


def _reid(cfg: ReIDConfig, path: Path, setting: str) -> None:
    # deferred: start-up (torch, cv2)
    from crowdbench.methods.tracking.reid import build_reid, load_reid_weights

    load_reid_weights(build_reid(cfg.arch, dim=cfg.dim, input_hw=cfg.input_hw), path, setting)


def _reid_backbone(cfg: ReIDConfig, path: Path, setting: str) -> None:
    if cfg.arch != "resnet50":
        return  # build_reid says so with one line when training starts; nothing to load
    from torchvision.models import resnet50

    # deferred: start-up (torch, cv2)
    from crowdbench.methods.tracking.reid import load_backbone_weights

    load_backbone_weights(resnet50(weights=None), path, setting)


# (config class, field) -> (architecture key for the memo, loader)
WEIGHTS: dict[tuple[type[BaseModel], str], tuple[Callable[[Any], str], Callable[[Any, Path, str], None]]] = {
    (DetectorConfig, "weights"): (lambda c: c.backbone, _detector_backbone),
    (DetectorConfig, "kd_teacher"): (
        lambda c: c.model_copy(update={"kd": "off", "kd_teacher": None}).model_dump_json(),
        _kd_teacher,
    ),
    (PoseModelConfig, "weights"): (
        lambda c: f"{c.arch}:{c.backbone if c.arch == 'simplebaseline' else c.hrnet_width}",
        _pose_backbone,
    ),
    (RegressionModelConfig, "weights"): (lambda c: c.backbone, _regression_trunk),
    (ReIDConfig, "weights"): (lambda c: f"{c.arch}:{c.dim}", _reid),
    (ReIDConfig, "backbone_weights"): (lambda c: c.arch, _reid_backbone),
}
"""Weights-valued settings and how each is loaded; any other ``Path`` setting is only checked to exist."""

_CHECKED: dict[tuple[str, str, int, int, str], CheckpointError | None] = {}


def check_weights(setting: str, owner: BaseModel, field: str, path: Path) -> None:
    """Load ``path`` into the model ``owner`` configures (memoised); a :class:`CheckpointError` names ``setting``."""
    entry = WEIGHTS.get((type(owner), field))
    if entry is None:
        return
    arch, load = entry
    stat = path.stat()
    memo = (setting, str(path.resolve()), stat.st_size, stat.st_mtime_ns, arch(owner))
    if memo not in _CHECKED:
        try:
            load(owner, path, setting)
            _CHECKED[memo] = None
        except CheckpointError as err:  # the loader's default setting name -> the one this config uses
            _CHECKED[memo] = err.for_setting(setting) if err.path == path else err
    err = _CHECKED[memo]
    if err is not None:
        raise CheckpointError(err.path, err.problem, err.setting)


def preflight(cfg: RunConfig) -> None:
    """Raise one line (:class:`PreflightError`, :class:`CheckpointError`) if a path-valued setting of ``cfg`` does
    not exist or a weights file does not load into its configured model."""
    settings = [s for s in path_settings(cfg) if s[0].split(".")[0] not in SKIPPED]
    for setting, _, _, path in settings:
        if not path.exists():
            raise PreflightError(f"{setting}: {path} does not exist")
    for setting, owner, field, path in settings:
        check_weights(setting, owner, field, path)
