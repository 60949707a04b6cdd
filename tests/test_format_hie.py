"""HIE-style tree: flag conversion, round trip, strict reading and skip_bad counting."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from crowdbench.datasets.formats.errors import FormatError
from crowdbench.datasets.formats.hie import (
    HIE_JOINTS,
    coco_to_hie_flags,
    hie_to_coco_flags,
    read_hie,
    to_hie_frames,
    write_hie,
)
from crowdbench.datasets.keypoints import COCO_17, HIE_14, convert_keypoints
from crowdbench.datasets.model import Dataset, Frame, Instance
from crowdbench.datasets.synthetic import PRESETS, generate, write_native


@pytest.fixture(scope="module")
def tiny() -> Dataset:
    return generate("tiny", seed=1)


def test_flag_inversion() -> None:
    assert hie_to_coco_flags([-1, 1, 0]).tolist() == [0, 1, 2]
    assert coco_to_hie_flags([0, 1, 2]).tolist() == [-1, 1, 0]
    with pytest.raises(ValueError):
        hie_to_coco_flags([2])
    with pytest.raises(ValueError):
        coco_to_hie_flags([0.5])


def _frame(video: str = "v", index: int = 0) -> Frame:
    kp = np.zeros((14, 3))
    kp[0] = (10.5, 20.25, 2)  # visible -> flag 0
    kp[1] = (11.0, 30.0, 1)  # occluded -> flag 1
    inst = Instance(box=[1.5, 2, 40, 90], keypoints=kp, track_id=7)
    return Frame(video, index, 64, 96, instances=[inst, Instance(box=[0, 0, 5, 5], track_id=0)])


def test_flags_on_disk_and_round_trip(tmp_path: Path) -> None:
    f = _frame()
    write_hie({"v": [f]}, tmp_path)
    rec = json.loads((tmp_path / "labels" / "v" / "000000.json").read_text())
    obj = rec["object"][0]
    assert obj["name"] == "P-7" and obj["bndbox"] == {"xmin": 1.5, "ymin": 0 + 2, "xmax": 40, "ymax": 90}
    assert obj["nose"] == "10.5,20.25,0" and obj["chest"] == "11,30,1" and obj["left_ankle"] == "0,0,-1"
    assert (tmp_path / "tracks" / "v.txt").read_text().splitlines()[0].startswith("1,1,")  # P-0 -> MOT id 1
    (back,) = read_hie(tmp_path)
    assert (back.video, back.index, back.width, back.height) == ("v", 0, 64, 96)
    assert [i.track_id for i in back.instances] == [7, 0]
    np.testing.assert_array_equal(back.instances[0].keypoints, f.instances[0].keypoints)
    np.testing.assert_array_equal(back.instances[0].box, f.instances[0].box)


def test_synthetic_round_trip(tiny: Dataset, tmp_path: Path) -> None:
    videos = {v: to_hie_frames(fs) for v, fs in tiny.videos("train").items()}
    write_hie(videos, tmp_path)
    back = read_hie(tmp_path)
    expected = [f for v in sorted(videos) for f in videos[v]]
    assert len(back) == len(expected) > 0
    for a, b in zip(expected, back, strict=True):
        assert (a.video, a.index, a.width, a.height) == (b.video, b.index, b.width, b.height)
        np.testing.assert_array_equal(a.ignore_regions, b.ignore_regions)
        assert [i.track_id for i in a.instances] == [i.track_id for i in b.instances]
        for ia, ib in zip(a.instances, b.instances, strict=True):
            np.testing.assert_array_equal(ia.box, ib.box)
            np.testing.assert_array_equal(ia.keypoints, ib.keypoints)
            assert ib.keypoints.shape == (HIE_14.num_keypoints, 3)
    # keypoints are exactly the documented COCO -> HIE mapping (chest = shoulder midpoint)
    src = tiny.videos("train")[expected[0].video][0].instances[0].keypoints
    np.testing.assert_array_equal(back[0].instances[0].keypoints, convert_keypoints(src, COCO_17, HIE_14))


def _write_one(tmp_path: Path, mutate: Callable[[dict], object]) -> Path:
    write_hie({"v": [_frame()]}, tmp_path)
    path = tmp_path / "labels" / "v" / "000000.json"
    rec = json.loads(path.read_text())
    mutate(rec)
    path.write_text(json.dumps(rec))
    return path


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda r: r["object"][1].update(name="X-3"), "object 1: 'name' must be 'P-<id>'"),
        (lambda r: r["object"][0].update(nose="1,2,5"), "object 0: joint 'nose' flag must be -1, 0 or 1"),
        (lambda r: r["object"][0].update(nose="1,2"), "object 0: joint 'nose' must be 'x,y,flag'"),
        (lambda r: r["object"][0].pop("chest"), "object 0: missing joint(s) chest"),
        (lambda r: r["object"][0]["bndbox"].update(xmax="a"), "object 0: bndbox 'xmax' must be a finite number"),
        (lambda r: r["object"][1].update(name="P-7"), "object 1: track P-7 already used by object 0"),
        (lambda r: r.pop("size"), "record has no 'size' object"),
    ],
)
def test_malformed(tmp_path: Path, mutate: Callable[[dict], object], reason: str) -> None:
    path = _write_one(tmp_path, mutate)
    with pytest.raises(FormatError) as err:
        read_hie(tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(path)) and reason in msg


def test_invalid_json_tracks_mismatch_and_skip_bad(tmp_path: Path) -> None:
    path = _write_one(tmp_path, lambda r: r["object"][1].update(name="bad"))
    stats: dict[str, int] = {}
    (frame,) = read_hie(tmp_path, skip_bad=True, stats=stats)
    assert [i.track_id for i in frame.instances] == [7] and stats == {"skipped_objects": 1, "skipped_files": 0}
    (tmp_path / "labels" / "v" / "000001.json").write_text("{not json")
    assert len(read_hie(tmp_path, skip_bad=True, stats=stats)) == 1 and stats["skipped_files"] == 1
    path.write_text(json.dumps({**json.loads(path.read_text()), "object": []}))
    with pytest.raises(FormatError, match=r"000001\.json: invalid JSON"):
        read_hie(tmp_path)
    (tmp_path / "labels" / "v" / "000001.json").unlink()
    with pytest.raises(FormatError, match=r"v\.txt: \(frame, id\) pairs differ"):
        read_hie(tmp_path)


def test_joint_keys_follow_schema() -> None:
    assert HIE_JOINTS[:2] == ("nose", "chest") and len(HIE_JOINTS) == 14


def test_hie_preset_and_write_native(tmp_path: Path) -> None:
    p = PRESETS["hie"]
    assert p.videos["train"] >= 4 and p.videos["val"] >= 3
    ds = generate("tiny", seed=0)
    paths = write_native(ds, tmp_path, formats=["hie"])
    assert set(paths) == {"images", "hie_train", "hie_val"}
    assert not (tmp_path / "annotations").exists() and not (tmp_path / "Images").exists()
    frames = read_hie(paths["hie_val"])
    assert len(frames) == len(ds.frames("val"))
    assert frames[0].load_image().shape == (p.height, p.width, 3)
    with pytest.raises(ValueError, match="unknown or no formats"):
        write_native(ds, tmp_path, formats=["xml"])
