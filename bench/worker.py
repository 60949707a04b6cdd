"""Run one cell in this process: ``python -m crowdbench.bench.worker CELL.json`` (what executors launch).

The cell file holds the table id, row, seed, resolved config, command line, store URL and cache folder. On
success the cell's record is written to the store; on a known failure one ``error:`` line goes to stderr and
the exit code is 2. Stages finished before a failure or an interruption stay in the cache.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from crowdbench.bench.cache import StageCache
from crowdbench.bench.cli import known_errors
from crowdbench.bench.config import RunConfig
from crowdbench.bench.device import apply_runtime, numerics, resolve_device
from crowdbench.bench.errors import one_line
from crowdbench.bench.log import console
from crowdbench.bench.matrix import config_hash
from crowdbench.bench.provenance import provenance
from crowdbench.bench.store import Record, ResultStore

if TYPE_CHECKING:
    from crowdbench.bench.tasks import Task


def _distributed(task: Task, cfg: RunConfig, w: Any, device: str) -> dict[str, Any] | None:
    """What data-parallel training changed, for the record (None for one process)."""
    # deferred: start-up (torch)
    from crowdbench.bench.distributed import provenance as distributed_provenance

    if task.data_parallel is None:
        return None
    batch, lr, trainable_bn = task.data_parallel.settings(cfg)
    return distributed_provenance(w, batch, lr, device, trainable_bn)


def run_cell_file(path: Path) -> Record | None:
    job: dict[str, Any] = json.loads(Path(path).read_text())
    cfg = RunConfig.model_validate(job["config"])
    apply_runtime(cfg.runtime, resolve_device(cfg.device))
    # deferred: start-up (torch)
    from crowdbench.bench.distributed import init_distributed

    w, device = init_distributed(resolve_device(cfg.device))
    # deferred: start-up (torch, numpy: every stage module)
    from crowdbench.bench.tasks import TASKS, follow_training, run_cell, task_of, trained_models

    task = task_of(cfg.task)
    if w.size > 1 and task.data_parallel is None:
        parallel = ", ".join(t.name for t in TASKS.values() if t.data_parallel is not None)
        raise ValueError(f"torchrun: {parallel} cells train data-parallel, not {cfg.task!r} cells")
    cache = StageCache(Path(job["cache_root"]), job.get("cache_url"))
    if not w.is_main:  # the other ranks join rank 0's training and write nothing
        follow_training(cfg, cache, device)
        return None
    start = time.perf_counter()
    outcome = run_cell(cfg, cache, device)
    record = Record(
        table_id=job["table_id"],
        row_index=job["row_index"],
        row_label=job["row_label"],
        seed=cfg.seed,
        profile=cfg.profile,
        level=job.get("level", cfg.level),
        config_hash=config_hash(cfg),
        config=cfg.model_dump(mode="json"),
        stage_keys=outcome.stage_keys,
        stages_run=outcome.stages_run,
        metrics=outcome.metrics,
        provenance={
            **provenance(device, time.perf_counter() - start, job["command"], job.get("level", cfg.level)),
            "distributed": _distributed(task, cfg, w, device),
            "numerics": numerics(cfg.runtime, device),
            "deviations": job.get("deviations", []),
            "params": outcome.params,
            "trained": trained_models(cfg),
        },
        curves=outcome.curves,
        bootstrap=outcome.bootstrap,
    )
    store = ResultStore(job["store_url"])
    store.put(record)
    store.dispose()
    return record


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        console.print("usage: python -m crowdbench.bench.worker CELL.json")
        return 2
    try:
        record = run_cell_file(Path(args[0]))
        if record is None:  # a non-zero rank of a torchrun launch
            return 0
    except known_errors() as exc:
        console.print(f"[red]error:[/] {escape(one_line(exc))}", soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        return 130
    shown = ", ".join(f"{k} {v:.4f}" for k, v in record.metrics.items())
    console.print(f"  [bold]stored[/]     {shown} (stages run: {', '.join(record.stages_run) or 'none'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
