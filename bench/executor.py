"""Executors run cells. ``local``: one process per cell; with GPUs, one GPU per concurrent cell. ``ray``: each group
of cells is a Ray task on an existing cluster (``address``) or a local one, asking for the GPUs its cells need.
``slurm``: a submitit job array, one array task per group (partition, time, GPUs, parallelism as options).

Cells that share a ``train`` stage form one group and run one after another in the same slot, so the later ones hit
the cache instead of training the same model in parallel. Every executor runs a cell the same way, as
``python -m crowdbench.bench.worker CELL.json`` (:func:`run_cells`), and cells are idempotent (content-addressed
stages, resumable checkpoints, records upserted), so a requeued or repeated task redoes nothing that finished. With
``ray`` or ``slurm`` on several machines the run folder's cache must be on a shared filesystem and the store a server
both reach (``--store postgresql://...``).
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


EXECUTORS = ("local", "ray", "slurm")


class ExecutorError(RuntimeError):
    """An executor cannot start: its package is missing or its cluster is unreachable (one line, what to do)."""


def run_cells(payloads: list[dict], env: dict[str, str] | None = None) -> list[int]:
    """Run cells one after another, each as ``python -m crowdbench.bench.worker``; their exit codes. What Ray tasks and
    SLURM array tasks execute (module level, so it pickles)."""
    codes = []
    with tempfile.TemporaryDirectory(prefix="crowdbench-cells-") as tmp:
        for payload in payloads:
            path = Path(tmp) / f"cell-{payload['row_index']}-{payload['config']['seed']}.json"
            path.write_text(json.dumps(payload, default=str))
            proc = subprocess.run(
                [sys.executable, "-m", "crowdbench.bench.worker", str(path)], env={**os.environ, **(env or {})}
            )
            codes.append(proc.returncode)
    return codes


def _groups(jobs: list[CellJob]) -> list[list[CellJob]]:
    groups: dict[str, list[CellJob]] = {}
    for job in jobs:
        groups.setdefault(job.group, []).append(job)
    return list(groups.values())


def _needs_gpu(group: list[CellJob], device: str) -> bool:
    """A cell asks for a GPU when its device is CUDA, or ``auto`` under the ``full`` profile."""
    wanted = device if device != "auto" else group[0].cell.config.device
    if wanted.startswith("cuda"):
        return True
    return wanted == "auto" and group[0].cell.config.profile == "full"


class LocalExecutor:
    """Run each cell as ``python -m crowdbench.bench.worker``; ``jobs`` slots, each pinned to one GPU if any. With
    ``nproc`` > 1 each cell is ``torchrun --nproc_per_node nproc`` of the worker (data-parallel training,
    ``bench/distributed.py``) on ``nproc`` GPUs, or on CPU with gloo."""

    def __init__(self, jobs: int | None = None, device: str = "auto", nproc: int = 1) -> None:
        gpus = visible_gpus() if device in ("auto", "cuda") else []
        self.nproc = nproc
        # a slot is nproc GPUs
        self.gpus = [",".join(gpus[i : i + nproc]) for i in range(0, len(gpus) - nproc + 1, nproc)] if gpus else []
        if gpus and not self.gpus:
            raise ExecutorError(f"--nproc-per-cell {nproc}: only {len(gpus)} GPUs visible")
        self.jobs = jobs or max(1, len(self.gpus))
        if self.gpus and self.jobs > len(self.gpus):
            console.print(f"  {self.jobs} jobs requested but {len(self.gpus)} GPU slots: using {len(self.gpus)}")
            self.jobs = len(self.gpus)

    def _env(self, slot: int) -> dict[str, str]:
        """The cell's environment: its GPU(s). CPU threads are the cell's own ``runtime.threads`` (``bench/device.py``),
        never the executor's share of the cores, so concurrent cells compute exactly what one cell alone would."""
        env = dict(os.environ)
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot]
        return env

    def _command(self, path: Path) -> list[str]:
        worker = ["-m", "crowdbench.bench.worker", str(path)]
        if self.nproc == 1:
            return [sys.executable, *worker]
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={self.nproc}",
            *worker,
        ]

    def _run_one(self, job: CellJob, slot: int, workdir: Path) -> CellStatus:
        where = f"GPU {self.gpus[slot]}" if self.gpus else "CPU"
        console.rule(f"[bold]{job.cell.name}[/] on {where}", style="dim")
        path = workdir / f"cell-{job.cell.row_index}-{job.cell.seed}.json"
        path.write_text(json.dumps(job.payload, default=str))
        proc = subprocess.run(self._command(path), env=self._env(slot))
        if proc.returncode < 0 or proc.returncode == 130:
            raise KeyboardInterrupt
        return CellStatus(job.cell, proc.returncode)

    def run(self, jobs: list[CellJob], on_done: Callable[[CellStatus], None]) -> list[CellStatus]:
        groups = {i: g for i, g in enumerate(_groups(jobs))}
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


