"""Training and raw inference of the single-stage pose regression network (paper 002 section 5.1; methods.md 4).

Whole images, resized so the shorter side is ``min_size`` (longer side at most ``max_size``; 0 keeps the size),
flipped with probability 0.5 (joints swap sides with the schema's flip pairs), randomly cropped to ``crop`` x
``crop`` (joints outside become unlabelled; people left without a labelled joint are dropped) and padded to a
multiple of 32. SGD with momentum, a constant warm-up at ``warmup_factor`` (SMPR), LR x 0.1 at ``lr_steps``,
gradient clipping, AMP on CUDA. Batches and flips are a pure function of ``(seed, iteration)`` and crops of
``(seed, iteration, position)``, so an interrupted run resumes exactly from its last checkpoint.

The OKS scale of a person is ``AREA_FACTOR x`` its box area, the area the keypoint evaluator gives the same person
(``datasets/formats/coco.py``), so OKSFilter and PSM see the metric's own OKS.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from crowdbench.bench.checkpoints import load_weights
from crowdbench.bench.config import RegressionConfig, RunConfig
from crowdbench.bench.device import loader_workers
from crowdbench.bench.distributed import shard, world
from crowdbench.bench.log import Tracker
from crowdbench.bench.stages.detector_training import iteration_batches
from crowdbench.bench.training import Trainer
from crowdbench.datasets.formats.coco import AREA_FACTOR
from crowdbench.datasets.model import Frame, KeypointSchema
from crowdbench.methods.pose.regression.decode import decode_poses
from crowdbench.methods.pose.regression.losses import GlobalBatch, regression_losses
from crowdbench.methods.pose.regression.model import PoseRegressionNet, build_regression_model
from crowdbench.methods.pose.regression.targets import People

_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
PAD = 32


def resize_factor(height: int, width: int, min_size: int, max_size: int) -> float:
    """Scale that brings the shorter side to ``min_size`` without the longer exceeding ``max_size`` (1 if 0)."""
    if min_size <= 0:
        return 1.0
    return min(min_size / min(height, width), max_size / max(height, width))


def prepare_image(image: np.ndarray, scale: float) -> torch.Tensor:
    """uint8 RGB ``H x W x 3`` -> normalised float ``[3, h, w]`` resized by ``scale``."""
    if scale != 1.0:
        h, w = image.shape[:2]
        image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_LINEAR)
    x = (image.astype(np.float32) / 255.0 - _MEAN) / _STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def pad_batch(images: list[torch.Tensor]) -> torch.Tensor:
    """Zero-pad to a common size, a multiple of 32 (bottom / right)."""
    h = max(im.shape[1] for im in images)
    w = max(im.shape[2] for im in images)
    h, w = -(-h // PAD) * PAD, -(-w // PAD) * PAD
    return torch.stack([F.pad(im, (0, w - im.shape[2], 0, h - im.shape[1])) for im in images])


def frame_people(frame: Frame, num_joints: int) -> tuple[np.ndarray, np.ndarray]:
    """Joints ``[G, K, 3]`` and OKS areas ``[G]`` of the frame's non-ignored people with a labelled joint."""
    kps, areas = [], []
    for inst in frame.instances:
        if inst.ignore or inst.keypoints is None or not (inst.keypoints[:, 2] > 0).any():
            continue
        box = np.clip(inst.box, 0, [frame.width, frame.height, frame.width, frame.height])
        kps.append(inst.keypoints[:num_joints].astype(np.float32))
        areas.append(AREA_FACTOR * max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0))
    if not kps:
        return np.zeros((0, num_joints, 3), np.float32), np.zeros(0, np.float32)
    return np.stack(kps), np.asarray(areas, np.float32)


