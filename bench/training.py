"""What every training loop shares (detector, pose, pose regression, ReID): checkpoints that resume exactly.

A checkpoint holds the model, optimizer, AMP scaler and RNG states plus the loop's progress (iteration or epoch, loss
log); a loop that finds one resumes where it stopped and gives the numbers an uninterrupted run gives. A non-finite
loss raises :class:`~crowdbench.bench.errors.NonFiniteLossError` and keeps the last checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from crowdbench.bench.log import console


def save_checkpoint(path: Path, model: torch.nn.Module, opt: Any, scaler: Any, **progress: Any) -> None:
    """Atomically write model, optimizer, AMP scaler and RNG states plus ``progress`` (e.g. ``iteration``,
    ``losses``) so that training resumes exactly (shared by detector and pose training)."""
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


def resume_iterations(path: Path, model: torch.nn.Module, opt: Any, scaler: Any, device: str) -> tuple[int, list]:
    """``(first iteration, loss log)``: from the checkpoint at ``path`` when there is one, else ``(0, [])``."""
    if not path.is_file():
        return 0, []
    state = load_checkpoint(path, model, opt, scaler, device)
    console.print(f"  resuming training at iteration {state['iteration']} from {path}")
    return state["iteration"], state["losses"]
