"""Regenerate one table: expand the matrix, skip finished cells, run the rest, aggregate, write reports."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape

from crowdbench.bench.cache import StageCache
from crowdbench.bench.executor import CellJob, CellStatus, make_executor
from crowdbench.bench.log import console, out
from crowdbench.bench.matrix import Cell, expand
from crowdbench.bench.preflight import preflight
from crowdbench.bench.provenance import command_line
from crowdbench.bench.recipes import load_recipe
from crowdbench.bench.specs import SpecError, TableSpec, load_spec
from crowdbench.bench.stages.data import check_data
from crowdbench.bench.store import ResultStore, store_url
from crowdbench.bench.tasks import Task, stage_keys, task_of
from crowdbench.reports.aggregate import TableView, aggregate
from crowdbench.reports.render import terminal_table, write_reports


@dataclass
class TableRun:
    view: TableView
    reports: dict[str, Path]
    failed: list[str]
    ran: int
    cached: int


def warn_deviations(cells: list[Cell]) -> None:
    """Before anything runs: which rows are ``full-modified`` and why (a missing ImageNet initialisation included)."""
    shown: set[tuple[str, ...]] = set()
    for cell in cells:
        if not cell.deviations:
            continue
        texts = tuple(str(d) + (f" ({d.hint})" if d.hint else "") for d in cell.deviations)
        if texts in shown:
            continue
        shown.add(texts)
        rows = sorted(
            {c.row_index + 1 for c in cells if tuple(map(str, c.deviations)) == tuple(map(str, cell.deviations))}
        )
        console.print(
            f"[yellow]full-modified[/] (not the paper's recipe) rows {', '.join(map(str, rows))}: "
            + escape("; ".join(texts)),
            soft_wrap=True,
        )


def print_recipe(spec: TableSpec, cells: list[Cell], profile: str) -> None:
    """``crowdbench table T --dry-run``: the resolved recipe, its sources and each row's deviations; runs nothing."""
    from rich.table import Table

    if profile != "full":
        out.print(
            f"{spec.id} under [bold]{profile}[/]: synthetic data and CPU-sized models, not the paper's recipe "
            "(level smoke); the paper's recipe is what `--profile full` runs."
        )
        budget = f": {spec.smoke_budget.strip()}" if spec.smoke_budget.strip() else ""
        out.print(f"Smoke budget: {spec.smoke_seeds} seed{'s' if spec.smoke_seeds > 1 else ''} by default{budget}")
        if spec.smoke_settings:
            settings = ", ".join(f"{key}={value}" for key, value in spec.smoke_settings.items())
            out.print(f"Smoke settings of this table (on top of the smoke profile): {settings}")
    else:
        recipe = load_recipe(spec.task)
        table = Table(title=f"{spec.id}: the paper's recipe ({recipe.title})", title_justify="left")
        for col in ("setting", "value", "source"):
            table.add_column(col, overflow="fold")
        rows: dict[str, tuple[Any, str, bool]] = {k: (v.value, v.source, v.known) for k, v in recipe.settings.items()}
        rows.update({f"data.{k}": (v, f"table spec data ({spec.dataset})", True) for k, v in spec.data.items()})
        rows.update({k: (v.value, f"{spec.id}: {v.source}", v.known) for k, v in spec.recipe.items()})
        for key, (value, source, known) in rows.items():
            table.add_row(key, escape(str(value)), escape(source if known else f"unknown: {source}"))
        for key, init in recipe.init.items():
            table.add_row(key, escape(f"pretrained: {init.weights}"), escape(init.source))
        out.print(table)
    for cell in cells:
        if profile == "full":
            what = "; ".join(str(d) + (f" ({d.hint})" if d.hint else "") for d in cell.deviations) or "none"
            out.print(f"{cell.name}: level {cell.level}; deviations: {escape(what)}", soft_wrap=True)
        else:
            out.print(f"{cell.name}: level {cell.level}; config {cell.config_hash}")


def check_cells(spec: TableSpec, cells: list[Cell]) -> None:
    """Before any work: each cell's data and path settings exist and its evaluate stage gives the table's columns."""
    task = task_of(spec.task)
    for cell in cells:
        check_data(cell.config.data)
        preflight(cell.config)
        produced = task.metric_keys(cell.config)
        missing = [m.key for m in spec.metrics if m.key not in produced]
        if missing:
            raise SpecError(
                f"{spec.id}: metric columns {missing} are not produced by evaluate.metric="
                f"{cell.config.evaluate.metric!r} (it gives {', '.join(produced)})"
            )


