"""Heatmap fusion of several pose models (paper 000 sections 3.1, 4.2-4.3; hie-pose Table 5 rows 4-6):
``pose_postproc.model_fusion`` (HRNet + SimpleNet) and ``pose_postproc.multi_input_fusion`` (256 x 192 + 384 x 288)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crowdbench.bench.matrix import expand
from crowdbench.bench.profiles import base_config
from crowdbench.bench.registry import get_plugin
from crowdbench.bench.specs import load_spec
from crowdbench.bench.stages.pose import load_frames, member_config
from crowdbench.bench.stages.pose_training import build_model, people, predict_poses
from crowdbench.bench.tasks import stage_keys
from crowdbench.datasets.keypoints import COCO_17

TINY = {"data.preset": "tiny", "pose.model.hrnet_width": 8, "pose.test.batch_size": 64}


class Scaled(torch.nn.Module):
    """Another model's heatmaps times a constant: fusing with it scales the fused heatmap predictably."""

    def __init__(self, inner: torch.nn.Module, factor: float) -> None:
        super().__init__()
        self.inner, self.factor, self.stride = inner, factor, inner.stride

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"heatmaps": self.inner(x)["heatmaps"] * self.factor}


def _setup():
    cfg = expand(load_spec("occlusion-aug/table4"), overrides=TINY, rows=[0])[0].config
    cfg.pose.train.udp, cfg.pose.test.flip_test = False, False
    frames = load_frames(cfg.data, "val", "coco17")
    torch.manual_seed(0)
    return cfg, frames, people(frames, 1)[:8], build_model(cfg.pose, 17)


def test_fusing_a_model_with_itself_changes_nothing_and_weights_scale_scores():
    cfg, frames, persons, model = _setup()
    alone = predict_poses(model, cfg.pose, frames, persons, COCO_17, "cpu", progress=False)
    fused = cfg.pose.model_copy(deep=True)
    fused.test.ensemble = [cfg.pose.model.model_copy()]
    same = predict_poses(model, fused, frames, persons, COCO_17, "cpu", progress=False, ensemble=[model])
    np.testing.assert_allclose(same, alone, rtol=1e-6, atol=1e-6)
    # fused with a model predicting zeros at weights 1:3, the heatmap is 1/4 of the model's: same peaks, 1/4 scores
    fused.test.ensemble_weights = (1.0, 3.0)
    quarter = predict_poses(
        model, fused, frames, persons, COCO_17, "cpu", progress=False, ensemble=[Scaled(model, 0.0)]
    )
    np.testing.assert_allclose(quarter[..., :2], alone[..., :2], atol=1e-6)
    np.testing.assert_allclose(quarter[..., 2], alone[..., 2] / 4, rtol=1e-5)


def test_fusion_with_a_different_model_changes_the_poses():
    cfg, frames, persons, model = _setup()
    other_cfg = cfg.model_copy(deep=True)
    get_plugin("pose_postproc.model_fusion").apply(other_cfg)
    member = other_cfg.pose.test.ensemble[0]
    assert member.arch == "simplebaseline" and member.fpn and member.backbone == "resnet48"  # smoke SimpleNet
    torch.manual_seed(1)
    second = build_model(member_config(other_cfg, 0).pose, 17)
    alone = predict_poses(model, cfg.pose, frames, persons, COCO_17, "cpu", progress=False)
    fused = predict_poses(model, other_cfg.pose, frames, persons, COCO_17, "cpu", progress=False, ensemble=[second])
    assert fused.shape == alone.shape and not np.allclose(fused, alone)


def test_multi_input_member_at_another_size_is_resized_to_the_cell_heatmap():
    """A member at 72 x 96 (smoke 384 x 288) sees the same box region; an identical network at the larger input
    fused with weight 0 gives exactly the small model's poses, and with weight 1 lands near them."""
    cfg, frames, persons, model = _setup()
    other = cfg.model_copy(deep=True)
    get_plugin("pose_postproc.multi_input_fusion").apply(other)
    assert [m.input_size for m in other.pose.test.ensemble] == [(72, 96)]
    alone = predict_poses(model, cfg.pose, frames, persons, COCO_17, "cpu", progress=False)
    other.pose.test.ensemble_weights = (1.0, 0.0)
    zero = predict_poses(model, other.pose, frames, persons, COCO_17, "cpu", progress=False, ensemble=[model])
    np.testing.assert_allclose(zero, alone, atol=1e-6)
    other.pose.test.ensemble_weights = ()
    both = predict_poses(model, other.pose, frames, persons, COCO_17, "cpu", progress=False, ensemble=[model])
    assert not np.allclose(both, alone)


def test_row_5_fuses_four_models_each_trained_once_and_shared_with_a_single_model_row():
    cfg = base_config("smoke", "pose")
    for name, options in [
        ("pose_model.hrnet_w48", {}),
        ("pose_postproc.model_fusion", {}),
        ("pose_postproc.multi_input_fusion", {}),
    ]:
        get_plugin(name, options).apply(cfg)
    sizes = [(m.arch, m.input_size) for m in cfg.pose.test.ensemble]
    assert sizes == [("simplebaseline", (48, 64)), ("hrnet", (72, 96)), ("simplebaseline", (72, 96))]
    keys = stage_keys(cfg)
    members = [keys[f"ensemble{i}"] for i in range(3)]
    assert len({keys["train"], *members}) == 4  # four models
    alone = base_config("smoke", "pose")
    get_plugin("pose_model.hrnet_w48").apply(alone)
    get_plugin("pose_input.384x288").apply(alone)
    assert stage_keys(alone)["train"] == keys["ensemble1"]  # the HRNet 384 x 288 row's model is the same stage


def test_bad_ensembles_name_the_problem():
    cfg, frames, persons, model = _setup()
    cfg.pose.test.ensemble = [cfg.pose.model.model_copy(update={"input_size": (64, 64)})]
    with pytest.raises(ValueError, match=r"ensemble\[0\].*aspect ratio"):
        predict_poses(model, cfg.pose, frames, persons, COCO_17, "cpu", progress=False, ensemble=[model])
    cfg.pose.test.ensemble = [cfg.pose.model.model_copy()]
    cfg.pose.test.ensemble_weights = (1.0,)
    with pytest.raises(ValueError, match="need 2 non-negative weights"):
        predict_poses(model, cfg.pose, frames, persons, COCO_17, "cpu", progress=False, ensemble=[model])
    with pytest.raises(ValueError, match="not a pose model plugin"):
        get_plugin("pose_postproc.model_fusion", {"model": "udp"}).apply(cfg)
