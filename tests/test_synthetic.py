"""Synthetic crowd-video generator, its native-format writers and the keypoint conventions."""

from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from crowdbench.bench.data_cli import add_data_commands
from crowdbench.datasets import keypoints as K
from crowdbench.datasets.model import Dataset
from crowdbench.datasets.synthetic import PRESETS, generate, occluder_boxes, render_to_folder


@pytest.fixture(scope="module")
def tiny() -> Dataset:
    return generate("tiny", seed=0)


def _all_frames(ds: Dataset):
    return [f for _, frames in ds for f in frames]


def _annotations(ds: Dataset) -> list[tuple]:
    out = []
    for f in _all_frames(ds):
        out.append((f.video, f.index, f.ignore_regions.tobytes()))
        for i in f.instances:
            out.append((i.track_id, i.box.tobytes(), i.visible_box.tobytes(), i.keypoints.tobytes()))
    return out


# ---------------------------------------------------------------------------------------------- generator


def test_unknown_preset_lists_presets() -> None:
    with pytest.raises(ValueError, match=r"tiny.*small"):
        generate("huge")


def test_same_seed_is_byte_identical_other_seed_differs(tiny: Dataset) -> None:
    again = generate("tiny", seed=0)
    assert _annotations(again) == _annotations(tiny)
    assert again.summary == tiny.summary
    for a, b in zip(_all_frames(tiny), _all_frames(again), strict=True):
        assert a.load_image().tobytes() == b.load_image().tobytes()
    other = generate("tiny", seed=1)
    assert _annotations(other) != _annotations(tiny)
    assert other.frames("val")[0].load_image().tobytes() != tiny.frames("val")[0].load_image().tobytes()


def test_splits_shapes_and_images(tiny: Dataset) -> None:
    p = PRESETS["tiny"]
    assert set(tiny.splits) == {"train", "val"}
    assert tiny.schema == K.COCO_17
    for split in ("train", "val"):
        assert len(tiny.videos(split)) == p.videos[split]
        assert len(tiny.frames(split)) == p.videos[split] * p.frames[split]
    img = tiny.frames("train")[3].load_image()
    assert img.shape == (p.height, p.width, 3) and img.dtype == np.uint8
    assert img.std() > 10  # textured, not flat
    frame = pickle.loads(pickle.dumps(tiny.frames("val")[2]))
    assert frame.load_image().tobytes() == tiny.frames("val")[2].load_image().tobytes()


def test_boxes_and_keypoints_are_consistent(tiny: Dataset) -> None:
    n = 0
    for f in _all_frames(tiny):
        for i in f.instances:
            n += 1
            b, v, kp = i.box, i.visible_box, i.keypoints
            assert kp.shape == (17, 3)
            assert b[0] <= v[0] < v[2] <= b[2] and b[1] <= v[1] < v[3] <= b[3], (b, v)
            assert v[0] >= 0 and v[1] >= 0 and v[2] <= f.width and v[3] <= f.height
            lab = kp[kp[:, 2] > 0]
            assert np.all((lab[:, 0] >= b[0]) & (lab[:, 0] <= b[2]) & (lab[:, 1] >= b[1]) & (lab[:, 1] <= b[3]))
            assert np.all((lab[:, 0] >= 0) & (lab[:, 0] < f.width) & (lab[:, 1] >= 0) & (lab[:, 1] < f.height))
            assert np.all(kp[kp[:, 2] == 0, :2] == 0)
            assert set(np.unique(kp[:, 2])) <= {0.0, 1.0, 2.0}
            assert b[3] - b[1] >= PRESETS["tiny"].min_height
    assert n > 50


def test_occluded_keypoints_are_not_visible(tiny: Dataset) -> None:
    under = flagged = 0
    for f in _all_frames(tiny):
        occ = occluder_boxes(f)
        assert len(occ) >= 1
        for i in f.instances:
            x, y, v = i.keypoints.T
            inside = np.zeros(len(x), bool)
            for x1, y1, x2, y2 in occ:
                inside |= (x >= x1) & (x < x2) & (y >= y1) & (y < y2) & (v > 0)
            under += int(inside.sum())
            assert np.all(v[inside] == 1)
            flagged += int((v == 1).sum())
    assert under > 0 and flagged > under  # both occluders and other people hide keypoints


def test_track_ids_unique_per_frame_and_stable(tiny: Dataset) -> None:
    for split in tiny.splits:
        for frames in tiny.videos(split).values():
            last: dict[int, np.ndarray] = {}
            for f in frames:
                ids = [i.track_id for i in f.instances]
                assert len(ids) == len(set(ids)) and min(ids) >= 1
                for i in f.instances:
                    if i.track_id in last:  # a track moves smoothly from one frame to the next
                        prev = last[i.track_id]
                        height = i.box[3] - i.box[1]
                        assert np.abs((i.box - prev)[[0, 2]].mean()) < 0.25 * height
                    last[i.track_id] = i.box
            assert any(len(f.instances) > 0 for f in frames)


