"""The one trainer of every training loop (detector, pose, pose regression, ReID).

:class:`Trainer` owns what the loops share: the step loop over iterations or epochs with its progress bar, a
checkpoint every N steps (model, optimizer, AMP scaler, RNG states and the loss log) and the resume from it, AMP
autocast + GradScaler on CUDA, the DDP wrapper and the global batch's loss (mean over ranks), gradient clipping and
the non-finite-loss guard. A loop gives only its model-specific parts: the batches, the loss terms of one step, the
learning rate and what it records per step. A run that finds a checkpoint resumes where it stopped and gives the
numbers an uninterrupted run gives; a non-finite loss raises :class:`~crowdbench.bench.errors.NonFiniteLossError`
and keeps the last checkpoint.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any, Literal

import torch

from crowdbench.bench.distributed import World, mean_over_ranks, wrap
from crowdbench.bench.errors import NonFiniteLossError
from crowdbench.bench.log import Tracker, console

Unit = Literal["iteration", "epoch"]
LOG_KEY: dict[str, str] = {"iteration": "losses", "epoch": "history"}
"""The checkpoint entry that holds the loop's log: a loss per iteration, a history entry per epoch."""


def save_checkpoint(path: Path, model: torch.nn.Module, opt: Any, scaler: Any, **progress: Any) -> None:
    """Atomically write model, optimizer, AMP scaler and RNG states plus ``progress`` (e.g. ``iteration``,
    ``losses``) so that training resumes exactly."""
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scaler": scaler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        **progress,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, model: torch.nn.Module, opt: Any, scaler: Any, device: str) -> dict[str, Any]:
    """Restore what :func:`save_checkpoint` wrote into ``model``, ``opt``, ``scaler`` and the RNGs; return the
    whole state (its progress entries included)."""
    state = torch.load(path, map_location=device, weights_only=False)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return state


@dataclass(frozen=True)
class StepLoss:
    """The global batch's loss of one step: ``total`` (the summed loss tensor, mean over ranks) and each term."""

    total: float
    terms: dict[str, float]


@dataclass
class Trainer:
    """Optimisation of ``model`` with ``opt``, checkpointed to ``scratch/checkpoint.pt``.

    ``amp`` switches autocast + GradScaler on (CUDA only); ``grad_clip`` clips the gradient norm of the trainable
    parameters; under ``torchrun`` (``world.size > 1``) :attr:`net` is the DDP-wrapped model, each loss term is
    averaged over the ranks and only rank 0 writes checkpoints. ``what`` names the run in the resume message.
    """

    model: torch.nn.Module
    opt: torch.optim.Optimizer
    device: str
    scratch: Path
    amp: bool = False
    grad_clip: float | None = None
    world: World = field(default_factory=World)
    what: str = "training"

    def __post_init__(self) -> None:
        self.use_amp = self.amp and self.device.startswith("cuda")
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.net = wrap(self.model, self.device, self.world)
        self.checkpoint = Path(self.scratch) / "checkpoint.pt"

    def autocast(self) -> AbstractContextManager:
        """Mixed precision for the forward pass when AMP is on (a no-op otherwise)."""
        return torch.autocast("cuda", enabled=self.use_amp)

    def set_lr(self, lr: float) -> None:
        for group in self.opt.param_groups:
            group["lr"] = lr

    def resume(self, unit: Unit) -> tuple[int, list]:
        """``(first iteration or epoch, log)`` from the checkpoint when there is one, else ``(0, [])``."""
        if not self.checkpoint.is_file():
            return 0, []
        state = load_checkpoint(self.checkpoint, self.model, self.opt, self.scaler, self.device)
        console.print(f"  resuming {self.what} at {unit} {state[unit]} from {self.checkpoint}")
        return state[unit], state[LOG_KEY[unit]]

    def step(self, terms: dict[str, torch.Tensor], where: str) -> StepLoss:
        """One optimisation step on the sum of the loss ``terms``: the non-finite guard (every rank sees the same
        global value and stops together), scaled backward, optional clipping, optimizer and scaler steps."""
        loss = sum(terms.values())
        values = {k: mean_over_ranks(v, self.world) for k, v in terms.items()}  # the global batch's values
        total = mean_over_ranks(loss, self.world)
        if not math.isfinite(total):
            raise NonFiniteLossError(
                f"non-finite loss at {where} ({', '.join(f'{k}={v:.4g}' for k, v in values.items())}); "
                f"last checkpoint kept at {self.checkpoint}"
            )
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.grad_clip:
            self.scaler.unscale_(self.opt)
            params = [p for p in self.model.parameters() if p.requires_grad]
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        return StepLoss(total, values)

    def fit(
        self,
        stop: int,
        run: Callable[[int, Any, Tracker], Any],
        *,
        unit: Unit = "iteration",
        batches: Callable[[int], Iterable] | None = None,
        checkpoint_every: int = 1,
        bar: str = "train",
        steps_per_unit: int = 1,
    ) -> list:
        """Run ``run(i, batch, tracker)`` for every iteration or epoch ``i`` from the checkpoint's (or 0) to
        ``stop`` and return the log of what each call returned (the resumed part included). ``batches(start)``
        gives one batch per ``i`` (``None`` each without it); a checkpoint is written after every
        ``checkpoint_every``-th ``i`` but the last. The progress bar counts ``steps_per_unit`` per ``i``."""
        start, log = self.resume(unit)
        items = batches(start) if batches is not None else repeat(None)
        self.model.train()
        with Tracker(bar, stop * steps_per_unit, start * steps_per_unit) as tracker:
            for i, batch in zip(range(start, stop), items, strict=batches is not None):
                log.append(run(i, batch, tracker))
                if (i + 1) % checkpoint_every == 0 and i + 1 < stop and self.world.is_main:
                    save_checkpoint(
                        self.checkpoint, self.model, self.opt, self.scaler, **{unit: i + 1, LOG_KEY[unit]: log}
                    )
        return log
