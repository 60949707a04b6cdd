"""Device choice: one GPU per cell when CUDA is there (pinned by the executor), CPU otherwise."""

from __future__ import annotations

import os


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


def configure_threads() -> None:
    """Use every core for intra-op work in this process (one process per cell)."""
    import torch

    torch.set_num_threads(max(1, int(os.environ.get("CROWDBENCH_THREADS", os.cpu_count() or 1))))
