"""PoseTrack 2017/2018 reader and writers on the data model: round trips, real samples, poseval self-AP, bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from crowdbench.bench.metrics.posetrack import evaluate_posetrack_ap, read_posetrack17, read_posetrack_dir
from crowdbench.datasets.formats.errors import FormatError
from crowdbench.datasets.formats.posetrack import read_posetrack_frames, write_posetrack
from crowdbench.datasets.model import Frame, Instance

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PT18 = DATA / "posetrack18" / "annotations" / "val"
PT17 = DATA / "posetrack17" / "annotations" / "val"
needs_data = pytest.mark.skipif(not (PT18.is_dir() and PT17.is_dir()), reason="shared PoseTrack sample missing")

#: SOURCE.md (posetrack18 / posetrack17): per video, persons and ignore polygons of its one labeled frame
SAMPLE = {"003418_mpii_test": (1, 9), "009473_mpii_test": (2, 2), "012834_mpii_test": (11, 4)}


def _person(rng: np.random.Generator, track: int, x0: float) -> Instance:
    kpts = np.zeros((17, 3))
    kpts[:, 0] = x0 + rng.integers(0, 80, 17) + 0.25
    kpts[:, 1] = 100 + rng.integers(0, 200, 17) + 0.5
    kpts[:, 2] = rng.choice([1.0, 2.0], 17)
    kpts[[3, 4]] = 0.0  # ears: never labeled
    if track == 0:
        kpts[7] = 0.0  # one more unlabeled joint (labeled in the others: every joint has an AP)
    box = np.array([x0 - 5.5, 90.0, x0 + 90.0, 320.25])
    head = np.array([x0, 90.0, x0 + 30.5, 130.0])
    return Instance(box=box, keypoints=kpts, track_id=track, head_box=head)


def _frames() -> dict[str, list[Frame]]:
    rng = np.random.default_rng(0)
    poly = np.array([[0.0, 0.0], [50.0, 0.0], [50.0, 40.5], [0.0, 40.0]])
    videos = {
        "000342_mpii_test": [
            Frame("000342_mpii_test", 3, 640, 480, instances=[_person(rng, 0, 100), _person(rng, 1, 300)]),
            Frame("000342_mpii_test", 4, 640, 480, instances=[_person(rng, 1, 310)], ignore_polygons=[poly]),
            Frame("000342_mpii_test", 5, 640, 480),  # unlabeled frame
        ],
        "clip": [
            Frame("clip", 0, 320, 240, instances=[_person(rng, 7, 50)], ignore_polygons=[poly, poly + 100]),
            Frame("clip", 1, 320, 240, instances=[_person(rng, 7, 55), _person(rng, 2, 150)]),
        ],
    }
    return videos


def _same(a: list[Frame], b: list[Frame], *, boxes: bool) -> None:
    assert [(f.video, f.index) for f in a] == [(f.video, f.index) for f in b]
    for fa, fb in zip(a, b, strict=True):
        assert len(fa.ignore_polygons) == len(fb.ignore_polygons)
        for pa, pb in zip(fa.ignore_polygons, fb.ignore_polygons, strict=True):
            np.testing.assert_array_equal(pa, pb)
        assert len(fa.instances) == len(fb.instances)
        for ia, ib in zip(fa.instances, fb.instances, strict=True):
            np.testing.assert_array_equal(ia.keypoints, ib.keypoints)
            np.testing.assert_array_equal(ia.head_box, ib.head_box)
            assert ia.track_id == ib.track_id
            if boxes:
                np.testing.assert_array_equal(ia.box, ib.box)


def _flat(videos: dict[str, list[Frame]]) -> list[Frame]:
    return [f for name in sorted(videos) for f in videos[name]]


def test_round_trip_pt18(tmp_path: Path) -> None:
    videos = _frames()
    paths = write_posetrack(videos, tmp_path, "2018", image_dir="images/val")
    assert sorted(p.name for p in paths) == ["000342_mpii_test.json", "clip.json"]
    back = read_posetrack_frames(tmp_path)
    _same(_flat(videos), back, boxes=True)
    assert [(f.width, f.height) for f in back] == [(640, 480)] * 3 + [(320, 240)] * 2
    assert back[0].image == "images/val/000342_mpii_test/000003.jpg"
    doc = json.loads(paths[0].read_text())
    img = doc["images"][0]
    assert (img["id"], img["frame_id"], img["vid_id"], img["nframes"]) == (10003420003, 10003420003, "000342", 6)
    assert [i["is_labeled"] for i in doc["images"]] == [True, True, False]
    ann = doc["annotations"][0]
    assert len(ann["keypoints"]) == 51 and ann["scores"] == [] and ann["category_id"] == 1
    assert ann["bbox"] == [94.5, 90, 95.5, 230.25] and isinstance(ann["bbox"][1], int)
    assert len(doc["categories"][0]["keypoints"]) == 17
    # single file, image_root
    one = read_posetrack_frames(paths[1], image_root="/data/pt")
    assert [(f.video, f.index) for f in one] == [("clip", 0), ("clip", 1)]
    assert one[0].image == str(Path("/data/pt") / "images/val/clip/000000.jpg")


def test_round_trip_pt17(tmp_path: Path) -> None:
    videos = _frames()
    paths = write_posetrack(videos, tmp_path, "2017")
    back = read_posetrack_frames(tmp_path)
    _same(_flat(videos), back, boxes=False)
    assert all(f.width == 0 == f.height for f in back)
    # PT17 has no person box: the extent of the labeled joints
    inst = back[0].instances[0]
    lab = inst.keypoints[:, 2] > 0
    np.testing.assert_array_equal(inst.box[:2], inst.keypoints[lab, :2].min(axis=0))
    metrics = read_posetrack17(paths[0])
    assert [len(f.persons) for f in metrics.frames] == [2, 1, 0]
    assert len(metrics.frames[1].ignore_regions) == 1
    assert {p.id for p in metrics.frames[0].persons[0].points} == set(range(15)) - {10}  # left_elbow (slot 7) unlabeled


@pytest.mark.parametrize("fmt", ["2017", "2018"])
def test_self_ap_is_100(tmp_path: Path, fmt: str) -> None:
    write_posetrack(_frames(), tmp_path, fmt)
    videos = read_posetrack_dir(tmp_path)
    ap = evaluate_posetrack_ap(videos, videos)
    assert ap.total == pytest.approx(100.0)


@pytest.mark.parametrize("fmt", ["2017", "2018"])
def test_predictions_round_trip(tmp_path: Path, fmt: str) -> None:
    videos = _frames()
    for frames in videos.values():
        for f in frames:
            for i in f.instances:
                i.keypoints[:, 2] = np.where(i.keypoints[:, 2] > 0, 0.75, 0.0)
                i.keypoints[[3, 4]] = 0.0
    write_posetrack(videos, tmp_path, fmt, predictions=True)
    back = read_posetrack_frames(tmp_path)
    _same(_flat(videos), back, boxes=fmt == "2018")
    inst = back[0].instances[0]
    if fmt == "2017":
        assert inst.score == pytest.approx(0.75)
    else:
        assert inst.score == pytest.approx(0.75 * 14 / 15)  # mean over the 15 evaluated slots


def test_writer_rejects_other_schema(tmp_path: Path) -> None:
    frame = Frame("v", 0, 10, 10, instances=[Instance(box=[0, 0, 1, 1], keypoints=np.zeros((14, 3)))])
    for fmt in ("2017", "2018"):
        with pytest.raises(ValueError, match="expected 17 posetrack17 keypoints"):
            write_posetrack({"v": [frame]}, tmp_path, fmt)
    assert not list(tmp_path.iterdir())


@needs_data
@pytest.mark.parametrize("folder", [PT18, PT17])
def test_real_samples(folder: Path) -> None:
    frames = read_posetrack_frames(folder, image_root=DATA / "posetrack18")
    assert len(sorted(folder.glob("*.json"))) == 3
    assert [(f.video, f.index, len(f.instances), len(f.ignore_polygons)) for f in frames] == [
        (v, 0, n, p) for v, (n, p) in SAMPLE.items()
    ]
    assert sum(len(f.instances) for f in frames) == 14
    assert all(Path(str(f.image)).is_file() for f in frames)
    for f in frames:
        assert [i.track_id for i in f.instances] == list(range(len(f.instances)))  # start at 0 in each video
        for inst in f.instances:
            assert inst.keypoints.shape == (17, 3) and inst.head_box is not None
            assert (inst.keypoints[[3, 4]] == 0).all()  # ears never labeled
            assert set(inst.keypoints[:, 2]) <= ({0.0, 1.0} if folder == PT18 else {0.0, 2.0})
    if folder == PT18:
        assert all((f.width, f.height) == (1920, 1080) for f in frames)


@needs_data
def test_real_samples_agree_and_rewrite(tmp_path: Path) -> None:
    a, b = read_posetrack_frames(PT18), read_posetrack_frames(PT17)
    for fa, fb in zip(a, b, strict=True):
        for ia, ib in zip(fa.instances, fb.instances, strict=True):
            np.testing.assert_array_equal(ia.keypoints[:, :2], ib.keypoints[:, :2])
            np.testing.assert_array_equal(ia.head_box, ib.head_box)
    videos: dict[str, list[Frame]] = {}
    for f in a:
        videos.setdefault(f.video, []).append(f)
    write_posetrack(videos, tmp_path / "18", "2018", image_dir="images/val")
    _same(a, read_posetrack_frames(tmp_path / "18"), boxes=True)
    orig = json.loads((PT18 / "009473_mpii_test.json").read_text())["images"][0]
    new = json.loads((tmp_path / "18" / "009473_mpii_test.json").read_text())["images"][0]
    for key in ("id", "file_name", "frame_id", "vid_id", "ignore_regions_x", "ignore_regions_y"):
        assert new[key] == orig[key], key
    gt = read_posetrack_dir(PT18)
    assert evaluate_posetrack_ap(gt, read_posetrack_dir(tmp_path / "18")).total == pytest.approx(100.0)


# ------------------------------------------------------------------------------------------------ malformed input


def _write_bad(tmp_path: Path, mutate) -> Path:
    write_posetrack({"clip": _frames()["clip"]}, tmp_path, "2018")
    path = tmp_path / "clip.json"
    doc = json.loads(path.read_text())
    mutate(doc)
    path.write_text(json.dumps(doc))
    return path


BAD18 = {
    "missing key": (lambda d: d["annotations"][1].pop("keypoints"), r"annotations\[1\]: missing 'keypoints'"),
    "keypoint count": (lambda d: d["annotations"][0]["keypoints"].pop(), r"annotations\[0\]: 'keypoints' must have 51"),
    "unknown image": (lambda d: d["annotations"][2].update(image_id=5), r"annotations\[2\]: image_id 5 not in images"),
    "negative bbox": (lambda d: d["annotations"][0]["bbox"].__setitem__(2, -3), r"annotations\[0\]: 'bbox' has a neg"),
    "bad number": (lambda d: d["images"][1].update(width="x"), r"images\[1\]: 'width' must be"),
    "no images": (lambda d: d.pop("images"), r"clip.json: missing list 'images'"),
}


@pytest.mark.parametrize("case", sorted(BAD18))
def test_malformed_pt18(tmp_path: Path, case: str) -> None:
    mutate, pattern = BAD18[case]
    path = _write_bad(tmp_path, mutate)
    with pytest.raises(FormatError, match=pattern) as info:
        read_posetrack_frames(tmp_path)
    msg = str(info.value)
    assert msg.startswith(str(path)) and "\n" not in msg


def test_malformed_json_and_pt17(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [')
    with pytest.raises(FormatError, match=re.escape(str(bad)) + r":1:\d+: invalid JSON"):
        read_posetrack_frames(bad)
    (path,) = write_posetrack({"clip": _frames()["clip"]}, tmp_path / "17", "2017")
    doc = json.loads(path.read_text())
    doc["annolist"][1]["annorect"][0]["annopoints"][0]["point"][0]["x"] = ["a"]
    path.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=r"annolist\[1\]\.annorect\[0\]\.point\[0\]: x: expected a finite number"):
        read_posetrack_frames(path)
    doc["annolist"][1]["annorect"][0]["annopoints"][0]["point"][0]["x"] = [1.0]
    doc["annolist"][1]["annorect"][0]["annopoints"][0]["point"][1]["is_visible"] = [3]
    path.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=r"annorect\[0\]\.point\[1\]: is_visible must be 0 or 1"):
        read_posetrack_frames(path)
    with pytest.raises(FileNotFoundError):
        read_posetrack_frames(tmp_path / "missing")
