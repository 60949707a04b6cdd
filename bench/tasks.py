"""The task registry: every pipeline's declaration by task name, and the artefact API reports read stage outputs by.

Runner, worker and reports look a task up here (:data:`TASKS`, :func:`task_of`); importing this module imports every
stage module, each of which registers its :class:`~crowdbench.bench.stages.pipeline.Task`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from crowdbench.bench.config import DataConfig, RunConfig
from crowdbench.bench.stages import detection, pose, pose_regression, pose_tracking, tracking
from crowdbench.bench.stages.data import load_frames
from crowdbench.bench.stages.pipeline import (
    TASKS,
    Task,
    context,
    follow_training,
    resolve,
    run_cell,
    schedule,
    stage_keys,
    task_of,
)
from crowdbench.bench.store import TRAINING_FOLDERS
from crowdbench.datasets.model import Frame

__all__ = [
    "TASKS",
    "Task",
    "artefact",
    "context",
    "follow_training",
    "load_artefact",
    "run_cell",
    "stage_keys",
    "task_of",
    "trained_models",
    "validation_frames",
]

DECLARED = (detection, pose, pose_regression, tracking, pose_tracking)
"""The stage modules, each registering its task on import."""


def trained_models(cfg: RunConfig) -> dict[str, str]:
    """Every model a cell trains or reads, upstream cells' included: ``{"detector.train": key, "train": key, ...}``
    (schedule name -> stage key). Two cells with equal maps evaluate the same trained weights, so their paired
    effect holds no training noise; with unequal maps it does, and one seed cannot show it (issue 22)."""
    return {
        name: node.key for name, node in schedule(resolve(task_of(cfg.task), cfg)) if node.folder in TRAINING_FOLDERS
    }


@cache
def _frames(data_json: str, split: str, schema: str) -> list[Frame]:
    return load_frames(DataConfig.model_validate_json(data_json), split, schema)


def validation_frames(cfg: RunConfig) -> list[Frame]:
    """The frames a cell is evaluated on, in its keypoint schema (memoised per data settings: a report draws many
    cells of one dataset)."""
    return _frames(cfg.data.model_dump_json(), cfg.data.val_split, task_of(cfg.task).schema(cfg).name)


def artefact(cfg: RunConfig, keys: dict[str, str], name: str, cache_root: Path) -> Path:
    """The file of artefact ``name`` a cell (config and stage keys, e.g. from its record) produced under ``cache_root``
    (KeyError: the task has no such artefact or the cell no such stage)."""
    a = task_of(cfg.task).artefacts[name]
    return Path(cache_root) / a.stage / keys[a.stage] / a.file


def load_artefact(cfg: RunConfig, keys: dict[str, str], name: str, cache_root: Path, frames: list[Frame]) -> list[Any]:
    """Artefact ``name`` read per validation frame (``frames``: :func:`validation_frames`)."""
    return task_of(cfg.task).artefacts[name].load(artefact(cfg, keys, name, cache_root), frames)
