"""Tf-KD on detector logits, detector model fusion (WBF) and extra detector training data (issue 7, part B)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from crowdbench.bench.config import DataConfig, RunConfig
from crowdbench.bench.profiles import base_config
from crowdbench.bench.registry import get_plugin
from crowdbench.bench.stages.data import check_data, data_slice, load_frames, weighted_frames
from crowdbench.datasets.layout import DataError
from crowdbench.methods.detection.crowddet import emd_loss
from crowdbench.methods.detection.fusion import weighted_box_fusion
from crowdbench.methods.detection.kd import TfKDLoss, designed_teacher, kl_divergence, teacher_config


# ---------------------------------------------------------------------------------------------- Tf-KD
def test_designed_teacher_hand_case():
    p = designed_teacher(torch.tensor([1, 0]), 2, a=0.99, tau=20.0)
    assert p[1].tolist() == pytest.approx([0.5122, 0.4878], abs=1e-4)  # methods.md 2: (0.512, 0.488), true first
    assert p[0].tolist() == pytest.approx([0.4878, 0.5122], abs=1e-4)


def test_reg_loss_hand_case_and_element_mean():
    logits = torch.tensor([[0.3, -0.2], [1.0, 2.0], [0.0, 0.5]])
    labels = torch.tensor([1, 0, 1])
    loss = TfKDLoss("reg", alpha=0.1, tau=20.0, multiplier=100.0, a=0.99)(logits, labels)
    log_p = F.log_softmax(logits, -1)
    target = designed_teacher(labels, 2, 0.99, 20.0)
    kl_sum = (target * (target.log() - log_p)).sum()
    expected = 0.9 * F.cross_entropy(logits, labels) + 0.1 * 100.0 * kl_sum / (3 * 2)
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)
    # element mean = sum / (N K) = the old nn.KLDivLoss() default; batchmean is K times larger
    em = kl_divergence(log_p, target, torch.ones(3), "element_mean")
    assert float(em) == pytest.approx(float(F.kl_div(log_p, target, reduction="sum")) / 6, rel=1e-6)
    assert float(kl_divergence(log_p, target, torch.ones(3), "batchmean")) == pytest.approx(2 * float(em), rel=1e-6)


def test_lsr_and_self_modes():
    logits = torch.tensor([[0.3, -0.2], [1.0, 2.0]])
    labels = torch.tensor([1, 0])
    lsr = TfKDLoss("lsr", eps=0.1)(logits, labels)
    assert float(lsr) == pytest.approx(float(F.cross_entropy(logits, labels, label_smoothing=0.2)), rel=1e-6)
    teacher = torch.tensor([[0.0, 3.0], [2.0, 0.0]])
    kd = TfKDLoss("self", alpha=0.5, tau=4.0, multiplier=2.0)(logits, labels, teacher)
    kl = F.kl_div(F.log_softmax(logits / 4, -1), F.softmax(teacher / 4, -1), reduction="sum") / 4
    assert float(kd) == pytest.approx(float(0.5 * F.cross_entropy(logits, labels) + 0.5 * 16 * 2 * kl), rel=1e-6)
    with pytest.raises(ValueError, match="teacher"):
        TfKDLoss("self")(logits, labels)


def _emd_inputs(k: int, n: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, 2, generator=g, requires_grad=True)
    deltas = torch.randn(n, k, 4, generator=g, requires_grad=True)
    labels = torch.randint(0, 2, (n, k), generator=g)
    targets = torch.randn(n, k, 4, generator=g)
    return logits, deltas, labels, targets


@pytest.mark.parametrize("k", [1, 2])
def test_kd_with_alpha_zero_is_the_plain_emd_loss(k):
    logits, deltas, labels, targets = _emd_inputs(k)
    plain = emd_loss(logits, deltas, labels, targets)
    kd = emd_loss(logits, deltas, labels, targets, kd=TfKDLoss("reg", alpha=0.0))
    assert kd.item() == pytest.approx(plain.item(), rel=1e-6)


@pytest.mark.parametrize("k", [1, 2])
def test_kd_term_changes_class_logit_gradients_only(k):
    logits, deltas, labels, targets = _emd_inputs(k)
    kd_term = emd_loss(logits, deltas, labels, targets, kd=TfKDLoss("reg")) - emd_loss(logits, deltas, labels, targets)
    kd_term.backward()
    assert deltas.grad is not None and torch.count_nonzero(deltas.grad) == 0
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_kd_uses_the_minimising_permutation_per_slot():
    # slot 0 predicts what target slot 1 is (and vice versa): the KD term must pair them crosswise
    logits = torch.tensor([[[5.0, -5.0], [-5.0, 5.0]]])
    deltas = torch.zeros(1, 2, 4)
    labels = torch.tensor([[1, 0]])
    kd = TfKDLoss("reg")
    got = emd_loss(logits, deltas, labels, torch.zeros(1, 2, 4), kd=kd)
    crossed = kd(logits[:, 1], labels[:, 0]) + kd(logits[:, 0], labels[:, 1])
    assert float(got) == pytest.approx(float(crossed), rel=1e-6)


def test_kd_plugin_and_self_teacher_cell():
    cfg = base_config("smoke", "detection")
    get_plugin("kd_regularization").apply(cfg)
    assert (cfg.model.kd, cfg.model.kd_alpha, cfg.model.kd_tau, cfg.model.kd_multiplier) == ("reg", 0.1, 20.0, 100.0)
    assert teacher_config(cfg) is None
    self_cfg = base_config("smoke", "detection")
    get_plugin("kd_regularization", {"mode": "self"}).apply(self_cfg)
    assert (self_cfg.model.kd_alpha, self_cfg.model.kd_tau, self_cfg.model.kd_multiplier) == (0.95, 6.0, 50.0)
    teacher = teacher_config(self_cfg)
    assert teacher is not None and teacher.model == base_config("smoke", "detection").model

    from crowdbench.bench.tasks import stage_keys

    base_keys = stage_keys(base_config("smoke", "detection"))
    assert stage_keys(teacher)["train"] == base_keys["train"]  # the teacher is the baseline row's model
    assert stage_keys(self_cfg)["train"] != base_keys["train"]


def test_self_teacher_runs_on_the_student_batch(tmp_path):
    from crowdbench.methods.detection.faster_rcnn import build_detector
    from crowdbench.methods.detection.kd import attach_kd

    cfg = base_config("smoke", "detection")
    for key, value in {"fpn_channels": 16, "representation_size": 32, "min_size": 64, "max_size": 64}.items():
        setattr(cfg.model, key, value)
    cfg.model.box_batch_size_per_image = 16
    torch.manual_seed(0)
    torch.save(build_detector(cfg.model).state_dict(), tmp_path / "teacher.pt")
    cfg.model.kd, cfg.model.kd_alpha = "self", 0.5
    student = build_detector(cfg.model)
    attach_kd(student, cfg.model, tmp_path / "teacher.pt")
    student.train()
    teacher = student.roi_heads.kd.teacher.model
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    image = torch.rand(3, 64, 64)
    target = {"boxes": torch.tensor([[10.0, 10.0, 30.0, 50.0]]), "labels": torch.tensor([1])}
    losses = student([image], [target])
    assert torch.isfinite(losses["loss_emd"])
    losses["loss_emd"].backward()
    assert all(p.grad is None for p in teacher.parameters())


# ---------------------------------------------------------------------------------------------- fusion
@pytest.mark.parametrize("weights", [(1.0, 1.0), (1.0, 3.0), (0.2, 0.7)])
def test_fusion_of_identical_detections_is_the_identity(weights):
    boxes = np.array([[0, 0, 10, 20], [50, 50, 70, 90], [100, 0, 120, 30]], np.float32)
    scores = np.array([0.9, 0.6, 0.3], np.float32)
    fb, fs = weighted_box_fusion([boxes, boxes], [scores, scores], weights)
    np.testing.assert_allclose(fb, boxes, atol=1e-5)
    np.testing.assert_allclose(fs, scores, atol=1e-6)


def test_fusion_overlapping_boxes_and_single_model_boxes():
    a, b = np.array([[0, 0, 10, 10]], np.float32), np.array([[1, 0, 11, 10]], np.float32)
    fb, fs = weighted_box_fusion([a, b], [np.array([0.8]), np.array([0.4])], iou_thr=0.55)
    np.testing.assert_allclose(fb[0], (0.8 * a[0] + 0.4 * b[0]) / 1.2, atol=1e-5)
    assert fs[0] == pytest.approx(0.6)
    fb, fs = weighted_box_fusion([a, np.zeros((0, 4))], [np.array([0.8]), np.zeros(0)])
    np.testing.assert_allclose(fb, a)
    assert fs[0] == pytest.approx(0.4)  # seen by one of two models: half the score


def test_fusion_plugin_keys_reuse_both_models():
    from crowdbench.bench.tasks import stage_keys

    base = base_config("smoke", "detection")
    fused = base_config("smoke", "detection")
    get_plugin("detector.model_fusion", {"set": {"model.backbone": "resnet34"}}).apply(fused)
    other = base_config("smoke", "detection")
    other.model.backbone = "resnet34"
    keys, base_keys, other_keys = stage_keys(fused), stage_keys(base), stage_keys(other)
    assert keys["train"] == base_keys["train"] and keys["nms"] == base_keys["postprocess"]
    assert keys["postprocess"] != base_keys["postprocess"] and keys["evaluate"] != base_keys["evaluate"]
    assert fused.postprocess.fusion[0].model == other.model
    # the member cell is exactly the other row: its trained model is shared
    from crowdbench.methods.detection.fusion import member_config

    assert stage_keys(member_config(fused, fused.postprocess.fusion[0]))["train"] == other_keys["train"]


# ---------------------------------------------------------------------------------------------- extra data
def test_extra_data_plugins_add_synthetic_stand_ins():
    cfg = base_config("smoke", "detection")
    cfg.data.preset = "tiny"
    base = load_frames(cfg.data, "train")
    for name in ("extra_data.crowdhuman", "extra_data.coco_person", "extra_data.cityperson"):
        get_plugin(name).apply(cfg)
    get_plugin("extra_data.self_collected", {"weight": 0.5}).apply(cfg)
    assert cfg.data.extra_train == ("crowdhuman", "coco", "cityperson", "self_collected")
    assert cfg.data.extra_weights == (1.0, 1.0, 1.0, 0.5)
    check_data(cfg.data)
    frames = load_frames(cfg.data, "train")
    assert len(frames) == len(base) + 120 + 120 + 120 + 30
    assert len(load_frames(cfg.data, "val")) == len(load_frames(DataConfig(preset="tiny"), "val"))
    assert data_slice(cfg.data, "train")["extra_weights"] == [1.0, 1.0, 1.0, 0.5]


def test_weighted_frames():
    frames = list(range(10))
    assert weighted_frames(frames, 1.0, 0) == frames
    assert len(weighted_frames(frames, 0.3, 0)) == 3
    assert weighted_frames(frames, 2.0, 0) == frames * 2


@pytest.mark.parametrize("name", ["cityperson", "self_collected"])
def test_full_fails_for_extra_data_without_reader(tmp_path, name):
    data = DataConfig(source="crowdhuman", root=tmp_path, extra_train=(name,))
    (tmp_path / "crowdhuman").mkdir()
    for split in ("train", "val"):
        (tmp_path / "crowdhuman" / f"annotation_{split}.odgt").write_text("")
    with pytest.raises(DataError, match=name) as info:
        check_data(data)
    assert "\n" not in str(info.value)


def test_unknown_extra_dataset_is_an_error():
    with pytest.raises(ValueError, match="known: crowdhuman"):
        RunConfig.model_validate({"data": {"extra_train": ["nope"]}})
