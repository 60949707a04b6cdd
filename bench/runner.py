"""Regenerate one table: expand the matrix, skip finished cells, run the rest, aggregate, write reports."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from crowdbench.bench.cache import StageCache
from crowdbench.bench.executor import CellJob, CellStatus, make_executor
from crowdbench.bench.log import console, out
from crowdbench.bench.matrix import expand
from crowdbench.bench.preflight import preflight
from crowdbench.bench.provenance import command_line
from crowdbench.bench.specs import SpecError, load_spec
from crowdbench.bench.stages.data import check_data
from crowdbench.bench.store import ResultStore, store_url
from crowdbench.reports.aggregate import TableView, aggregate
from crowdbench.reports.render import terminal_table, write_reports


@dataclass
class TableRun:
    view: TableView
    reports: dict[str, Path]
    failed: list[str]
    ran: int
    cached: int


def pipeline(task: str) -> ModuleType:
    """The module of a task's pipeline: ``stage_keys(cfg)`` and ``metric_keys(cfg)``."""
    if task == "detection":
        from crowdbench.bench.stages import detection

        return detection
    if task == "pose":
        from crowdbench.bench.stages import pose

        return pose
    if task == "pose_regression":
        from crowdbench.bench.stages import pose_regression

        return pose_regression
    if task == "tracking":
        from crowdbench.bench.stages import tracking

        return tracking
    if task == "pose_tracking":
        from crowdbench.bench.stages import pose_tracking

        return pose_tracking
    raise NotImplementedError(f"task {task!r} has no pipeline yet")


def run_table(
    table_id: str,
    *,
    profile: str = "smoke",
    seeds: list[int] | None = None,
    overrides: dict[str, Any] | None = None,
    run_dir: Path = Path("runs"),
    db_url: str | None = None,
    executor: str = "local",
    jobs: int | None = None,
    device: str = "auto",
    rows: list[int] | None = None,
    data_root: Path | None = None,
    executor_options: dict[str, Any] | None = None,
    cache_url: str | None = None,
) -> TableRun:
    spec = load_spec(table_id)
    overrides = dict(overrides or {})
    if data_root is not None:
        overrides["data.root"] = str(data_root)
    if device != "auto":
        overrides["device"] = device
    cells = expand(spec, profile=profile, seeds=seeds, overrides=overrides, rows=rows)
    run_dir = Path(run_dir).resolve()
    url = store_url(run_dir, db_url)
    store = ResultStore(url)
    cache = StageCache(run_dir / "cache", cache_url)
    command = command_line()
    tasks = pipeline(spec.task)
    runner = make_executor(executor, jobs, device, executor_options)  # a missing package fails before any work
    for cell in cells:
        check_data(cell.config.data)
        preflight(cell.config)
        produced = tasks.metric_keys(cell.config)
        missing = [m.key for m in spec.metrics if m.key not in produced]
        if missing:
            raise SpecError(
                f"{spec.id}: metric columns {missing} are not produced by evaluate.metric="
                f"{cell.config.evaluate.metric!r} (it gives {', '.join(produced)})"
            )
    console.print(
        f"[bold]{spec.id}[/]: {spec.title} — profile [bold]{profile}[/], {len(cells)} cells "
        f"({len(spec.runnable_rows)} runnable of {len(spec.rows)} rows × {len(seeds or [0])} seeds), run dir {run_dir}"
    )
    start = time.perf_counter()
    todo, cached = [], 0
    for cell in cells:
        keys = tasks.stage_keys(cell.config)
        rec = store.get(cell.table_id, cell.row_index, cell.seed, profile, cell.config_hash)
        if rec is not None and rec.stage_keys == keys and cache.is_done("evaluate", keys["evaluate"]):
            console.print(f"  [green]cache hit[/]  {cell.name}: record from {rec.created}, no stage recomputed")
            cached += 1
            continue
        payload = {
            "table_id": cell.table_id,
            "row_index": cell.row_index,
            "row_label": cell.row_label,
            "config": cell.config.model_dump(mode="json"),
            "command": command,
            "store_url": url,
            "cache_root": str(cache.root),
            "cache_url": cache_url,
        }
        shared = next(keys[k] for k in ("train", "reid", "detector", "evaluate") if k in keys)  # heaviest stage
        todo.append(CellJob(cell, shared, payload))
    failed: list[str] = []

    def on_done(status: CellStatus) -> None:
        if status.returncode != 0:
            failed.append(status.cell.name)
            console.print(f"  [red]failed[/]     {status.cell.name} (exit {status.returncode}); other cells continue")

    if todo:
        runner.run(todo, on_done)
    hashes = {c.config_hash for c in cells}
    records = [r for r in store.query(spec.id, profile=profile) if r.config_hash in hashes]
    failed_rows = {c.row_index for c in cells if c.name in failed}
    view = aggregate(spec, records, profile, command, failed_rows)
    reports = write_reports(view, run_dir / "reports")
    store.dispose()
    out.print(terminal_table(view))
    console.print(
        f"{len(todo) - len(failed)} cells run, {cached} from cache, {len(failed)} failed in "
        f"{time.perf_counter() - start:.1f} s. Reports: " + ", ".join(str(p) for p in reports.values())
    )
    return TableRun(view, reports, failed, len(todo) - len(failed), cached)
