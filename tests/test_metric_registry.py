"""Every registered metric (timm style): it evaluates a small hand-built case, produces exactly its declared keys,
gives a resampler over its bootstrap unit when asked, and has a ``crowdbench eval`` command."""

from __future__ import annotations

import argparse
import importlib
import math
import typing

import numpy as np
import pytest

from crowdbench.bench.config import EvaluateConfig
from crowdbench.bench.metrics.bootstrap import Merged, Renamed, replicate_weights
from crowdbench.bench.metrics.pose_tracks import FramePoses
from crowdbench.bench.metrics.registry import METRICS, Metric, metric_for
from crowdbench.datasets.formats.crowdhuman import DetectionRecord, record_id
from crowdbench.datasets.keypoints import get_schema
from crowdbench.datasets.model import Frame, Instance, KeypointSchema
from crowdbench.datasets.synthetic import generate

SCHEMA = {"crowdpose": "crowdpose14", "hie_wap": "hie14", "posetrack": "posetrack17"}
TASKS = ("detection", "pose", "pose_regression", "tracking", "pose_tracking")


def _person(x: float, y: float, k: int, track: int) -> Instance:
    """A 40 x 100 person at (x, y) with ``k`` visible joints spread over the box and a head box on top."""
    t = np.linspace(0.05, 0.95, k)
    kp = np.column_stack([x + 40 * t[::-1] * 0.8 + 4, y + 100 * t, np.full(k, 2.0)])
    return Instance(box=[x, y, x + 40, y + 100], keypoints=kp, track_id=track, head_box=[x + 10, y, x + 30, y + 20])


def _frames(schema: KeypointSchema) -> list[Frame]:
    """Two videos of three frames, two people walking right (ids 1, 2), one ignore region."""
    k = schema.num_keypoints
    return [
        Frame(
            video,
            i,
            320,
            240,
            instances=[_person(20 + 5 * i, 30, k, 1), _person(150 + 3 * i, 60, k, 2)],
            ignore_regions=[[280, 0, 319, 40]],
        )
        for video in ("v1", "v2")
        for i in range(3)
    ]


def _predictions(metric: Metric, frames: list[Frame]) -> list:
    """Perfect predictions of the metric's kind, one person per frame slightly off."""
    out = []
    for n, f in enumerate(frames, start=1):
        boxes = np.array([p.box for p in f.instances]) + np.array([[0, 0, 0, 0], [2, 1, 2, 1]])
        kps = np.array([p.keypoints for p in f.instances])
        kps[1, :, :2] += 2.0
        ids = np.array([p.track_id for p in f.instances])
        scores = np.array([0.9, 0.8])
        if metric.scores == "boxes":
            out.append(DetectionRecord(record_id(f), boxes, scores, f.width, f.height))
        elif metric.scores == "tracks":
            out.append(np.column_stack([boxes, ids]))
        elif metric.scores == "pose_tracks":
            out.append(FramePoses(kps, scores, ids, boxes))
        else:
            out += [
                {"image_id": n, "category_id": 1, "keypoints": kp.ravel().tolist(), "score": float(s)}
                for kp, s in zip(kps, scores, strict=True)
            ]
    return out


@pytest.mark.parametrize("metric", METRICS, ids=lambda m: f"{m.name}-{m.scores}")
def test_metric_evaluates_a_hand_built_case_with_exactly_its_keys(metric: Metric):
    schema = get_schema(SCHEMA.get(metric.name, "coco17"))
    frames = _frames(schema)
    scored = metric.evaluate(frames, _predictions(metric, frames), schema=schema, bootstrap=True)
    assert tuple(scored.values) == metric.keys
    assert all(isinstance(v, float) and math.isfinite(v) for v in scored.values.values())
    assert scored.values[metric.keys[0]] > 0.5  # AP / MOTA / w-AP of nearly perfect predictions
    if metric.unit is None:
        assert scored.resampler is None
        return
    rs = scored.resampler
    assert rs.unit.startswith(metric.unit.split()[0])
    replicates = rs.values(replicate_weights(len(rs.units), 4, 0))
    assert metric.keys[0] in replicates and all(len(v) == 4 for v in replicates.values())
    plain = metric.evaluate(frames, _predictions(metric, frames), schema=schema)
    assert plain.values == scored.values and plain.resampler is None


@pytest.mark.parametrize("metric", METRICS, ids=lambda m: f"{m.name}-{m.scores}")
def test_metric_has_an_eval_command_and_is_found_for_its_tasks(metric: Metric):
    sub = argparse.ArgumentParser().add_subparsers()
    importlib.import_module(metric.command).add_command(sub)
    assert sub.choices
    for task in metric.tasks:
        assert metric_for(task, metric.name) is metric


def test_every_configurable_metric_is_registered_and_a_task_refuses_the_others():
    names = set(typing.get_args(EvaluateConfig.model_fields["metric"].annotation))
    assert names == {m.name for m in METRICS}
    assert {t for m in METRICS for t in m.tasks} == set(TASKS)
    assert len({(m.name, t) for m in METRICS for t in m.tasks}) == sum(len(m.tasks) for m in METRICS)
    with pytest.raises(ValueError) as bad:
        metric_for("tracking", "coco_box")
    assert str(bad.value) == "tracking cells evaluate with mot, not 'coco_box'"
    with pytest.raises(ValueError) as bad:
        metric_for("pose", "mot")
    assert str(bad.value) == "pose cells evaluate with coco_keypoints, crowdpose, hie_wap or posetrack, not 'mot'"


def test_coco_keypoint_replicates_cover_ap_vis_and_invis_on_the_same_images():
    """AP-vis / AP-invis (paper 001) carry bootstrap replicates too: the vis / invis subsets keep every image, so
    one weight matrix resamples all three; all-ones weights give back each point value exactly."""
    metric = metric_for("pose", "coco_keypoints")
    schema = get_schema("coco17")
    frames = generate("tiny", seed=0, scenario="occluded_joints").frames("val")
    rng = np.random.default_rng(0)
    results = [
        {"image_id": n, "category_id": 1, "score": 1.0,
         "keypoints": np.c_[i.keypoints[:, :2] + rng.normal(0, 2.0, (17, 2)), np.ones(17)].ravel().tolist()}
        for n, f in enumerate(frames, start=1) for i in f.instances
    ]  # fmt: skip
    scored = metric.evaluate(frames, results, schema=schema, bootstrap=True)
    assert 0 < scored.values["AP_invis"] < 1 and 0 < scored.values["AP_vis"] < 1
    rs = scored.resampler
    ones = rs.values(np.ones((1, len(rs.units)), dtype=np.int32))
    assert set(ones) == set(metric.keys)
    for key in ("AP", "AP_vis", "AP_invis"):
        assert ones[key][0] == pytest.approx(scored.values[key], abs=1e-12)
    spread = rs.values(replicate_weights(len(rs.units), 50, 0))
    assert np.ptp(spread["AP_invis"]) > 0  # resampling images moves AP-invis
    with pytest.raises(ValueError, match="same units"):
        Merged(rs, Renamed(_OtherUnits(), {}))


class _OtherUnits:
    unit, units = "image", ["x"]

    def values(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        return {}
