"""Person re-identification embeddings for DeepSORT (methods.md section 7; paper 004 section 3.2, Table 5).

DeepSORT (Wojke et al. 2017) matches detections to tracks by the cosine distance of 128-D L2-normalised appearance
embeddings of 128 x 64 (h x w) person crops. Its network is trained with the *cosine softmax* of Wojke & Bewley 2018
("Deep Cosine Metric Learning for Person Re-Identification"): with the L2-normalised embedding ``r`` and class weights
``w_k``,

    p(y = k | r) = exp(κ · w̃_kᵀ r) / Σ_n exp(κ · w̃_nᵀ r),   w̃_k = w_k / ‖w_k‖,

and the loss is the cross-entropy of these probabilities with the identity label; ``κ = softplus(κ̂)`` is a learned
scale (``κ̂`` is a free parameter). Classes are identities, so the class weights are proxies of the identity centres
and the embeddings of one identity are pulled together on the unit sphere.

Paper 004 trains its own ReID model and combines features of the horizontally flipped crop and of several scales
(Table 5: + horizontal flip, + scale). :func:`embed` implements methods.md's test-time augmentation
``f = L2norm(Σ_s Σ_{t ∈ {id, hflip}} φ(resize_s(t(crop))))``. *Scale reading*: a scale ``s`` rescales the box about
its centre (``s > 1`` takes more context, ``s < 1`` less) before the region is resized to the model's fixed input
size, like the multi-scale test of the pose nets; the input size itself never changes (the paper's "models trained
using different scales" is not reproduced: one model, several box scales).

Crops follow DeepSORT's ``extract_image_patch``: the box is widened or narrowed about its centre to the input aspect
ratio (its height kept), then resampled (bilinear; pixels outside the image are black).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from crowdbench.bench.checkpoints import CheckpointError, fit_state_dict, read_state_dict
from crowdbench.bench.log import Tracker
from crowdbench.bench.training import Trainer
from crowdbench.datasets.images import ImageCache
from crowdbench.datasets.model import Frame

if TYPE_CHECKING:
    from crowdbench.bench.config import ReIDConfig

_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

Arch = Literal["small", "resnet50"]


# --------------------------------------------------------------------------------------------------- network


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def _small_trunk(width: int = 32) -> tuple[nn.Module, int]:
    """Three conv stages (two 3x3 conv + BN + ReLU each, 2x2 max-pool between) and global average pooling."""
    trunk = nn.Sequential(
        _block(3, width),
        nn.MaxPool2d(2),
        _block(width, 2 * width),
        nn.MaxPool2d(2),
        _block(2 * width, 4 * width),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    return trunk, 4 * width


def _resnet50_trunk(weights: Path | None) -> tuple[nn.Module, int]:
    """torchvision ResNet-50 without its classifier; ``weights``: a local ImageNet state dict (never downloaded)."""
    from torchvision.models import resnet50

    net = resnet50(weights=None)
    if weights is not None:
        load_backbone_weights(net, weights)
    net.fc = nn.Identity()
    return net, 2048


def load_backbone_weights(net: nn.Module, path: str | Path, setting: str = "tracking.reid.backbone_weights") -> None:
    """Load a torchvision ResNet-50 ImageNet state dict into ``net`` (a ``resnet50``); its ``fc`` is left out, any
    other missing, extra or differently shaped key is a one-line ``CheckpointError`` naming ``setting`` and ``path``."""
    state = read_state_dict(path, setting)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    fit_state_dict(
        net, state, path, "torchvision resnet50", setting=setting, allow_missing=lambda k: k.startswith("fc.")
    )


def load_reid_weights(model: ReIDNet, path: str | Path, setting: str | None = None) -> None:
    """Load a trained ReID state dict into ``model``. Only the training-only ID classifier (``classifier``,
    ``kappa``) may be absent from or extra in the file; anything else that does not fit is a one-line
    ``CheckpointError`` naming ``setting`` (when given) and ``path``."""
    state = read_state_dict(path, setting)
    if model.classifier is None:
        state = {k: v for k, v in state.items() if k not in ("classifier", "kappa")}
    arch = f"{model.arch} ReID of dim {model.dim}"
    fit_state_dict(model, state, path, arch, setting=setting)


class ReIDNet(nn.Module):
    """Trunk -> linear -> BN -> L2 normalisation (the embedding); in train mode also cosine-softmax ID logits.

    ``forward`` returns ``N x dim`` unit embeddings in eval mode and ``(embeddings, logits)`` in train mode when
    the net has a classifier (``num_ids``); ``input_hw`` is the crop size it expects (h, w).
    """

    def __init__(
        self, trunk: nn.Module, features: int, dim: int, num_ids: int | None, input_hw: tuple[int, int], arch: str
    ) -> None:
        super().__init__()
        self.trunk = trunk
        self.fc = nn.Linear(features, dim)
        self.bn = nn.BatchNorm1d(dim)
        self.arch, self.dim, self.input_hw = arch, dim, (int(input_hw[0]), int(input_hw[1]))
        self.classifier = nn.Parameter(torch.randn(num_ids, dim) * 0.01) if num_ids else None
        self.kappa = nn.Parameter(torch.tensor(math.log(math.expm1(10.0)))) if num_ids else None  # softplus -> 10

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        r = F.normalize(self.bn(self.fc(self.trunk(x))), dim=1)
        if not self.training or self.classifier is None:
            return r
        return r, F.softplus(self.kappa) * r @ F.normalize(self.classifier, dim=1).t()


def build_reid(
    arch: Arch = "small",
    dim: int = 128,
    num_ids: int | None = None,
    weights: Path | None = None,
    input_hw: tuple[int, int] = (128, 64),
) -> ReIDNet:
    """A ReID net: ``small`` (compact CNN, trains on CPU) or ``resnet50`` (torchvision trunk; ``weights`` = local
    ImageNet state dict). ``num_ids`` adds the cosine-softmax classifier used in training."""
    if arch == "small":
        if weights is not None:
            raise ValueError("reid arch 'small' has no pretrained trunk; weights apply to 'resnet50' only")
        trunk, features = _small_trunk()
    elif arch == "resnet50":
        trunk, features = _resnet50_trunk(weights)
    else:
        raise ValueError(f"unknown reid arch {arch!r}; choose 'small' or 'resnet50'")
    return ReIDNet(trunk, features, dim, num_ids, input_hw, arch)


def reid_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the cosine softmax (Wojke & Bewley 2018, eq. 6; the logits already carry κ)."""
    return F.cross_entropy(logits, labels)


