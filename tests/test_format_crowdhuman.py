"""CrowdHuman ODGT / CrowdDet detection files (datasets/formats/crowdhuman.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from crowdbench.datasets.formats.crowdhuman import (
    DetectionRecord,
    read_detections,
    read_id_hw,
    read_odgt,
    record_id,
    split_record_id,
    write_detections,
    write_odgt,
)
from crowdbench.datasets.formats.errors import FormatError
from crowdbench.datasets.model import Frame, Instance

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "crowdhuman"
needs_sample = pytest.mark.skipif(not SAMPLE.is_dir(), reason="shared CrowdHuman sample not available")
ID = "283554,35288000868e92d4"


@needs_sample
def test_read_real_sample():
    frames = read_odgt(SAMPLE / "test_annotation_train.odgt", image_root="/data/CrowdHuman")
    assert len(frames) == 1
    f = frames[0]
    assert (f.video, f.index, record_id(f)) == (ID, 0, ID)
    assert (f.width, f.height) == (0, 0)  # no size in the odgt and no id_hw given
    assert len(f.instances) == 6 and f.ignore_regions.shape == (1, 4)
    np.testing.assert_array_equal(f.instances[0].box, [1330, 317, 1330 + 418, 317 + 1338])  # fbox xywh -> xyxy
    np.testing.assert_array_equal(f.instances[0].visible_box, [1355, 323, 1355 + 381, 323 + 1033])
    np.testing.assert_array_equal(f.ignore_regions[0], [1387, 353, 1387 + 320, 353 + 285])  # the "mask" box
    # hbox [x, y, w, h] of the first record's gtboxes -> Instance.head_box (x1, y1, x2, y2)
    np.testing.assert_array_equal(f.instances[0].head_box, [1482, 380, 1482 + 154, 380 + 178])
    np.testing.assert_array_equal(f.instances[1].head_box, [1142, 42, 1142 + 219, 42 + 297])
    np.testing.assert_array_equal(f.instances[5].head_box, [123, 349, 123 + 79, 349 + 86])
    assert all(i.head_box is not None for i in f.instances)
    assert not any(i.ignore for i in f.instances)
    assert Path(f.image) == Path("/data/CrowdHuman/Images") / f"{ID}.jpg"

    hw = read_id_hw(SAMPLE / "id_hw_train.json")
    assert hw == {ID: (1356, 2048)}
    f = read_odgt(SAMPLE / "test_annotation_train.odgt", id_hw=hw)[0]
    assert (f.height, f.width) == (1356, 2048) and f.image is None


@needs_sample
def test_real_sample_round_trip(tmp_path):
    frames = read_odgt(SAMPLE / "test_annotation_train.odgt", id_hw=read_id_hw(SAMPLE / "id_hw_train.json"))
    out = tmp_path / "sub" / "rt.odgt"
    write_odgt(frames, out)
    line = json.loads(out.read_text())
    assert (line["ID"], line["width"], line["height"]) == (ID, 2048, 1356)
    original = json.loads((SAMPLE / "test_annotation_train.odgt").read_text())
    assert [b["fbox"] for b in line["gtboxes"]] == [b["fbox"] for b in original["gtboxes"]]  # ints stay ints
    assert [b["tag"] for b in line["gtboxes"]] == ["person"] * 6 + ["mask"]
    assert [b["hbox"] for b in line["gtboxes"]] == [b["hbox"] for b in original["gtboxes"]]  # real head boxes kept
    assert line["gtboxes"][-1]["extra"] == {"ignore": 1}
    back = read_odgt(out)
    _assert_same_frames(back, frames)
    assert [p.name for p in out.parent.iterdir()] == ["rt.odgt"]  # no temp file left behind


def _assert_same_frames(got: list[Frame], want: list[Frame]) -> None:
    assert [(f.video, f.index, f.width, f.height) for f in got] == [(f.video, f.index, f.width, f.height) for f in want]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g.boxes(), w.boxes())
        np.testing.assert_allclose(g.ignore_regions, w.ignore_regions)
        for gi, wi in zip(g.instances, w.instances, strict=True):
            want_vis = wi.visible_box if wi.visible_box is not None else wi.box
            np.testing.assert_allclose(gi.visible_box, want_vis)
            if wi.head_box is not None:
                np.testing.assert_allclose(gi.head_box, wi.head_box)


def test_round_trip_video_frames_ignored_instances_and_head_boxes(tmp_path):
    kp = np.zeros((17, 3))
    kp[1] = (40, 20, 2)  # left eye
    kp[2] = (60, 20, 2)  # right eye
    frames = [
        Frame(
            "seq/a",
            12,
            640,
            480,
            instances=[Instance([10.5, 20.25, 110.5, 320.75], visible_box=[10.5, 20.25, 60, 100])],
        ),
        Frame(
            "still",
            0,
            0,
            0,
            instances=[Instance([0, 0, 100, 300], keypoints=kp), Instance([200, 0, 260, 120], ignore=True)],
            ignore_regions=[[300, 300, 400, 400]],
        ),
        Frame("empty", 0, 10, 10),
    ]
    path = tmp_path / "v.odgt"
    write_odgt(frames, path)
    recs = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["ID"] for r in recs] == ["seq/a/000012", "still", "empty"]
    assert "width" not in recs[1]  # unknown size is omitted, not written as 0
    assert recs[0]["gtboxes"][0]["hbox"] == pytest.approx([10.5, 20.25, 100, 300.5 / 6])  # top 1/6 of the full box
    assert recs[1]["gtboxes"][0]["hbox"] == [35.0, 5.0, 30.0, 30.0]  # 1.5 x eye distance, centred on the eyes
    assert recs[1]["gtboxes"][1]["extra"] == {"box_id": 1, "ignore": 1}

    back = read_odgt(path)
    assert [(f.video, f.index, f.frame_id) for f in back] == [(f.video, f.index, f.frame_id) for f in frames]
    assert split_record_id("seq/a/000012") == ("seq/a", 12) and split_record_id(ID) == (ID, 0)
    # the ignored instance comes back as an ignore region (before the mask: file order), same evaluation GT
    assert len(back[1].instances) == 1
    np.testing.assert_allclose(back[1].ignore_regions, [[200, 0, 260, 120], [300, 300, 400, 400]])
    np.testing.assert_allclose(back[0].instances[0].box, frames[0].instances[0].box)
    np.testing.assert_allclose(back[0].instances[0].visible_box, frames[0].instances[0].visible_box)
    assert back[2].instances == [] and back[2].ignore_regions.shape == (0, 4)

    write_odgt(frames[:1], path)  # replaces the file atomically
    assert len(read_odgt(path)) == 1


def test_head_box_round_trip(tmp_path):
    kp = np.zeros((17, 3))
    kp[1] = (40, 20, 2)  # eyes: would give the keypoint approximation if head_box were not used
    kp[2] = (60, 20, 2)
    frames = [
        Frame(
            "img",
            0,
            640,
            480,
            instances=[
                Instance([0, 0, 100, 300], head_box=[30.5, 4.25, 70.75, 48]),
                Instance([200, 10, 260, 130], keypoints=kp, head_box=[210, 12, 240, 40]),
                Instance([300, 0, 360, 120], ignore=True, head_box=[310, 1, 330, 20]),
                Instance([400, 60, 460, 180]),  # no head box: top 1/6 of the full box is written
            ],
        )
    ]
    path = tmp_path / "h.odgt"
    write_odgt(frames, path)
    rec = json.loads(path.read_text())
    hboxes = [b["hbox"] for b in rec["gtboxes"]]
    assert hboxes == [[30.5, 4.25, 40.25, 43.75], [210, 12, 30, 28], [310, 1, 20, 19], [400, 60, 60, 20]]
    back = read_odgt(path)[0]
    assert len(back.instances) == 3  # the ignored one is an ignore region
    np.testing.assert_array_equal(back.instances[0].head_box, [30.5, 4.25, 70.75, 48])
    np.testing.assert_array_equal(back.instances[1].head_box, [210, 12, 240, 40])
    np.testing.assert_array_equal(back.instances[2].head_box, [400, 60, 460, 80])  # the written approximation
    write_odgt([back], tmp_path / "h2.odgt")  # second generation: the head boxes read back are written unchanged
    rec2 = json.loads((tmp_path / "h2.odgt").read_text())
    assert [b["hbox"] for b in rec2["gtboxes"] if b["tag"] == "person"] == [hboxes[0], hboxes[1], hboxes[3]]
    _assert_same_frames(read_odgt(tmp_path / "h2.odgt"), [back])

    no_hbox = _write(
        tmp_path, "n.odgt", [json.dumps({"ID": "a", "gtboxes": [{"tag": "person", "fbox": [1, 2, 3, 4]}]})]
    )
    assert read_odgt(no_hbox)[0].instances[0].head_box is None
    bad = _write(
        tmp_path,
        "b.odgt",
        [json.dumps({"ID": "a", "gtboxes": [{"tag": "person", "fbox": [1, 2, 3, 4], "hbox": [1, 2]}]})],
    )
    with pytest.raises(FormatError, match=r"b\.odgt:1: gtboxes\[0\]: 'hbox' must be a list of 4 numbers"):
        read_odgt(bad)


def _write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


GOOD = json.dumps({"ID": "a", "gtboxes": [{"tag": "person", "fbox": [1, 2, 3, 4]}]})


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"ID": "b", "gtboxes": [}', "invalid JSON (Expecting value at column 25)"),
        ('{"ID": "b", "gtboxes": [{"tag": "person", "vbox": [1, 2, 3, 4]}]}', "gtboxes[0] has no 'fbox'"),
        ('{"ID": "b", "gtboxes": [{"tag": "person", "fbox": [1, 2, 3]}]}', "gtboxes[0]: 'fbox' must be a list of 4"),
        ('{"ID": "b", "gtboxes": [{"tag": "person", "fbox": [1, "2", 3, 4]}]}', "'fbox' must be a finite number"),
        ('{"ID": "b", "gtboxes": [{"fbox": [1, 2, 3, 4]}]}', "gtboxes[0] has no 'tag'"),
        ('{"gtboxes": []}', "record has no 'ID'"),
        ('{"ID": "b"}', "record 'b' has no 'gtboxes'"),
        ('{"ID": "b", "width": -5, "height": 3, "gtboxes": []}', "'width' must be a non-negative integer"),
        ("[1, 2]", "expected a JSON object, got list"),
        (GOOD, "duplicate ID 'a' (first on line 1)"),
    ],
)
def test_malformed_odgt_names_file_line_and_reason(tmp_path, line, reason):
    path = _write(tmp_path, "annotation_val.odgt", [GOOD, "", line])
    with pytest.raises(FormatError) as err:
        read_odgt(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}:3: ") and "annotation_val.odgt" in msg
    assert reason in msg and "\n" not in msg
    assert isinstance(err.value, ValueError)


def test_missing_fbox_in_later_gtbox(tmp_path):
    boxes = [{"tag": "person", "fbox": [0, 0, 1, 1]}] * 3 + [{"tag": "person"}]
    path = _write(tmp_path, "x.odgt", [json.dumps({"ID": "z", "gtboxes": boxes})])
    with pytest.raises(FormatError, match=r"x\.odgt:1: gtboxes\[3\] has no 'fbox'$"):
        read_odgt(path)


def test_bad_id_hw(tmp_path):
    path = tmp_path / "hw.json"
    path.write_text('{"a": [10]}')
    with pytest.raises(FormatError, match=r"hw\.json: ID 'a': must be \[height, width\]"):
        read_id_hw(path)


def test_detections_round_trip(tmp_path):
    recs = [
        DetectionRecord("img,1", [[0, 0, 10, 20], [5.5, 6.25, 50.125, 60]], [0.9, 0.123456789], 640, 480),
        DetectionRecord("img,2", np.zeros((0, 4)), []),
    ]
    frame = Frame("vid", 3, 100, 50, instances=[Instance([1, 2, 3, 4], score=0.5)])
    path = tmp_path / "dets.json"
    write_detections([*recs, frame], path)
    first = json.loads(path.read_text().splitlines()[0])
    assert first["dtboxes"][0] == {"box": [0, 0, 10, 20], "score": 0.9, "tag": 1}
    assert (first["ID"], first["height"], first["width"]) == ("img,1", 480, 640)
    back = read_detections(path)
    assert [(r.id, r.width, r.height) for r in back] == [("img,1", 640, 480), ("img,2", 0, 0), ("vid/000003", 100, 50)]
    np.testing.assert_allclose(back[0].boxes, recs[0].boxes)
    np.testing.assert_array_equal(back[0].scores, recs[0].scores)
    assert back[1].boxes.shape == (0, 4)
    f = back[2].to_frame()
    assert (f.video, f.index, f.instances[0].score) == ("vid", 3, 0.5)
    np.testing.assert_allclose(f.instances[0].box, [1, 2, 3, 4])


def test_coco_result_list_accepted(tmp_path):
    path = tmp_path / "coco_results.json"
    items = [
        {"image_id": 7, "category_id": 1, "bbox": [0, 0, 10, 20], "score": 0.5},
        {"image_id": "x", "bbox": [1, 1, 2, 2], "score": 0.25},
        {"image_id": 7, "bbox": [5, 5, 5, 5], "score": 0.75},
    ]
    path.write_text(json.dumps(items, indent=1))
    back = read_detections(path)
    assert [(r.id, len(r.scores)) for r in back] == [("7", 2), ("x", 1)]
    np.testing.assert_array_equal(back[0].boxes, [[0, 0, 10, 20], [5, 5, 10, 10]])
    np.testing.assert_array_equal(back[0].scores, [0.5, 0.75])


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        (
            '{"ID": "a", "dtboxes": [{"box": [1, 2, 3, 4], "score": 1}, {"box": [1, 2, 3, 4]}]}',
            r":1: dtboxes\[1\] has no 'score'",
        ),
        (
            '{"ID": "a", "dtboxes": [{"box": [1, 2, 3, 4], "score": true}]}',
            r":1: dtboxes\[0\]: 'score' must be a finite number",
        ),
        (
            '{"ID": "a", "dtboxes": [{"box": [1, 2, 3, "4"], "score": 1}]}',
            r":1: dtboxes\[0\]: 'box' must be a finite number",
        ),
        (
            '{"ID": "a", "dtboxes": [{"box": [1, 2, 3, NaN], "score": 1}]}',
            r":1: dtboxes\[0\]: 'box' must be a finite number",
        ),
        ('{"ID": "a", "dtboxes": []}\n{"ID": "a", "dtboxes": []}', r":2: duplicate ID 'a' \(first on line 1\)"),
        ('{"ID": "a"}', r":1: record 'a' has no 'dtboxes'"),
        ('{"ID": "a", "dtboxes": [}', r":1: invalid JSON"),
        (
            '[{"image_id": 1, "bbox": [0, 0, 1, 1], "score": 1}, {"image_id": 1, "score": 1}]',
            r": record 1: has no 'bbox'",
        ),
        ('[{"image_id": 1, "bbox": [0, 0, 1], "score": 1}]', r": image_id '1': detections\[0\]: 'bbox' must be a list"),
        ('[{"image_id": 1, "bbox": [0, 0, 1, 1], "score": 1},', r":1: invalid JSON"),
    ],
)
def test_malformed_detections(tmp_path, text, expect):
    path = tmp_path / "preds.json"
    path.write_text(text + "\n")
    with pytest.raises(FormatError, match=r"preds\.json" + expect) as err:
        read_detections(path)
    assert "\n" not in str(err.value)


def test_write_rejects_non_finite(tmp_path):
    with pytest.raises(ValueError, match="frame x/000000"):
        write_odgt([Frame("x", 0, 1, 1, instances=[Instance([0, 0, np.inf, 1])])], tmp_path / "a.odgt")
    with pytest.raises(ValueError, match="detections of 'x'"):
        write_detections([DetectionRecord("x", [[0, 0, 1, 1]], [np.nan])], tmp_path / "a.json")
    assert list(tmp_path.iterdir()) == []
