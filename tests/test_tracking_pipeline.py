"""The box-tracking pipeline (paper 004; hie-tracking Tables 4-5): stages, caching and the MOT evaluation of tracks."""

from __future__ import annotations

import numpy as np
import pytest

from crowdbench.bench.cache import StageCache
from crowdbench.bench.matrix import expand
from crowdbench.bench.specs import load_spec
from crowdbench.bench.stages.data import load_frames
from crowdbench.bench.stages.tracking import evaluate_tracks, videos_of
from crowdbench.bench.tasks import run_cell, stage_keys

GT_TINY = {"tracking.boxes": "gt", "data.preset": "tiny"}


def _cfg(table: str = "hie-tracking/table5", row: int = 0, **over):
    return expand(load_spec(table), overrides={**GT_TINY, **over}, rows=[row])[0].config


def _gt_tracks(frames):
    out = []
    for f in frames:
        people = [p for p in f.instances if not p.ignore]
        out.append(np.array([[*p.box, p.track_id, i] for i, p in enumerate(people)], dtype=np.float64).reshape(-1, 6))
    return out


def test_ground_truth_as_tracks_scores_perfectly_and_a_swap_costs_two_switches():
    frames = load_frames(_cfg().data, "val")
    tracks = _gt_tracks(frames)
    m = evaluate_tracks(frames, tracks)
    assert m["MOTA"] == pytest.approx(1.0) and m["IDSw"] == 0 and m["FP"] == 0 and m["FN"] == 0
    assert m["MOTP"] == pytest.approx(1.0) and m["IDF1"] == pytest.approx(1.0)
    # swap the ids of two people from the middle of the first video on: both switch once
    video = videos_of(frames)[0]
    a, b = (int(t) for t in tracks[video[0]][:2, 4])
    for i in video[len(video) // 2 :]:
        ids = tracks[i][:, 4].copy()
        tracks[i][ids == a, 4], tracks[i][ids == b, 4] = b, a
    swapped = evaluate_tracks(frames, tracks)
    assert swapped["IDSw"] == 2 and swapped["FP"] == 0 and swapped["FN"] == 0
    n_gt = sum(len(t) for t in tracks)
    assert swapped["MOTA"] == pytest.approx(1 - 2 / n_gt)


def test_a_track_on_an_ignore_region_is_not_a_false_positive():
    frames = load_frames(_cfg(**{"data.preset": "small"}).data, "val")
    i = next(i for i, f in enumerate(frames) if len(f.ignore_regions))
    tracks = _gt_tracks(frames)
    tracks[i] = np.vstack([tracks[i], [*frames[i].ignore_regions[0], 999, -1]])
    assert evaluate_tracks(frames, tracks)["FP"] == 0
    tracks[i][-1, :4] = [0, 0, 3, 3]  # a box on nothing is one
    assert evaluate_tracks(frames, tracks)["FP"] == 1


def test_tracker_parameters_rerun_only_track_and_evaluate(tmp_path):
    cache = StageCache(tmp_path / "cache")
    cfg = _cfg()
    first = run_cell(cfg, cache, "cpu")
    assert first.stages_run == ["embed", "track", "evaluate"]  # no ReID in the baseline row
    assert -1.0 <= first.metrics["MOTA"] <= 1.0 and first.metrics["FN"] > 0  # n_init: the first frames are missed
    again = run_cell(cfg, cache, "cpu")
    assert again.stages_run == [] and again.metrics == first.metrics
    other = cfg.model_copy(deep=True)
    other.tracking.deepsort.n_init = 1
    changed = run_cell(other, cache, "cpu")
    assert changed.stages_run == ["track", "evaluate"]
    assert changed.metrics["FN"] < first.metrics["FN"]  # tracks are output from their second frame on
    # the evaluate stage keeps its frame-block bootstrap: replicates for the record, paired across rows
    from crowdbench.bench.metrics.bootstrap import percentile_interval, replicates

    boot = first.bootstrap
    assert boot["resamples"] == 1000 and boot["unit"].startswith("frame block (50)")
    reps = replicates(boot)
    assert {"MOTA", "IDF1", "HOTA", "FP", "FN", "IDSw"} <= set(reps) and len(reps["MOTA"]) == 1000
    low, high = percentile_interval(reps["MOTA"])
    assert low <= first.metrics["MOTA"] <= high
    assert boot["units_hash"] == changed.bootstrap["units_hash"]  # same test set: effects pair
    fewer = cfg.model_copy(deep=True)
    fewer.evaluate.bootstrap = 100
    assert run_cell(fewer, cache, "cpu").stages_run == ["evaluate"]  # the resamples key the evaluate stage


def test_box_smoothing_changes_the_tracked_boxes_and_keys_track_only(tmp_path):
    from crowdbench.bench.registry import get_plugin

    cfg = _cfg()
    smooth = cfg.model_copy(deep=True)
    get_plugin("box_flow_smoothing", {"flow": "dis_ultrafast"}).apply(smooth)
    k1, k2 = stage_keys(cfg), stage_keys(smooth)
    assert k1["embed"] == k2["embed"] and k1["track"] != k2["track"]
    cache = StageCache(tmp_path / "cache")
    a = run_cell(cfg, cache, "cpu")
    b = run_cell(smooth, cache, "cpu")
    assert b.stages_run == ["track", "evaluate"]
    from crowdbench.bench.stages.tracking import load_tracks

    frames = load_frames(cfg.data, "val")
    ta = load_tracks(cache.path("track", a.stage_keys["track"]) / "tracks.npz", len(frames))
    tb = load_tracks(cache.path("track", b.stage_keys["track"]) / "tracks.npz", len(frames))
    assert [len(x) for x in ta] == [len(x) for x in tb]  # same tracks, same ids
    assert any(not np.allclose(x[:, :4], y[:, :4]) for x, y in zip(ta, tb, strict=True) if len(x))
    assert (tmp_path / "cache" / "flow").is_dir()  # flow fields cached for the next run
    from crowdbench.reports.qualitative import draw_cell

    figure = draw_cell(smooth, b.stage_keys, tmp_path / "cache")  # the report's frame with track ids
    assert figure is not None and "tracked boxes with their track ids" in figure["caption"]


def test_table_rows_configure_what_they_name():
    rows = {c.row_index: c.config for c in expand(load_spec("hie-tracking/table5"))}
    assert not rows[0].tracking.reid.enabled and rows[1].tracking.reid.enabled
    assert not rows[1].tracking.reid.flip and rows[2].tracking.reid.flip
    assert rows[3].tracking.reid.scales == (0.9, 1.0, 1.1)
    keys = [stage_keys(rows[i]) for i in (1, 2, 3)]
    assert keys[0]["reid"] == keys[1]["reid"] == keys[2]["reid"]  # one ReID network for rows 2-4
    assert len({k["embed"] for k in keys}) == 3
    assert all(
        r.tracking.deepsort.max_cosine_distance == 0.3 and r.tracking.deepsort.nn_budget == 256 for r in rows.values()
    )
    t4 = {c.row_index: c.config for c in expand(load_spec("hie-tracking/table4"))}
    assert t4[0].data.val_split == "train" and t4[1].data.val_split == "val"


def test_reid_weights_of_another_shape_are_a_one_line_error_naming_the_file(tmp_path):
    import torch

    from crowdbench.bench.stages.tracking import trained_reid
    from crowdbench.bench.tasks import context
    from crowdbench.methods.tracking.reid import build_reid

    cfg = _cfg(row=1)
    cfg.tracking.reid.arch, cfg.tracking.reid.dim = "small", 128
    ctx = context(cfg, StageCache(tmp_path / "cache"), "cpu")
    folder = ctx.path("reid")
    folder.mkdir(parents=True)
    torch.save(build_reid("small", dim=64).state_dict(), folder / "model.pt")  # a 64-D net where 128-D is configured
    with pytest.raises(ValueError, match=r"model\.pt does not fit small ReID of dim 128: ") as err:
        trained_reid(ctx)
    assert "\n" not in str(err.value)
    torch.save(build_reid("small", dim=128, num_ids=5).state_dict(), folder / "model.pt")  # + training classifier
    assert trained_reid(ctx).dim == 128
