"""The report site: every table, figure and search of a run folder in one self-contained folder, built from the store.

``crowdbench report [--tables T ...] --out DIR`` writes

* ``index.html``: every table of the five papers with its status (reproduced in smoke / full, pending with the
  reason, not run), the last run and the headline delta to the paper (never shown for smoke as a reproduction);
* ``tables/<paper>/table<N>.html``: paper | reproduced (mean ± std, n) | Δ per cell, Δ coloured by the metric's
  tolerance for ``full`` numbers only, what changed between rows, the command and provenance, and the figures: paper
  vs reproduced bars, training curves, precision-recall and miss-rate-FPPI curves (detection), a qualitative frame;
* ``tables/<paper>/table<N>.{md,csv,tex}``: Markdown between markers, CSV, LaTeX (booktabs);
* ``search/*.html``: the parameter-search pages of the run folder (history, importances), copied.

Figures are PNGs inlined as base64 and the pages load nothing from the network, so the folder opens offline.
Nothing is recomputed: numbers come from the store, qualitative frames from cached stage outputs.
"""

from __future__ import annotations

import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from crowdbench.bench.matrix import variant_hash
from crowdbench.bench.registry import parse_plugin_ref
from crowdbench.bench.specs import MetricColumn, TableSpec, available_tables, load_spec
from crowdbench.bench.store import Record, ResultStore
from crowdbench.datasets.formats.atomic import atomic_write_text
from crowdbench.reports.aggregate import (
    EFFECT_HEADER,
    MIN_SEEDS,
    CellView,
    TableView,
    aggregate,
    effect_rows,
    format_cell,
    format_delta,
    format_value,
    params_text,
    verdict_summary,
)
from crowdbench.reports.exports import latex, markdown_block
from crowdbench.reports.figures import png_base64, pyplot
from crowdbench.reports.render import EFFECT_NOTE, csv_text, curves_png, figure_png, level_note, ours_header, show_delta
from crowdbench.reports.scoreboard import scoreboard, totals

PROFILE_ORDER = ("smoke", "full")


def newest_records(store: ResultStore, spec: TableSpec, profile: str) -> list[Record]:
    """The store's records of ``spec``: for each row its newest config variant (all its seeds), so a row re-run with
    other ``--set`` values shows the latest one instead of a mix."""
    records = store.query(spec.id, profile=profile)
    newest: dict[int, str] = {}
    for rec in sorted(records, key=lambda r: r.created):
        newest[rec.row_index] = variant_hash(rec.config)
    return [r for r in records if newest[r.row_index] == variant_hash(r.config)]


def table_view(store: ResultStore, spec: TableSpec, profile: str, command: str) -> tuple[TableView, list[Record]]:
    records = newest_records(store, spec, profile)
    if records:
        command = max(records, key=lambda r: r.created).provenance.get("command", command)
    return aggregate(spec, records, profile, command), records


def delta_class(cell: CellView, metric: MetricColumn, level: str) -> str:
    """CSS class of a Δ cell: ``smoke`` (never coloured: smoke or full-modified, not a reproduction of the paper's
    recipe), ``ok`` within the metric's tolerance, ``near`` within three tolerances, ``far`` beyond, ``none`` without
    both values. ``level`` is the row's level."""
    if cell.delta is None:
        return "none"
    if level != "full":
        return "smoke"
    off = abs(cell.delta)
    return "ok" if off <= metric.tolerance else ("near" if off <= 3 * metric.tolerance else "far")


