"""Render a :class:`TableView` as a rich terminal table, Markdown, CSV and one self-contained HTML file."""

from __future__ import annotations

import csv
import io
import statistics
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from rich.console import Group
from rich.table import Table

from crowdbench.bench.specs import MetricColumn
from crowdbench.datasets.formats.atomic import atomic_write_text
from crowdbench.reports.aggregate import (
    EFFECT_HEADER,
    RowView,
    TableView,
    effect_rows,
    format_cell,
    format_delta,
    format_value,
    params_text,
    verdict_summary,
)
from crowdbench.reports.figures import png_base64, pyplot

LEVEL_NOTE = {
    "smoke": "SMOKE: synthetic crowds and tiny models. These numbers test the pipeline; they are NOT a reproduction "
    "of the paper and must not be compared with its values.",
    "full": "FULL: the paper's data and recipe (results/recipes, the table spec's recipe block).",
    "full-modified": "FULL-MODIFIED: real data, but not the paper's recipe; each such row lists its deviations "
    "(recipe → run). Its Δ is not a reproduction verdict.",
}


WAP_NOTE = (
    "w-AP: per-video OKS AP combined by crowdbench's declared weighting (bench/metrics/hie_wap.py default `people`: "
    "annotated person-frames per video; `crowdbench eval hie-wap --weighting` offers others); the official HIE2020 "
    "weighting is unpublished, and so are HIE OKS sigmas."
)


def level_note(view: TableView) -> str:
    note = " ".join(LEVEL_NOTE.get(level, level) for level in view.level.split("/") if level in LEVEL_NOTE) or (
        "No row has been run yet."
    )
    modified = [r for r in view.rows if r.deviations]
    if modified:
        note += " Deviations from the paper's recipe (recipe → run): " + " ".join(
            f"row {r.index + 1} '{r.label}': {'; '.join(r.deviations)}." for r in modified
        )
    if any(m.key.startswith("wAP") for m in view.spec.metrics):
        note += " " + WAP_NOTE
    return note


def _ours(view: TableView) -> str:
    """Header of the reproduced columns: the reproduction level, so smoke numbers are never unlabelled."""
    return view.level if view.level != "none" else "reproduced"


def ours_header(view: TableView, m: MetricColumn) -> str:
    """Header of one metric's reproduced column; a timing column also names the device(s) it was measured on."""
    if m.timing and view.devices:
        return f"{_ours(view)}, on {' / '.join(view.devices)}"
    return _ours(view)


def _row_status(row: RowView) -> str:
    if row.status == "pending":
        return f"pending: {row.pending}"
    if row.status != "done":
        return row.status
    levels = ",".join(row.levels)
    n = len(row.deviations)
    return f"{levels} ({n} deviation{'s' if n > 1 else ''})" if n else levels


def show_delta(view: TableView) -> bool:
    """Reproduced − paper columns exist only for full / full-modified numbers: a smoke number is not comparable."""
    return view.profile == "full"


def _cells(view: TableView, row: RowView) -> list[str]:
    cells = []
    for m in view.spec.metrics:
        c = row.cells[m.key]
        cells += [format_value(c.paper, m.decimals), format_cell(c, m.decimals)]
        if show_delta(view):
            cells.append(format_delta(c, m.decimals))
    return cells


def terminal_table(view: TableView) -> Group:
    """The paper | reproduced [95 % CI] table, then the effects table with its verdicts and their count."""
    spec = view.spec
    table = Table(title=f"{spec.id}: {spec.title}", caption=level_note(view), caption_justify="left")
    table.add_column("row", no_wrap=True)
    for m in spec.metrics:
        table.add_column(f"{m.label}\npaper", justify="right", style="dim")
        table.add_column(f"{m.label}\n{ours_header(view, m)}", justify="right")
        if show_delta(view):
            table.add_column("Δ", justify="right", style="dim")
    table.add_column("level", min_width=13)
    for row in view.rows:
        status = _row_status(row)
        table.add_row(row.label, *_cells(view, row), f"[yellow]{status}[/]" if row.status != "done" else status)
    effects = Table(
        title=f"{spec.id}: effects (row − its compare_to row)",
        caption=f"{verdict_summary(view)}. {EFFECT_NOTE}",
        caption_justify="left",
    )
    for i, col in enumerate(EFFECT_HEADER):
        effects.add_column(col, justify="left" if i in (0, 2, 5) else "right")
    for line in effect_rows(view):
        effects.add_row(*line)
    return Group(table, effects) if effects.row_count else Group(table)


