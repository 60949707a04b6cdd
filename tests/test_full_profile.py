"""The `full` profile's real-data path (CrowdHuman .odgt + Images/ under --data-root, DataLoader workers), run on
tiny synthetic data written in that layout; the synthetic marker keeps its results labelled smoke."""

from __future__ import annotations

import json

import pytest

from crowdbench.bench.runner import run_table
from crowdbench.bench.store import ResultStore, store_url
from crowdbench.datasets.synthetic import SYNTHETIC_MARKER, generate, write_native

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
    root = tmp_path_factory.mktemp("crowdhuman_layout")
    write_native(generate("tiny", seed=3), root)
    return root


def test_full_profile_reads_odgt_and_images(data_root, tmp_path):
    assert (data_root / "annotation_train.odgt").is_file() and (data_root / SYNTHETIC_MARKER).is_file()
    result = run_table(
        "hie-pose/table3", profile="full", data_root=data_root, overrides=SMALL_MODEL, run_dir=tmp_path, rows=[3]
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


def test_real_data_without_marker_is_full_level(data_root, tmp_path):
    from crowdbench.bench.profiles import base_config

    cfg = base_config("full", "detection")
    cfg.data.root = data_root
    assert cfg.level == "smoke"
    plain = tmp_path / "plain"
    plain.mkdir()
    cfg.data.root = plain
    assert cfg.level == "full"
