"""Checks before work starts: missing paths, weights files that are not checkpoints or do not fit the configured
model (through the loaders training uses), and images the annotations reference but the data root lacks."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
import torchvision

from crowdbench.bench.cli import main
from crowdbench.bench.config import DetectorConfig, FusionMember, PoseModelConfig, RunConfig, TrainConfig
from crowdbench.datasets import layout

SHARED = Path("/work/shared/data")
COCO = SHARED / "coco_keypoints"


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ")
    return err.removeprefix("error: ")


def _stage_folders(run_dir: Path) -> list[Path]:
    return [p for p in (run_dir / "cache").rglob("*") if p.is_dir()] if (run_dir / "cache").exists() else []


@pytest.fixture(scope="module")
def r18(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def r50(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "r50.pth"
    torch.save(torchvision.models.resnet50().state_dict(), path)
    return path


def _detector(weights: Path, backbone: str = "resnet50") -> RunConfig:
    cfg = RunConfig()
    cfg.model.backbone, cfg.model.weights = backbone, weights
    return cfg


def test_missing_weights_path_stops_the_table_before_any_cell(tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = ["table", "hie-pose/table3", "--run-dir", str(run_dir), "--set", "model.weights=/nonexistent"]
    assert main(args) == 2
    assert _one_error_line(capsys) == "model.weights: /nonexistent does not exist"
    assert _stage_folders(run_dir) == []


def test_every_path_setting_is_checked_by_name(tmp_path):
    from crowdbench.bench.preflight import PreflightError, preflight

    cfg = RunConfig()
    cfg.pose.test.detections = tmp_path / "dets.json"
    with pytest.raises(PreflightError, match=r"^pose\.test\.detections: .*dets\.json does not exist$"):
        preflight(cfg)
    cfg = RunConfig()
    cfg.postprocess.fusion = [FusionMember(model=DetectorConfig(weights=tmp_path / "x.pth"), train=TrainConfig())]
    with pytest.raises(PreflightError, match=r"^postprocess\.fusion\[0\]\.model\.weights: .*x\.pth does not exist$"):
        preflight(cfg)


def test_a_text_file_as_weights_is_not_a_checkpoint(tmp_path, capsys):
    from crowdbench.bench.checkpoints import CheckpointError
    from crowdbench.bench.preflight import preflight

    text = tmp_path / "r50.pth"
    text.write_text("not a checkpoint\n")
    with pytest.raises(CheckpointError) as err:
        preflight(_detector(text))
    assert (
        str(err.value) == f"model.weights: {text} is not a PyTorch checkpoint (a text file starting 'not a checkpoint')"
    )
    run_dir = tmp_path / "run"
    assert main(["table", "hie-pose/table3", "--run-dir", str(run_dir), "--set", f"model.weights={text}"]) == 2
    assert _one_error_line(capsys).startswith(f"model.weights: {text} is not a PyTorch checkpoint (")
    assert _stage_folders(run_dir) == []


def test_resnet18_weights_do_not_fit_a_resnet50_detector(r18):
    from crowdbench.bench.checkpoints import CheckpointError
    from crowdbench.bench.preflight import preflight

    with pytest.raises(CheckpointError) as err:
        preflight(_detector(r18))
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"model.weights: {r18} does not fit resnet50: ")
    assert (
        " missing keys (layer1.0.conv3.weight, " in msg
        and " shape mismatches (layer1.0.conv1.weight 64x64x3x3 vs " in msg
    )
    # training reaches the same loader and says the same line
    from crowdbench.methods.detection.faster_rcnn import build_body

    with pytest.raises(CheckpointError) as in_stage:
        build_body(_detector(r18).model)
    assert str(in_stage.value) == msg


def test_fitting_resnet50_weights_pass_and_are_checked_once(r50, tmp_path, monkeypatch):
    from crowdbench.bench.preflight import preflight
    from crowdbench.methods.detection import faster_rcnn

    weights = tmp_path / "r50.pth"
    shutil.copyfile(r50, weights)
    preflight(_detector(weights))
    monkeypatch.setattr(faster_rcnn, "build_body", lambda cfg: pytest.fail("checked twice"))
    preflight(_detector(weights))  # memoised per setting, file and architecture
    os.utime(weights, ns=(1, 1))  # another file version is checked again
    with pytest.raises(pytest.fail.Exception, match="checked twice"):
        preflight(_detector(weights))


def test_pose_backbone_weights_of_another_depth(r18, r50):
    from crowdbench.bench.checkpoints import CheckpointError
    from crowdbench.bench.preflight import preflight

    cfg = RunConfig()
    cfg.pose.model = PoseModelConfig(arch="simplebaseline", backbone="resnet50", deconv_layers=1, weights=r18)
    with pytest.raises(CheckpointError) as err:
        preflight(cfg)
    msg = str(err.value)
    assert msg.startswith(f"pose.model.weights: {r18} does not fit resnet50: ") and " missing keys (" in msg
    cfg.pose.model.weights = r50
    preflight(cfg)
    cfg.pose.test.ensemble = [PoseModelConfig(arch="simplebaseline", backbone="resnet50", weights=r18)]
    with pytest.raises(CheckpointError, match=r"^pose\.test\.ensemble\[0\]\.weights: .*r18\.pth does not fit resnet50"):
        preflight(cfg)
    from crowdbench.methods.pose.models import build_pose_model

    with pytest.raises(CheckpointError) as in_stage:  # what training says for the same file
        build_pose_model("simplebaseline", num_joints=17, backbone="resnet50", deconv_layers=1, weights=r18)
    assert str(in_stage.value) == msg


@pytest.fixture
def coco_root(tmp_path) -> Path:
    """``coco/annotations/person_keypoints_{train,val}2017.json`` + ``coco/{train,val}2017/`` from the shared
    sample (docs/data.md layout), images linked; ``000000040083.jpg`` left out of val2017."""
    if not (COCO / "test_coco.json").is_file():
        pytest.skip(f"{COCO} not available")
    root = tmp_path / "data"
    (root / "coco" / "annotations").mkdir(parents=True)
    for split in ("train", "val"):
        shutil.copyfile(COCO / "test_coco.json", root / "coco" / "annotations" / f"person_keypoints_{split}2017.json")
        images = root / "coco" / f"{split}2017"
        images.mkdir()
        for jpg in COCO.glob("*.jpg"):
            (images / jpg.name).symlink_to(jpg)
    (root / "coco" / "val2017" / "000000040083.jpg").unlink()
    return root


def test_missing_image_is_named_by_data_check_and_table(coco_root, tmp_path, capsys):
    missing = coco_root / "coco" / "val2017" / "000000040083.jpg"
    line = f"coco val2017: 1 of 4 images missing (first: {missing}, "
    assert main(["data", "check", "--data-root", str(coco_root), "--table", "occlusion-aug/table1"]) == 1
    out = capsys.readouterr().out
    assert "images: coco train2017: all 4 images found" in out
    assert f"missing: {line}" in out
    run_dir = tmp_path / "run"
    args = [
        "table",
        "occlusion-aug/table1",
        "--profile",
        "full",
        "--data-root",
        str(coco_root),
        "--run-dir",
        str(run_dir),
    ]
    assert main(args) == 2
    err = _one_error_line(capsys)
    assert err.startswith(line) and err.endswith("person_keypoints_val2017.json)")
    assert _stage_folders(run_dir) == []


def test_huge_splits_check_an_evenly_spread_sample(coco_root, monkeypatch):
    monkeypatch.setattr(layout, "IMAGES_STAT_ALL", 2)
    monkeypatch.setattr(layout, "IMAGES_SAMPLE", 2)
    found = layout.check_images(coco_root, "coco", "val")
    names = [im["file_name"] for im in json.loads((COCO / "test_coco.json").read_text())["images"]]
    assert found.sampled and (found.total, found.checked) == (4, 2)  # the first and the last image
    assert names.index("000000040083.jpg") not in (0, len(names) - 1)
    assert found.summary() == "coco val2017: 2 sampled of 4 images checked, all found"
