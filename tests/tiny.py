"""The ``tiny`` synthetic preset as the tests use it: the overrides that shrink a pipeline's cells to seconds on a
CPU, shared by the test files that run the same cells, and data roots written in the native layouts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crowdbench.datasets.synthetic import generate, write_native

# hie-pose/table3 detectors of 4 iterations (test_table_e2e, test_executors: every executor must give these metrics)
DETECTION: dict[str, Any] = {
    "data.preset": "tiny",
    "train.iterations": 4,
    "train.batch_size": 2,
    "train.warmup_iters": 2,
    "train.checkpoint_every": 2,
    "infer.batch_size": 4,
}

# a pose-regression network of a few channels (test_pose_regression_pipeline, test_distributed add the schedule)
REGRESSION_MODEL: dict[str, Any] = {
    "data.preset": "tiny",
    "regression.model.fpn_channels": 32,
    "regression.model.tower_convs": 1,
    "regression.model.gn_groups": 8,
    "regression.model.heatmap_channels": 16,
}


def native_root(factory: pytest.TempPathFactory, name: str, seed: int) -> Path:
    """A new folder ``name`` holding ``generate("tiny", seed)`` in every native layout (a ``--data-root``)."""
    root = factory.mktemp(name)
    write_native(generate("tiny", seed=seed), root)
    return root
