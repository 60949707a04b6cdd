"""Paper-vs-reproduced view of one table: per cell the paper value, mean ± std over seeds, delta and level."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from crowdbench.bench.specs import TableSpec
from crowdbench.bench.store import Record


@dataclass
class CellView:
    paper: float | None
    mean: float | None = None
    std: float | None = None
    n: int = 0

    @property
    def delta(self) -> float | None:
        if self.paper is None or self.mean is None:
            return None
        return self.mean - self.paper


@dataclass
class RowView:
    index: int
    label: str
    plugins: list[str]
    source: str
    pending: str | None
    status: str  # "done" | "pending" | "not run" | "failed"
    cells: dict[str, CellView]
    levels: list[str] = field(default_factory=list)
    stages_run: list[list[str]] = field(default_factory=list)
    curves: list[dict[str, list[dict[str, Any]]]] = field(default_factory=list)  # per seed, from training
    deviations: list[str] = field(default_factory=list)  # full-modified: the settings that differ from the recipe


@dataclass
class TableView:
    spec: TableSpec
    profile: str
    rows: list[RowView]
    provenance: dict[str, Any]
    command: str
    devices: list[str] = field(default_factory=list)  # where the records ran (timing columns name them)

    @property
    def level(self) -> str:
        levels = {lvl for r in self.rows for lvl in r.levels}
        return "/".join(sorted(levels)) or "none"


def aggregate(
    spec: TableSpec, records: list[Record], profile: str, command: str, failed: set[int] | None = None
) -> TableView:
    """Combine the store's records of ``spec`` (one per row and seed) into a table view."""
    by_row: dict[int, list[Record]] = {}
    for rec in records:
        by_row.setdefault(rec.row_index, []).append(rec)
    rows = []
    for index, row in enumerate(spec.rows):
        recs = sorted(by_row.get(index, []), key=lambda r: r.seed)
        cells = {}
        for metric in spec.metrics:
            # -1 is pycocotools' "undefined" (e.g. AP^L without large people): never a measured value
            values = [r.metrics[metric.key] * metric.scale for r in recs if r.metrics.get(metric.key, -1) != -1]
            cell = CellView(paper=row.paper.get(metric.key))
            if values:
                cell.mean = statistics.fmean(values)
                cell.std = statistics.stdev(values) if len(values) > 1 else 0.0
                cell.n = len(values)
            cells[metric.key] = cell
        if row.pending:
            status = "pending"
        elif recs:
            status = "done"
        elif failed and index in failed:
            status = "failed"
        else:
            status = "not run"
        rows.append(
            RowView(
                index=index,
                label=row.label,
                plugins=[p if isinstance(p, str) else next(iter(p)) for p in row.plugins],
                source=row.source,
                pending=row.pending,
                status=status,
                cells=cells,
                levels=sorted({r.level for r in recs}),
                stages_run=[r.stages_run for r in recs],
                curves=[r.curves for r in recs if r.curves],
                deviations=sorted({d["text"] for r in recs for d in r.provenance.get("deviations") or []}),
            )
        )
    latest = max(records, key=lambda r: r.created).provenance if records else {}
    devices = sorted({str(r.provenance.get("device", "?")) for r in records})
    return TableView(spec, profile, rows, latest, command, devices)


def format_value(value: float | None, decimals: int) -> str:
    return "–" if value is None else f"{value:.{decimals}f}"


def format_cell(cell: CellView, decimals: int) -> str:
    """``mean ± std (n)`` for several seeds, ``mean`` for one, ``–`` when not run."""
    if cell.mean is None:
        return "–"
    if cell.n > 1:
        return f"{cell.mean:.{decimals}f} ± {cell.std:.{decimals}f} (n={cell.n})"
    return f"{cell.mean:.{decimals}f}"


def format_delta(cell: CellView, decimals: int) -> str:
    delta = cell.delta
    return "–" if delta is None else f"{delta:+.{decimals}f}"
