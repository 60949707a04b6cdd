"""Top-down pose nets (``crowdbench.methods.pose.models``): shapes, strides, init, parameter counts."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from crowdbench.methods.pose.models import build_pose_model

K = 17
needs_timm = pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="HRNet needs timm")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: threads only add sync overhead (large on a shared, loaded CI box)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


X = torch.randn(1, 3, 64, 48, generator=torch.Generator().manual_seed(0))


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("fpn", [False, True])
@pytest.mark.parametrize(("deconv_layers", "stride"), [(3, 4), (2, 8), (1, 16)])
def test_simplebaseline_shapes_and_stride(deconv_layers: int, stride: int, fpn: bool) -> None:
    offsets = deconv_layers != 2  # both head variants over the grid
    model = build_pose_model(
        "simplebaseline", num_joints=K, backbone="resnet18", deconv_layers=deconv_layers, fpn=fpn, offsets=offsets
    ).eval()
    assert model.stride == stride and model.num_joints == K
    with torch.no_grad():
        out = model(X)
    hw = (64 // stride, 48 // stride)
    assert out["heatmaps"].shape == (1, K, *hw)
    if offsets:
        assert out["offsets"].shape == (1, 2 * K, *hw)
    else:
        assert "offsets" not in out


@needs_timm
@pytest.mark.parametrize(("width", "branch_channels"), [(8, 8), (18, 16)])  # timm's hrnet_w18_small: 16/32/64/128
def test_hrnet_stride4_highres_branch(width: int, branch_channels: int) -> None:
    model = build_pose_model("hrnet", num_joints=K, hrnet_width=width, offsets=True).eval()
    assert model.stride == 4
    assert model.features.out_channels == branch_channels == model.final_layer.in_channels
    with torch.no_grad():
        out = model(X)
    assert out["heatmaps"].shape == (1, K, 16, 12)
    assert out["offsets"].shape == (1, 2 * K, 16, 12)


@pytest.mark.parametrize(
    ("kwargs", "published_m"),
    [
        pytest.param(dict(arch="hrnet", hrnet_width=32), 28.5, marks=needs_timm),  # Sun et al. 2019, Table 1
        (dict(arch="simplebaseline", backbone="resnet50"), 34.0),  # same table, SimpleBaseline ResNet-50
    ],
)
def test_parameter_count_matches_paper(kwargs: dict, published_m: float) -> None:
    with torch.device("meta"):  # counting only: no init cost
        model = build_pose_model(num_joints=K, **kwargs)
    assert n_params(model) / 1e6 == pytest.approx(published_m, rel=0.05)
    if kwargs["arch"] == "hrnet":
        assert model.features.out_channels == 32


@pytest.mark.parametrize(
    "kwargs", [pytest.param(dict(arch="hrnet", hrnet_width=8), marks=needs_timm), dict(arch="simplebaseline", fpn=True)]
)
def test_backward_gives_finite_grads_everywhere(kwargs: dict) -> None:
    model = build_pose_model(num_joints=K, backbone="resnet18", offsets=True, **kwargs).train()
    out = model(torch.randn(2, 3, 64, 48))
    (out["heatmaps"].square().mean() + out["offsets"].abs().mean()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name  # no dead branches (pruned HRNet fuse layers, unused FPN outputs)
        assert torch.isfinite(p.grad).all(), name


@needs_timm
def test_same_seed_same_weights_and_init() -> None:
    states = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        states.append(build_pose_model("hrnet", num_joints=K, hrnet_width=8, offsets=True).state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not torch.equal(states[0]["final_layer.weight"], states[2]["final_layer.weight"])
    w = states[0]["final_layer.weight"]
    assert w.std().item() == pytest.approx(0.001, rel=0.3) and not states[0]["final_layer.bias"].any()


def test_backbone_weights_load_from_local_file(tmp_path) -> None:
    torch.manual_seed(0)
    src = build_pose_model("simplebaseline", num_joints=K, backbone="resnet18", deconv_layers=1)
    state = dict(src.features.backbone.state_dict(), **{"fc.weight": torch.zeros(1000, 512)})  # classifier ignored
    torch.save(state, tmp_path / "r18.pth")
    torch.manual_seed(1)
    dst = build_pose_model(
        "simplebaseline", num_joints=K, backbone="resnet18", deconv_layers=1, weights=tmp_path / "r18.pth"
    )
    assert torch.equal(dst.features.backbone.conv1.weight, src.features.backbone.conv1.weight)
    torch.save({"conv1.weight": state["conv1.weight"]}, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="missing"):
        build_pose_model("simplebaseline", num_joints=K, backbone="resnet18", weights=tmp_path / "partial.pth")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(arch="vitpose"), "simplebaseline"),
        (dict(arch="simplebaseline", backbone="resnet7"), "resnet152"),
        (dict(arch="simplebaseline", deconv_layers=4), r"\[1, 2, 3\]"),
        pytest.param(dict(arch="hrnet", hrnet_width=40), r"\[8, 18, 27, 32, 48\]", marks=needs_timm),
    ],
)
def test_unknown_choices_list_valid_values(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_pose_model(num_joints=K, **kwargs)
