"""--data-root layouts: every format written by the synthetic generator is found and read back through the layout;
missing data names what to put where; held-out videos; docs/data.md shows the layout table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tiny import native_root  # tests/ is on sys.path

from crowdbench.bench.cli import main
from crowdbench.datasets.layout import LAYOUTS, DataError, check_dataset, layout_table, load_split, select_videos
from crowdbench.datasets.model import Frame, Instance
from crowdbench.datasets.synthetic import FORMATS, crowd_index, generate

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    return native_root(tmp_path_factory, "all_formats", seed=1)


@pytest.fixture(scope="module")
def tiny():
    return generate("tiny", seed=1)


@pytest.mark.parametrize("key", ["crowdhuman", "coco", "crowdpose", "posetrack17", "posetrack18", "mot17", "hie"])
def test_every_written_format_loads_through_its_layout(synth_root, tiny, key):
    for split in ("train", "val"):
        frames = load_split(synth_root, key, split)
        want = tiny.frames(split)
        assert len(frames) == len(want), (key, split)
        got_people = sum(len([i for i in f.instances if not i.ignore]) for f in frames)
        assert got_people == sum(len(f.instances) for f in want), (key, split)
        first = frames[0]
        assert Path(str(first.image)).is_file(), (key, first.image)  # image paths resolve, pixels not read
        assert {f.video for f in frames} == {f.video for f in want}


def test_schemas_are_native_points_not_derived(tiny):
    """CrowdPose head/neck and PoseTrack head_top/head_bottom are points of the stick figure with their own
    visibility; PoseTrack ears are never labeled, as in the real PT18 files."""
    cp = generate("tiny", seed=1, schema="crowdpose14")
    pt = generate("tiny", seed=1, schema="posetrack17")
    for f_coco, f_cp, f_pt in zip(tiny.frames("val"), cp.frames("val"), pt.frames("val"), strict=True):
        for a, b, c in zip(f_coco.instances, f_cp.instances, f_pt.instances, strict=True):
            np.testing.assert_array_equal(a.box, b.box)
            np.testing.assert_array_equal(a.keypoints[5:], b.keypoints[:12])
            np.testing.assert_array_equal(b.keypoints[12], c.keypoints[2])  # head top
            np.testing.assert_array_equal(b.keypoints[13], c.keypoints[1])  # neck = head_bottom
            assert (c.keypoints[3:5] == 0).all()
            top, neck = b.keypoints[12], b.keypoints[13]
            if top[2] > 0 and neck[2] > 0:
                assert top[1] < a.head_box[1] + 0.2 * (a.head_box[3] - a.head_box[1]) < neck[1]


def test_crowd_index_hand_case():
    def person(box, pts):
        kp = np.array([[x, y, 2.0] for x, y in pts])
        return Instance(box=box, keypoints=kp)

    a = person([0, 0, 10, 10], [(1, 1), (2, 2)])  # 2 joints; b has 1 joint inside a's box -> 1/2
    b = person([5, 5, 20, 20], [(6, 6), (15, 15), (18, 18), (19, 19)])  # 4 joints; a has none inside -> 0/4
    assert crowd_index(Frame("v", 0, 20, 20, instances=[a, b])) == pytest.approx((0.5 + 0.0) / 2)
    assert crowd_index(Frame("v", 0, 20, 20)) == 0.0


def test_missing_dataset_says_what_to_put_where(tmp_path):
    with pytest.raises(DataError, match=r"--data-root is required for CrowdPose: put crowdpose/json/crowdpose_test"):
        check_dataset(None, "crowdpose", ["test"])
    with pytest.raises(DataError) as err:
        check_dataset(tmp_path, "posetrack18", ["val"])
    msg = str(err.value)
    assert "\n" not in msg and f"{tmp_path}/posetrack18/annotations/val: PoseTrack 2018 val annotation folder" in msg
    assert "posetrack18/images/val/<video>/*.jpg" in msg
    with pytest.raises(DataError, match="unknown dataset 'mpii'; known: crowdhuman, coco"):
        check_dataset(tmp_path, "mpii", ["train"])


def test_holdout_videos():
    frames = [Frame(v, i, 4, 4) for v in ("1", "3", "7") for i in range(2)]
    assert {f.video for f in select_videos(frames, ["3"], keep=True, where="x")} == {"3"}
    assert {f.video for f in select_videos(frames, ["3"], keep=False, where="x")} == {"1", "7"}
    with pytest.raises(DataError, match=r"x: holdout videos \['17'\] not found"):
        select_videos(frames, ["17", "3"], keep=True, where="x")


def test_data_check_command(synth_root, capsys):
    assert main(["data", "check", "--data-root", str(synth_root), "--table", "hie-pose/table3"]) == 0
    assert main(["data", "check", "--data-root", str(synth_root), "--table", "occlusion-aug/table3"]) == 1
    out = capsys.readouterr().out
    assert "crowdpose/json/crowdpose_test.json: CrowdPose test annotation file not found" in out  # train: written


def test_docs_show_the_layout_table():
    assert layout_table() in (REPO / "docs" / "data.md").read_text()
    assert set(LAYOUTS) >= {"crowdhuman", "coco", "crowdpose", "ochuman", "posetrack17", "posetrack18", "mot17", "hie"}
    assert set(FORMATS) >= {"coco", "crowdpose", "crowdhuman", "mot", "hie", "posetrack17", "posetrack18"}
