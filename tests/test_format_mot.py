"""MOTChallenge text files (datasets/formats/mot.py): round trips, GT/det column variants, seqinfo, frames, errors.

Evaluation of MOT files (bench/metrics/mot.py) and its reader error cases are in tests/test_metrics_mot.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crowdbench.datasets.formats.errors import FormatError
from crowdbench.datasets.formats.mot import (
    box_visibility,
    mot_to_frames,
    read_mot,
    read_seqinfo,
    write_mot_results,
    write_mot_sequence,
)
from crowdbench.datasets.model import Frame, Instance
from crowdbench.datasets.synthetic import generate

MOT17 = Path(__file__).resolve().parents[2] / "shared" / "data" / "mot17" / "train"
needs_mot17 = pytest.mark.skipif(not MOT17.is_dir(), reason="shared MOT17 sample not available")


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------------------ round trips
def _synthetic_videos() -> dict[str, list[Frame]]:
    ds = generate("tiny", seed=0)
    videos = {}
    for split in ds.splits:
        for name, frames in ds.videos(split).items():
            videos[f"{split}/{name}"] = frames
    return videos


def test_synthetic_round_trip(tmp_path):
    videos = _synthetic_videos()
    assert videos
    n_people = 0
    for key, frames in videos.items():
        seq = write_mot_sequence(frames, tmp_path / key.replace("/", "_"), frame_rate=25)
        info = read_seqinfo(seq / "seqinfo.ini")
        assert info["name"] == frames[0].video and info["frameRate"] == 25
        assert (info["imWidth"], info["imHeight"], info["seqLength"]) == (
            frames[0].width,
            frames[0].height,
            max(f.index for f in frames) + 1,
        )
        table = read_mot(seq / "gt" / "gt.txt")
        assert table.boxes.shape[1] == 4 and set(table.classes.tolist()) <= {1}
        back = mot_to_frames(table, info, seq_dir=seq)
        by_index = {f.index: f for f in back}
        assert len(back) == info["seqLength"] and [f.index for f in back] == list(range(len(back)))
        for f in frames:
            g = by_index[f.index]
            assert (g.video, g.width, g.height) == (f.video, f.width, f.height)
            assert Path(g.image) == seq / "img1" / f"{f.index + 1:06d}.jpg"
            want = sorted(f.instances, key=lambda i: i.track_id)  # the file is sorted by frame, then id
            assert [i.track_id for i in g.instances] == [i.track_id for i in want]
            assert [i.ignore for i in g.instances] == [i.ignore for i in want]
            if want:
                # 2 decimals written for x, y, w, h: x2 = x + w may be off by two roundings
                np.testing.assert_allclose(g.boxes(), np.stack([i.box for i in want]), atol=0.0101)
                got_vis = [box_visibility(i) for i in g.instances]
                np.testing.assert_allclose(got_vis, [box_visibility(i) for i in want], atol=0.0051 + 1e-3)
            n_people += len(want)
        # frames without people exist too (seqLength), and are empty
        assert {f.index for f in back} >= {f.index for f in frames}
    assert n_people > 0


def test_round_trip_exact_values_and_results_file(tmp_path):
    frames = [
        Frame(
            "seq",
            0,
            640,
            480,
            instances=[
                Instance([10.25, 20.5, 60.25, 120.5], track_id=3, visible_box=[10.25, 20.5, 60.25, 70.5], score=0.5),
                Instance([-5, 400, 45, 520], track_id=1, ignore=True, score=0.25),  # leaves the image: kept as is
            ],
        ),
        Frame("seq", 2, 640, 480, instances=[Instance([0, 0, 10, 10], track_id=3, score=0.75)]),
    ]
    seq = write_mot_sequence(frames, tmp_path / "seq")
    assert (seq / "gt" / "gt.txt").read_text().splitlines() == [
        "1,1,-5,400,50,120,0,1,1",
        "1,3,10.25,20.5,50,100,1,1,0.5",
        "3,3,0,0,10,10,1,1,1",
    ]
    back = mot_to_frames(read_mot(seq / "gt" / "gt.txt"), read_seqinfo(seq / "seqinfo.ini"))
    assert [(f.video, f.index, len(f.instances)) for f in back] == [("seq", 0, 2), ("seq", 1, 0), ("seq", 2, 1)]
    a, b = back[0].instances
    assert (a.track_id, a.ignore, b.track_id, b.ignore) == (1, True, 3, False)
    np.testing.assert_array_equal(a.box, [-5, 400, 45, 520])
    np.testing.assert_array_equal(b.box, [10.25, 20.5, 60.25, 120.5])
    np.testing.assert_array_equal(b.visible_box, [10.25, 20.5, 60.25, 70.5])  # top half: visibility 0.5
    assert box_visibility(b) == 0.5

    res = write_mot_results(frames, tmp_path / "res" / "seq.txt")
    table = read_mot(res)
    assert table.conf.tolist() == [0.25, 0.5, 0.75] and table.classes.tolist() == [-1, -1, -1]
    pred = mot_to_frames(table, gt=False)
    assert [len(f.instances) for f in pred] == [2, 0, 1] and pred[0].video == "seq"  # video from the file stem
    assert [i.score for i in pred[0].instances] == [0.25, 0.5]
    assert not any(i.ignore for f in pred for i in f.instances)
    assert all(i.visible_box is None for f in pred for i in f.instances)


# ----------------------------------------------------------------------------------------- column variants
DET_7 = "1,-1,10,20,30,40,0.9\n1,-1,12,22,30,40,0.8\n3,-1,0,0,5,5,0.1\n"
DET_9 = "1,-1,10,20,30,40,0.9,-1,-1\n1,-1,12,22,30,40,0.8,-1,-1\n3,-1,0,0,5,5,0.1,-1,-1\n"
DET_10 = "1,-1,10,20,30,40,0.9,-1,-1,-1\n1,-1,12,22,30,40,0.8,-1,-1,-1\n3,-1,0,0,5,5,0.1,-1,-1,-1\n"


@pytest.mark.parametrize("text", [DET_7, DET_9, DET_10, DET_10.replace(",", " ")], ids=["7", "9", "10", "spaces"])
def test_detection_files(tmp_path, text):
    t = read_mot(_write(tmp_path, "seq/det/det.txt", text))
    assert len(t) == 3 and t.frames.tolist() == [1, 1, 3] and t.ids.tolist() == [-1, -1, -1]
    np.testing.assert_array_equal(t.boxes, [[10, 20, 30, 40], [12, 22, 30, 40], [0, 0, 5, 5]])
    np.testing.assert_array_equal(t.conf, [0.9, 0.8, 0.1])
    assert t.classes.tolist() == [-1, -1, -1] and t.lines.tolist() == [1, 2, 3]
    frames = mot_to_frames(t, gt=False)
    assert frames[0].video == "seq" and [len(f.instances) for f in frames] == [2, 0, 1]
    np.testing.assert_array_equal(frames[0].boxes(), [[10, 20, 40, 60], [12, 22, 42, 62]])
    assert [i.score for i in frames[0].instances] == [0.9, 0.8]
    assert [i.track_id for i in frames[0].instances] == [-1, -1]


def test_gt_9_columns_flag_class_visibility(tmp_path):
    text = (
        "1,1,10,20,30,40,1,1,0.75\n"  # pedestrian, considered
        "1,2,50,20,30,40,0,1,1\n"  # pedestrian, zero-marked -> ignored
        "1,3,90,20,30,40,1,7,0.5\n"  # static person (distractor) -> ignored
        "1,4,130,20,30,40,0,3,1\n"  # car -> dropped
        "2,1,11,21,30,40,1,1,0\n"  # fully occluded pedestrian
        "2,5,0,0,10,10,1,12,1\n"  # reflection -> ignored
        "2,6,0,0,10,10,0,9,1\n"  # occluder -> dropped
    )
    t = read_mot(_write(tmp_path, "MOT17-XX/gt/gt.txt", text))
    assert t.conf.tolist() == [1, 0, 1, 0, 1, 1, 0]
    assert t.classes.tolist() == [1, 1, 7, 3, 1, 12, 9]
    assert t.visibility.tolist() == [0.75, 1, 0.5, 1, 0, 1, 1]
    frames = mot_to_frames(t)
    assert [f.video for f in frames] == ["MOT17-XX"] * 2 and (frames[0].width, frames[0].height) == (0, 0)
    assert [(i.track_id, i.ignore) for i in frames[0].instances] == [(1, False), (2, True), (3, True)]
    assert [(i.track_id, i.ignore) for i in frames[1].instances] == [(1, False), (5, True)]
    assert [round(box_visibility(i), 6) for i in frames[0].instances] == [0.75, 1.0, 0.5]
    np.testing.assert_array_equal(frames[0].instances[0].visible_box, [10, 20, 40, 50])
    assert box_visibility(frames[1].instances[0]) == 0.0
    assert all(i.score == 1.0 for f in frames for i in f.instances)


def test_gt_mot15_10_columns(tmp_path):
    text = "1,1,10,20,30,40,1,-1,-1,-1\n1,2,50,20,30,40,0,-1,-1,-1\n2,1,11,21,30,40,1,-1,-1,-1\n"
    t = read_mot(_write(tmp_path, "gt.txt", text))
    assert t.classes.tolist() == [-1, -1, -1] and t.visibility.tolist() == [-1, -1, -1]
    frames = mot_to_frames(t, video="TUD", num_frames=3)
    assert [len(f.instances) for f in frames] == [2, 1, 0] and frames[0].video == "TUD"
    assert [i.ignore for i in frames[0].instances] == [False, True]
    assert frames[0].instances[0].visible_box is None  # no visibility column


def test_frames_beyond_seq_length(tmp_path):
    t = read_mot(_write(tmp_path, "gt.txt", "1,1,0,0,10,10,1,1,1\n5,1,0,0,10,10,1,1,1\n"))
    with pytest.raises(FormatError, match=r"gt\.txt:2: frame 5 beyond the sequence length 4"):
        mot_to_frames(t, {"seqLength": 4})
    assert len(mot_to_frames(t)) == 5


# ------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("1,1,0,0,10,10,1,1,1\n1,2,0,0,10,10,1,1\n", r"det\.txt:2: expected 9 columns like the first line, got 8"),
        ("1,-1,0,0,10,10,0.5\n\n2,-1,0,0,10\n", r"det\.txt:3: expected at least 6 columns"),
        ("1,-1,0,0,10,10,0.5\n2,-1,0,abc,10,10,0.5\n", r"det\.txt:2: y \(column 4\) is not a number: 'abc'"),
        ("1,-1,0,0,10,10,0.5\n2,-1,0,0,-10,10,0.5\n", r"det\.txt:2: width \(column 5\) -10 is negative"),
        ("1,-1,0,0,10,10,0.5\n2,-1,0,0,10,-1,0.5\n", r"det\.txt:2: height \(column 6\) -1 is negative"),
        ("1,-1,0,0,10,10,0.5\n0,-1,0,0,10,10,0.5\n", r"det\.txt:2: frame \(column 1\) 0 must be >= 1"),
        ("1,-1,0,0,10,10,0.5\n1,-3,0,0,10,10,0.5\n", r"det\.txt:2: id \(column 2\) -3 must be >= 0 \(or -1"),
        ("1,-1,0,0,10,10,0.5\n1,2,0,0,nan,10,0.5\n", r"det\.txt:2: width \(column 5\) nan is not a finite number"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, text, pattern):
    path = _write(tmp_path, "det.txt", text)
    with pytest.raises(FormatError, match=pattern) as info:
        read_mot(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_seqinfo_errors(tmp_path):
    full = "[Sequence]\nname=s\nimDir=img1\nframeRate=30\nseqLength=4\nimWidth=64\nimHeight=48\nimExt=.png\n"
    info = read_seqinfo(_write(tmp_path, "ok.ini", "; comment\n" + full + "\n[Other]\nx=1\n"))
    assert info == {
        "name": "s",
        "imDir": "img1",
        "frameRate": 30,
        "seqLength": 4,
        "imWidth": 64,
        "imHeight": 48,
        "imExt": ".png",
    }
    short = _write(tmp_path, "short.ini", "[Sequence]\nseqLength=7\n")
    with pytest.raises(FormatError, match=r"short\.ini: \[Sequence\] has no name, imDir, frameRate, imWidth"):
        read_seqinfo(short)
    assert read_seqinfo(short, required=("seqLength",)) == {"seqLength": 7}
    cases = [
        ("nosec.ini", "name=s\n", r"nosec\.ini: no \[Sequence\] section"),
        ("bad.ini", full.replace("seqLength=4", "seqLength=four"), r"bad\.ini:5: seqLength must be a non-negative"),
        ("neg.ini", full.replace("imWidth=64", "imWidth=-1"), r"neg\.ini:6: imWidth must be a non-negative"),
        ("junk.ini", "[Sequence]\nname s\n", r"junk\.ini:2: expected key=value or \[section\]"),
    ]
    for name, text, pattern in cases:
        with pytest.raises(FormatError, match=pattern) as exc:
            read_seqinfo(_write(tmp_path, name, text))
        assert "\n" not in str(exc.value)


# ------------------------------------------------------------------------------------------- MOT17 sample
@needs_mot17
@pytest.mark.parametrize(
    ("seq", "n_frames", "gt_rows", "people", "tracks", "ignored", "det_rows", "det_in_gt_frames", "seq_len"),
    [
        ("MOT17-02-FRCNN", 4, 156, 88, 22, 12 + 28 + 8, 8186, 51, 600),
        ("MOT17-04-FRCNN", 8, 792, 336, 42, 32, 28406, 205, 1050),
    ],
)
def test_mot17_sample(seq, n_frames, gt_rows, people, tracks, ignored, det_rows, det_in_gt_frames, seq_len):
    """Counts from shared/data/mot17/SOURCE.md; the gt covers only the first frames, seqinfo the full sequence."""
    root = MOT17 / seq
    info = read_seqinfo(root / "seqinfo.ini")
    assert (info["name"], info["seqLength"], info["imWidth"], info["imHeight"]) == (seq, seq_len, 1920, 1080)
    gt = read_mot(root / "gt" / "gt.txt")
    assert len(gt) == gt_rows and set(gt.frames.tolist()) == set(range(1, n_frames + 1))
    frames = mot_to_frames(gt, info, seq_dir=root, num_frames=n_frames)
    assert len(frames) == n_frames and all(Path(f.image).is_file() for f in frames)
    kept = [i for f in frames for i in f.instances if not i.ignore]
    assert len(kept) == people and len({i.track_id for i in kept}) == tracks
    assert sum(i.ignore for f in frames for i in f.instances) == ignored  # distractor classes 2, 7, 8, 12
    assert len(mot_to_frames(gt, info)) == seq_len  # seqinfo's length by default

    det = read_mot(root / "det" / "det.txt")
    assert len(det) == det_rows and det.boxes.shape == (det_rows, 4) and set(det.ids.tolist()) == {-1}
    assert int((det.frames <= n_frames).sum()) == det_in_gt_frames
    dframes = mot_to_frames(det, info, gt=False)
    assert len(dframes) == seq_len and sum(len(f.instances) for f in dframes) == det_rows
    assert sum(len(f.instances) for f in dframes[:n_frames]) == det_in_gt_frames
