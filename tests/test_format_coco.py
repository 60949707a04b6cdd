"""COCO / CrowdPose / OCHuman keypoint reader: shared real samples, round trips, malformed input, results files."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crowdbench.datasets.formats.coco import (
    CocoFrames,
    read_coco_keypoints,
    read_coco_results,
    to_coco_keypoints,
    write_coco_keypoints,
)
from crowdbench.datasets.formats.errors import FormatError
from crowdbench.datasets.keypoints import COCO_17, CROWDPOSE_14
from crowdbench.datasets.model import Frame
from crowdbench.datasets.synthetic import generate

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
COCO = DATA / "coco_keypoints" / "test_coco.json"
CROWDPOSE = DATA / "crowdpose" / "test_crowdpose.json"
CROWDPOSE_VAL = DATA / "crowdpose" / "xtcocotools_example" / "example_crowdpose_val.json"
OCHUMAN = DATA / "ochuman" / "test_ochuman.json"
needs_data = pytest.mark.skipif(not COCO.is_file(), reason="shared sample data not present")

# (file, schema, images, people, people with keypoints, people per image, crowdIndex per image) from SOURCE.md
SAMPLES = [
    (COCO, COCO_17, 4, 14, 12, [1, 3, 5, 5], None),
    (CROWDPOSE, CROWDPOSE_14, 2, 5, 4, [3, 2], [0.33, 0.39]),
    (CROWDPOSE_VAL, CROWDPOSE_14, 4, 10, 9, None, [0.76, 0.76, 0.82, 0.0]),
    (OCHUMAN, COCO_17, 3, 5, 5, [1, 2, 2], None),
]


def _labelled_in_json(path: Path) -> int:
    """Labelled keypoints (v > 0) counted straight from the JSON."""
    anns = json.loads(path.read_text())["annotations"]
    return sum(1 for a in anns for v in a.get("keypoints", [])[2::3] if v > 0)


def assert_same_frames(a: list[Frame], b: list[Frame], atol: float = 0.0) -> None:
    """Same frames: ids, sizes, boxes, visible boxes, keypoints (unlabelled points compared as 0), tracks, regions."""
    assert [f.frame_id for f in a] == [f.frame_id for f in b]
    for fa, fb in zip(a, b, strict=True):
        assert (fa.width, fa.height) == (fb.width, fb.height)
        np.testing.assert_allclose(fa.ignore_regions, fb.ignore_regions, atol=atol)
        assert len(fa.instances) == len(fb.instances), fa.frame_id
        for ia, ib in zip(fa.instances, fb.instances, strict=True):
            np.testing.assert_allclose(ia.box, ib.box, atol=atol)
            assert (ia.visible_box is None) == (ib.visible_box is None)
            if ia.visible_box is not None:
                np.testing.assert_allclose(ia.visible_box, ib.visible_box, atol=atol)
            ka, kb = (np.where(k[:, 2:] > 0, k, 0.0) for k in (ia.keypoints, ib.keypoints))
            np.testing.assert_allclose(ka, kb, atol=atol)
            assert (ia.track_id, ia.ignore) == (ib.track_id, ib.ignore)


# ------------------------------------------------------------------------------------------------------- samples


@needs_data
@pytest.mark.parametrize("path, schema, n_img, n_people, n_kp_people, per_image, crowd", SAMPLES, ids=lambda x: "")
def test_real_samples_counts(path, schema, n_img, n_people, n_kp_people, per_image, crowd) -> None:
    frames = read_coco_keypoints(path, image_root=path.parent)
    assert isinstance(frames, CocoFrames) and frames.schema is schema and frames.skipped == 0
    assert len(frames) == n_img
    people = [i for f in frames for i in f.instances]
    assert len(people) == n_people
    assert sum(int((i.keypoints[:, 2] > 0).any()) for i in people) == n_kp_people
    assert sum(int((i.keypoints[:, 2] > 0).sum()) for i in people) == _labelled_in_json(path)
    assert all(i.keypoints.shape == (schema.num_keypoints, 3) for i in people)
    if per_image is not None:
        assert [len(f.instances) for f in frames] == per_image
    if crowd is not None:
        np.testing.assert_array_equal(frames.crowd_index(), crowd)
    raw = json.loads(path.read_text())
    assert frames.image_ids == [img["id"] for img in raw["images"]]
    a0, f0 = raw["annotations"][0], frames[frames.index_of()[raw["annotations"][0]["image_id"]]]
    x, y, w, h = a0["bbox"]
    np.testing.assert_allclose(f0.instances[0].box, [x, y, x + w, y + h])
    np.testing.assert_allclose(f0.instances[0].keypoints.ravel(), a0["keypoints"])


@needs_data
def test_sample_images_load_lazily() -> None:
    frames = read_coco_keypoints(COCO, image_root=COCO.parent)
    assert frames[0].image == str(COCO.parent / "000000000785.jpg")
    img = frames[1].load_image()
    assert img.shape == (frames[1].height, frames[1].width, 3)
    missing = read_coco_keypoints(COCO, image_root=COCO.parent / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"nowhere/000000000785\.jpg"):
        missing[0].load_image()
    plain = read_coco_keypoints(COCO)  # no root: the bare file_name
    assert plain[0].image == "000000000785.jpg"


@needs_data
@pytest.mark.parametrize("path", [COCO, CROWDPOSE, CROWDPOSE_VAL, OCHUMAN], ids=lambda p: p.stem)
def test_real_sample_round_trip(path: Path, tmp_path: Path) -> None:
    frames = read_coco_keypoints(path, image_root=path.parent)
    data = to_coco_keypoints(frames, frames.schema, image_root=path.parent)
    raw = json.loads(path.read_text())
    assert [i["id"] for i in data["images"]] == [i["id"] for i in raw["images"]]
    assert [i["file_name"] for i in data["images"]] == [i["file_name"] for i in raw["images"]]
    assert [i.get("crowdIndex") for i in data["images"]] == [i.get("crowdIndex") for i in raw["images"]]
    out = write_coco_keypoints(frames, tmp_path / "out.json", frames.schema, image_root=path.parent)
    again = read_coco_keypoints(out, image_root=path.parent)
    assert again.image_ids == frames.image_ids and again.image_extras == frames.image_extras
    assert [f.image for f in again] == [f.image for f in frames]
    assert_same_frames(frames, again, atol=0.011)  # the writer rounds x, y, w, h to 0.01


def test_synthetic_round_trip(tmp_path: Path) -> None:
    ds = generate("tiny", seed=0)
    frames = ds.frames("val")
    assert sum(len(f.ignore_regions) for f in frames) > 0 and any(i.track_id >= 0 for f in frames for i in f.instances)
    frames[0].instances[0].ignore = True  # an ignored instance survives as an instance, not as a region
    path = write_coco_keypoints(frames, tmp_path / "a.json", ds.schema)
    got = read_coco_keypoints(path)
    assert got.image_ids == list(range(1, len(frames) + 1)) and got.schema is ds.schema
    assert_same_frames(frames, got, atol=0.011)  # x2 = round(x) + round(w)
    path2 = write_coco_keypoints(got, tmp_path / "b.json", ds.schema)
    again = read_coco_keypoints(path2)
    assert again.image_ids == got.image_ids
    assert [i["file_name"] for i in json.loads(path2.read_text())["images"]] == [
        i["file_name"] for i in json.loads(path.read_text())["images"]
    ]
    assert_same_frames(got, again, atol=0.011)


# ----------------------------------------------------------------------------------------------------- malformed


def _mini() -> dict[str, Any]:
    kps = [10, 20, 2] + [0, 0, 0] * 16
    return {
        "images": [{"id": 7, "file_name": "a.jpg", "width": 100, "height": 80}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 1, "bbox": [1, 2, 30, 40], "iscrowd": 0, "keypoints": kps},
            {"id": 2, "image_id": 7, "category_id": 1, "bbox": [5, 5, 10, 10], "iscrowd": 0, "keypoints": kps},
            {"id": 3, "image_id": 7, "category_id": 1, "bbox": [0, 0, 50, 50], "iscrowd": 1},
        ],
        "categories": [{"id": 1, "name": "person", "keypoints": list(COCO_17.keypoints)}],
    }


def _write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "gt.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_mini_reads(tmp_path: Path) -> None:
    frames = read_coco_keypoints(_write(tmp_path, _mini()))
    assert len(frames[0].instances) == 2 and frames[0].frame_id == "7/000000"
    np.testing.assert_array_equal(frames[0].ignore_regions, [[0, 0, 50, 50]])
    np.testing.assert_array_equal(frames[0].instances[0].box, [1, 2, 31, 42])


def _ann(i: int, **change: Any):
    def edit(d: dict[str, Any]) -> None:
        d["annotations"][i].update(change)
        for k, v in change.items():
            if v is _DEL:
                del d["annotations"][i][k]

    return edit


_DEL = object()

BAD = [
    (_ann(1, bbox=[5, 5, -1, 10]), r"annotations\[1\] \(id 2\): 'bbox' has a negative size"),
    (_ann(1, keypoints=[0] * 42), r"annotations\[1\] \(id 2\): 'keypoints' has 42 values, expected 51"),
    (_ann(1, image_id=99), r"annotations\[1\] \(id 2\): 'image_id' 99 is not in 'images'"),
    (_ann(1, id=1), r"annotations\[1\] \(id 1\): duplicate id 1 \(first at annotations\[0\]\)"),
    (_ann(1, bbox=_DEL), r"annotations\[1\] \(id 2\): has no 'bbox'"),
    (_ann(0, keypoints=_DEL), r"annotations\[0\] \(id 1\): has no 'keypoints'"),
    (_ann(1, bbox=[1, "2", 3, 4]), r"annotations\[1\] \(id 2\): 'bbox'\[1\] must be a number, got \"2\""),
    (_ann(1, keypoints=[None] * 51), r"annotations\[1\] \(id 2\): 'keypoints'\[0\] must be a number, got null"),
    (_ann(1, category_id=5), r"annotations\[1\] \(id 2\): 'category_id' 5 is not in 'categories'"),
    (_ann(1, iscrowd=2), r"annotations\[1\] \(id 2\): 'iscrowd' must be 0 or 1"),
]


@pytest.mark.parametrize("edit, message", BAD, ids=[m.split(": ", 1)[1][:30] for _, m in BAD])
def test_malformed_annotation(tmp_path: Path, edit, message: str) -> None:
    data = _mini()
    edit(data)
    path = _write(tmp_path, data)
    with pytest.raises(FormatError, match=message) as info:
        read_coco_keypoints(path)
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"{path}: annotations[")
    skipped = read_coco_keypoints(path, skip_bad=True)
    assert skipped.skipped == 1
    assert sum(len(f.instances) + len(f.ignore_regions) for f in skipped) == 2


def test_skip_bad_drops_what_the_strict_reader_refuses(tmp_path: Path) -> None:
    data = _mini()
    data["annotations"][0].update(fbox=[1, 2, 30, 40], bbox=[1, 2, 3], num_keypoints=True)  # bbox refused with fbox
    data["annotations"][1]["vbox"] = None
    path = _write(tmp_path, data)
    with pytest.raises(FormatError, match=r"annotations\[0\] \(id 1\): 'bbox' has 3 values, expected 4"):
        read_coco_keypoints(path)
    frames = read_coco_keypoints(path, skip_bad=True)
    assert frames.skipped == 2 and not frames[0].instances and len(frames[0].ignore_regions) == 1
    data = _mini()
    data["images"][0]["width"] = 0  # an image the checks refuse is never skipped
    with pytest.raises(FormatError, match=r"images\[0\] \(id 7\): 'width' 0 is outside"):
        read_coco_keypoints(_write(tmp_path, data), skip_bad=True)


def _file_level_cases() -> list[tuple[Any, str]]:
    dup = _mini()
    dup["images"].append(dict(dup["images"][0]))
    nokey = _mini()
    del nokey["images"][0]["width"]
    wrong_k = _mini()
    wrong_k["categories"][0]["keypoints"] = ["a"] * 5
    return [
        ('{"images": [\n  1,, 2]}', r"gt\.json:2:5: invalid JSON \(Expecting value\)"),
        ({"images": [], "categories": []}, r"gt\.json: missing top-level key 'annotations'"),
        (dup, r"gt\.json: images\[1\] \(id 7\): duplicate image id \(first at images\[0\]\)"),
        (nokey, r"gt\.json: images\[0\] \(id 7\): has no 'width'"),
        (wrong_k, r"gt\.json: person category has 5 keypoints; pass schema="),
    ]


@pytest.mark.parametrize("data, message", _file_level_cases(), ids=["json", "top", "dup-img", "img-key", "k"])
def test_malformed_file(tmp_path: Path, data: Any, message: str) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(FormatError, match=message) as info:
        read_coco_keypoints(path, skip_bad=True)  # file-level problems are never skipped
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_schema_mismatch_and_skip_counts(tmp_path: Path) -> None:
    path = _write(tmp_path, _mini())
    with pytest.raises(FormatError, match="person category has 17 keypoints, schema 'crowdpose14' has 14"):
        read_coco_keypoints(path, schema=CROWDPOSE_14)
    data = _mini()
    for i in range(2):
        data["annotations"][i]["bbox"] = [0, 0, -1, -1]
    data["annotations"].append(copy.deepcopy(data["annotations"][2]))  # duplicate id 3
    frames = read_coco_keypoints(_write(tmp_path, data), skip_bad=True)
    assert frames.skipped == 3 and not frames[0].instances and len(frames[0].ignore_regions) == 1


# ------------------------------------------------------------------------------------------------------- results


@needs_data
def test_results_files() -> None:
    gt = read_coco_keypoints(COCO, image_root=COCO.parent)
    preds = read_coco_results(COCO.parent / "xtcocotools_example" / "example_coco_preds.json", gt)
    assert len(preds) == 4 and preds.image_ids == gt.image_ids and preds.schema is COCO_17
    assert [f.frame_id for f in preds] == [f.frame_id for f in gt]
    assert sum(len(f.instances) for f in preds) == 73
    assert all(i.keypoints.shape == (17, 3) and 0 <= i.score <= 1 for f in preds for i in f.instances)
    dets = read_coco_results(COCO.parent / "test_coco_det_AP_H_56.json", gt.image_ids)
    assert [len(f.instances) for f in dets] == [22, 26, 33, 37]
    assert dets[0].instances[0].keypoints is None
    cp = read_coco_keypoints(CROWDPOSE_VAL)
    cpp = read_coco_results(CROWDPOSE_VAL.parent / "example_crowdpose_preds.json", cp)
    assert sum(len(f.instances) for f in cpp) == 15 and cpp.schema is CROWDPOSE_14
    np.testing.assert_array_equal(cpp.crowd_index(), cp.crowd_index())


def test_results_errors(tmp_path: Path) -> None:
    good = {"image_id": 7, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}
    cases = [
        ([good, {**good, "image_id": 8}], r"\[1\] \(image_id 8\): image_id 8 is not in the ground truth"),
        ([{k: v for k, v in good.items() if k != "score"}], r"\[0\] \(image_id 7\): has no 'score'"),
        ([{**good, "keypoints": [0] * 30}], r"\[0\] \(image_id 7\): cannot infer the schema"),
        ({"not": "a list"}, r"expected a JSON list of results"),
    ]
    for data, message in cases:
        path = _write(tmp_path, data)
        with pytest.raises(FormatError, match=message) as info:
            read_coco_results(path, [7])
        assert "\n" not in str(info.value) and str(info.value).startswith(str(path))
    frames = read_coco_results(_write(tmp_path, [good]), [7])
    np.testing.assert_array_equal(frames[0].instances[0].box, [0, 0, 5, 5])
