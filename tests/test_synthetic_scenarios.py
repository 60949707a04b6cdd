"""Smoke scenarios (datasets/synthetic.py SCENARIOS, issue 22): each knob really puts its mechanism in the data, the
plain scene is unchanged by them, and a table's scenario reaches its cells."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

import numpy as np
import pytest

from crowdbench.bench.config import DataConfig
from crowdbench.bench.matrix import expand, parse_set
from crowdbench.bench.specs import available_tables, load_spec
from crowdbench.bench.stages.data import check_data, data_slice
from crowdbench.datasets.layout import DataError
from crowdbench.datasets.model import Dataset, Frame
from crowdbench.datasets.synthetic import SCENARIOS, _iou_matrix, _Video, generate, occluder_boxes, render_frame


@pytest.fixture(scope="module")
def datasets() -> dict[str, Dataset]:
    return {name: generate("tiny", seed=0, scenario=name) for name in SCENARIOS}


def _frames(ds: Dataset) -> list[Frame]:
    return [f for _, frames in ds for f in frames]


def _crowded_share(ds: Dataset) -> float:
    """Share of people whose full box overlaps another's at IoU > 0.5."""
    best = []
    for f in _frames(ds):
        if len(f.instances) > 1:
            iou = _iou_matrix(f.boxes())
            np.fill_diagonal(iou, 0.0)
            best += list(iou.max(axis=1))
    return float(np.mean(np.array(best) > 0.5))


def test_unknown_scenario_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown synthetic scenario 'shaky'; scenarios: plain, crowded_pairs"):
        generate("tiny", scenario="shaky")
    with pytest.raises(DataError, match="unknown synthetic scenario 'shaky'"):
        check_data(DataConfig(scenario="shaky"))


def test_every_scenario_is_seeded_and_named(datasets: dict[str, Dataset]) -> None:
    for name, ds in datasets.items():
        again = generate("tiny", seed=0, scenario=name)
        f, g = _frames(ds)[3], _frames(again)[3]
        assert np.array_equal(f.load_image(), g.load_image()), name
        assert [i.keypoints.tobytes() for i in f.instances] == [i.keypoints.tobytes() for i in g.instances]
        assert ds.summary["scenario"] == name
        assert ds.name == ("synthetic-tiny" if name == "plain" else f"synthetic-tiny-{name}")
        assert SCENARIOS[name].purpose


def test_crowded_pairs_overlap_at_the_asked_iou(datasets: dict[str, Dataset]) -> None:
    assert _crowded_share(datasets["crowded_pairs"]) > _crowded_share(datasets["plain"]) + 0.3
    # each group member's full box against its leader's (same velocity, next track ids): IoU 0.5-0.9 by design,
    # spread a little by the gait and by the depth clipping of the feet
    ious = []
    for frames in generate("small", seed=0, scenario="crowded_pairs").videos("val").values():
        people = [p for p in frames[0].image.video.people if p.track_id > 0]  # type: ignore[union-attr]
        leader: dict[int, int] = {}
        for prev, p in pairwise(people):
            if (p.vx, p.vy, p.track_id) == (prev.vx, prev.vy, prev.track_id + 1):
                leader[p.track_id] = leader.get(prev.track_id, prev.track_id)
        for f in frames:
            by_id = {i.track_id: i.box for i in f.instances}
            pairs = [(by_id[a], by_id[m]) for m, a in leader.items() if {a, m} <= set(by_id)]
            ious += [_iou_matrix(np.stack(pair))[0, 1] for pair in pairs]
    ious = np.array(ious)
    assert len(ious) > 300
    assert 0.5 < np.median(ious) < 0.8 and np.mean((ious >= 0.45) & (ious <= 0.95)) > 0.7


def test_moving_camera_moves_the_scene_and_blurs(datasets: dict[str, Dataset]) -> None:
    frames = datasets["moving_crowd"].frames("train")
    boxes = [occluder_boxes(f) for f in frames[:4]]
    assert all(len(b) and not np.array_equal(b, boxes[0]) for b in boxes[1:])  # the camera moves every frame
    plain = datasets["plain"].frames("train")
    assert all(np.array_equal(occluder_boxes(f), occluder_boxes(plain[0])) for f in plain[:4])
    video: _Video = frames[0].image.video  # type: ignore[union-attr]
    assert video.camera is not None and np.ptp(video.camera.scale) > 0.05
    # motion blur: less high-frequency energy than the same view rendered sharp
    sharp = _Video(video.preset, 0, "train", 0, replace(SCENARIOS["moving_crowd"], motion_blur=0.0))

    def energy(img: np.ndarray) -> float:
        return float(np.abs(np.diff(img.astype(np.float32), axis=1)).mean())

    blurred = [t for t in range(1, video.n_frames) if np.hypot(*video.camera.shift(t)) * 0.5 >= 1.0]
    assert blurred  # the shake moves the image by 2+ pixels between some frames
    assert all(energy(render_frame(video, t)) < energy(render_frame(sharp, t)) for t in blurred)


