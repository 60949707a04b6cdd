"""The full models the smoke stand-ins stand in for (``bench/model_size.py``), over every runnable row (issue 22).

Registry style: every runnable row of every table builds its ``full``-profile network on the meta device. The
counts are checked against the published sizes of the networks (HRNet-W32 28.5 M and W48 63.6 M, SimpleBaseline
ResNet-50 34.0 M: Sun et al. 2019 Table 1, Xiao et al. 2018), and each is larger than the stand-in smoke trains.
"""

from __future__ import annotations

import pytest
import torch

from crowdbench.bench.checkpoints import state_parameters
from crowdbench.bench.matrix import expand
from crowdbench.bench.model_size import full_model_parameters, train_model
from crowdbench.bench.specs import available_tables, load_spec

ROWS = [(t, i) for t in available_tables() for i, _ in load_spec(t).runnable_rows]


@pytest.mark.parametrize(("table", "row"), ROWS, ids=[f"{t}:{i + 1}" for t, i in ROWS])
def test_every_row_builds_its_full_model_and_it_is_larger_than_the_stand_in(table, row):
    spec = load_spec(table)
    full = full_model_parameters(table, row)
    if spec.task in ("tracking", "pose_tracking"):
        assert full is None  # the cell trains no own `train` model (its ReID classifier depends on the dataset)
        return
    assert full is not None and full > 1_000_000
    (cell,) = expand(spec, profile="smoke", seeds=[0], rows=[row])
    assert state_parameters(train_model(cell.config).state_dict()) < full


@pytest.mark.parametrize(
    ("table", "row", "millions"),
    [("occlusion-aug/table1", 4, 28.5), ("occlusion-aug/table1", 6, 63.6), ("occlusion-aug/table1", 0, 34.0)],
)
def test_published_sizes(table, row, millions):
    assert full_model_parameters(table, row) / 1e6 == pytest.approx(millions, abs=0.05)


def test_running_statistics_are_not_counted():
    bn = torch.nn.BatchNorm2d(8)
    assert state_parameters(bn.state_dict()) == 16  # weight and bias, not running mean / var / count
