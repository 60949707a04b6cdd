"""The `full` profile's real-data path (CrowdHuman .odgt + Images/ under --data-root, DataLoader workers), run on
tiny synthetic data written in that layout; the synthetic marker keeps its results labelled smoke."""

from __future__ import annotations

import json

import pytest
from tiny import native_root  # tests/ is on sys.path

from crowdbench.bench.runner import run_table
from crowdbench.bench.store import ResultStore, store_url
from crowdbench.datasets.synthetic import SYNTHETIC_MARKER, generate

SMALL_MODEL = {
    "model.backbone": "resnet18",
    "model.fpn_channels": 32,
    "model.representation_size": 128,
    "model.min_size": 128,
    "model.max_size": 128,
    "model.anchor_sizes": (16, 32, 64, 128, 256),
    "model.box_batch_size_per_image": 64,
    "train.iterations": 3,
    "train.batch_size": 2,
    "train.warmup_iters": 1,
    "train.num_workers": 2,
    "infer.batch_size": 4,
}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return native_root(tmp_path_factory, "crowdhuman_layout", seed=3)


def test_full_profile_reads_odgt_and_images(data_root, tmp_path):
    """CrowdHuman-only data (the spec's HIE source replaced on the command line)."""
    assert (data_root / "annotation_train.odgt").is_file() and (data_root / SYNTHETIC_MARKER).is_file()
    crowdhuman_only = {**SMALL_MODEL, "data.source": "crowdhuman", "data.holdout_videos": (), "data.extra_train": ()}
    result = run_table(
        "hie-pose/table3", profile="full", data_root=data_root, overrides=crowdhuman_only, run_dir=tmp_path, rows=[3]
    )
    assert not result.failed
    row = result.view.rows[3]
    assert row.status == "done" and row.levels == ["smoke"]  # synthetic data stays smoke under --profile full
    records = ResultStore(store_url(tmp_path)).query("hie-pose/table3", profile="full")
    assert len(records) == 1
    cfg = records[0].config
    assert cfg["data"]["source"] == "crowdhuman" and cfg["train"]["num_workers"] == 2
    assert cfg["postprocess"]["nms"] == "set" and cfg["model"]["refine"]
    dets = (tmp_path / "cache" / "postprocess").glob("*/detections.json")
    lines = [json.loads(line) for path in dets for line in path.read_text().splitlines()]
    assert lines and all(rec["width"] == 128 and rec["height"] == 128 for rec in lines)


def test_full_profile_uses_the_papers_hie_video_split_and_extra_data(data_root, tmp_path):
    """The spec's own full data: HIE train videos minus the held-out ones, plus CrowdHuman train; val = held out."""
    from crowdbench.bench.matrix import expand
    from crowdbench.bench.specs import load_spec
    from crowdbench.bench.stages.detection import load_frames

    overrides = {**SMALL_MODEL, "data.holdout_videos": ("syn_train_001",), "data.root": str(data_root)}
    cfg = expand(load_spec("hie-pose/table3"), profile="full", overrides=overrides, rows=[0])[0].config
    assert cfg.data.source == "hie" and cfg.data.extra_train == ("crowdhuman",)
    val = load_frames(cfg.data, cfg.data.val_split)
    train = load_frames(cfg.data, cfg.data.train_split)
    assert {f.video for f in val} == {"syn_train_001"}
    odgt_train = generate("tiny", seed=3).frames("train")
    assert len(train) == sum(f.video == "syn_train_000" for f in odgt_train) + len(odgt_train)
    result = run_table("hie-pose/table3", profile="full", data_root=data_root, overrides=overrides, run_dir=tmp_path)
    assert not result.failed and result.view.rows[0].status == "done"
    spec_default = expand(load_spec("hie-pose/table3"), profile="full", overrides={"data.root": str(data_root)})
    with pytest.raises(ValueError, match=r"holdout videos \['17', '3', '7', '8'\] not found"):
        load_frames(spec_default[0].config.data, "val")


def test_real_data_without_marker_is_full_level(data_root, tmp_path):
    from crowdbench.bench.profiles import base_config

    cfg = base_config("full", "detection")
    cfg.data.root = data_root
    assert cfg.level == "smoke"
    plain = tmp_path / "plain"
    plain.mkdir()
    cfg.data.root = plain
    assert cfg.level == "full"


def test_pose_full_profile_reads_coco_layout(data_root, tmp_path):
    """occlusion-aug Table 4 under --profile full: COCO keypoints JSON + images from disk (the layout's synthetic
    candidate), network sizes overridden down so that it runs in seconds."""
    tiny_pose = {
        "pose.model.hrnet_width": 8,
        "pose.model.input_size": (48, 64),
        "pose.train.epoch_scale": 0.005,
        "pose.train.samples_per_epoch": 16,
        "pose.train.batch_size": 8,
        "pose.train.num_workers": 0,
        "pose.test.batch_size": 32,
    }
    result = run_table(
        "occlusion-aug/table4", profile="full", data_root=data_root, overrides=tiny_pose, run_dir=tmp_path, rows=[0]
    )
    assert not result.failed and result.view.rows[0].levels == ["smoke"]
    (record,) = ResultStore(store_url(tmp_path)).query("occlusion-aug/table4", profile="full")
    assert record.config["data"]["source"] == "coco" and record.config["pose"]["model"]["arch"] == "hrnet"
    assert record.curves["train"] and 0.0 <= record.metrics["AP"] <= 1.0