def test_ignore_regions_are_tiny_people(tiny: Dataset) -> None:
    regions = np.concatenate([f.ignore_regions for f in _all_frames(tiny)])
    assert len(regions) > 0
    heights = regions[:, 3] - regions[:, 1]
    assert np.all(heights > 0) and np.all(heights < PRESETS["tiny"].min_height)
    assert tiny.summary["ignore_regions"] == len(regions)


def test_small_preset_is_crowded() -> None:
    ds = generate("small", seed=0)
    s = ds.summary
    assert s["share_iou_gt_0.5"] >= 0.3
    assert s["val/share_iou_gt_0.5"] >= 0.3
    assert s["people_per_frame"] >= 5
    assert 0.1 < s["share_occluded_keypoints"] < 0.6
    assert s["frames"] == s["train/frames"] + s["val/frames"] == len(_all_frames(ds))
    assert s["people"] == sum(len(f.instances) for f in _all_frames(ds))


# ---------------------------------------------------------------------------------------------- writers


def test_render_to_folder_png_is_lossless(tiny: Dataset, tmp_path: Path) -> None:
    out = render_to_folder(tiny, tmp_path, ext=".png")
    f0, f1 = tiny.frames("val")[5], out.frames("val")[5]
    assert Path(f1.image) == tmp_path / "val" / f0.video / "img1" / "000006.png"
    assert np.array_equal(f1.load_image(), f0.load_image())
    assert f1.instances is f0.instances


