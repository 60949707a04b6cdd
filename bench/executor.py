"""Executors run cells. ``local``: one process per cell; with GPUs, one GPU per concurrent cell.

Cells that share a ``train`` stage run one after another in the same slot, so the later ones hit the cache
instead of training the same model in parallel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from queue import Queue

from crowdbench.bench.device import visible_gpus
from crowdbench.bench.log import console
from crowdbench.bench.matrix import Cell


@dataclass
class CellJob:
    cell: Cell
    group: str  # cells with the same group run serially (same train key)
    payload: dict


@dataclass
class CellStatus:
    cell: Cell
    returncode: int


EXECUTORS = ("local",)


class LocalExecutor:
    """Run each cell as ``python -m crowdbench.bench.worker``; ``jobs`` slots, each pinned to one GPU if any."""

    def __init__(self, jobs: int | None = None, device: str = "auto") -> None:
        self.gpus = visible_gpus() if device in ("auto", "cuda") else []
        self.jobs = jobs or max(1, len(self.gpus))
        if self.gpus and self.jobs > len(self.gpus):
            console.print(f"  {self.jobs} jobs requested but {len(self.gpus)} GPUs: using {len(self.gpus)}")
            self.jobs = len(self.gpus)

    def _env(self, slot: int) -> dict[str, str]:
        env = dict(os.environ)
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot]
        elif self.jobs > 1:  # share the cores between concurrent CPU cells
            env["CROWDBENCH_THREADS"] = str(max(1, (os.cpu_count() or 1) // self.jobs))
        return env

    def _run_one(self, job: CellJob, slot: int, workdir: Path) -> CellStatus:
        where = f"GPU {self.gpus[slot]}" if self.gpus else "CPU"
        console.rule(f"[bold]{job.cell.name}[/] on {where}", style="dim")
        path = workdir / f"cell-{job.cell.row_index}-{job.cell.seed}.json"
        path.write_text(json.dumps(job.payload, default=str))
        proc = subprocess.run([sys.executable, "-m", "crowdbench.bench.worker", str(path)], env=self._env(slot))
        if proc.returncode < 0 or proc.returncode == 130:
            raise KeyboardInterrupt
        return CellStatus(job.cell, proc.returncode)

    def run(self, jobs: list[CellJob], on_done: Callable[[CellStatus], None]) -> list[CellStatus]:
        groups: dict[str, list[CellJob]] = {}
        for job in jobs:
            groups.setdefault(job.group, []).append(job)
        slots: Queue[int] = Queue()
        for slot in range(self.jobs):
            slots.put(slot)
        statuses: list[CellStatus] = []
        with tempfile.TemporaryDirectory(prefix="crowdbench-cells-") as tmp:

            def run_group(group: list[CellJob]) -> None:
                slot = slots.get()
                try:
                    for job in group:
                        status = self._run_one(job, slot, Path(tmp))
                        statuses.append(status)
                        on_done(status)
                finally:
                    slots.put(slot)

            if self.jobs == 1:
                for group in groups.values():
                    run_group(group)
            else:
                with ThreadPoolExecutor(self.jobs) as pool:
                    for future in [pool.submit(run_group, g) for g in groups.values()]:
                        future.result()
        return statuses


def make_executor(name: str, jobs: int | None, device: str) -> LocalExecutor:
    if name != "local":
        raise ValueError(f"unknown executor {name!r}; executors: {', '.join(EXECUTORS)} (ray and slurm: issue 9)")
    return LocalExecutor(jobs, device)