def pending_cells(
    cells: list[Cell], profile: str, store: ResultStore, cache: StageCache, task: Task, run: dict[str, Any]
) -> tuple[list[CellJob], int]:
    """The jobs of the cells not finished yet and how many are: a cell whose record has the same stage keys and
    whose ``evaluate`` output exists is a cache hit. ``run``: the cell file's command, store and cache settings."""
    todo, cached = [], 0
    for cell in cells:
        keys = stage_keys(cell.config)
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
            **run,
            "level": cell.level,
            "deviations": [d.to_dict() for d in cell.deviations],
        }
        shared = next(keys[k] for k in task.shared if k in keys)  # the heaviest stage: cells sharing it run in turn
        todo.append(CellJob(cell, shared, payload))
    return todo, cached


def report_table(
    spec: TableSpec, cells: list[Cell], store: ResultStore, profile: str, command: str, failed: list[str], run_dir: Path
) -> tuple[TableView, dict[str, Path]]:
    """Aggregate the table's records (the cells' config variants) and write its reports; closes the store."""
    hashes = {c.config_hash for c in cells}
    records = [r for r in store.query(spec.id, profile=profile) if r.config_hash in hashes]
    failed_rows = {c.row_index for c in cells if c.name in failed}
    view = aggregate(spec, records, profile, command, failed_rows)
    reports = write_reports(view, run_dir / "reports" if profile == "smoke" else run_dir / "reports" / profile)
    store.dispose()
    return view, reports


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
    rows: list[int] | str | None = None,
    data_root: Path | None = None,
    executor_options: dict[str, Any] | None = None,
    cache_url: str | None = None,
    dry_run: bool = False,
) -> TableRun | None:
    """Run (or with ``dry_run`` only show) one table; None for a dry run. ``seeds`` and ``rows`` default to the
    table's (:meth:`TableSpec.default_seeds`, :meth:`TableSpec.default_rows`); ``rows="all"``: every runnable row."""
    spec = load_spec(table_id)
    seeds = seeds if seeds is not None else spec.default_seeds(profile)
    on_request = spec.rows_on_request(profile) if rows is None else []
    if rows == "all":  # every runnable row, the smoke-unmeasurable ones included
        rows = None
    elif rows is None:
        rows = spec.default_rows(profile)
    overrides = dict(overrides or {})
    if data_root is not None:
        overrides["data.root"] = str(data_root)
    if device != "auto":
        overrides["device"] = device
    cells = expand(spec, profile=profile, seeds=seeds, overrides=overrides, rows=rows)
    if on_request:
        labels = ", ".join(spec.rows[i].label for i in on_request)
        console.print(
            f"Rows not measurable in smoke run only on request (never counted): {labels}; "
            f"--rows {','.join(str(i + 1) for i in on_request)} runs them."
        )
    if dry_run:
        print_recipe(spec, cells, profile)
        return None
    run_dir = Path(run_dir).resolve()
    url = store_url(run_dir, db_url)
    store = ResultStore(url)
    cache = StageCache(run_dir / "cache", cache_url)
    command = command_line()
    task = task_of(spec.task)
    payload = {"command": command, "store_url": url, "cache_root": str(cache.root), "cache_url": cache_url}
    runner = make_executor(executor, jobs, device, executor_options)  # a missing package fails before any work
    check_cells(spec, cells)
    warn_deviations(cells)
    console.print(
        f"[bold]{spec.id}[/]: {spec.title} — profile [bold]{profile}[/], {len(cells)} cells "
        f"({len(spec.runnable_rows)} runnable of {len(spec.rows)} rows × {len(seeds)} seeds), run dir {run_dir}"
    )
    start = time.perf_counter()
    todo, cached = pending_cells(cells, profile, store, cache, task, payload)
    failed: list[str] = []

    def on_done(status: CellStatus) -> None:
        if status.returncode != 0:
            failed.append(status.cell.name)
            console.print(f"  [red]failed[/]     {status.cell.name} (exit {status.returncode}); other cells continue")

    if todo:
        runner.run(todo, on_done)
    view, reports = report_table(spec, cells, store, profile, command, failed, run_dir)
    out.print(terminal_table(view))
    console.print(
        f"{len(todo) - len(failed)} cells run, {cached} from cache, {len(failed)} failed in "
        f"{time.perf_counter() - start:.1f} s. Reports: " + ", ".join(str(p) for p in reports.values())
    )
    return TableRun(view, reports, failed, len(todo) - len(failed), cached)
