"""The top-down pose pipeline end to end on tiny synthetic data: occlusion-aug Table 4 rows E1 and E5 (schedule S3
reuses E1's model as its first phase), per-epoch history, occlusion only where the schedule says, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from interruption import train_killed_and_resumed  # tests/ is on sys.path

from crowdbench.bench.matrix import expand
from crowdbench.bench.runner import run_table
from crowdbench.bench.specs import load_spec
from crowdbench.bench.stages.pose import load_frames
from crowdbench.bench.stages.pose_training import TrainCrops, people
from crowdbench.bench.tasks import run_cell, stage_keys
from crowdbench.methods.pose.schedules import SCHEDULES

TINY = {
    "data.preset": "tiny",
    "pose.model.hrnet_width": 8,
    "pose.train.epoch_scale": 0.01,  # S1: 210 -> 4 epochs (each phase at least one epoch), S3: 4 + 4
    "pose.train.samples_per_epoch": 64,
    "pose.train.batch_size": 16,
    "pose.train.eval_every": 1,  # validation after every epoch (the smoke profile's 5 would validate only the last)
    "pose.test.batch_size": 64,
}


@pytest.fixture(scope="module")
def table4(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("table4")
    result = run_table("occlusion-aug/table4", overrides=TINY, run_dir=run_dir, rows=[0, 4])
    return run_dir, result


def test_e1_and_e5_run_and_e5_reuses_e1(table4):
    run_dir, result = table4
    assert not result.failed and result.ran == 2
    cells = {c.row_index: c.config for c in expand(load_spec("occlusion-aug/table4"), overrides=TINY, rows=[0, 4])}
    e1, e5 = stage_keys(cells[0]), stage_keys(cells[4])
    assert e5["pretrain"] == e1["train"]  # S3's first phase is the S1 model without occlusion
    history = json.loads((run_dir / "cache" / "train" / e5["train"] / "history.json").read_text())
    n1 = SCHEDULES["s1"].scaled(TINY["pose.train.epoch_scale"]).epochs
    assert [h["epoch"] for h in history] == list(range(1, 2 * n1 + 1))
    assert [h["occlusion"] for h in history] == [False] * n1 + [True] * n1
    assert all("val_AP" in h and np.isfinite(h["loss"]) for h in history)
    first = json.loads((run_dir / "cache" / "train" / e1["train"] / "history.json").read_text())
    assert history[:n1] == first
    assert history[n1]["lr"] == cells[4].pose.train.lr  # the second phase restarts the learning rate
    for row in (0, 4):
        assert result.view.rows[row].status == "done"
    assert result.view.rows[4].curves[0]["train"] == history  # the record carries the curves to the report
    html = (run_dir / "reports" / "occlusion-aug" / "table4.html").read_text()
    assert "Training curves" in html and html.count("data:image/png;base64,") == 2


def test_rerun_is_all_cache_hits(table4):
    run_dir, _ = table4
    again = run_table("occlusion-aug/table4", overrides=TINY, run_dir=run_dir, rows=[0, 4])
    assert again.ran == 0 and again.cached == 2


def test_occlusion_plugin_changes_training_crops_only_when_active():
    cfg = expand(load_spec("occlusion-aug/table4"), overrides=TINY, rows=[1])[0].config  # E2: S1 + OA
    assert cfg.pose.train.occlusion == "keypoint_aware" and cfg.pose.model.arch == "hrnet"
    frames = load_frames(cfg.data, "train", "coco17")
    crops = TrainCrops(frames, people(frames, 1), _schema(), cfg.pose, seed=0)
    plain, occluded = crops[(3, 0, False)], crops[(3, 0, True)]
    assert not np.array_equal(plain["image"].numpy(), occluded["image"].numpy())
    np.testing.assert_array_equal(plain["heatmaps"].numpy(), occluded["heatmaps"].numpy())  # targets unchanged
    again = crops[(3, 0, True)]
    np.testing.assert_array_equal(again["image"].numpy(), occluded["image"].numpy())  # a pure function of the key


def _schema():
    from crowdbench.datasets.keypoints import COCO_17

    return COCO_17


def test_detection_boxes_come_from_a_coco_results_file(tmp_path):
    from crowdbench.bench.stages.pose_training import detected_people, image_ids

    cfg = expand(load_spec("occlusion-aug/table4"), overrides=TINY, rows=[0])[0].config
    frames = load_frames(cfg.data, "val", "coco17")
    ids = image_ids(frames)
    dets = [
        {"image_id": ids[f], "category_id": 1, "score": s, "bbox": [10.0, 20.0, 30.0, 60.0]}
        for f, s in ((0, 0.9), (0, 0.05), (2, 0.5))
    ]
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(dets))
    got = detected_people(frames, path, score_thr=0.1)
    assert [(p.frame, p.score) for p in got] == [(0, 0.9), (2, 0.5)]
    np.testing.assert_allclose(got[0].box, [10, 20, 40, 80])
    before = stage_keys(cfg)
    cfg.pose.test.boxes, cfg.pose.test.detections = "detections", path
    keyed = stage_keys(cfg)
    assert keyed["train"] == before["train"] and keyed["infer"] != before["infer"]  # test boxes do not retrain
    path.write_text(json.dumps(dets[:1]))
    assert stage_keys(cfg)["infer"] != keyed["infer"]  # the file's content keys the predictions


def test_detector_boxes_and_gbg_share_the_pose_model(tmp_path):
    """offset-guided Table 1 row c takes its boxes from the detection pipeline (run inside the pose cell, through
    the same cache); switching GBG on (row g's test-time part) reuses both the pose model and the detector."""
    from crowdbench.bench.cache import StageCache
    from crowdbench.bench.store import ResultStore, store_url

    over = {
        **TINY,
        "pose.test.det_score_thr": 0.2,
        "pose.test.gbg_egt_thr": 0.3,  # a 20-iteration detector is never confident
        "pose.test.detector_set": {"train.iterations": 20},
    }
    result = run_table("offset-guided/table1", overrides=over, run_dir=tmp_path, rows=[2])
    assert not result.failed
    (rec,) = ResultStore(store_url(tmp_path)).query("offset-guided/table1")
    assert {"detector.train", "detector.infer", "train", "infer"} <= set(rec.stages_run)
    cfg = expand(load_spec("offset-guided/table1"), overrides=over, rows=[2])[0].config
    nms_keys = stage_keys(cfg)
    cfg.pose.test.gbg, cfg.pose.test.pose_nms = True, "and"
    gbg = run_cell(cfg, StageCache(tmp_path / "cache"), "cpu")
    assert gbg.stage_keys["train"] == nms_keys["train"] and gbg.stage_keys["detector"] != nms_keys["detector"]
    assert gbg.stages_run == ["infer", "postprocess", "evaluate"]  # no pose or detector training
    n_nms = len(json.loads((tmp_path / "cache" / "infer" / nms_keys["infer"] / "results.json").read_text()))
    n_gbg = len(json.loads((tmp_path / "cache" / "infer" / gbg.stage_keys["infer"] / "results.json").read_text()))
    assert n_nms > 0 and n_gbg > 0 and n_nms != n_gbg  # GBG keeps another box set than NMS


def test_hie_pose_table5_rows_1_2_share_a_model_and_report_wap(tmp_path):
    """hie-pose Table 5 rows 1-2 (HRNet; + multi-scale evaluation, reading B with flip): HIE-14 data, one model,
    different predictions, w-AP in [0, 1]."""
    over = {**TINY, "pose.train.epoch_scale": 0.005}
    cells = {c.row_index: c.config for c in expand(load_spec("hie-pose/table5"), overrides=over, rows=[0, 1])}
    k1, k2 = stage_keys(cells[0]), stage_keys(cells[1])
    assert k1["train"] == k2["train"] and k1["infer"] != k2["infer"]  # a test-time option only
    assert cells[1].pose.test.multiscale_mode == "box" and cells[1].pose.test.flip_test
    assert not cells[0].pose.test.flip_test and cells[0].evaluate.metric == "hie_wap"
    result = run_table("hie-pose/table5", overrides=over, run_dir=tmp_path, rows=[0, 1])
    assert not result.failed and result.ran == 2
    from crowdbench.bench.store import ResultStore, store_url

    recs = {r.row_index: r for r in ResultStore(store_url(tmp_path)).query("hie-pose/table5")}
    assert "train" in recs[0].stages_run and "train" not in recs[1].stages_run
    for rec in recs.values():
        assert 0.0 <= rec.metrics["wAP"] <= 1.0 and set(rec.metrics) >= {"wAP", "wAP50", "wAP75"}
    r1 = json.loads((tmp_path / "cache" / "infer" / k1["infer"] / "results.json").read_text())
    r2 = json.loads((tmp_path / "cache" / "infer" / k2["infer"] / "results.json").read_text())
    assert len(r1) == len(r2) and len(r1[0]["keypoints"]) == 14 * 3 and r1 != r2
    history = json.loads((tmp_path / "cache" / "train" / k1["train"] / "history.json").read_text())
    assert all(0.0 <= h["val_AP"] <= 1.0 for h in history)  # per-epoch validation with the cell's metric (w-AP)


def test_soft_oks_nms_reruns_only_postprocess_and_never_raises_a_score(table4):
    from crowdbench.bench.cache import StageCache

    run_dir, _ = table4
    cfg = expand(load_spec("occlusion-aug/table4"), overrides=TINY, rows=[0])[0].config
    cfg.pose.test.soft_oks_nms = 0.3
    outcome = run_cell(cfg, StageCache(run_dir / "cache"), "cpu")
    assert outcome.stages_run == ["postprocess", "evaluate"]
    cache = run_dir / "cache"
    before = json.loads((cache / "infer" / outcome.stage_keys["infer"] / "results.json").read_text())
    after = json.loads((cache / "postprocess" / outcome.stage_keys["postprocess"] / "results.json").read_text())
    assert len(after) == len(before)  # at most 20 poses per image are kept; tiny frames have fewer
    pairs = list(zip(before, after, strict=True))
    assert all(a["score"] <= b["score"] + 1e-12 for b, a in pairs)
    assert any(a["score"] < b["score"] for b, a in pairs)  # crowded frames: overlapping poses are rescored


def test_pose_training_resumes_exactly_after_interruption(tmp_path, monkeypatch):
    import torch

    import crowdbench.bench.stages.pose_training as pt
    from crowdbench.datasets.keypoints import COCO_17

    cfg = expand(load_spec("occlusion-aug/table4"), overrides=TINY, rows=[1])[0].config  # E2: OA draws too
    cfg.pose.train.eval_every = 0
    frames = load_frames(cfg.data, "train", "coco17")

    def train(out: Path, scratch: Path) -> None:
        pt.train_pose(cfg, frames, COCO_17, "cpu", out, scratch)

    ref, out, _ = train_killed_and_resumed(train, tmp_path, monkeypatch)
    a, b = torch.load(ref / "model.pt", weights_only=True), torch.load(out / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((out / "history.json").read_text()) == json.loads((ref / "history.json").read_text())


@pytest.mark.parametrize(
    ("plugin", "part"),
    [("udp", "crop"), ("offset_guided.offset", "targets"), ("pose_postproc.flip", "predictions")],
)
def test_pose_plugin_changes_what_it_names(plugin, part):
    """Each plugin changes its own part of the computation (not only the config): the crop warp (UDP), the training
    targets (offset maps beside disk heatmaps), the test-time predictions (flip test)."""
    import torch

    from crowdbench.bench.registry import get_plugin
    from crowdbench.bench.stages.pose_training import build_model, predict_poses
    from crowdbench.datasets.keypoints import COCO_17

    base = expand(load_spec("occlusion-aug/table4"), overrides=TINY, rows=[0])[0].config
    base.pose.train.udp, base.pose.test.flip_test = False, False  # the spec row turns both on
    other = base.model_copy(deep=True)
    get_plugin(plugin).apply(other)
    frames = load_frames(base.data, "val", "coco17")
    persons = people(frames, 1)[:8]
    if part in ("crop", "targets"):
        a = TrainCrops(frames, persons, COCO_17, base.pose, seed=0)[(0, 0, False)]
        b = TrainCrops(frames, persons, COCO_17, other.pose, seed=0)[(0, 0, False)]
        if part == "crop":
            assert not np.array_equal(a["image"].numpy(), b["image"].numpy())
        else:
            assert "offsets" not in a and b["offsets"].shape[0] == 2 * a["heatmaps"].shape[0]
            assert not np.array_equal(a["heatmaps"].numpy(), b["heatmaps"].numpy())  # disk, not Gaussian
        return
    torch.manual_seed(0)
    model = build_model(base.pose, 17)
    a = predict_poses(model, base.pose, frames, persons, COCO_17, "cpu", progress=False)
    b = predict_poses(model, other.pose, frames, persons, COCO_17, "cpu", progress=False)
    assert not np.array_equal(a, b)
