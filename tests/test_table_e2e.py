"""End to end on the tiny synthetic preset: run hie-pose/table3, rerun from cache, resume, reports, CLI errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from interruption import train_killed_and_resumed  # tests/ is on sys.path
from tiny import DETECTION as TINY  # tests/ is on sys.path

from crowdbench.bench.errors import NonFiniteLossError
from crowdbench.bench.runner import run_table


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    return run_dir, run_table("hie-pose/table3", overrides=TINY, run_dir=run_dir, seeds=[0])


def test_table3_runs_all_rows_and_reuses_model_for_set_nms(first_run):
    _, result = first_run
    assert not result.failed and result.ran == 5
    rows = result.view.rows
    assert [r.status for r in rows] == ["done"] * 5
    assert all(r.levels == ["smoke"] for r in rows)
    for row in rows:
        for key in ("AP", "mMR", "JI"):
            assert row.cells[key].mean is not None
    # rows 1-3 train their own model; the set-NMS row only post-processes and evaluates
    assert rows[0].stages_run == [["train", "infer", "postprocess", "evaluate"]]
    assert rows[3].stages_run == [["postprocess", "evaluate"]]
    assert rows[4].stages_run == [["train", "infer", "postprocess", "evaluate"]]  # + KD regularization trains
    assert rows[0].cells["AP"].paper == 81.36
    # the trained model's size is recorded (the smoke stand-in's parameters, shown in the report)
    n = rows[0].params["train"]
    assert 10_000 < n < 50_000_000 and rows[3].params == rows[2].params  # set NMS reuses row 3's model


def test_second_run_recomputes_nothing(first_run):
    run_dir, _ = first_run
    again = run_table("hie-pose/table3", overrides=TINY, run_dir=run_dir, seeds=[0])
    assert again.ran == 0 and again.cached == 5
    assert [r.cells["AP"].mean for r in again.view.rows] == [r.cells["AP"].mean for r in first_run[1].view.rows]


def test_reports_are_written_and_labelled_smoke(first_run):
    _, result = first_run
    md = result.reports["md"].read_text()
    assert "SMOKE" in md and "NOT a reproduction" in md and "81.36" in md
    assert "Parameters trained: 1. ResNet50 + Faster RCNN + extra data: train " in md
    # the stand-in beside the paper's network it stands in for (ResNet-50 FPN Faster R-CNN, built on meta)
    assert "(full model 41.35 M)" in md and "Smoke trains stand-ins" in md
    html = result.reports["html"].read_text()
    assert "data:image/png;base64," in html and "SMOKE" in html
    assert 'src="http' not in html and 'href="http' not in html and "<link" not in html  # self-contained
    csv = result.reports["csv"].read_text().splitlines()
    assert csv[0].startswith("table,row,metric,paper,mean") and len(csv) == 1 + 5 * 3


def test_training_resumes_exactly_after_interruption(tmp_path, monkeypatch):
    from crowdbench.bench.matrix import expand
    from crowdbench.bench.specs import load_spec
    from crowdbench.bench.stages import detector_training as dt
    from crowdbench.bench.stages.detection import load_frames

    cfg = expand(load_spec("hie-pose/table3"), overrides=TINY, rows=[1])[0].config
    frames = load_frames(cfg.data, "train")

    def train(out: Path, scratch: Path) -> None:
        dt.train_detector(cfg, frames, "cpu", out, scratch)

    ref_dir, out_dir, _ = train_killed_and_resumed(train, tmp_path, monkeypatch)
    ref = torch.load(ref_dir / "model.pt", weights_only=True)
    got = torch.load(out_dir / "model.pt", weights_only=True)
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    assert json.loads((out_dir / "losses.json").read_text()) == json.loads((ref_dir / "losses.json").read_text())


def test_nan_loss_stops_with_one_line_error_and_keeps_checkpoint(tmp_path, monkeypatch):
    from crowdbench.bench.matrix import expand
    from crowdbench.bench.specs import load_spec
    from crowdbench.bench.stages import detector_training as dt
    from crowdbench.bench.stages.detection import load_frames

    cfg = expand(load_spec("hie-pose/table3"), overrides=TINY, rows=[0])[0].config
    real_build = dt.build_detector

    def poisoned(model_cfg):
        model = real_build(model_cfg)
        calls = {"n": 0}
        forward = model.forward

        def forward_nan_at_third(images, targets=None):
            losses = forward(images, targets)
            calls["n"] += 1
            if calls["n"] == 3:
                losses["loss_emd"] = losses["loss_emd"] * float("nan")
            return losses

        model.forward = forward_nan_at_third
        return model

    monkeypatch.setattr(dt, "build_detector", poisoned)
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    out.mkdir()
    scratch.mkdir()
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at iteration 2 \(.*loss_emd=nan"):
        dt.train_detector(cfg, load_frames(cfg.data, "train"), "cpu", out, scratch)
    assert (scratch / "checkpoint.pt").is_file()  # iterations 0-1 are kept (checkpoint_every=2)
    assert not (out / "model.pt").exists()


def test_evaluate_metric_is_pluggable_and_columns_are_checked(tmp_path):
    from crowdbench.bench.specs import SpecError

    default = run_table("hie-pose/table3", overrides=TINY, run_dir=tmp_path, rows=[0])  # crowdhuman: AP, mMR, JI
    assert default.view.rows[0].cells["JI"].mean is not None
    with pytest.raises(SpecError, match=r"columns \['mMR', 'JI'\] are not produced by evaluate.metric='coco_box'"):
        run_table("hie-pose/table3", overrides={**TINY, "evaluate.metric": "coco_box"}, run_dir=tmp_path, rows=[0])


def test_coco_box_evaluation_of_detection_records():
    from crowdbench.bench.config import DataConfig
    from crowdbench.bench.metrics.registry import metric_for
    from crowdbench.bench.stages.detection import load_frames
    from crowdbench.datasets.formats.crowdhuman import DetectionRecord, record_id

    frames = load_frames(DataConfig(preset="tiny"), "val")
    # detectors clip to the image, as the COCO ground truth (bbox) is clipped
    clipped = [np.clip(f.boxes(include_ignored=False), 0, [f.width, f.height, f.width, f.height]) for f in frames]
    perfect = [DetectionRecord(record_id(f), b, [1.0] * len(b)) for f, b in zip(frames, clipped, strict=True)]
    box = metric_for("detection", "coco_box").evaluate(frames, perfect).values
    assert box["AP"] == pytest.approx(1.0) and set(box) >= {"AP50", "ARL"}
    ch = metric_for("detection", "crowdhuman").evaluate(frames, perfect).values
    assert ch["mMR"] == 0.0 and ch["JI"] == pytest.approx(1.0, abs=1e-5)