def row_changes(spec: TableSpec) -> list[str]:
    """Per row, what it switches relative to the row above (plugins added / removed, overrides changed)."""

    def parts(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
        plugins = dict(parse_plugin_ref(ref) for ref in spec.rows[i].plugins)
        return plugins, spec.rows[i].overrides

    out = []
    for i, row in enumerate(spec.rows):
        plugins, overrides = parts(i)
        if row.published_only:
            out.append("another method's published result (nothing to switch)")
            continue
        if i == 0 or (not spec.rows[i - 1].plugins and spec.rows[i - 1].pending):
            named = ", ".join(_plugin_text(n, o) for n, o in plugins.items()) or "no plugins"
            sets = ", ".join(f"{k}={v}" for k, v in overrides.items())
            out.append(f"parts: {named}" + (f"; {sets}" if sets else ""))
            continue
        before, before_over = parts(i - 1)
        changes = [f"+ {_plugin_text(n, o)}" for n, o in plugins.items() if n not in before]
        changes += [f"− {n}" for n in before if n not in plugins]
        changes += [
            f"{_plugin_text(n, o)} instead of {_plugin_text(n, before[n])}"
            for n, o in plugins.items()
            if n in before and before[n] != o
        ]
        changes += [f"{k}={v}" for k, v in overrides.items() if before_over.get(k) != v]
        changes += [f"{k} back to default" for k in before_over if k not in overrides]
        out.append("; ".join(changes) or "same parts as the row above")
    return out


def _plugin_text(name: str, options: dict[str, Any]) -> str:
    return name + (f" ({', '.join(f'{k}={v}' for k, v in options.items())})" if options else "")


def detection_curves_png(view: TableView, records: list[Record]) -> str | None:
    """Precision-recall and miss-rate-FPPI curves of the detection rows (seed 0 of each), as a base64 PNG."""
    plt = pyplot()

    curves = {}
    for rec in sorted(records, key=lambda r: (r.row_index, r.seed)):
        if rec.curves.get("pr") and rec.row_index not in curves:
            curves[rec.row_index] = rec.curves
    if not curves:
        return None
    fig, (ax_pr, ax_mr) = plt.subplots(1, 2, figsize=(10, 3.8))
    for index, c in curves.items():
        label = f"{index + 1}. {view.rows[index].label}"[:48]
        ax_pr.plot([p["recall"] for p in c["pr"]], [p["precision"] for p in c["pr"]], label=label)
        pts = [(p["fppi"], p["miss"]) for p in c["mr_fppi"] if p["fppi"] > 0]
        if pts:
            ax_mr.plot(*zip(*pts, strict=True), label=label)
    ax_pr.set(title=f"precision-recall ({view.level})", xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1))
    ax_mr.set(title="miss rate vs FPPI (mMR: 1e-2 .. 1)", xlabel="false positives per image", ylabel="miss rate")
    ax_mr.set_xscale("log")
    ax_mr.set_yscale("log")
    ax_mr.axvspan(1e-2, 1.0, color="#eee", zorder=0)
    ax_pr.legend(fontsize=7)
    fig.tight_layout()
    return png_base64(fig, dpi=100)


def grouped_bars_png(view: TableView) -> str | None:
    """Tables whose columns are many like quantities (hie-pose Table 4: w-AP per test video): one group of bars per
    column, one bar per row, the paper's solid and the reproduced ones hatched beside them."""
    plt = pyplot()

    metrics = view.spec.metrics
    series = [(r, [r.cells[m.key] for m in metrics]) for r in view.rows]
    series = [(r, cells) for r, cells in series if any(c.paper is not None or c.mean is not None for c in cells)]
    if len(metrics) < 6 or not series:
        return None
    fig, ax = plt.subplots(figsize=(max(8.0, 0.75 * len(metrics) * len(series) / 2), 4.2))
    width = 0.8 / (2 * len(series))
    for i, (row, cells) in enumerate(series):
        xs = [j + (2 * i) * width - 0.4 for j in range(len(metrics))]
        color = f"C{i}"
        ax.bar(xs, [c.paper or 0 for c in cells], width, color=color, label=f"{row.label} (paper)")
        if any(c.mean is not None for c in cells):
            ax.bar([x + width for x in xs], [c.mean or 0 for c in cells], width, color="white", edgecolor=color,
                   hatch="//", label=f"{row.label} ({view.level})")  # fmt: skip
    ax.set_xticks(range(len(metrics)), [m.label for m in metrics], rotation=40, ha="right", fontsize=8)
    ax.set_ylabel(metrics[-1].label if len({m.label for m in metrics}) == 1 else "value")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return png_base64(fig, dpi=100)


@dataclass
class TableEntry:
    """One table on the index page."""

    spec: TableSpec
    path: str
    status: str
    status_class: str
    done: int
    runnable: int
    pending: list[str]
    last_run: str
    headline: str
    profile: str = "smoke"
    verdicts: str = ""


def _headline(view: TableView) -> str:
    """Mean Δ of the first metric over the rows that have both values, for full numbers only (a smoke number is not
    comparable with the paper's: no Δ)."""
    if view.profile != "full":
        return "smoke: no Δ (not comparable)"
    m = view.spec.metrics[0]
    deltas = [r.cells[m.key].delta for r in view.rows if r.cells[m.key].delta is not None]
    if not deltas:
        return "–"
    text = f"{m.label} Δ {statistics.fmean(deltas):+.{m.decimals}f} (mean of {len(deltas)} rows)"
    return text if view.level == "full" else f"{text}, {view.level}: not a verdict"


def _entry(view: TableView, records: list[Record], path: str) -> TableEntry:
    spec = view.spec
    done = sum(r.status == "done" for r in view.rows)
    runnable = len(spec.runnable_rows)
    pending = [f"{r.label}: {r.pending}" for r in view.rows if r.status == "pending"]
    if done:
        status, css = f"reproduced in {view.level}", view.level.split("/")[0]
    elif runnable:
        status, css = "not run yet", "notrun"
    else:
        status, css = "pending", "pending"
    last = max((r.created for r in records), default="")
    last_run = last[:19].replace("T", " ")
    verdicts = verdict_summary(view) if done else ""
    return TableEntry(
        spec, path, status, css, done, runnable, pending, last_run, _headline(view), view.profile, verdicts
    )