EFFECT_NOTE = (
    "Reproduced effect: paired percentile bootstrap over the test units (same images or videos, same replicates in "
    "both rows; seeds pooled), 95 %, per effect, no correction for multiple comparisons. agrees / opposes: the "
    "interval excludes 0 on the paper effect's side / the other side; within noise: it contains 0."
)


def _header(view: TableView) -> list[str]:
    head = ["row"]
    for m in view.spec.metrics:
        head += [f"{m.label} paper", f"{m.label} {ours_header(view, m)}"]
        if show_delta(view):
            head.append(f"{m.label} Δ")
    return [*head, "level / status"]


def _body(view: TableView) -> list[list[str]]:
    return [[row.label, *_cells(view, row), _row_status(row)] for row in view.rows]


def markdown(view: TableView) -> str:
    spec = view.spec
    head = _header(view)
    lines = [
        f"# {spec.id}: {spec.title}",
        "",
        f"Paper: `{spec.paper_file}`, Table {spec.table} ({spec.dataset}). Profile `{view.profile}`.",
        "",
        f"> {level_note(view)}",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
    ]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in body) + " |" for body in _body(view)]
    effects = effect_rows(view)
    if effects:
        lines += ["", f"Effects (row − its compare_to row): {verdict_summary(view)}.", ""]
        lines += ["| " + " | ".join(EFFECT_HEADER) + " |", "|" + "|".join("---" for _ in EFFECT_HEADER) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in effects]
        lines += ["", f"> {EFFECT_NOTE}"]
    if params := params_text(view):
        lines += ["", params]
    lines += ["", "Paper values: " + "; ".join(f"{r.label}: {r.source}" for r in view.rows), ""]
    lines += [_provenance_text(view), ""]
    return "\n".join(lines)


