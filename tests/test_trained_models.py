"""Which trained models a cell evaluates (``bench/tasks.py: trained_models``, issue 22): the verdict of a one-seed
effect is only counted when both rows evaluate the same trained weights."""

from __future__ import annotations

import pytest

from crowdbench.bench.matrix import expand
from crowdbench.bench.specs import available_tables, load_spec
from crowdbench.bench.stages.pipeline import resolve, schedule
from crowdbench.bench.store import TRAINING_FOLDERS
from crowdbench.bench.tasks import task_of, trained_models

INFERENCE_FOLDERS = {"infer", "postprocess", "evaluate", "embed", "track", "poses", "smooth"}
"""Every other stage folder: it reads a model, it trains none."""


def _models(table: str, row: int) -> dict[str, str]:
    (cell,) = expand(load_spec(table), rows=[row], seeds=[0])
    return trained_models(cell.config)


@pytest.mark.parametrize("table", available_tables())
def test_every_stage_of_every_table_is_classed_as_training_or_not(table):
    for cell in expand(load_spec(table), seeds=[0]):
        for name, node in schedule(resolve(task_of(cell.config.task), cell.config)):
            assert node.folder in (*TRAINING_FOLDERS, *INFERENCE_FOLDERS), (table, cell.row_index, name, node.folder)


def test_rows_that_change_inference_only_share_their_models():
    # hie-pose Table 3: row 4 (Set NMS) post-processes row 3's detector; row 2 (EMD) trains another
    assert _models("hie-pose/table3", 3) == _models("hie-pose/table3", 2)
    assert _models("hie-pose/table3", 1)["train"] != _models("hie-pose/table3", 0)["train"]
    # offset-guided Table 1 rows 7, 8: GBG regroups the same detector's raw boxes for the same pose network
    gbg, plain = _models("offset-guided/table1", 7), _models("offset-guided/table1", 6)
    assert gbg == plain and set(gbg) == {"detector.train", "train"}
    # pose-regression Table 2 rows 2, 3: one model, two test-time scorers
    assert _models("pose-regression/table2", 2) == _models("pose-regression/table2", 1)


def test_an_added_trained_model_makes_the_rows_differ():
    baseline, reid = _models("hie-tracking/table5", 0), _models("hie-tracking/table5", 1)
    assert "reid" not in baseline and "reid" in reid
    assert baseline["detector.train"] == reid["detector.train"]
