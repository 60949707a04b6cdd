"""The pose-regression pipeline end to end on tiny synthetic data: pose-regression Table 2 rows 2-3 (one model, two
test-time scorers) share training and inference, Table 3 rows reuse Table 2's cells, Table 4 reports seconds per
image, and a scorer whose branch was not trained is a one-line error."""

from __future__ import annotations

import json

import pytest
from tiny import REGRESSION_MODEL  # tests/ is on sys.path

from crowdbench.bench.matrix import expand
from crowdbench.bench.runner import run_table
from crowdbench.bench.specs import load_spec
from crowdbench.bench.stages.pose_regression import check_regression, final_poses
from crowdbench.bench.tasks import stage_keys

TINY = {
    **REGRESSION_MODEL,
    "regression.train.epochs": 1,
    "regression.train.batch_size": 4,
    "regression.test.timing_images": 2,
}


def cells(table: str, rows: list[int] | None = None):
    return {c.row_index: c.config for c in expand(load_spec(table), overrides=TINY, rows=rows)}


def test_scorer_rows_share_training_and_inference():
    t2 = cells("pose-regression/table2")
    k = {i: stage_keys(cfg) for i, cfg in t2.items()}
    assert k[1]["train"] == k[2]["train"] and k[1]["infer"] == k[2]["infer"]  # + centerness, + PSM: one model
    assert k[1]["postprocess"] != k[2]["postprocess"]  # using centerness vs using PSM
    assert t2[1].regression.test.scorer == "centerness" and t2[2].regression.test.scorer == "psm"
    assert len({k[i]["train"] for i in (0, 1, 3)}) == 3  # centre-ness only, both, PSM only
    t3 = cells("pose-regression/table3")
    assert stage_keys(t3[1]) == k[0] and stage_keys(t3[2]) == k[3]  # the same cells as Table 2 rows 1 and 4
    assert stage_keys(t3[0])["train"] != k[0]["train"]  # Baseline*: no OKSFilter
    t1 = cells("pose-regression/table1")
    assert t1[3].regression.train.epochs == 1 and t2[0].regression.train.epochs == 1  # --set beats the row override
    assert cells("pose-regression/table2", rows=[0])[0].regression.model.backbone == "resnet18"  # smoke stand-in
    full = expand(load_spec("pose-regression/table3"), profile="full")
    assert full[0].config.regression.train.epochs == 31 and full[0].config.regression.model.backbone == "resnet50"


def test_scorer_without_its_branch_is_a_one_line_error():
    cfg = cells("pose-regression/table1", rows=[3])[3]
    cfg.regression.test.scorer = "psm"
    with pytest.raises(ValueError, match=r"scorer=psm needs the trained psm branch \(plugin pose_regression.psm"):
        check_regression(cfg)


def test_final_score_is_cls_times_the_scorer_before_nms():
    import numpy as np

    cfg = cells("pose-regression/table2", rows=[2])[2]
    poses = np.zeros((2, 17, 2))
    poses[1] += 100  # far apart: soft-NMS leaves both
    poses[:, 1] += 10
    found = {
        "poses": poses,
        "scores": np.array([0.8, 0.6]),
        "psm": np.array([0.2, 0.9]),
        "centerness": np.array([1, 1]),
    }
    kept, scores = final_poses(cfg, found)
    assert scores.tolist() == pytest.approx([0.54, 0.16])  # 0.6 x 0.9 now ranks first
    assert kept[0].tolist() == poses[1].tolist()


@pytest.fixture(scope="module")
def table2(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("regression")
    return run_dir, run_table("pose-regression/table2", overrides=TINY, run_dir=run_dir, rows=[1, 2])


def test_table2_rows_run_and_the_second_only_postprocesses(table2):
    run_dir, result = table2
    assert not result.failed and result.ran == 2
    rows = result.view.rows
    assert rows[1].status == rows[2].status == "done"
    assert set(rows[2].stages_run[0]) == {"postprocess", "evaluate"}  # trained and inferred once, for row 2
    for row in (1, 2):
        cell = rows[row].cells["AP"]
        assert cell.mean is not None and 0.0 <= cell.mean <= 100.0
    md = (run_dir / "reports" / "pose-regression" / "table2.md").read_text()
    assert "smoke" in md


def test_table4_reports_seconds_per_image_on_the_named_device(tmp_path):
    overrides = {**TINY, "regression.model.backbone": "resnet18"}
    result = run_table("pose-regression/table4", overrides=overrides, run_dir=tmp_path, rows=[7])
    assert not result.failed
    cell = result.view.rows[7].cells["time_s"]
    assert cell.mean is not None and cell.mean > 0
    timing = next((tmp_path / "cache" / "infer").glob("*/timing.json"))
    assert json.loads(timing.read_text())["timed_images"] == 2
    md = (tmp_path / "reports" / "pose-regression" / "table4.md").read_text()
    assert "Times[s] smoke, on cpu" in md


def test_report_site_draws_a_qualitative_frame_from_the_cache(table2):
    from crowdbench.bench.store import ResultStore, store_url
    from crowdbench.reports.site import build_site

    run_dir, _ = table2
    store = ResultStore(store_url(run_dir))
    index = build_site(store, run_dir / "site", tables=["pose-regression/table2"], cache_root=run_dir / "cache")
    page = (index.parent / "tables" / "pose-regression" / "table2.html").read_text()
    assert "Qualitative: row 3" in page and "best-scored poses" in page
    assert "2 / 4" in index.read_text()  # rows run of the runnable ones


def test_interrupted_training_resumes_exactly(tmp_path, monkeypatch):
    import torch

    from crowdbench.bench.stages import pose_regression_training as prt
    from crowdbench.bench.stages.data import load_frames
    from crowdbench.bench.stages.pose import schema_of

    cfg = cells("pose-regression/table1", rows=[3])[3]
    cfg.regression.train.lr_steps = ()
    cfg.regression.train.checkpoint_every = 1
    schema = schema_of(cfg)
    frames = load_frames(cfg.data, "train", schema.name)
    monkeypatch.setattr(prt, "iterations_of", lambda *_: 3)
    (tmp_path / "whole").mkdir()
    prt.train_regression(cfg, frames, schema, "cpu", tmp_path / "whole", tmp_path / "whole")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(prt, "iterations_of", lambda *_: 2)  # "killed" after iteration 1's checkpoint
    prt.train_regression(cfg, frames, schema, "cpu", tmp_path, scratch)
    assert (scratch / "checkpoint.pt").is_file()
    monkeypatch.setattr(prt, "iterations_of", lambda *_: 3)
    (tmp_path / "resumed").mkdir()
    prt.train_regression(cfg, frames, schema, "cpu", tmp_path / "resumed", scratch)
    a = torch.load(tmp_path / "whole" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
