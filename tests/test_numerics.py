"""What decides a cell's floating-point results beyond its config is pinned (``runtime``) or keyed (``numerics``):
the CPU kernel level, the CPU thread count and the device / GPU model enter the train stages' keys, so a shared cache
never serves one numerics' result for another's."""

from __future__ import annotations

import pytest
import torch

from crowdbench.bench import device as device_mod
from crowdbench.bench.device import apply_runtime, loader_workers, numerics
from crowdbench.bench.matrix import expand
from crowdbench.bench.specs import load_spec
from crowdbench.bench.tasks import stage_keys

TRAIN_STAGE = {
    "hie-pose/table3": "train",
    "occlusion-aug/table4": "train",
    "pose-regression/table1": "train",
    "hie-tracking/table5": "reid",
}


@pytest.mark.parametrize("table", TRAIN_STAGE)
def test_thread_count_and_device_key_the_training(table, monkeypatch):
    spec = load_spec(table)
    stage = TRAIN_STAGE[table]
    base = stage_keys(expand(spec, rows=[spec.runnable_rows[-1][0]])[0].config)[stage]
    threads = stage_keys(expand(spec, rows=[spec.runnable_rows[-1][0]], overrides={"runtime.threads": 1})[0].config)[
        stage
    ]
    assert threads != base
    monkeypatch.setattr(device_mod, "cpu_isa", lambda: "AVX2 avx2 fma")
    avx2 = stage_keys(expand(spec, rows=[spec.runnable_rows[-1][0]])[0].config)[stage]
    monkeypatch.setattr(device_mod, "resolve_device", lambda requested="auto": "cuda")
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "NVIDIA H200")
    h200 = stage_keys(expand(spec, rows=[spec.runnable_rows[-1][0]])[0].config)[stage]
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "NVIDIA A100-SXM4-80GB")
    a100 = stage_keys(expand(spec, rows=[spec.runnable_rows[-1][0]])[0].config)[stage]
    assert len({base, threads, avx2, h200, a100}) == 5


def test_gpu_numerics_ignore_cpu_threads(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "NVIDIA H200")
    cell = expand(load_spec("hie-pose/table3"), rows=[0])[0]
    one = numerics(cell.config.runtime, "cuda:0")
    cell.config.runtime.threads = 7
    assert numerics(cell.config.runtime, "cuda:0") == one == {"device": "cuda", "gpu": "NVIDIA H200",
                                                              "deterministic": True}  # fmt: skip


def test_apply_runtime_pins_the_threads_whatever_the_environment(monkeypatch):
    before = torch.get_num_threads()
    cell = expand(load_spec("hie-pose/table3"), rows=[0], overrides={"runtime.threads": 1})[0]
    try:
        apply_runtime(cell.config.runtime, "cpu")
        assert torch.get_num_threads() == 1
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.set_num_threads(before)
        torch.use_deterministic_algorithms(False)


def test_loader_workers_are_capped_at_the_cpus(monkeypatch):
    monkeypatch.setattr(device_mod.os, "sched_getaffinity", lambda pid: {0, 1})
    assert loader_workers(4) == 2 and loader_workers(1) == 1 and loader_workers(0) == 0


def test_cpu_isa_names_the_kernel_level_and_its_overrides(monkeypatch):
    device_mod.cpu_isa.cache_clear()
    here = device_mod.cpu_isa()
    assert here.split()[0] == torch.backends.cpu.get_cpu_capability()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    device_mod.cpu_isa.cache_clear()
    try:
        assert device_mod.cpu_isa() == here + " ONEDNN_MAX_CPU_ISA=AVX2"
    finally:
        device_mod.cpu_isa.cache_clear()
