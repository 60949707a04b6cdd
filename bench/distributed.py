"""Data-parallel training of one cell over several processes (``torchrun``): DistributedDataParallel, NCCL on GPUs and
gloo on CPU.

``torchrun --nproc_per_node N -m crowdbench.bench.worker CELL.json`` starts N ranks of the worker. Rank 0 runs the cell
as usual (cache, stages, record); the other ranks only join the training of the cell's model
(:func:`crowdbench.bench.stages.pipeline.follow_training`) and write nothing. The configured batch is the *global*
batch: each rank takes ``batch / world`` of its images, DDP averages the gradients, so one step equals the
single-process step on the same global batch and the learning rate stays as configured. The effective batch, the
per-rank batch, the learning rate and the BatchNorm mode are written into the cell's provenance
(``distributed``), the most common cause of irreproducible numbers being a batch or LR that silently changed with
the GPU count. Trainable BatchNorm becomes SyncBatchNorm on GPUs; on CPU (no SyncBatchNorm there) it keeps per-rank
statistics, which the provenance says.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world() -> World:
    """This process's place in a ``torchrun`` launch (rank 0 of 1 without one)."""
    return World(
        int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))
    )


def init_distributed(device: str) -> tuple[World, str]:
    """Join the process group when launched by torchrun; returns the world and this rank's device (``cuda:LOCAL_RANK``
    on GPUs)."""
    import torch.distributed as dist

    w = world()
    if w.size == 1:
        return w, device
    if device.startswith("cuda"):
        device = f"cuda:{w.local_rank}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return w, device


def shard(items: list, w: World) -> list:
    """This rank's part of a global batch (``items[rank::size]``); the batch must split evenly."""
    if len(items) % w.size:
        raise ValueError(f"train.batch_size {len(items)} does not split over {w.size} processes; use a multiple")
    return items[w.rank :: w.size]


def wrap(model: torch.nn.Module, device: str, w: World) -> torch.nn.Module:
    """DDP around ``model`` (SyncBatchNorm first on GPUs); the model itself when not distributed."""
    if w.size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    if device.startswith("cuda"):
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[torch.device(device).index])
    return DistributedDataParallel(model)


def mean_over_ranks(value: torch.Tensor, w: World) -> float:
    """The mean of a scalar over the ranks (the global batch's loss when every rank holds a mean over its shard)."""
    if w.size == 1:
        return float(value.detach())
    import torch.distributed as dist

    total = value.detach().clone().float()
    dist.all_reduce(total)
    return float(total) / w.size


def provenance(w: World, global_batch: int, lr: float, device: str, trainable_bn: bool) -> dict[str, Any] | None:
    """What a distributed run changed, for the record (None for one process). ``trainable_bn``: the detector trains
    its BatchNorm (from scratch; ImageNet weights freeze it)."""
    if w.size == 1:
        return None
    if device.startswith("cuda"):
        bn = "SyncBatchNorm"
    else:
        bn = "per-rank BatchNorm statistics (no SyncBatchNorm on CPU)" if trainable_bn else "frozen"
    return {
        "world_size": w.size,
        "backend": "nccl" if device.startswith("cuda") else "gloo",
        "per_rank_batch": global_batch // w.size,
        "effective_batch": global_batch,
        "lr": lr,
        "lr_scaling": "none: the configured batch is the global batch, split over the ranks",
        "batchnorm": bn,
    }
