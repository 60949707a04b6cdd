"""CrowdDet (Chu et al. CVPR 2020): EMD loss, refine module, target assignment, Set NMS, detector, plugins."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from crowdbench.bench.config import DetectorConfig, RunConfig
from crowdbench.bench.registry import get_plugin
from crowdbench.datasets.model import Frame, Instance
from crowdbench.methods.detection.crowddet import (
    IgnoreAwareTransform,
    MultiInstancePredictor,
    apply_nms,
    assign_slots,
    emd_loss,
    normal_nms,
    set_nms,
    targets_from_frame,
)
from crowdbench.methods.detection.faster_rcnn import build_detector

torch.set_num_threads(2)


def tiny_cfg(**kw: object) -> DetectorConfig:
    base = dict(
        backbone="resnet18",
        fpn_channels=32,
        representation_size=128,
        min_size=96,
        max_size=128,
        rpn_pre_nms_top_n_train=300,
        rpn_post_nms_top_n_train=200,
        rpn_pre_nms_top_n_test=200,
        rpn_post_nms_top_n_test=100,
        box_batch_size_per_image=64,
    )
    base.update(kw)
    return DetectorConfig(**base)


# ---------------------------------------------------------------------------------------------- EMD loss


def brute_force_emd(logits, deltas, labels, targets, perms=None) -> torch.Tensor:
    """Loop over proposals and permutations with scalar losses (the definition, no vectorisation)."""
    n, k = labels.shape
    total = 0.0
    for b in range(n):
        costs = []
        for p in perms or itertools.permutations(range(k)):
            c = logits.new_zeros(())
            for j in range(k):
                y = int(labels[b, j])
                if y >= 0:
                    c = c + F.cross_entropy(logits[b, p[j]][None], labels[b, j][None])
                if y > 0:
                    c = c + F.smooth_l1_loss(deltas[b, p[j]], targets[b, j], beta=1.0, reduction="sum")
            costs.append(c)
        total = total + min(costs, key=lambda c: float(c.detach()))
    return total / n


def random_case(n: int, k: int, seed: int, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, 2, generator=g, dtype=dtype) * 2
    deltas = torch.randn(n, k, 4, generator=g, dtype=dtype) * 1.5
    targets = torch.randn(n, k, 4, generator=g, dtype=dtype) * 1.5
    labels = torch.randint(-1, 2, (n, k), generator=g)
    return logits, deltas, labels, targets


@pytest.mark.parametrize("k", [1, 2, 3])
def test_emd_loss_matches_brute_force(k: int) -> None:
    logits, deltas, labels, targets = random_case(12, k, seed=k)
    labels[0] = -1  # all slots ignored
    labels[1] = 0  # all background
    labels[2] = 1  # all person
    got = emd_loss(logits, deltas, labels, targets)
    torch.testing.assert_close(got, brute_force_emd(logits, deltas, labels, targets))


def test_emd_loss_hand_made_k2() -> None:
    # Proposal 0: prediction 1 fits target slot 0 and prediction 0 fits slot 1 -> the swapped order wins.
    big = 8.0
    logits = torch.tensor([[[-big, big], [-big, big]], [[big, -big], [big, -big]]])
    t0, t1 = torch.tensor([0.0, 0, 0, 0]), torch.tensor([1.0, 1, 1, 1])
    deltas = torch.stack([torch.stack([t1, t0]), torch.stack([t0, t0])])
    targets = torch.stack([torch.stack([t0, t1]), torch.stack([t0, t1])])
    labels = torch.tensor([[1, 1], [0, -1]])  # proposal 1: background + ignore -> only CE of slot 0
    ce_pos = F.cross_entropy(logits[0, 0][None], torch.tensor([1]))
    ce_bg = F.cross_entropy(logits[1, 0][None], torch.tensor([0]))
    expected = (2 * ce_pos + ce_bg) / 2  # swapped order: zero regression cost
    torch.testing.assert_close(emd_loss(logits, deltas, labels, targets), expected)
    fixed = emd_loss(logits, deltas, labels, targets, emd=False)  # paper's "without EMD": slot j <-> target j
    torch.testing.assert_close(fixed, expected + 4.0 / 2)  # 2 slots x 4 coords x SmoothL1(1) = 0.5, mean over N=2
    assert fixed > emd_loss(logits, deltas, labels, targets)


def test_emd_loss_hand_made_k3() -> None:
    logits = torch.zeros(1, 3, 2)
    t = torch.tensor([[0.0, 0, 0, 0], [2.0, 0, 0, 0], [0.0, 0.5, 0, 0]])
    deltas = t[[2, 0, 1]][None]  # prediction p fits target (p - 1) mod 3
    labels = torch.tensor([[1, 1, 0]])  # third slot background: its regression is free
    got = emd_loss(logits, deltas, labels, t[None])
    torch.testing.assert_close(got, brute_force_emd(logits, deltas, labels, t[None]))
    torch.testing.assert_close(got, 3 * torch.log(torch.tensor(2.0)))  # CE of zero logits only


def test_emd_loss_gradients() -> None:
    logits, deltas, labels, targets = random_case(5, 2, seed=7, dtype=torch.float64)
    labels[:, 0] = 1
    logits.requires_grad_(True)
    deltas.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: emd_loss(a, b, labels, targets), (logits, deltas))
    # gradients equal those of the winning permutation (argmin is not differentiated)
    emd_loss(logits, deltas, labels, targets).backward()
    grads = logits.grad.clone(), deltas.grad.clone()
    logits.grad = deltas.grad = None
    brute_force_emd(logits, deltas, labels, targets).backward()
    torch.testing.assert_close(grads, (logits.grad, deltas.grad))
    assert grads[0].abs().sum() > 0 and grads[1].abs().sum() > 0


def test_emd_loss_empty() -> None:
    logits = torch.zeros(0, 2, 2, requires_grad=True)
    loss = emd_loss(logits, torch.zeros(0, 2, 4), torch.zeros(0, 2, dtype=torch.long), torch.zeros(0, 2, 4))
    assert loss.item() == 0.0 and loss.requires_grad


# ---------------------------------------------------------------------------------------------- Set NMS


def brute_force_set_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, thr: float) -> list[int]:
    """Greedy NMS by the definition: a kept box suppresses a later one iff IoU > thr and groups differ."""
    b, s, g = boxes.tolist(), scores.tolist(), groups.tolist()

    def iou(p: list[float], q: list[float]) -> float:
        inter = max(0.0, min(p[2], q[2]) - max(p[0], q[0])) * max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
        return inter / ((p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter)

    kept: list[int] = []
    for i in sorted(range(len(s)), key=lambda i: -s[i]):
        if all(g[i] == g[j] or iou(b[i], b[j]) <= thr for j in kept):
            kept.append(i)
    return kept


def test_set_nms_keeps_same_proposal_pair() -> None:
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 8], [0, 0, 8, 10]])  # IoU(0,1) = IoU(0,2) = 0.8
    scores = torch.tensor([0.9, 0.8, 0.7])
    groups = torch.tensor([0, 0, 1])
    assert set_nms(boxes, scores, groups, 0.5).tolist() == [0, 1]
    assert normal_nms(boxes, scores, 0.5).tolist() == [0]
    raw = {"boxes": boxes, "scores": scores, "groups": groups}
    assert apply_nms(raw, "set", 0.5, 0.01, None)["groups"].tolist() == [0, 0]
    assert apply_nms(raw, "normal", 0.5, 0.01, None)["groups"].tolist() == [0]
    assert apply_nms(raw, "none", 0.5, 0.75, None)["scores"].tolist() == pytest.approx([0.9, 0.8])
    assert apply_nms(raw, "set", 0.5, 0.0, 1)["scores"].numel() == 1
    with pytest.raises(ValueError, match="valid: normal, set, none"):
        apply_nms(raw, "soft", 0.5, 0.0, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("block", [7, 1024])
def test_set_nms_matches_brute_force(block: int) -> None:
    g = torch.Generator().manual_seed(0)
    for case in range(100):
        n = int(torch.randint(1, 60, (1,), generator=g))
        xy = torch.rand(n, 2, generator=g) * 50
        boxes = torch.cat([xy, xy + 10 + torch.rand(n, 2, generator=g) * 20], 1)
        scores = torch.rand(n, generator=g)
        groups = torch.randint(0, max(1, n // 2), (n,), generator=g)
        thr = [0.3, 0.5, 0.7][case % 3]
        expected = brute_force_set_nms(boxes, scores, groups, thr)
        assert set_nms(boxes, scores, groups, thr, block=block).tolist() == expected
    assert set_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5).numel() == 0


def test_set_nms_equals_normal_nms_with_distinct_groups() -> None:
    g = torch.Generator().manual_seed(1)
    xy = torch.rand(3000, 2, generator=g) * 400
    boxes = torch.cat([xy, xy + 40], 1)
    scores = torch.rand(3000, generator=g)
    assert set_nms(boxes, scores, torch.arange(3000), 0.5).tolist() == normal_nms(boxes, scores, 0.5).tolist()


# ---------------------------------------------------------------------------------------------- refine module


def test_refine_module_changes_predictions() -> None:
    torch.manual_seed(0)
    plain, refined = MultiInstancePredictor(16, k=2, refine=False), MultiInstancePredictor(16, k=2, refine=True)
    for p in refined.parameters():
        torch.nn.init.normal_(p, std=0.3)
    plain.load_state_dict({k: v for k, v in refined.state_dict().items() if not k.startswith("refine")})
    h = torch.randn(5, 16)
    a, b = plain(h), refined(h)
    torch.testing.assert_close(a["logits"], b["logits"])  # shared first stage identical
    assert not torch.allclose(b["refined_logits"], b["logits"])
    assert not torch.allclose(b["refined_deltas"], b["deltas"])
    with torch.no_grad():  # refined output depends on the fed-back first-stage predictions
        refined.delta[1].weight.add_(0.5)
    c = refined(h)
    torch.testing.assert_close(c["refined_deltas"][:, 0], b["refined_deltas"][:, 0])  # slot 0 untouched
    assert not torch.allclose(c["refined_deltas"][:, 1], b["refined_deltas"][:, 1])
    assert set(refined(h)) == {"logits", "deltas", "refined_logits", "refined_deltas"}
    assert MultiInstancePredictor(16, k=1, refine=True)(h)["refined_logits"].shape == (5, 1, 2)


def test_refine_changes_raw_detector_outputs() -> None:
    torch.manual_seed(0)
    m_ref, m_plain = build_detector(tiny_cfg(k=2, refine=True)), build_detector(tiny_cfg(k=2, refine=False))
    for p in m_ref.roi_heads.box_predictor.parameters():
        torch.nn.init.normal_(p, std=0.05)
    missing, unexpected = m_plain.load_state_dict(m_ref.state_dict(), strict=False)
    assert not missing and all(".refine" in k for k in unexpected)
    images = [torch.rand(3, 96, 96)]
    outs = []
    for m in (m_ref, m_plain):
        m.eval()
        m.roi_heads.score_thresh = -1.0
        with torch.no_grad():
            outs.append(m(images)[0])
    torch.testing.assert_close(outs[0]["groups"], outs[1]["groups"])  # same proposals, all kept
    assert not torch.allclose(outs[0]["scores"], outs[1]["scores"])
    assert not torch.allclose(outs[0]["boxes"], outs[1]["boxes"])


# ---------------------------------------------------------------------------------------------- target assignment


def test_assign_two_gts_ordered_by_iou() -> None:
    gt = torch.tensor([[2.0, 0, 12, 10], [0, 0, 10, 10]])
    props = torch.tensor([[0.5, 0, 10.5, 10], [100, 100, 120, 120]])  # IoU 0.739 with gt0, 0.905 with gt1
    labels, matched, sample = assign_slots(props, gt, torch.zeros(0, 4), k=2)
    assert labels.tolist() == [[1, 1], [0, 0]]
    torch.testing.assert_close(matched[0], gt[[1, 0]])
    torch.testing.assert_close(matched[1], props[1].expand(2, 4))  # background slots: zero regression target
    assert sample.tolist() == [1, 0]


def test_assign_ignore_and_dummy_slots() -> None:
    ignore = torch.tensor([[50.0, 50, 100, 100]])
    gt = torch.tensor([[0.0, 0, 10, 10]])
    props = torch.tensor([[0.0, 0, 10, 10], [60, 60, 80, 80], [40, 40, 60, 60], [0, 0, 10, 9]])
    labels, _, sample = assign_slots(props, gt, ignore, k=2)
    assert labels.tolist() == [[1, 0], [0, 0], [0, 0], [1, 0]]  # one GT: slot 2 is a dummy background
    assert sample.tolist() == [1, -1, 0, 1]  # inside ignore (IoA 1) never sampled; IoA 0.25 -> background
    labels, matched, sample = assign_slots(props, torch.zeros(0, 4), torch.zeros(0, 4), k=3)  # no GT at all
    assert labels.shape == (4, 3) and labels.sum() == 0 and sample.tolist() == [0, 0, 0, 0]
    torch.testing.assert_close(matched, props[:, None].expand(4, 3, 4))


def test_roi_heads_sampling_never_picks_ignored_proposals() -> None:
    torch.manual_seed(0)
    heads = build_detector(tiny_cfg(k=2, box_batch_size_per_image=512)).roi_heads
    gt = torch.tensor([[0.0, 0, 40, 40], [10, 0, 50, 40]])
    ignore_prop = torch.tensor([[70.0, 70, 90, 90]])
    props = torch.cat([torch.tensor([[5.0, 0, 45, 40], [0, 50, 30, 90]]), ignore_prop])
    targets = [
        {"boxes": gt, "labels": torch.ones(2, dtype=torch.long), "ignore_boxes": torch.tensor([[60.0, 60, 100, 100]])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long), "ignore_boxes": torch.zeros(0, 4)},
        {"boxes": gt[:1], "labels": torch.ones(1, dtype=torch.long)},  # no ignore_boxes key at all
    ]
    out_props, labels, deltas = heads.select_training_samples([props, props.clone(), props.clone()], targets)
    assert not (out_props[0] == ignore_prop).all(1).any()
    assert len(out_props[0]) == 4  # 2 proposals + 2 GT appended; the ignored one dropped
    first = (out_props[0] == props[0]).all(1).nonzero()[0, 0]
    assert labels[0][first].tolist() == [1, 1]
    assert len(out_props[1]) == 3 and labels[1].sum() == 0 and deltas[1].abs().sum() == 0
    assert labels[2].shape[1] == 2 and (labels[2][:, 1] == 0).all()  # dummy second slot
    for d in deltas:
        assert d.shape[1:] == (2, 4)


def test_transform_rescales_ignore_boxes() -> None:
    t = IgnoreAwareTransform(200, 400, [0.0] * 3, [1.0] * 3)
    t.eval()
    target = {"boxes": torch.tensor([[10.0, 10, 20, 20]]), "ignore_boxes": torch.tensor([[0.0, 0, 50, 100]])}
    _, out = t([torch.rand(3, 100, 100)], [target])
    torch.testing.assert_close(out[0]["ignore_boxes"], torch.tensor([[0.0, 0, 100, 200]]))
    torch.testing.assert_close(target["ignore_boxes"], torch.tensor([[0.0, 0, 50, 100]]))  # input untouched


def test_targets_from_frame() -> None:
    frame = Frame(
        "v",
        0,
        100,
        100,
        instances=[Instance([1, 2, 30, 40]), Instance([5, 5, 9, 9], ignore=True), Instance([3, 3, 3, 9])],
        ignore_regions=np.array([[50.0, 50, 60, 60]]),
    )
    t = targets_from_frame(frame, "cpu")
    assert t["boxes"].tolist() == [[1, 2, 30, 40]] and t["labels"].tolist() == [1]
    assert t["boxes"].dtype == torch.float32 and t["labels"].dtype == torch.int64
    assert t["ignore_boxes"].tolist() == [[50, 50, 60, 60], [5, 5, 9, 9]]
    empty = targets_from_frame(Frame("v", 1, 10, 10), "cpu")
    assert empty["boxes"].shape == (0, 4) and empty["ignore_boxes"].shape == (0, 4)


# ---------------------------------------------------------------------------------------------- detector


@pytest.mark.parametrize(("k", "refine"), [(1, False), (1, True), (2, False), (2, True)])
def test_detector_train_step_and_raw_eval(k: int, refine: bool) -> None:
    torch.manual_seed(0)
    model = build_detector(tiny_cfg(k=k, refine=refine, emd=True))
    images = [torch.rand(3, 96, 96), torch.rand(3, 96, 96)]
    targets = [
        {
            "boxes": torch.tensor([[10.0, 10, 40, 80], [25, 12, 55, 85]]),
            "labels": torch.ones(2, dtype=torch.long),
            "ignore_boxes": torch.tensor([[60.0, 60, 95, 95]]),
        },
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long), "ignore_boxes": torch.zeros(0, 4)},
    ]
    model.train()
    losses = model(images, targets)
    expected = {"loss_objectness", "loss_rpn_box_reg", "loss_emd"} | ({"loss_emd_refine"} if refine else set())
    assert set(losses) == expected
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert model.roi_heads.box_predictor.cls[0].weight.grad.abs().sum() > 0
    model.eval()
    model.roi_heads.score_thresh = -1.0
    with torch.no_grad():
        (raw,) = model([torch.rand(3, 64, 96)])  # resized to 96 x 144 inside, boxes back in 64 x 96 pixels
    assert set(raw) == {"boxes", "scores", "groups"} and raw["groups"].dtype == torch.int64
    assert len(raw["boxes"]) > 0 and raw["boxes"][:, 2].max() <= 96 and raw["boxes"][:, 3].max() <= 64
    assert raw["boxes"][:, 3].max() > 48  # rescaled back to the original size (not 96-high network input)
    counts = torch.bincount(raw["groups"])
    assert (counts[counts > 0] == k).all()  # all K boxes of every kept proposal
    final = apply_nms(raw, "set", 0.5, 0.01, 100)
    assert len(final["boxes"]) <= 100


def test_build_detector_rejects_unknown_backbone() -> None:
    with pytest.raises(ValueError, match="valid: resnet18, resnet34, resnet50, resnet101, resnet152"):
        build_detector(tiny_cfg(backbone="vgg16"))


# ---------------------------------------------------------------------------------------------- plugins


def changed(before: dict, after: dict, prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key in before:
        if isinstance(before[key], dict):
            out |= changed(before[key], after[key], f"{prefix}{key}.")
        elif before[key] != after[key]:
            out.add(prefix + key)
    return out


@pytest.mark.parametrize(
    ("name", "options", "fields"),
    [
        ("crowddet.emd_loss", {}, {"model.k": 2, "model.emd": True}),
        ("crowddet.emd_loss", {"k": 3}, {"model.k": 3, "model.emd": True}),
        ("crowddet.refine_module", {}, {"model.refine": True}),
        ("crowddet.set_nms", {"iou": 0.6}, {"postprocess.nms": "set", "postprocess.nms_iou": 0.6}),
    ],
)
def test_plugins_change_exactly_their_fields(name: str, options: dict, fields: dict) -> None:
    run = RunConfig()
    before = run.model_dump()
    plugin = get_plugin(name, options)
    plugin.apply(run)
    after = run.model_dump()
    assert changed(before, after) == set(fields)
    for dotted, value in fields.items():
        section, key = dotted.split(".")
        assert after[section][key] == value
    assert plugin.stage in {"train", "postprocess"} and plugin.hook in {"loss", "model", "postprocess"}


def test_plugin_set_nms_default_and_bad_option() -> None:
    run = RunConfig()
    get_plugin("crowddet.set_nms").apply(run)
    assert run.postprocess.nms == "set" and run.postprocess.nms_iou == 0.5
    with pytest.raises(ValueError, match="options: k"):
        get_plugin("crowddet.emd_loss", {"k": 4})