def csv_text(view: TableView) -> str:
    """Machine-readable: one line per (row, metric) with paper, mean, std, n, delta, level."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    head = ["table", "row", "metric", "paper", "mean", "std", "n", "low", "high", "delta", "level", "deviations"]
    head += ["status", "source", "compare_to", "effect_paper", "effect", "effect_low", "effect_high", "verdict"]
    writer.writerow(head)
    for row in view.rows:
        for m in view.spec.metrics:
            c, e = row.cells[m.key], row.effects.get(m.key)
            writer.writerow(
                [
                    view.spec.id,
                    row.label,
                    m.key,
                    "" if c.paper is None else c.paper,
                    "" if c.mean is None else round(c.mean, 6),
                    "" if c.std is None else round(c.std, 6),
                    c.n,
                    _num(c.low),
                    _num(c.high),
                    "" if c.delta is None or not show_delta(view) else round(c.delta, 6),
                    ",".join(row.levels),
                    "; ".join(row.deviations),
                    row.status if not row.pending else f"pending: {row.pending}",
                    row.source,
                    "" if e is None else e.against + 1,
                    "" if e is None else _num(e.paper),
                    "" if e is None else _num(e.mean),
                    "" if e is None else _num(e.low),
                    "" if e is None else _num(e.high),
                    "" if e is None else e.verdict,
                ]
            )
    return buf.getvalue()


def _num(value: float | None) -> float | str:
    return "" if value is None else round(value, 6)


def _provenance_text(view: TableView) -> str:
    p = view.provenance
    if not p:
        return f"Command: `{view.command}`"
    dirty = " (dirty)" if p.get("dirty") else ""
    pkgs = ", ".join(f"{k} {v}" for k, v in sorted(p.get("packages", {}).items()))
    return f"Command: `{view.command}` · commit {p.get('commit', '?')[:12]}{dirty} · {p.get('device', '?')} · {pkgs}"


def figure_png(view: TableView) -> str | None:
    """Bar chart, paper vs reproduced per metric, as a base64 PNG (None when nothing ran)."""
    plt = pyplot()

    metrics = [m for m in view.spec.metrics if any(r.cells[m.key].mean is not None for r in view.rows)]
    if not metrics:
        return None
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.5), squeeze=False)
    labels = [r.label for r in view.rows]
    xs = range(len(labels))
    for ax, m in zip(axes[0], metrics, strict=True):
        paper = [r.cells[m.key].paper or 0 for r in view.rows]
        repro = [r.cells[m.key].mean or 0 for r in view.rows]
        err = [r.cells[m.key].std or 0 for r in view.rows]
        ax.bar([x - 0.2 for x in xs], paper, 0.4, label="paper", color="#bbbbbb")
        ax.bar([x + 0.2 for x in xs], repro, 0.4, yerr=err, label=f"reproduced ({view.level})", color="#3b75af")
        ax.set_title(m.label + (" ↓" if not m.higher_is_better else ""))
        ax.set_xticks(list(xs), [str(i + 1) for i in xs])
        ax.set_xlabel("row")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return png_base64(fig)


def curves_png(view: TableView) -> str | None:
    """Validation AP and training loss per epoch of every row that recorded them (paper 001 Fig. 3 and Fig. 4 for
    occlusion-aug Table 4), mean over seeds, as a base64 PNG; None when no row has curves."""
    plt = pyplot()

    rows = [r for r in view.rows if r.curves and any(c.get("train") for c in r.curves)]
    if not rows:
        return None
    lines = []
    for r in rows:
        series = [c["train"] for c in r.curves if c.get("train")]
        n = min(len(s) for s in series)
        epochs = [e["epoch"] for e in series[0][:n]]
        loss = [statistics.fmean(s[i]["loss"] for s in series) for i in range(n)]
        ap_pts = [
            (epochs[i], statistics.fmean(s[i]["val_AP"] for s in series) * 100)
            for i in range(n)
            if all("val_AP" in s[i] for s in series)
        ]
        lines.append((r.label, epochs, loss, ap_pts))
    with_ap = any(ap for *_, ap in lines)  # pipelines without a per-epoch validation draw the loss alone
    fig, axes = plt.subplots(1, 2 if with_ap else 1, figsize=(10 if with_ap else 5.5, 3.6), squeeze=False)
    ax_loss = axes[0, -1]
    for label, epochs, loss, ap_pts in lines:
        ax_loss.plot(epochs, loss, label=label)
        if ap_pts:
            axes[0, 0].plot(*zip(*ap_pts, strict=True), label=label)
    ax_loss.set(title="training loss", xlabel="epoch", ylabel="loss", yscale="log")
    if with_ap:
        axes[0, 0].set(title=f"validation AP during training ({view.level})", xlabel="epoch", ylabel="AP (%)")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return png_base64(fig)


def html(view: TableView) -> str:
    env = Environment(loader=PackageLoader("crowdbench.reports", "templates"), autoescape=select_autoescape())
    template = env.get_template("table.html.j2")
    return template.render(
        view=view,
        spec=view.spec,
        header=_header(view),
        body=_body(view),
        show_delta=show_delta(view),
        effect_header=EFFECT_HEADER,
        effects=effect_rows(view),
        verdicts=verdict_summary(view),
        params=params_text(view),
        effect_note=EFFECT_NOTE,
        level_note=level_note(view),
        provenance=_provenance_text(view),
        figure=figure_png(view),
        curves=curves_png(view),
    )


def write_reports(view: TableView, out_dir: Path) -> dict[str, Path]:
    """Write ``<table>.md``, ``.csv`` and ``.html`` under ``out_dir/<paper-key>/``."""
    base = Path(out_dir) / view.spec.paper
    paths = {}
    for ext, text in (("md", markdown(view)), ("csv", csv_text(view)), ("html", html(view))):
        path = base / f"table{view.spec.table}.{ext}"
        atomic_write_text(path, text)
        paths[ext] = path
    return paths