class RayExecutor:
    """Each group of cells is one Ray task (core API only: ``ray.remote`` + ``ray.wait``) running :func:`run_cells`;
    it asks for one GPU when its cells need one (``full`` profile, ``--device cuda``) and ``cpus`` CPUs otherwise
    (default: the cells' ``runtime.threads``), so
    CPU-only cells pack onto the cluster's CPUs. ``address``: an existing cluster (``auto``, ``ray://host:10001``,
    ``host:6379``); none starts a local one with ``jobs`` CPUs (default: all) and stops it afterwards."""

    def __init__(
        self, address: str | None = None, jobs: int | None = None, device: str = "auto", cpus: int | None = None
    ):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ExecutorError("--executor ray needs Ray: pip install 'crowdbench[ray]'") from None
        self.address, self.jobs, self.device, self.cpus = address, jobs, device, cpus

    def _connect(self) -> bool:
        """Connect (or start a local cluster); True when this process started it."""
        import ray

        if ray.is_initialized():
            return False
        if self.address:
            _check_reachable(self.address)
        try:
            if self.address:
                ray.init(address=self.address, log_to_driver=True)
                return True
            ray.init(
                num_cpus=self.jobs or os.cpu_count() or 1,
                include_dashboard=False,
                object_store_memory=256 * 1024**2,
                log_to_driver=True,
                _node_ip_address="127.0.0.1",  # a local cluster stays on loopback
            )
        except (ConnectionError, TimeoutError, RuntimeError) as exc:
            where = self.address or "a new local cluster"
            raise ExecutorError(
                f"ray: cannot reach the cluster at {where}: {' '.join(str(exc).split())[:300]}"
            ) from None
        return True

    def run(self, jobs: list[CellJob], on_done: Callable[[CellStatus], None]) -> list[CellStatus]:
        import ray

        started = self._connect()
        statuses: list[CellStatus] = []
        try:
            has_gpus = ray.cluster_resources().get("GPU", 0) > 0
            pending = {}
            for group in _groups(jobs):
                gpu = _needs_gpu(group, self.device)
                if gpu and not has_gpus:
                    raise ExecutorError(f"ray: {group[0].cell.name} needs a GPU and the cluster has none")
                # a CPU cell computes with its runtime.threads (bench/device.py: apply_runtime, whatever Ray sets in
                # OMP_NUM_THREADS); it reserves as many CPUs unless --ray-cpus says otherwise
                cpus = self.cpus or group[0].cell.config.runtime.threads
                task = ray.remote(num_cpus=cpus, num_gpus=1 if gpu else 0, max_retries=2)(run_cells)
                ref = task.remote([j.payload for j in group], {})
                pending[ref] = group
                console.print(f"  submitted {len(group)} cell(s) to Ray ({'1 GPU' if gpu else f'{cpus} CPU'})")
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                group = pending.pop(done[0])
                for job, code in zip(group, ray.get(done[0]), strict=True):
                    status = CellStatus(job.cell, code)
                    statuses.append(status)
                    on_done(status)
        finally:
            if started:
                ray.shutdown()
        return statuses


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail at once, naming the address, when ``host:port`` (or ``ray://host:port``) accepts no TCP connection; Ray
    itself retries for minutes. ``auto`` and other forms are left to Ray."""
    import socket

    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ExecutorError(f"ray: cannot reach the cluster at {address}: {exc}") from None


class _Group:
    """One SLURM array task: the cells of a group. ``checkpoint`` makes submitit requeue the same call on
    preemption; finished cells are cache hits, so the rerun only finishes what was left."""

    def __init__(self, payloads: list[dict], env: dict[str, str]) -> None:
        self.payloads, self.env = payloads, env

    def __call__(self) -> list[int]:
        return run_cells(self.payloads, self.env)

    def checkpoint(self, *args, **kwargs):  # submitit.helpers.Checkpointable protocol
        import submitit

        return submitit.helpers.DelayedSubmission(_Group(self.payloads, self.env))


class SlurmExecutor:
    """A submitit job array, one task per group of cells; ``cluster="local"`` runs it with submitit's local executor
    (tests, a machine without SLURM). Logs go to ``folder``."""

    def __init__(
        self,
        folder: Path,
        *,
        partition: str | None = None,
        time_min: int = 24 * 60,
        gpus_per_task: int = 0,
        cpus_per_task: int = 4,
        array_parallelism: int = 16,
        cluster: str | None = None,
    ) -> None:
        try:
            import submitit  # noqa: F401
        except ImportError:
            raise ExecutorError("--executor slurm needs submitit: pip install 'crowdbench[slurm]'") from None
        self.folder, self.partition, self.time_min = Path(folder), partition, time_min
        self.gpus, self.cpus, self.parallelism, self.cluster = gpus_per_task, cpus_per_task, array_parallelism, cluster

    def _executor(self):
        import submitit

        ex = submitit.AutoExecutor(folder=str(self.folder), cluster=self.cluster)
        if self.cluster is None and ex.cluster != "slurm":  # submitit would quietly fall back to local processes
            raise ExecutorError("--executor slurm: no SLURM here (sbatch not found); use --slurm-cluster local to test")
        params: dict = {
            "timeout_min": self.time_min,
            "cpus_per_task": self.cpus,
            "slurm_array_parallelism": self.parallelism,
        }
        if self.gpus:
            params["gpus_per_node"] = self.gpus
        if self.partition:
            params["slurm_partition"] = self.partition
        ex.update_parameters(**params)
        return ex

    def run(self, jobs: list[CellJob], on_done: Callable[[CellStatus], None]) -> list[CellStatus]:
        ex = self._executor()
        groups = _groups(jobs)
        threads = max(j.cell.config.runtime.threads for j in jobs)
        if threads > self.cpus:
            console.print(f"  [yellow]note[/]: cells compute with {threads} threads on {self.cpus} CPUs per task")
        with ex.batch():  # a cell computes with its runtime.threads, not the node's cores (bench/device.py)
            submitted = [ex.submit(_Group([j.payload for j in g], {})) for g in groups]
        console.print(f"  submitted {len(groups)} array task(s) to {ex.cluster} (logs: {self.folder})")
        statuses: list[CellStatus] = []
        for job, group in zip(submitted, groups, strict=True):
            try:
                codes = job.result()
            except Exception as exc:  # a task that died (timeout, node failure) fails its cells, the rest go on
                console.print(f"  [red]array task {job.job_id} failed[/]: {' '.join(str(exc).split())[:300]}")
                codes = [1] * len(group)
            for cell_job, code in zip(group, codes, strict=True):
                status = CellStatus(cell_job.cell, code)
                statuses.append(status)
                on_done(status)
        return statuses


def make_executor(name: str, jobs: int | None, device: str, options: dict | None = None):
    """``local`` / ``ray`` / ``slurm`` with ``options`` (ray: ``address``, ``cpus``; slurm: ``folder``, ``partition``,
    ``time_min``, ``gpus_per_task``, ``cpus_per_task``, ``array_parallelism``, ``cluster``)."""
    options = {k: v for k, v in (options or {}).items() if v is not None}
    if name == "local":
        return LocalExecutor(jobs, device, options.get("nproc", 1))
    if name == "ray":
        return RayExecutor(options.get("address"), jobs, device, options.get("cpus"))
    if name == "slurm":
        slurm = {k: v for k, v in options.items() if k not in ("address", "cpus", "folder")}
        return SlurmExecutor(Path(options.get("folder", "runs/slurm")), **slurm)
    raise ExecutorError(f"unknown executor {name!r}; executors: {', '.join(EXECUTORS)}")