def load_reid_model(r: ReIDConfig, path: Path, device: str) -> ReIDNet:
    """The trained ReID network of ``r`` (``tracking.reid``) at ``path`` on ``device``, without its ID classifier.
    Only the training-only classifier (``classifier``, ``kappa``) may be absent from or extra in the state dict: a
    file missing any embedding weight (e.g. ``tracking.reid.weights`` of another architecture) is a one-line error
    naming it."""
    model = build_reid(r.arch, dim=r.dim, input_hw=r.input_hw)
    try:
        load_reid_weights(model, path)
    except CheckpointError as err:
        if r.weights is None:
            raise
        raise CheckpointError(r.weights, err.problem, "tracking.reid.weights") from None  # the file it copied
    return model.to(device)


# --------------------------------------------------------------------------------------------------- crops


def crop_boxes(
    image: np.ndarray,
    boxes: np.ndarray,
    input_hw: tuple[int, int],
    scale: float = 1.0,
    jitter: np.ndarray | None = None,
) -> np.ndarray:
    """``N x h x w x 3`` uint8 crops of ``x1 y1 x2 y2`` boxes: aspect fixed to ``w/h`` about the centre (DeepSORT),
    box scaled by ``scale`` about its centre, then bilinear resampling. ``jitter`` (``N x 3``: dx, dy as fractions of
    the box size, log-scale) perturbs each box (training augmentation)."""
    h, w = input_hw
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = np.zeros((len(boxes), h, w, 3), dtype=np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        bh = max(y2 - y1, 1.0) * scale
        if jitter is not None:
            cx += jitter[i, 0] * bh * w / h
            cy += jitter[i, 1] * bh
            bh *= math.exp(jitter[i, 2])
        bw = bh * w / h
        sx, sy = w / bw, h / bh  # pixel-centre convention: out i <- src x1 + (i + 0.5) / sx - 0.5
        m = np.array(
            [[sx, 0.0, sx * (0.5 - (cx - bw / 2)) - 0.5], [0.0, sy, sy * (0.5 - (cy - bh / 2)) - 0.5]], dtype=np.float64
        )
        out[i] = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out


def to_tensor(crops: np.ndarray) -> torch.Tensor:
    """``N x h x w x 3`` uint8 RGB -> ``N x 3 x h x w`` float, ImageNet mean/std."""
    x = (crops.astype(np.float32) / 255.0 - _MEAN) / _STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def identity_crops(
    frames: list[Frame], min_height: float = 8, max_per_id: int | None = None
) -> tuple[list[tuple[int, np.ndarray]], np.ndarray]:
    """Training samples ``(frame position, box)`` and integer labels; an identity is a ``(video, track_id)`` pair
    (labels 0.. in order of first appearance). Ignored instances, untracked ones (``track_id < 0``) and boxes lower
    than ``min_height`` are skipped; ``max_per_id`` keeps that many samples per identity, evenly spaced in time."""
    ids: dict[tuple[str, int], int] = {}
    samples: list[tuple[int, np.ndarray]] = []
    labels: list[int] = []
    for f, frame in enumerate(frames):
        for inst in frame.instances:
            x1, y1, x2, y2 = inst.box
            if inst.ignore or inst.track_id < 0 or y2 - y1 < min_height or x2 <= x1:
                continue
            label = ids.setdefault((frame.video, int(inst.track_id)), len(ids))
            samples.append((f, inst.box.copy()))
            labels.append(label)
    y = np.asarray(labels, dtype=np.int64)
    if max_per_id is not None and len(y):
        keep = np.zeros(len(y), dtype=bool)
        for label in np.unique(y):
            where = np.flatnonzero(y == label)
            if len(where) > max_per_id:
                where = where[np.unique(np.round(np.linspace(0, len(where) - 1, max_per_id)).astype(int))]
            keep[where] = True
        samples = [s for s, k in zip(samples, keep, strict=True) if k]
        y = y[keep]
    return samples, y


# --------------------------------------------------------------------------------------------------- training


def _batch_indices(labels: np.ndarray, p: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """P identities (without replacement while there are enough) x K samples each (with replacement if fewer)."""
    ids = np.unique(labels)
    chosen = rng.choice(ids, size=p, replace=len(ids) < p)
    out = []
    for label in chosen:
        where = np.flatnonzero(labels == label)
        out.append(rng.choice(where, size=k, replace=len(where) < k))
    return np.concatenate(out)


def _training_crops(
    images: ImageCache,
    samples: list[tuple[int, np.ndarray]],
    labels: np.ndarray,
    batch_size: tuple[int, int],
    input_hw: tuple[int, int],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """One batch: sample positions (:func:`_batch_indices`) and their crops, each box shifted up to ±5 % and scaled
    ±10 %, each crop flipped with p = 0.5 (all drawn from ``rng`` in this order)."""
    idx = _batch_indices(labels, *batch_size, rng)
    flips = rng.random(len(idx)) < 0.5
    jitter = np.column_stack(
        [rng.uniform(-0.05, 0.05, len(idx)), rng.uniform(-0.05, 0.05, len(idx)), rng.uniform(-0.1, 0.1, len(idx))]
    )
    crops = np.stack(
        [
            crop_boxes(images(samples[i][0]), samples[i][1], input_hw, jitter=jitter[j : j + 1])[0]
            for j, i in enumerate(idx)
        ]
    )
    crops[flips] = crops[flips, :, ::-1]
    return idx, crops


def train_reid(
    frames: list[Frame],
    *,
    arch: Arch = "small",
    dim: int = 128,
    input_hw: tuple[int, int] = (128, 64),
    iterations: int = 2000,
    batch_size: tuple[int, int] = (8, 4),
    lr: float = 1e-3,
    weight_decay: float = 5e-4,
    seed: int = 0,
    device: str = "cpu",
    out_dir: Path,
    scratch: Path,
    weights: Path | None = None,
    min_height: float = 8,
    max_per_id: int | None = None,
    checkpoint_every: int = 100,
) -> dict[str, Any]:
    """Train a ReID net with the cosine softmax on the identities of ``frames`` (see the module docstring).

    Batches are P identities x K samples (``batch_size = (P, K)``); Adam, constant ``lr``; augmentation: horizontal
    flip (p = 0.5), centre shift up to ±5 % and box scale ±10 %. Randomness is a pure function of
    ``(seed, iteration)`` and the model is checkpointed every ``checkpoint_every`` iterations to
    ``scratch/checkpoint.pt``, so a run resumes exactly. Writes ``out_dir/model.pt`` and ``out_dir/train.json``.
    """
    samples, labels = identity_crops(frames, min_height=min_height, max_per_id=max_per_id)
    num_ids = int(labels.max()) + 1 if len(labels) else 0
    if num_ids < 2:
        raise ValueError(f"{num_ids} identities in the training frames: ReID training needs at least two")
    torch.manual_seed(seed)
    model = build_reid(arch, dim, num_ids, weights, input_hw).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    trainer = Trainer(model, opt, device, Path(scratch), what="ReID training")
    out_dir = Path(out_dir)
    images = ImageCache(frames, capacity=256)

    def step(it: int, _: None, bar: Tracker) -> float:
        idx, crops = _training_crops(images, samples, labels, batch_size, input_hw, np.random.default_rng([seed, it]))
        _, logits = model(to_tensor(crops).to(device))
        loss = trainer.step({"reid": reid_loss(logits, torch.from_numpy(labels[idx]).to(device))}, f"iteration {it}")
        bar.advance(1, f"loss {loss.total:.3f}")
        return loss.total

    losses = trainer.fit(iterations, step, checkpoint_every=checkpoint_every, bar="reid")
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out_dir / "model.pt")
    final_loss = float(np.mean(losses[-10:])) if losses else None
    summary = {"arch": arch, "dim": dim, "num_ids": num_ids, "input_hw": list(input_hw), "iterations": iterations}
    summary |= {
        "batch_size": list(batch_size),
        "lr": lr,
        "seed": seed,
        "samples": len(samples),
        "final_loss": final_loss,
    }
    summary["losses"] = losses
    (out_dir / "train.json").write_text(json.dumps(summary))
    return {key: v for key, v in summary.items() if key != "losses"}


# --------------------------------------------------------------------------------------------------- inference


@torch.inference_mode()
def embed(
    model: ReIDNet,
    frames: list[Frame],
    boxes: list[np.ndarray],
    *,
    flip: bool = False,
    scales: tuple[float, ...] = (1.0,),
    batch_size: int = 256,
    device: str = "cpu",
) -> list[np.ndarray]:
    """Per frame, ``N x dim`` float32 embeddings of its ``x1 y1 x2 y2`` boxes:
    ``L2norm(Σ_s Σ_{t ∈ {id, hflip}} φ(resize_s(t(crop))))`` (methods.md section 7; paper 004 Table 5), ``s``
    rescaling each box about its centre. Each frame's image is loaded once; crops are batched across frames."""
    if len(frames) != len(boxes):
        raise ValueError(f"{len(frames)} frames but {len(boxes)} box arrays")
    model.eval()
    sums = [np.zeros((len(np.asarray(b).reshape(-1, 4)), model.dim), dtype=np.float64) for b in boxes]
    pending: list[np.ndarray] = []
    owners: list[tuple[int, int]] = []  # (frame position, row) of each pending crop

    def flush() -> None:
        if not pending:
            return
        for b in range(0, len(pending), batch_size):
            x = to_tensor(np.stack(pending[b : b + batch_size])).to(device)
            feats = model(x)
            if flip:
                feats = feats + model(torch.flip(x, dims=[3]))
            for (f, row), v in zip(owners[b : b + batch_size], feats.double().cpu().numpy(), strict=True):
                sums[f][row] += v
        pending.clear()
        owners.clear()

    for f, (frame, b) in enumerate(zip(frames, boxes, strict=True)):
        b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
        if not len(b):
            continue
        image = frame.load_image()
        for s in scales:
            crops = crop_boxes(image, b, model.input_hw, scale=s)
            pending.extend(crops)
            owners.extend((f, row) for row in range(len(b)))
            if len(pending) >= batch_size:
                flush()
    flush()
    out = []
    for v in sums:
        norm = np.linalg.norm(v, axis=1, keepdims=True)
        out.append((v / np.maximum(norm, 1e-12)).astype(np.float32))
    return out


def reid_ap(
    embeddings: np.ndarray,
    labels: np.ndarray,
    gallery: np.ndarray | None = None,
    gallery_labels: np.ndarray | None = None,
) -> dict[str, float]:
    """Retrieval quality of cosine ranking: rank-1 accuracy and mAP. Without a gallery every sample queries all the
    others (itself excluded); queries without a positive in their gallery are skipped (``queries`` counts the rest).
    """
    q = np.asarray(embeddings, dtype=np.float64)
    ql = np.asarray(labels)
    own = gallery is None
    g = q if own else np.asarray(gallery, dtype=np.float64)
    gl = ql if own else np.asarray(gallery_labels)
    qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    gn = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
    sim = qn @ gn.T
    rank1, aps = [], []
    for i in range(len(q)):
        s, same = sim[i], gl == ql[i]
        valid = np.ones(len(g), dtype=bool)
        if own:
            valid[i] = False
        s, same = s[valid], same[valid]
        if not same.any():
            continue
        order = np.argsort(-s, kind="stable")
        hits = same[order]
        rank1.append(float(hits[0]))
        positions = np.flatnonzero(hits) + 1
        aps.append(float(np.mean(np.arange(1, len(positions) + 1) / positions)))
    return {
        "rank1": float(np.mean(rank1)) if rank1 else 0.0,
        "mAP": float(np.mean(aps)) if aps else 0.0,
        "queries": len(rank1),
    }
