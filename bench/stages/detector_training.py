"""Train and run a torchvision detector on our frames: resumable SGD loop, AMP on CUDA, raw (pre-NMS) inference."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crowdbench.bench.config import RunConfig
from crowdbench.bench.device import loader_workers
from crowdbench.bench.distributed import shard, world
from crowdbench.bench.log import Tracker
from crowdbench.bench.training import Trainer
from crowdbench.datasets.formats.crowdhuman import record_id
from crowdbench.datasets.model import Frame
from crowdbench.methods.detection.crowddet import targets_from_frame
from crowdbench.methods.detection.faster_rcnn import build_detector, load_detector_weights
from crowdbench.methods.detection.kd import attach_kd


def image_tensor(frame: Frame, flip: bool = False) -> torch.Tensor:
    image = frame.load_image()
    if flip:
        image = image[:, ::-1]
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)


def flip_target(target: dict[str, torch.Tensor], width: int) -> dict[str, torch.Tensor]:
    out = dict(target)
    for key in ("boxes", "ignore_boxes"):
        boxes = target[key].clone()
        if len(boxes):
            boxes[:, [0, 2]] = width - target[key][:, [2, 0]]
        out[key] = boxes
    return out


def lr_factor(it: int, cfg: RunConfig) -> float:
    """Linear warm-up from ``warmup_factor`` then x0.1 at each fraction in ``lr_steps`` (CrowdDet schedule)."""
    t = cfg.train
    warm = t.warmup_factor + (1 - t.warmup_factor) * it / t.warmup_iters if it < t.warmup_iters else 1.0
    drops = sum(it >= int(step * t.iterations) for step in t.lr_steps)
    return warm * (0.1**drops)


class TrainSamples(torch.utils.data.Dataset):
    """``(frame index, flip)`` -> ``(image, target)``; loaded in DataLoader workers when ``num_workers > 0``."""

    def __init__(self, frames: list[Frame], targets: list[dict[str, torch.Tensor]]) -> None:
        self.frames, self.targets = frames, targets

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, key: tuple[int, bool]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        index, flip = key
        image = image_tensor(self.frames[index], flip)
        target = flip_target(self.targets[index], image.shape[-1]) if flip else self.targets[index]
        return image, target


def _as_list(batch: list) -> list:
    return batch


def iteration_batches(
    n_frames: int, seed: int, start: int, n_iter: int, batch: int, hflip: bool
) -> Iterator[list[tuple[int, bool]]]:
    """The ``(frame, flip)`` pairs of iterations ``start .. n_iter-1``: a pure function of (seed, iteration), so a
    resumed run sees exactly the batches an uninterrupted one would."""
    for it in range(start, n_iter):
        idx = _batch_indices(n_frames, seed, it, batch)
        flips = np.random.default_rng([seed + 7919, it]).random(len(idx)) < 0.5
        yield [(int(i), bool(f) and hflip) for i, f in zip(idx, flips, strict=True)]


def _batch_indices(n_frames: int, seed: int, it: int, batch: int) -> np.ndarray:
    """Frames of iteration ``it``: epoch-wise permutations seeded by (seed, epoch), so resuming is exact."""
    per_epoch = n_frames // batch
    epoch, step = divmod(it, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(n_frames)
    return order[step * batch : (step + 1) * batch]


def train_detector(
    cfg: RunConfig, frames: list[Frame], device: str, out: Path, scratch: Path, teacher: Path | None = None
) -> dict[str, Any]:
    """Train from scratch (or the backbone weights in ``cfg.model.weights``); resumes from ``scratch``.

    ``cfg.model.kd`` switches Tf-KD on (``methods/detection/kd.py``); ``teacher`` is the self-KD teacher's model."""
    t = cfg.train
    w = world()  # several ranks under torchrun: each takes its shard of the global batch, rank 0 writes
    torch.manual_seed(cfg.seed)
    model = build_detector(cfg.model).to(device)
    attach_kd(model, cfg.model, teacher, device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    trainer = Trainer(model, opt, device, scratch, amp=t.amp, grad_clip=t.grad_clip, world=w)
    if len(frames) < t.batch_size:
        raise ValueError(f"{len(frames)} training frames is fewer than one batch of {t.batch_size}")
    samples = TrainSamples(frames, [targets_from_frame(f, "cpu") for f in frames])

    def loader(start: int) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(
            samples,
            batch_sampler=list(iteration_batches(len(frames), cfg.seed, start, t.iterations, t.batch_size, t.hflip)),
            num_workers=loader_workers(t.num_workers),
            collate_fn=_as_list,
            pin_memory=device.startswith("cuda"),
            generator=torch.Generator().manual_seed(cfg.seed),  # never draw from the global RNG: resumes stay exact
        )

    def step(it: int, pairs: list, bar: Tracker) -> dict[str, float]:
        trainer.set_lr(t.lr * lr_factor(it, cfg))
        pairs = shard(pairs, w)
        images = [image.to(device, non_blocking=True) for image, _ in pairs]
        tgts = [{k: v.to(device, non_blocking=True) for k, v in target.items()} for _, target in pairs]
        with trainer.autocast():
            terms = trainer.net(images, tgts)
        loss = trainer.step(terms, f"iteration {it}")
        total = sum(loss.terms.values())
        bar.advance(1, f"loss {total:.3f}")
        return {"it": it, "loss": total, **loss.terms}

    losses = trainer.fit(t.iterations, step, batches=loader, checkpoint_every=t.checkpoint_every)
    if not w.is_main:
        return {}
    torch.save(model.state_dict(), out / "model.pt")
    (out / "losses.json").write_text(json.dumps(losses))
    tail = losses[-min(20, len(losses)) :]
    return {"final_loss": float(np.mean([x["loss"] for x in tail])), "iterations": t.iterations}


@torch.inference_mode()
def infer_raw(cfg: RunConfig, model_path: Path, frames: list[Frame], device: str, out: Path) -> dict[str, Any]:
    """Raw (pre-NMS) boxes, scores and proposal ids per frame, saved to ``raw.npz`` + ``frames.json``."""
    model = build_detector(cfg.model)
    load_detector_weights(model, model_path, cfg.model)
    model.to(device).eval()
    model.roi_heads.score_thresh = cfg.infer.score_thresh
    boxes, scores, groups, counts, sizes = [], [], [], [], []
    with Tracker("infer", len(frames)) as bar:
        for start in range(0, len(frames), cfg.infer.batch_size):
            chunk = frames[start : start + cfg.infer.batch_size]
            images = [image_tensor(f).to(device) for f in chunk]
            sizes += [(int(im.shape[-1]), int(im.shape[-2])) for im in images]
            with torch.autocast("cuda", enabled=cfg.train.amp and device.startswith("cuda")):
                outputs = model(images)
            for o in outputs:
                boxes.append(o["boxes"].float().cpu().numpy())
                scores.append(o["scores"].float().cpu().numpy())
                groups.append(o["groups"].cpu().numpy())
                counts.append(len(o["boxes"]))
            bar.advance(len(chunk))
    np.savez_compressed(
        out / "raw.npz",
        boxes=np.concatenate(boxes).astype(np.float32) if boxes else np.zeros((0, 4), np.float32),
        scores=np.concatenate(scores).astype(np.float32) if scores else np.zeros(0, np.float32),
        groups=np.concatenate(groups).astype(np.int64) if groups else np.zeros(0, np.int64),
        counts=np.asarray(counts, dtype=np.int64),
    )
    frame_index = [{"id": record_id(f), "width": w, "height": h} for f, (w, h) in zip(frames, sizes, strict=True)]
    (out / "frames.json").write_text(json.dumps(frame_index))
    return {"frames": len(frames), "raw_boxes": int(sum(counts))}


def load_per_frame(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, np.ndarray]]]:
    """Read ``raw.npz`` / ``detections.npz`` back into one dict of arrays per frame."""
    frames = json.loads((path.parent / "frames.json").read_text()) if (path.parent / "frames.json").exists() else []
    data = np.load(path)
    offsets = np.concatenate([[0], np.cumsum(data["counts"])])
    per_frame = []
    for i in range(len(data["counts"])):
        sl = slice(offsets[i], offsets[i + 1])
        per_frame.append({k: data[k][sl] for k in data.files if k != "counts"})
    return frames, per_frame


def save_per_frame(path: Path, per_frame: list[dict[str, np.ndarray]]) -> None:
    keys = per_frame[0].keys() if per_frame else ("boxes", "scores", "groups")
    arrays = {k: np.concatenate([p[k] for p in per_frame]) if per_frame else np.zeros(0) for k in keys}
    np.savez_compressed(path, counts=np.asarray([len(p["scores"]) for p in per_frame], np.int64), **arrays)