def _table_cells(view: TableView) -> list[dict[str, Any]]:
    rows = []
    for row in view.rows:
        cells = []
        for m in view.spec.metrics:
            c = row.cells[m.key]
            cells.append(
                {
                    "key": m.key,
                    "paper": format_value(c.paper, m.decimals),
                    "ours": format_cell(c, m.decimals),
                    "mean": "" if c.mean is None else repr(round(c.mean, m.decimals)),
                    "delta": format_delta(c, m.decimals),
                    "delta_class": delta_class(c, m, ",".join(row.levels)),
                }
            )
        rows.append({"view": row, "cells": cells})
    return rows


def build_site(
    store: ResultStore,
    out: Path,
    *,
    tables: list[str] | None = None,
    profile: str | None = None,
    cache_root: Path | None = None,
    search_dir: Path | None = None,
    command: str = "",
) -> Path:
    """Write the site for ``tables`` (default: all) into ``out``; return the index page. ``profile`` None shows every
    profile the store holds for a table, each on its own page (``table<N>.html`` for smoke, ``table<N>-full.html``
    for full), so neither level hides the other."""
    start = time.perf_counter()
    out = Path(out)
    env = Environment(loader=PackageLoader("crowdbench.reports", "templates"), autoescape=select_autoescape())
    ids = tables or available_tables()
    entries: list[TableEntry] = []
    for table_id in ids:
        spec = load_spec(table_id)
        present = sorted({r.profile for r in store.query(spec.id)}, key=PROFILE_ORDER.index) or ["smoke"]
        for prof in [profile] if profile is not None else present:
            view, records = table_view(store, spec, prof, command)
            rel = f"tables/{spec.paper}/table{spec.table}" + ("" if prof == "smoke" else f"-{prof}")
            _write_table_page(env, out, rel, view, records, cache_root)
            entries.append(_entry(view, records, rel + ".html"))
    searches = _copy_searches(search_dir, out / "search")
    papers: dict[str, list[TableEntry]] = {}
    for e in entries:
        papers.setdefault(e.spec.paper, []).append(e)
    index = out / "index.html"
    board = scoreboard(store, list(ids)) if profile in (None, "smoke") else []
    atomic_write_text(
        index,
        env.get_template("site_index.html.j2").render(
            papers=papers,
            board=board,
            board_totals=totals(board),
            min_seeds=MIN_SEEDS,
            searches=searches,
            profile=profile or "all in the store",
            seconds=time.perf_counter() - start,
        ),
    )
    return index


def _write_table_page(
    env: Environment, out: Path, rel: str, view: TableView, records: list[Record], cache_root: Path | None
) -> None:
    spec = view.spec
    page = env.get_template("site_table.html.j2").render(
        view=view,
        spec=spec,
        rows=_table_cells(view),
        metrics=[(m, ours_header(view, m)) for m in spec.metrics],
        changes=row_changes(spec),
        level_note=level_note(view),
        figures=_figures(view, records, cache_root),
        provenance=view.provenance,
        command=view.command,
        exports=[f"{Path(rel).name}.{ext}" for ext in ("md", "csv", "tex")],
        show_delta=show_delta(view),
        effect_header=EFFECT_HEADER,
        effects=effect_rows(view),
        verdicts=verdict_summary(view),
        params=params_text(view),
        effect_note=EFFECT_NOTE,
    )
    base = out / rel
    atomic_write_text(base.with_suffix(".html"), page)
    atomic_write_text(base.with_suffix(".md"), markdown_block(view))
    atomic_write_text(base.with_suffix(".csv"), csv_text(view))
    atomic_write_text(base.with_suffix(".tex"), latex(view))


def _figures(view: TableView, records: list[Record], cache_root: Path | None) -> list[dict[str, str]]:
    figures = []
    grouped = grouped_bars_png(view)
    if grouped:
        figures.append({"title": "Per column", "png": grouped, "caption": "solid: paper; hatched: reproduced (level)"})
    bars = figure_png(view) if grouped is None else None
    if bars:
        figures.append({"title": "Paper vs reproduced", "png": bars, "caption": f"grey: paper; blue: {view.level}"})
    curves = curves_png(view)
    if curves:
        figures.append(
            {"title": "Training curves", "png": curves, "caption": "recorded every epoch by the train stage"}
        )
    det = detection_curves_png(view, records)
    if det:
        figures.append(
            {"title": "Detection curves", "png": det, "caption": "seed 0 of each row, from its evaluate stage"}
        )
    if cache_root is not None and records:
        # deferred: start-up (cv2)
        from crowdbench.reports.qualitative import frame_figure

        rec = max(records, key=lambda r: (r.row_index, -r.seed))  # the table's last row: its full method
        frame = frame_figure(rec, cache_root)
        if frame:
            title = f"Qualitative: row {rec.row_index + 1} '{rec.row_label}', seed {rec.seed}"
            figures.append({"title": title, "png": frame["png"], "caption": frame["caption"]})
    return figures


def _copy_searches(search_dir: Path | None, dest: Path) -> list[str]:
    if search_dir is None or not search_dir.is_dir():
        return []
    pages = sorted(search_dir.glob("*.html"))
    for page in pages:
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(page, dest / page.name)
    return [f"search/{p.name}" for p in pages]