def test_crossings_swap_order_and_reentries_return_with_their_identity() -> None:
    ds = generate("small", seed=0, scenario="moving_crowd")
    swaps = reentries = 0
    for frames in ds.videos("val").values():
        xs: dict[int, dict[int, float]] = {}
        for f in frames:
            for i in f.instances:
                xs.setdefault(i.track_id, {})[f.index] = (i.box[0] + i.box[2]) / 2
        for seen in xs.values():
            reentries += any(b - a > 3 for a, b in pairwise(sorted(seen)))  # gone for 3+ frames, back with the same id
        ids = sorted(xs)
        for a in ids:
            for b in ids:
                common = sorted(set(xs[a]) & set(xs[b]))
                if a < b and len(common) > 4:
                    d = [xs[a][t] - xs[b][t] for t in common]
                    swaps += d[0] * d[-1] < 0
    plain = generate("small", seed=0)
    assert swaps >= 5 and reentries >= 2, (swaps, reentries)
    assert plain.summary["val/tracks"] < ds.summary["val/tracks"]


def test_self_occlusion_labels_far_joints_of_people_in_profile(datasets: dict[str, Dataset]) -> None:
    ds = datasets["occluded_joints"]
    far_ear_hidden = near_ear_seen = 0
    for f in _frames(ds):
        people = {p.track_id: p for p in f.image.video.people}  # type: ignore[union-attr]
        for i in f.instances:
            p = people[i.track_id]
            if not p.profile:
                continue
            far, near = (3, 4) if p.facing > 0 else (4, 3)  # COCO left / right ear
            far_ear_hidden += i.keypoints[far, 2] == 1
            near_ear_seen += i.keypoints[near, 2] == 2
    assert far_ear_hidden > 10 and near_ear_seen > 5
    occluded = [np.mean(np.concatenate([i.keypoints[:, 2] for f in _frames(ds) for i in f.instances]) == 1)]
    assert occluded[0] > np.mean(
        np.concatenate([i.keypoints[:, 2] for f in _frames(datasets["plain"]) for i in f.instances]) == 1
    )


def test_cut_boxes_are_the_visible_extent(datasets: dict[str, Dataset]) -> None:
    cut = 0
    for f in _frames(datasets["cut_boxes"]):
        for i in f.instances:
            margin = (i.visible_box - i.box) * [1, 1, -1, -1]  # the same small margin on every side
            assert np.allclose(margin, margin[0]) and 1.0 <= margin[0] <= 0.03 * (i.box[3] - i.box[1]) + 1.0
            kp = i.keypoints[i.keypoints[:, 2] > 0]
            x1, y1, x2, y2 = i.box
            cut += bool(((kp[:, 0] < x1) | (kp[:, 0] > x2) | (kp[:, 1] < y1) | (kp[:, 1] > y2)).any())
    assert cut > 10  # joints outside the box: what GBG's larger candidate boxes recover


def test_specs_name_known_scenarios_and_cells_carry_them() -> None:
    for table in available_tables():
        spec = load_spec(table)
        assert spec.smoke_scenario in SCENARIOS, table
        cells = expand(spec, rows=[spec.runnable_rows[0][0]]) if spec.runnable_rows else []
        for cell in cells:
            assert cell.config.data.scenario == spec.smoke_scenario
    spec = load_spec("hie-pose/table3")
    assert spec.smoke_scenario == "crowded_pairs"
    (cell,) = expand(spec, rows=[0], overrides=parse_set(["data.scenario=plain"]))
    assert cell.config.data.scenario == "plain"  # the command line wins
    (full,) = expand(spec, profile="full", rows=[0])
    assert full.config.data.scenario == "plain"  # real data has no scenario
    keyed = data_slice(DataConfig(scenario="crowded_pairs"), "val")
    assert keyed["scenario"] == "crowded_pairs" and "scenario" not in data_slice(DataConfig(), "val")


def test_more_validation_videos_keep_the_presets_videos_first() -> None:
    """``data.val_videos`` (a table's smoke_settings, issue 22 item 3) adds validation videos after the preset's:
    the train split and the preset's validation videos are unchanged, so only the test set grows."""
    base = generate("tiny", seed=0, scenario="moving_crowd")
    more = generate("tiny", seed=0, scenario="moving_crowd", val_videos=3)
    assert len({f.video for f in more.frames("val")}) == 3 > len({f.video for f in base.frames("val")})
    for split in ("train", "val"):
        for a, b in zip(base.frames(split), more.frames(split), strict=False):
            assert a.frame_id == b.frame_id and np.array_equal(a.boxes(), b.boxes())
    assert len(more.frames("train")) == len(base.frames("train"))
    with pytest.raises(ValueError, match="val_videos must be >= 1"):
        generate("tiny", val_videos=0)
    keyed = DataConfig(val_videos=3)
    assert data_slice(keyed, "val")["val_videos"] == 3
    assert "val_videos" not in data_slice(keyed, "train")  # the trained models stay shared
    assert "val_videos" not in data_slice(DataConfig(), "val")
    with pytest.raises(ValueError, match="real data has its own"):
        DataConfig(source="hie", val_videos=3)
