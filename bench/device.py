"""Device choice: one GPU per cell when CUDA is there (pinned by the executor), CPU otherwise."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crowdbench.bench.config import RunConfig, RuntimeConfig


def resolve_device(requested: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; an explicit CUDA request without CUDA fails."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"--device {requested}: CUDA is not available on this machine (torch {torch.__version__})")
    return requested


def visible_gpus() -> list[str]:
    """GPU ids the executor may hand out, one per concurrent cell (honours an outer CUDA_VISIBLE_DEVICES)."""
    outer = os.environ.get("CUDA_VISIBLE_DEVICES")
    if outer is not None:
        return [g for g in outer.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:
        return []


def loader_workers(requested: int) -> int:
    """DataLoader workers: the configured number, capped at the CPUs this process may use (4 workers on a 2-core
    machine only add a warning per epoch). Workers load images; they never change the numbers."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        cpus = os.cpu_count() or 1
    return max(0, min(requested, cpus))


def apply_runtime(runtime: RuntimeConfig, device: str) -> None:
    """Pin how this cell's process computes, the same way under every executor (local, Ray, SLURM, torchrun): the CPU
    thread count of torch and OpenCV (it changes the order of floating-point sums, so it must not follow the CPUs an
    executor hands out) and the deterministic settings. Call before any model or CUDA work."""
    import torch

    torch.set_num_threads(runtime.threads)
    try:
        import cv2

        cv2.setNumThreads(runtime.threads)
    except ImportError:  # pragma: no cover - opencv is a dependency
        pass
    if runtime.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's deterministic workspace (CUDA >= 10.2)
        torch.use_deterministic_algorithms(True, warn_only=True)
    if device.startswith("cuda"):
        torch.backends.cudnn.deterministic = runtime.deterministic
        torch.backends.cudnn.benchmark = not runtime.deterministic


def numerics(runtime: RuntimeConfig, device: str) -> dict[str, Any]:
    """What decides a cell's floating-point results beyond its config: the device type and, on GPUs, the model, or on
    CPUs the thread count; plus the deterministic settings. Part of the train stages' keys (a shared cache never mixes
    numerics under one key) and of every record's provenance. ``device`` is resolved (``cpu``, ``cuda``, ``cuda:N``)."""
    if device.startswith("cuda"):
        import torch

        index = torch.device(device).index or 0
        return {"device": "cuda", "gpu": torch.cuda.get_device_name(index), "deterministic": runtime.deterministic}
    return {"device": "cpu", "threads": runtime.threads, "deterministic": runtime.deterministic}


def cell_numerics(cfg: RunConfig) -> dict[str, Any]:
    """:func:`numerics` of a cell's config on this machine (``auto`` resolved as a worker here would resolve it)."""
    return numerics(cfg.runtime, resolve_device(cfg.device))
