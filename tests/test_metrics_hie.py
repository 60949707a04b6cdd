"""HIE w-AP: the three named weightings on a hand-made 2-video case, per-video APs, inputs, errors, CLI."""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import pytest
from badinput import delete_at, edited, set_at  # tests/ is on sys.path

from crowdbench.bench.metrics.hie_wap import add_command, evaluate_hie_wap, split_by_video
from crowdbench.datasets.formats.errors import FormatError
from crowdbench.datasets.keypoints import HIE_14


def _person(aid: int, img: int, x: float, y: float) -> dict:
    kp = []
    for j in range(14):
        kp += [x + 5.0 * (j % 3), y + 10.0 * j, 2]
    return {
        "id": aid,
        "image_id": img,
        "category_id": 1,
        "bbox": [x, y, 20.0, 140.0],
        "area": 2800.0,
        "iscrowd": 0,
        "keypoints": kp,
        "num_keypoints": 14,
    }


def two_videos() -> tuple[dict, list[dict]]:
    """Video "a": 2 frames, 3 people, all predicted exactly (AP 1). Video "b": 1 frame, 1 person, missed (AP 0).

    Hand-computed w-AP (same at avg / 50 / 75):
    people  (3 * 1 + 1 * 0) / (3 + 1) = 0.75
    frames  (2 * 1 + 1 * 0) / (2 + 1) = 2/3
    uniform (1 + 0) / 2               = 0.5
    """
    images = [
        {"id": 1, "video_id": "a", "width": 640, "height": 480},
        {"id": 2, "video_id": "a", "width": 640, "height": 480},
        {"id": 3, "video_id": "b", "width": 640, "height": 480},
    ]
    anns = [_person(1, 1, 10, 10), _person(2, 1, 300, 20), _person(3, 2, 50, 50), _person(4, 3, 100, 100)]
    preds = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 0.9} for a in anns[:3]]
    preds.append({**preds[0], "image_id": 3, "score": 0.5})  # far away from video b's person: a FP
    cats = [{"id": 1, "name": "person", "keypoints": list(HIE_14.keypoints)}]
    return {"images": images, "annotations": anns, "categories": cats}, preds


@pytest.mark.parametrize(("weighting", "expected"), [("people", 0.75), ("frames", 2 / 3), ("uniform", 0.5)])
def test_weightings_hand_computed(weighting: str, expected: float) -> None:
    gt, preds = two_videos()
    res = evaluate_hie_wap(gt, preds, weighting=weighting)
    assert res.w_AP_avg == pytest.approx(expected, abs=1e-12)
    assert res.w_AP_50 == pytest.approx(expected, abs=1e-12)
    assert res.w_AP_75 == pytest.approx(expected, abs=1e-12)
    a, b = res.videos
    assert (a.video, a.AP, a.num_frames, a.num_people) == ("a", 1.0, 2, 3)
    assert (b.video, b.AP, b.num_frames, b.num_people) == ("b", 0.0, 1, 1)
    assert res.to_dict()["weighting"] == weighting


def test_mapping_input_equals_file_input(tmp_path: Path) -> None:
    gt, preds = two_videos()
    by_video = split_by_video(gt, preds)
    assert set(by_video) == {"a", "b"}
    assert evaluate_hie_wap(by_video, weighting="frames") == evaluate_hie_wap(gt, preds, weighting="frames")
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "p.json").write_text(json.dumps(preds))
    assert evaluate_hie_wap(tmp_path / "gt.json", tmp_path / "p.json") == evaluate_hie_wap(gt, preds)


def test_video_without_people_is_left_out() -> None:
    gt, preds = two_videos()
    gt["images"].append({"id": 4, "video_id": "c", "width": 640, "height": 480})
    res = evaluate_hie_wap(gt, preds, weighting="uniform")
    assert res.videos[2].AP == -1.0
    assert res.w_AP_avg == pytest.approx(0.5)


def test_bbox_area_option_and_bad_input() -> None:
    gt, preds = two_videos()
    g = copy.deepcopy(gt)
    for a in g["annotations"]:
        del a["area"]
    with pytest.raises(FormatError, match=r"annotations\[0\] \(id \d+\): has no 'area'"):
        evaluate_hie_wap(g, preds)
    assert evaluate_hie_wap(g, preds, use_area=False).w_AP_avg == pytest.approx(0.75)
    with pytest.raises(FormatError, match=r"images\[1\]: no 'video_id'"):
        evaluate_hie_wap(edited(gt, delete_at("images.1.video_id")), preds)
    with pytest.raises(FormatError, match=r"results\[1\]: 'keypoints' has 39 values"):
        evaluate_hie_wap(gt, edited(preds, set_at("1.keypoints", preds[1]["keypoints"][:39])))
    with pytest.raises(ValueError, match="unknown weighting"):
        evaluate_hie_wap(gt, preds, weighting="crowdedness")  # type: ignore[arg-type]


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt, preds = two_videos()
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "p.json").write_text(json.dumps(preds))
    parser = argparse.ArgumentParser(prog="crowdbench eval")
    add_command(parser.add_subparsers(dest="metric"))
    base = ["hie-wap", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "p.json")]
    args = parser.parse_args([*base, "--weighting", "uniform", "--json"])
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["w_AP@avg"] == 0.5
    args = parser.parse_args(base)
    assert args.func(args) == 0
    assert "unpublished" in capsys.readouterr().out
    (tmp_path / "p.json").write_text('[{"image_id": 99, "category_id": 1, "keypoints": [], "score": 1}]')
    assert args.func(args) == 2
    assert "results[0]: 'image_id' 99 is not an image" in capsys.readouterr().err