class RegressionSamples(torch.utils.data.Dataset):
    """``(frame index, flip, crop seed)`` -> ``(image [3, h, w], joints [G, K, 3], areas [G])`` after augmentation."""

    def __init__(self, frames: list[Frame], schema: KeypointSchema, cfg: RegressionConfig) -> None:
        self.frames, self.cfg = frames, cfg
        self.k = schema.num_keypoints
        self.flip_index = np.arange(self.k)
        for a, b in schema.flip_pairs:
            self.flip_index[a], self.flip_index[b] = b, a

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, key: tuple[int, bool, tuple[int, ...]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        index, flip, crop_seed = key
        frame, t = self.frames[index], self.cfg.train
        image = frame.load_image()
        kps, areas = frame_people(frame, self.k)
        if flip:
            image = image[:, ::-1]
            kps = kps[:, self.flip_index].copy()
            kps[..., 0] = frame.width - kps[..., 0]
        scale = resize_factor(*image.shape[:2], t.min_size, t.max_size)
        kps[..., :2] *= scale
        areas = areas * scale**2
        tensor = prepare_image(np.ascontiguousarray(image), scale)
        if t.crop is not None:
            tensor, kps, areas = random_crop(tensor, kps, areas, t.crop, np.random.default_rng(list(crop_seed)))
        return tensor, torch.from_numpy(kps), torch.from_numpy(areas)


def random_crop(
    image: torch.Tensor, kps: np.ndarray, areas: np.ndarray, size: int, rng: np.random.Generator
) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """A random ``size x size`` window (the whole side where the image is smaller); joints outside it become
    unlabelled and people without a labelled joint are dropped."""
    _, h, w = image.shape
    y0 = int(rng.integers(0, h - size + 1)) if h > size else 0
    x0 = int(rng.integers(0, w - size + 1)) if w > size else 0
    image = image[:, y0 : y0 + size, x0 : x0 + size]
    kps = kps.copy()
    kps[..., 0] -= x0
    kps[..., 1] -= y0
    ch, cw = image.shape[1:]
    outside = (kps[..., 0] < 0) | (kps[..., 1] < 0) | (kps[..., 0] >= cw) | (kps[..., 1] >= ch)
    kps[outside] = 0.0
    keep = (kps[..., 2] > 0).any(1)
    return image, kps[keep], areas[keep]


def _collate(batch: list) -> list:
    return batch


def iterations_of(cfg: RunConfig, n_frames: int) -> int:
    t = cfg.regression.train
    return max(1, math.ceil(t.epochs * t.epoch_scale * n_frames / t.batch_size))


def lr_factor(it: int, n_iter: int, cfg: RunConfig) -> float:
    """Constant warm-up at ``warmup_factor`` for ``warmup_iters`` (SMPR), then x0.1 at each of ``lr_steps``."""
    t = cfg.regression.train
    warm = t.warmup_factor if it < t.warmup_iters else 1.0
    return warm * 0.1 ** sum(it >= int(step * n_iter) for step in t.lr_steps)


def train_regression(
    cfg: RunConfig, frames: list[Frame], schema: KeypointSchema, device: str, out: Path, scratch: Path
) -> dict[str, Any]:
    """Train the network of ``cfg.regression`` on ``frames``; resumes from ``scratch/checkpoint.pt``."""
    r, t = cfg.regression, cfg.regression.train
    w = world()  # several ranks under torchrun: each takes its shard of the global batch, rank 0 writes
    torch.manual_seed(cfg.seed)
    model = build_regression_model(r.model, schema.num_keypoints).to(device)
    batch_norms = GlobalBatch(_sum_over_ranks if w.size > 1 else None, w.size)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    trainer = Trainer(model, opt, device, scratch, amp=t.amp, grad_clip=t.grad_clip, world=w)
    sigmas = torch.tensor(schema.sigmas, dtype=torch.float32, device=device)
    n_iter = iterations_of(cfg, len(frames))
    if len(frames) < t.batch_size:
        raise ValueError(f"{len(frames)} training frames is fewer than one batch of {t.batch_size}")

    def loader(start: int) -> torch.utils.data.DataLoader:
        pairs = iteration_batches(len(frames), cfg.seed, start, n_iter, t.batch_size, t.hflip)
        return torch.utils.data.DataLoader(
            RegressionSamples(frames, schema, r),
            batch_sampler=[
                shard([(i, f, (cfg.seed, it, pos)) for pos, (i, f) in enumerate(batch)], w)
                for it, batch in zip(range(start, n_iter), pairs, strict=True)
            ],
            num_workers=loader_workers(t.num_workers),
            collate_fn=_collate,
            pin_memory=device.startswith("cuda"),
            generator=torch.Generator().manual_seed(cfg.seed),
        )

    def step(it: int, batch: list, bar: Tracker) -> dict[str, float]:
        trainer.set_lr(t.lr * lr_factor(it, n_iter, cfg))
        images = pad_batch([im for im, _, _ in batch]).to(device, non_blocking=True)
        people = [People(k.to(device), a.to(device)) for _, k, a in batch]
        with trainer.autocast():
            output = trainer.net(images)
        output = {k: (v.float() if v is not None and v.is_floating_point() else v) for k, v in output.items()}
        loss = trainer.step(regression_losses(output, people, r.model, t, sigmas, batch_norms), f"iteration {it}")
        total = sum(loss.terms.values())
        bar.advance(1, f"loss {total:.3f}")
        return {"it": it, "loss": total, **loss.terms}

    losses = trainer.fit(n_iter, step, batches=loader, checkpoint_every=t.checkpoint_every)
    if not w.is_main:
        return {}
    torch.save(model.state_dict(), out / "model.pt")
    (out / "losses.json").write_text(json.dumps(losses))
    per_epoch = max(1, len(frames) // t.batch_size)
    history = [
        {"epoch": e + 1, "loss": float(np.mean([x["loss"] for x in losses[e * per_epoch : (e + 1) * per_epoch]]))}
        for e in range(math.ceil(len(losses) / per_epoch))
    ]
    (out / "history.json").write_text(json.dumps(history))
    tail = losses[-min(20, len(losses)) :]
    return {"iterations": n_iter, "final_loss": float(np.mean([x["loss"] for x in tail]))}


def _sum_over_ranks(x: torch.Tensor) -> torch.Tensor:
    import torch.distributed as dist

    dist.all_reduce(x)
    return x


def load_regression_model(cfg: RunConfig, path: Path, num_joints: int, device: str) -> PoseRegressionNet:
    model = build_regression_model(cfg.regression.model, num_joints)
    load_weights(model, path, "the pose-regression network")
    return model.to(device).eval()


@torch.inference_mode()
def candidates_of(model: PoseRegressionNet, images: torch.Tensor, cfg: RunConfig) -> list[dict[str, np.ndarray]]:
    """Per image: the locations whose classification score exceeds ``score_thr`` (top ``pre_nms_top_n`` per level),
    with their pose ``[n, K, 2]`` (refined when the network has a second stage) in the input's pixels and the
    sigmoid of classification, PSM and centre-ness (NaN for a branch the network lacks)."""
    t = cfg.regression.test
    out = model(images)
    offsets = out["refined"] if out["refined"] is not None else out["initial"]
    cls = out["cls"].float().sigmoid()
    psm = out["psm"].float().sigmoid() if out["psm"] is not None else torch.full_like(cls, float("nan"))
    ctr = out["centerness"].float().sigmoid() if out["centerness"] is not None else torch.full_like(cls, float("nan"))
    levels = out["levels"]
    result = []
    for b in range(images.shape[0]):
        picked = []
        for lvl in range(len(cfg.regression.model.strides)):
            idx = ((levels == lvl) & (cls[b] > t.score_thr)).nonzero(as_tuple=True)[0]
            if idx.numel() > t.pre_nms_top_n:
                idx = idx[cls[b, idx].topk(t.pre_nms_top_n).indices]
            picked.append(idx)
        idx = torch.cat(picked)
        poses = decode_poses(out["locations"][idx], out["strides"][idx], offsets[b, idx].float())
        result.append(
            {
                "poses": poses.cpu().numpy().astype(np.float32),
                "scores": cls[b, idx].cpu().numpy(),
                "psm": psm[b, idx].cpu().numpy(),
                "centerness": ctr[b, idx].cpu().numpy(),
            }
        )
    return result


def infer_regression(
    cfg: RunConfig, model: PoseRegressionNet, frames: list[Frame], device: str
) -> tuple[list[dict[str, np.ndarray]], dict[str, Any]]:
    """Candidates of every frame in its own pixels (clamped to the image), and the seconds per image at batch 1 of
    the network and the candidate selection (images decoded and resized beforehand) over the first
    ``timing_images`` frames, after one warm-up image."""
    t, r = cfg.regression.test, cfg.regression.train
    use_amp = r.amp and device.startswith("cuda")

    def prepared(chunk: list[Frame]) -> tuple[torch.Tensor, list[float]]:
        scales = [resize_factor(f.height, f.width, r.min_size, r.max_size) for f in chunk]
        images = pad_batch([prepare_image(f.load_image(), s) for f, s in zip(chunk, scales, strict=True)])
        return images.to(device), scales

    def run(images: torch.Tensor) -> list[dict[str, np.ndarray]]:
        with torch.autocast("cuda", enabled=use_amp):
            return candidates_of(model, images, cfg)

    per_frame: list[dict[str, np.ndarray]] = []
    with Tracker("infer", len(frames)) as bar:
        for start in range(0, len(frames), t.batch_size):
            chunk = frames[start : start + t.batch_size]
            images, scales = prepared(chunk)
            for f, s, c in zip(chunk, scales, run(images), strict=True):
                c["poses"] = c["poses"] / s
                c["poses"][..., 0] = c["poses"][..., 0].clip(0, f.width)
                c["poses"][..., 1] = c["poses"][..., 1].clip(0, f.height)
                per_frame.append(c)
            bar.advance(len(chunk))
    timed = [prepared([f])[0] for f in frames[: t.timing_images]]
    seconds = None
    if timed:
        run(timed[0])  # warm-up (allocator, cuDNN autotuning)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        begin = time.perf_counter()
        for images in timed:
            run(images)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = (time.perf_counter() - begin) / len(timed)
    return per_frame, {"seconds_per_image": seconds, "timed_images": len(timed)}