def test_write_native_and_cli(tiny: Dataset, tmp_path: Path) -> None:
    from faster_coco_eval import COCO, COCOeval_faster

    parser = argparse.ArgumentParser()
    add_data_commands(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(["synth", "--preset", "tiny", "--seed", "0", "--out", str(tmp_path)])
    assert args.func(args) == 0

    for split in ("train", "val"):
        frames = tiny.frames(split)
        n_inst = sum(len(f.instances) for f in frames)
        n_ign = sum(len(f.ignore_regions) for f in frames)
        path = tmp_path / "annotations" / f"person_keypoints_{split}.json"
        coco = COCO(str(path))
        assert len(coco.getImgIds()) == len(frames)
        assert len(coco.getAnnIds()) == n_inst + n_ign
        assert len(coco.getAnnIds(iscrowd=True)) == n_ign
        assert 0 not in coco.getAnnIds()
        raw = json.loads(path.read_text())
        assert raw["categories"][0]["keypoints"] == list(K.COCO_17.keypoints)
        assert all((tmp_path / img["file_name"]).is_file() for img in raw["images"])
        assert {"frame_id", "vid_id"} <= set(raw["images"][0]) and "track_id" in raw["annotations"][0]
        # ground truth scored against itself: AP 1
        dets = [dict(a, score=1.0) for a in raw["annotations"] if not a["iscrowd"] and a["num_keypoints"] > 0]
        ev = COCOeval_faster(coco, coco.loadRes(dets), "keypoints", print_function=lambda *a, **k: None)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        assert ev.stats[0] == pytest.approx(1.0)

        assert (tmp_path / f"annotation_{split}.odgt").read_text().count("\n") >= len(frames) - 1
        for video, vframes in tiny.videos(split).items():
            seq = tmp_path / split / video
            lines = (seq / "gt" / "gt.txt").read_text().splitlines()
            assert len(lines) == sum(len(f.instances) for f in vframes)
            fields = lines[0].split(",")
            assert len(fields) == 9 and fields[6:8] == ["1", "1"] and 0 <= float(fields[8]) <= 1
            assert len(list((seq / "img1").glob("*.jpg"))) == len(vframes)
            ini = (seq / "seqinfo.ini").read_text()
            assert f"seqLength={len(vframes)}" in ini and f"name={video}" in ini


# --------------------------------------------------------------------------------------------- keypoints


@pytest.mark.parametrize("schema", list(K.SCHEMAS.values()), ids=list(K.SCHEMAS))
def test_schema_is_well_formed(schema) -> None:
    k = schema.num_keypoints
    assert len(schema.sigmas) == k == len(set(schema.keypoints))
    for a, b in schema.flip_pairs:
        na, nb = schema.keypoints[a], schema.keypoints[b]
        assert na.replace("left", "right") == nb or na.replace("right", "left") == nb
    assert all(0 <= a < k and 0 <= b < k for a, b in schema.skeleton)


def test_coco_sigmas_and_crowdpose_sigmas() -> None:
    assert K.COCO_17.sigmas[0] == 0.026 and K.COCO_17.sigmas[11] == 0.107
    cp = (0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089, 0.079, 0.079)
    assert K.CROWDPOSE_14.sigmas == cp
    assert K.CROWDPOSE_14.keypoints[-2:] == ("head", "neck")


def _coco_person() -> np.ndarray:
    kp = np.zeros((17, 3))
    kp[:, 2] = 2
    kp[:, 0] = np.arange(17) * 10.0
    kp[:, 1] = 100.0 + np.arange(17)
    kp[1, :2], kp[2, :2], kp[0, :2] = (52, 20), (48, 20), (50, 24)  # eyes, nose
    kp[5, :2], kp[6, :2] = (60, 40), (40, 40)  # shoulders
    return kp


def test_coco_to_crowdpose_and_hie() -> None:
    kp = _coco_person()
    cp = K.convert_keypoints(kp, K.COCO_17, K.CROWDPOSE_14, derive=True)
    assert cp.shape == (14, 3)
    np.testing.assert_array_equal(cp[:12], kp[5:17])
    np.testing.assert_allclose(cp[13], (50, 40, 2))  # neck = mean of shoulders
    np.testing.assert_allclose(cp[12], (50, 10, 2))  # head top = eyes + 0.5 (eyes - neck)
    hie = K.convert_keypoints(kp, K.COCO_17, K.HIE_14, derive=True)
    for j, name in enumerate(K.HIE_14.keypoints):
        if name in K.COCO_17.keypoints:
            np.testing.assert_array_equal(hie[j], kp[K.COCO_17.keypoints.index(name)])
    np.testing.assert_allclose(hie[1], (50, 40, 2))
    pt = K.convert_keypoints(kp, K.COCO_17, K.POSETRACK_17, derive=True)
    np.testing.assert_allclose(pt[1], (50, 40, 2))
    assert np.all(pt[3:5] == 0)
    np.testing.assert_array_equal(pt[5:], kp[5:])


def test_mapping_marks_missing_joints_unless_derivation_is_asked_for() -> None:
    kp = _coco_person()
    cp = K.convert_keypoints(kp, K.COCO_17, K.CROWDPOSE_14)
    np.testing.assert_array_equal(cp[:12], kp[5:17])
    assert np.all(cp[12:] == 0)  # head top and neck: COCO has neither, so they are unlabeled
    assert np.all(K.convert_keypoints(kp, K.COCO_17, K.HIE_14)[1] == 0)  # HIE chest
    assert np.all(K.convert_keypoints(kp, K.COCO_17, K.POSETRACK_17)[1:5] == 0)


def test_derived_points_visibility_and_fallbacks() -> None:
    kp = _coco_person()
    kp[6, 2] = 1  # right shoulder occluded -> neck occluded
    cp = K.convert_keypoints(kp, K.COCO_17, K.CROWDPOSE_14, derive=True)
    assert cp[13, 2] == 1 and cp[12, 2] == 1
    kp[1, 2] = 0  # no left eye -> head top from nose and neck
    cp = K.convert_keypoints(kp, K.COCO_17, K.CROWDPOSE_14, derive=True)
    np.testing.assert_allclose(cp[12, :2], 1.7 * np.array([50, 24]) - 0.7 * np.array([50, 40]))
    kp[[0, 5], 2] = 0  # no nose, no left shoulder -> nothing to derive from
    cp = K.convert_keypoints(kp, K.COCO_17, K.CROWDPOSE_14, derive=True)
    assert np.all(cp[12:] == 0)


def test_conversion_batches_identity_and_name_fallback() -> None:
    batch = np.stack([_coco_person(), _coco_person() + 1])
    assert K.convert_keypoints(batch, K.COCO_17, K.CROWDPOSE_14).shape == (2, 14, 3)
    np.testing.assert_array_equal(K.convert_keypoints(batch, K.COCO_17, K.COCO_17), batch)
    cp = K.convert_keypoints(batch[0], K.COCO_17, K.CROWDPOSE_14, derive=True)
    back = K.convert_keypoints(cp, K.CROWDPOSE_14, K.COCO_17)
    np.testing.assert_array_equal(back[5:], batch[0, 5:])
    assert np.all(back[:5] == 0)
    with pytest.raises(ValueError, match="expected"):
        K.convert_keypoints(np.zeros((14, 3)), K.COCO_17, K.CROWDPOSE_14)
    with pytest.raises(KeyError, match="coco17"):
        K.get_schema("mpii")


def test_synthetic_keypoints_convert(tiny: Dataset) -> None:
    inst = next(i for f in tiny.frames("val") for i in f.instances if (i.keypoints[:, 2] == 2).all())
    cp = K.convert_keypoints(inst.keypoints, K.COCO_17, K.CROWDPOSE_14, derive=True)
    head_top, neck = cp[12], cp[13]
    assert head_top[1] < inst.keypoints[1, 1] < neck[1]  # head top above the eyes, neck below
    assert inst.box[1] - 2 <= head_top[1]  # and close to the top of the full box


def test_rendered_frames_are_cached_as_copies_and_evicted_by_size(tiny: Dataset) -> None:
    """A frame read again comes from the process's render cache: the same pixels as a fresh render, a copy the caller
    may write into, and the cache holds no more than its byte budget."""
    from crowdbench.datasets.synthetic import _RenderedFrames, render_frame

    frames = tiny.frames("train")[:3]
    cache = _RenderedFrames(budget=2 * frames[0].load_image().nbytes)
    video, t = frames[0].image.video, frames[0].image.index
    first = cache.get(video, t)
    first[:] = 0  # must not reach the cache
    assert np.array_equal(cache.get(video, t), render_frame(video, t))
    for f in frames:
        cache.get(f.image.video, f.image.index)
    assert len(cache.frames) == 2 and cache.used <= cache.budget
    assert (video.render_key, t) not in cache.frames  # the least recently used went first
