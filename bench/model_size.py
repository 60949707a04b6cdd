"""The size of the full model a smoke row stands in for (issue 22 part 2).

Under ``smoke`` a row trains a stand-in (``bench/profiles.py``: HRNet-W18-small for HRNet-W32, ResNet-18 for a
ResNet-50 detector, ...), and each record stores the stand-in's parameter count (``bench/stages/pipeline.py:
trained_parameters``). This module builds the same row's ``full``-profile model on the ``meta`` device (no memory,
no weights, nothing downloaded) and counts it by the same rule (``bench/checkpoints.py: state_parameters``), so the
report can show both sizes side by side and a reader can check that the stand-ins keep the full models' order.

Only the cell's own ``train`` model is built (the one whose stand-in size the record holds): a ReID network's
classifier depends on the identities of the full dataset, which a report does not read.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from crowdbench.bench.checkpoints import state_parameters
from crowdbench.bench.matrix import expand
from crowdbench.bench.specs import load_spec

if TYPE_CHECKING:
    import torch

    from crowdbench.bench.config import RunConfig


def train_model(cfg: RunConfig) -> torch.nn.Module | None:
    """The network the cell's ``train`` stage trains, built from ``cfg`` with no weights loaded (None: the task
    trains no model of its own, e.g. tracking)."""
    # deferred: start-up (torch, torchvision, timm)
    from crowdbench.bench.stages.pose_training import build_model
    from crowdbench.bench.tasks import task_of
    from crowdbench.methods.detection.faster_rcnn import build_detector
    from crowdbench.methods.pose.regression.model import build_regression_model

    if cfg.task == "detection":
        return build_detector(cfg.model.model_copy(update={"weights": None}))
    joints = task_of(cfg.task).schema(cfg).num_keypoints
    if cfg.task == "pose":
        model = cfg.pose.model.model_copy(update={"weights": None})
        return build_model(cfg.pose.model_copy(update={"model": model}), joints)
    if cfg.task == "pose_regression":
        return build_regression_model(cfg.regression.model.model_copy(update={"weights": None}), joints)
    return None


@cache
def full_model_parameters(table_id: str, row_index: int) -> int | None:
    """Parameters of the model row ``row_index`` of ``table_id`` trains under the ``full`` profile (the paper's
    network), counted as the smoke records count their stand-ins; None when the row's task trains no own model."""
    # deferred: start-up (torch)
    import torch

    (cell,) = expand(load_spec(table_id), profile="full", seeds=[0], rows=[row_index])
    with torch.device("meta"):
        model = train_model(cell.config)
    return None if model is None else state_parameters(model.state_dict())
