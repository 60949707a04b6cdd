"""``inspect_path`` and ``crowdbench data inspect`` on the real samples and on synthetic data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from crowdbench.bench.data_cli import add_data_commands
from crowdbench.datasets.inspect import UnknownFormatError, inspect_path
from crowdbench.datasets.synthetic import generate, write_native

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="shared sample data absent")


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_data_commands(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(["inspect", *argv])
    return args.func(args)


@needs_data
def test_crowdhuman_odgt() -> None:
    r = inspect_path(DATA / "crowdhuman" / "test_annotation_train.odgt")
    assert (r["format"], r["frames"], r["people"], r["ignored"]) == ("crowdhuman", 1, 6, 1)


@needs_data
def test_coco_and_crowdpose() -> None:
    r = inspect_path(DATA / "coco_keypoints" / "test_coco.json")
    assert (r["format"], r["frames"], r["people"], r["people_with_keypoints"]) == ("coco_keypoints", 4, 14, 12)
    assert r["max_people_per_frame"] == 5 and r["num_keypoints"] == 17
    assert sum(r["visibility"].values()) == 14 * 17
    r = inspect_path(DATA / "crowdpose" / "test_crowdpose.json")
    assert (r["format"], r["frames"], r["people"], r["people_with_keypoints"]) == ("crowdpose", 2, 5, 4)
    assert r["crowd_index"]["medium"] == 2 and r["num_keypoints"] == 14


@needs_data
def test_mot17() -> None:
    r = inspect_path(DATA / "mot17" / "train" / "MOT17-02-FRCNN")
    assert (r["format"], r["frames"], r["rows"], r["people"], r["tracks"]) == ("mot", 4, 156, 88, 22)
    r = inspect_path(DATA / "mot17" / "train" / "MOT17-04-FRCNN" / "gt" / "gt.txt")
    assert (r["rows"], r["people"], r["tracks"]) == (792, 336, 42)
    assert inspect_path(DATA / "mot17" / "train")["videos"] == 2


@needs_data
def test_posetrack() -> None:
    r = inspect_path(DATA / "posetrack18" / "annotations" / "val")
    assert (r["format"], r["videos"], r["frames"], r["people"]) == ("posetrack18", 3, 3, 14)
    assert r["ignored"] == 9 + 2 + 4
    assert inspect_path(DATA / "posetrack17" / "annotations" / "val")["format"] == "posetrack17"


def test_synthetic_tiny(tmp_path: Path) -> None:
    ds = generate("tiny", seed=0)
    write_native(ds, tmp_path)
    val = ds.summary
    people = val["val/people"]
    reports = [
        inspect_path(tmp_path / "annotation_val.odgt"),
        inspect_path(tmp_path / "annotations" / "person_keypoints_val.json"),
        inspect_path(tmp_path / "val"),
        inspect_path(tmp_path / "hie" / "val"),
    ]
    assert [r["format"] for r in reports] == ["crowdhuman", "coco_keypoints", "mot", "hie"]
    for r in reports:
        assert r["frames"] == val["val/frames"] and r["people"] == people, r["format"]
        # all full boxes: the COCO statistics use the unclipped ``fbox``, not the image-clipped ``bbox``
        assert r["crowded_share"] == pytest.approx(val["val/share_iou_gt_0.5"], abs=2e-4), r["format"]
    assert reports[3]["tracks"] == val["val/tracks"] and reports[3]["videos"] == val["val/videos"]
    assert reports[1]["visibility"]["1"] > 0 and reports[3]["labelled_keypoints"] > 0


def test_coco_statistics_use_fbox(tmp_path: Path) -> None:
    # image 1: two people leaving the image on the left; full boxes IoU 90/110 > 0.5, clipped bboxes IoU 10/20 = 0.5
    anns = [
        {"id": 1, "image_id": 1, "bbox": [0, 0, 10, 100], "fbox": [-90, 0, 100, 100], "iscrowd": 0},
        {"id": 2, "image_id": 1, "bbox": [0, 0, 20, 100], "fbox": [-80, 0, 100, 100], "iscrowd": 0},
        {"id": 3, "image_id": 2, "bbox": [0, 0, 50, 50], "iscrowd": 0},  # no fbox: bbox is used
        {"id": 4, "image_id": 2, "bbox": [0, 0, 50, 50], "iscrowd": 0},
        {"id": 5, "image_id": 2, "bbox": [0, 0, 50, 50], "fbox": [0, 0, 50, 50], "iscrowd": 0},
    ]
    for a in anns:
        a["category_id"] = 1
    data = {"images": [{"id": 1}, {"id": 2}], "annotations": anns, "categories": [{"id": 1, "name": "person"}]}
    f = tmp_path / "c.json"
    f.write_text(json.dumps(data))
    r = inspect_path(f)
    assert r["people"] == 5 and r["crowded_share"] == pytest.approx(1.0)
    for a in anns:
        a.pop("fbox", None)
    f.write_text(json.dumps(data))
    assert inspect_path(f)["crowded_share"] == pytest.approx(3 / 5)  # clipped bboxes only


def test_cli_and_unknown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(UnknownFormatError):
        inspect_path(tmp_path / "x.csv")
    assert _cli(str(tmp_path / "x.csv")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "x.csv" in err and "crowdhuman" in err and "\n" not in err
    write_native(generate("tiny", seed=0), tmp_path / "d", formats=["crowdhuman"])
    assert _cli(str(tmp_path / "d" / "annotation_val.odgt"), "--json") == 0
    assert json.loads(capsys.readouterr().out)["format"] == "crowdhuman"
    assert _cli(str(tmp_path / "d" / "annotation_val.odgt")) == 0
    assert "people" in capsys.readouterr().out


def test_synth_format_flag(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_data_commands(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(["synth", "--preset", "tiny", "--out", str(tmp_path), "--format", "mot"])
    assert args.func(args) == 0
    assert (tmp_path / "val").is_dir() and not (tmp_path / "hie").exists()
    assert not list(tmp_path.glob("*.odgt"))
