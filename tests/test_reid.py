"""ReID embeddings for DeepSORT (methods/tracking/reid.py; methods.md section 7, paper 004 section 3.2): crops and
test-time augmentation, identity labels, training that learns the synthetic identities, determinism and resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from interruption import train_killed_and_resumed  # tests/ is on sys.path

from crowdbench.bench.config import ReIDConfig
from crowdbench.bench.errors import NonFiniteLossError
from crowdbench.datasets.model import Frame, Instance
from crowdbench.datasets.synthetic import generate
from crowdbench.methods.tracking import reid
from crowdbench.methods.tracking.reid import (
    build_reid,
    crop_boxes,
    embed,
    identity_crops,
    load_reid_model,
    reid_ap,
    to_tensor,
    train_reid,
)

HW = (32, 16)


@pytest.fixture(scope="module")
def tiny_train():
    return generate("tiny", 0).frames("train")


def _frame(video: str, index: int, instances: list[Instance], seed: int = 0) -> Frame:
    image = np.random.default_rng(seed).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    return Frame(video, index, 96, 96, image=lambda: image, instances=instances)


def _model(dim: int = 16) -> reid.ReIDNet:
    torch.manual_seed(0)
    return build_reid("small", dim, input_hw=HW).eval()


def test_embeddings_are_unit_vectors_per_frame_and_empty_inputs_give_empty_arrays():
    model = _model()
    frames = [_frame("a", 0, [], 1), _frame("a", 1, [], 2), _frame("a", 2, [], 3)]
    boxes = [np.array([[10, 10, 30, 60], [40, 5, 70, 90.0]]), np.zeros((0, 4)), np.array([[-5, 50, 20, 120.0]])]
    out = embed(model, frames, boxes, batch_size=2)
    assert [e.shape for e in out] == [(2, 16), (0, 16), (1, 16)]
    assert all(e.dtype == np.float32 for e in out)
    assert np.allclose(np.linalg.norm(np.concatenate(out), axis=1), 1.0, atol=1e-5)
    assert embed(model, [], []) == []
    # the same boxes in other batches give the same embeddings (eval-mode BN: no batch dependence)
    again = embed(model, frames, boxes, batch_size=256)
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(out, again, strict=True))


def test_flip_is_the_normalised_sum_with_the_mirrored_crop_and_scales_change_the_embedding():
    model = _model()
    frame = _frame("a", 0, [], 7)
    boxes = np.array([[10, 10, 34, 70], [50, 20, 80, 92.0]])
    x = to_tensor(crop_boxes(frame.load_image(), boxes, HW))
    with torch.no_grad():
        by_hand = torch.nn.functional.normalize(model(x) + model(torch.flip(x, dims=[3])), dim=1).numpy()
    plain = embed(model, [frame], [boxes])[0]
    flipped = embed(model, [frame], [boxes], flip=True)[0]
    assert np.allclose(flipped, by_hand, atol=1e-5)
    assert not np.allclose(flipped, plain, atol=1e-3)
    with torch.no_grad():
        big = to_tensor(crop_boxes(frame.load_image(), boxes, HW, scale=1.2))
        multi = torch.nn.functional.normalize(model(x) + model(big), dim=1).numpy()
    scaled = embed(model, [frame], [boxes], scales=(1.0, 1.2))[0]
    assert np.allclose(scaled, multi, atol=1e-5)
    assert not np.allclose(scaled, plain, atol=1e-3)


def test_crop_scale_enlarges_the_box_about_its_centre():
    image = np.zeros((100, 100, 3), dtype=np.uint8)
    image[40:60, 45:55] = 255  # a 10 x 20 white box; crops keep the 1:2 aspect
    box = np.array([[45, 40, 55, 60.0]])
    same = crop_boxes(image, box, (20, 10))[0]
    assert same.min() == 255  # the crop is the box exactly
    double = crop_boxes(image, box, (20, 10), scale=2.0)[0]
    assert double[5:15, 3:7].min() == 255 and double[:3].max() == 0 and double[-3:].max() == 0


def test_identity_labels_are_video_track_pairs_and_skip_ignored_and_tiny_people():
    box = [10, 10, 30, 60]
    frames = [
        _frame("v1", 0, [Instance(box, track_id=1), Instance(box, track_id=2), Instance(box, track_id=3, ignore=True)]),
        _frame("v1", 1, [Instance(box, track_id=2), Instance([10, 10, 14, 15], track_id=1)]),
        _frame("v2", 0, [Instance(box, track_id=1), Instance(box, track_id=-1)]),
        _frame("v1", 2, [Instance(box, track_id=1)]),
    ]
    samples, labels = identity_crops(frames)
    assert [f for f, _ in samples] == [0, 0, 1, 2, 3]
    assert labels.tolist() == [0, 1, 1, 2, 0]  # (v1, 1), (v1, 2), (v2, 1)
    assert np.array_equal(samples[0][1], np.array(box, dtype=float))
    samples, labels = identity_crops(frames, min_height=4)
    assert labels.tolist() == [0, 1, 1, 0, 2, 0]  # the 5-pixel person counts now
    _, labels = identity_crops(frames, max_per_id=1)
    assert sorted(labels.tolist()) == [0, 1, 2]


def test_reid_ap_on_known_rankings():
    e = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]])
    assert reid_ap(e, np.array([0, 0, 1, 1])) == {"rank1": 1.0, "mAP": 1.0, "queries": 4}
    swapped = reid_ap(e, np.array([0, 1, 0, 1]))
    assert swapped["rank1"] == 0.0 and swapped["mAP"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    cross = reid_ap(e[:2], np.array([0, 1]), gallery=e[2:], gallery_labels=np.array([1, 0]))
    assert cross["rank1"] == 0.5


def test_training_learns_identities_on_unseen_frames(tmp_path):
    """Train on the first half of each video, then rank the second half: people in the last frames queried against
    the first held-out frames (the gap makes pose, size and occlusion differ). Measured on this machine (4 ``small``
    videos, 34 identities, 32 x 16 crops, 300 iterations): rank-1 0.36 -> 0.58, mAP 0.35 -> 0.58."""
    videos = list(generate("small", 0).videos("train").values())[:4]
    n = len(videos[0])
    train = [f for v in videos for f in v[: n // 2]]
    test = [f for v in videos for f in v[n // 2 :]]
    samples, labels = identity_crops(test)
    per: dict[int, list[np.ndarray]] = {}
    for f, b in samples:
        per.setdefault(f, []).append(b)
    boxes = [np.array(per.get(i, [])).reshape(-1, 4) for i in range(len(test))]
    index = np.array([test[f].index for f, _ in samples])
    query, gallery = index >= n - n // 6, index < n // 2 + n // 6

    def score(model):
        e = np.concatenate(embed(model, test, boxes))
        return reid_ap(e[query], labels[query], e[gallery], labels[gallery])

    torch.manual_seed(0)
    before = score(build_reid("small", 128, input_hw=HW))
    info = train_reid(
        train, input_hw=HW, iterations=300, batch_size=(8, 4), lr=2e-3, seed=0, out_dir=tmp_path / "m", scratch=tmp_path
    )
    after = score(load_reid_model(ReIDConfig(arch="small", dim=128, input_hw=HW), tmp_path / "m" / "model.pt", "cpu"))
    assert info["num_ids"] == 34 and json.loads((tmp_path / "m" / "train.json").read_text())["iterations"] == 300
    assert after["queries"] == before["queries"] > 100
    assert after["rank1"] > before["rank1"] + 0.12 and after["rank1"] > 0.45
    assert after["mAP"] > before["mAP"] + 0.12


def test_training_is_deterministic_and_resumes_exactly_after_interruption(tiny_train, tmp_path, monkeypatch):
    kw = {"input_hw": HW, "dim": 16, "iterations": 12, "batch_size": (4, 2), "seed": 3, "checkpoint_every": 5}

    def train(out: Path, scratch: Path) -> None:
        train_reid(tiny_train, out_dir=out, scratch=scratch, **kw)

    (tmp_path / "s_b").mkdir()
    train(tmp_path / "b", tmp_path / "s_b")
    ref, out, killed = train_killed_and_resumed(train, tmp_path, monkeypatch)
    assert killed["iteration"] == 5
    a, b, c = (torch.load(d / "model.pt", weights_only=True) for d in (ref, tmp_path / "b", out))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(a[k], c[k]) for k in a)
    losses = [json.loads((d / "train.json").read_text())["losses"] for d in (ref, out)]
    assert losses[0] == losses[1] and len(losses[0]) == 12


def test_nan_loss_raises_naming_the_iteration(tiny_train, tmp_path, monkeypatch):
    monkeypatch.setattr(reid, "reid_loss", lambda logits, labels: logits.sum() * float("nan"))
    with pytest.raises(NonFiniteLossError, match="iteration 0"):
        train_reid(tiny_train, input_hw=HW, dim=16, iterations=3, batch_size=(4, 2), out_dir=tmp_path, scratch=tmp_path)


def test_resnet50_loads_a_local_imagenet_state_dict_and_embeds(tmp_path):
    from torchvision.models import resnet50

    state = resnet50(weights=None).state_dict()
    state["conv1.weight"].fill_(0.01)
    torch.save(state, tmp_path / "r50.pt")
    model = build_reid("resnet50", 32, num_ids=5, weights=tmp_path / "r50.pt", input_hw=(64, 32))
    assert torch.all(model.trunk.conv1.weight == 0.01)
    model.train()
    emb, logits = model(torch.randn(2, 3, 64, 32))
    assert emb.shape == (2, 32) and logits.shape == (2, 5)
    out = embed(model, [_frame("a", 0, [])], [np.array([[10, 10, 30, 60.0]])], flip=True)[0]
    assert out.shape == (1, 32) and np.isclose(np.linalg.norm(out), 1.0, atol=1e-5)
