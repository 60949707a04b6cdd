"""Device choice: one GPU per cell when CUDA is there (pinned by the executor), CPU otherwise."""

from __future__ import annotations

import os
import platform
from functools import cache
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
    CPUs the kernel level (:func:`cpu_isa`) and the thread count; plus the deterministic settings. Part of the train
    stages' keys (a shared cache never mixes numerics under one key) and of every record's provenance. ``device`` is
    resolved (``cpu``, ``cuda``, ``cuda:N``)."""
    if device.startswith("cuda"):
        import torch

        index = torch.device(device).index or 0
        return {"device": "cuda", "gpu": torch.cuda.get_device_name(index), "deterministic": runtime.deterministic}
    return {"device": "cpu", "isa": cpu_isa(), "threads": runtime.threads, "deterministic": runtime.deterministic}


# The instruction-set extensions ATen, oneDNN and MKL pick their CPU kernels by: each level sums in its own order, and
# a from-scratch smoke training amplifies the last bit. The same seed and config gave hie-pose Table 3 row 1 AP 52.08
# with AVX-512 + AMX and 42.75 with ATen and oneDNN held to AVX2, on one machine (README results log, 2026-12-05).
_DISPATCH_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_bf16")
# Environment variables that move the dispatch level without changing the CPU.
_DISPATCH_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR")


@cache
def cpu_isa() -> str:
    """The CPU kernel level of this process: ATen's dispatch capability, the dispatch-relevant CPU flags (x86) or the
    architecture, and any environment override, e.g. ``AVX512 avx2 fma avx512f ... amx_bf16``."""
    import torch

    parts = [torch.backends.cpu.get_cpu_capability()]
    flags = _cpu_flags()
    parts += [f for f in _DISPATCH_FLAGS if f in flags] if flags else [platform.machine()]
    parts += [f"{k}={os.environ[k]}" for k in _DISPATCH_ENV if os.environ.get(k)]
    return " ".join(parts)


def _cpu_flags() -> set[str]:
    """The x86 ``flags`` of ``/proc/cpuinfo`` (empty elsewhere: the architecture stands for them)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def cell_numerics(cfg: RunConfig) -> dict[str, Any]:
    """:func:`numerics` of a cell's config on this machine (``auto`` resolved as a worker here would resolve it)."""
    return numerics(cfg.runtime, resolve_device(cfg.device))
