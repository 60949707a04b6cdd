"""Paper-vs-reproduced view of one table: per cell the paper value, mean ± std over seeds, delta and level."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from crowdbench.bench.metrics.bootstrap import pairable, percentile_interval, replicates, seed_draws, verdict
from crowdbench.bench.specs import TableSpec
from crowdbench.bench.store import TRAINING_FOLDERS, Record


@dataclass
class CellView:
    paper: float | None
    mean: float | None = None
    std: float | None = None
    n: int = 0
    low: float | None = None  # 95 % bootstrap interval of the seed-pooled value (paper's unit)
    high: float | None = None

    @property
    def delta(self) -> float | None:
        if self.paper is None or self.mean is None:
            return None
        return self.mean - self.paper


@dataclass
class EffectView:
    """Row B's effect against its ``compare_to`` row A on one metric, in the paper's unit."""

    against: int  # 0-based row A
    paper: float | None  # paper[B] - paper[A]
    mean: float | None = None  # reproduced mean[B] - mean[A]
    low: float | None = None  # paired bootstrap interval (same images, same replicates, seeds pooled)
    high: float | None = None
    verdict: str = "not run"  # bench/metrics/bootstrap.py VERDICTS, or "not run" / "no interval" / NOT_MEASURABLE
    reason: str | None = None  # why the effect is not measurable in smoke (the row's smoke_unmeasurable)


@dataclass
class RowView:
    index: int
    label: str
    plugins: list[str]
    source: str
    pending: str | None
    status: str  # "done" | "pending" | "not run" (with why, for a smoke row run only on request) | "failed"
    cells: dict[str, CellView]
    levels: list[str] = field(default_factory=list)
    stages_run: list[list[str]] = field(default_factory=list)
    curves: list[dict[str, list[dict[str, Any]]]] = field(default_factory=list)  # per seed, from training
    deviations: list[str] = field(default_factory=list)  # full-modified: the settings that differ from the recipe
    effects: dict[str, EffectView] = field(default_factory=dict)  # metric key -> effect against compare_to
    params: dict[str, int] = field(default_factory=dict)  # model -> parameters trained (the record's provenance)


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
        elif profile == "smoke" and row.smoke_unmeasurable and not row.pending:  # TableSpec.default_rows
            status = f"not run: not measurable in smoke (--rows {index + 1})"
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
                params=next((r.provenance["params"] for r in recs if r.provenance.get("params")), {}),
            )
        )
    _add_intervals_and_effects(spec, rows, by_row, profile)
    latest = max(records, key=lambda r: r.created).provenance if records else {}
    devices = sorted({str(r.provenance.get("device", "?")) for r in records})
    return TableView(spec, profile, rows, latest, command, devices)


def format_value(value: float | None, decimals: int) -> str:
    return "–" if value is None else f"{value:.{decimals}f}"


def format_cell(cell: CellView, decimals: int) -> str:
    """``mean ± std (n) [low, high]`` for several seeds (std over seeds; the 95 % bootstrap interval of the
    seed-pooled value), ``mean [low, high]`` for one, ``–`` when not run."""
    if cell.mean is None:
        return "–"
    text = f"{cell.mean:.{decimals}f}"
    if cell.n > 1:
        text += f" ± {cell.std:.{decimals}f} (n={cell.n})"
    interval = format_interval(cell.low, cell.high, decimals)
    return f"{text} {interval}" if interval else text


def format_delta(cell: CellView, decimals: int) -> str:
    """Reproduced − paper, with the interval shifted by the paper value when there is one."""
    delta = cell.delta
    if delta is None:
        return "–"
    if cell.low is None or cell.high is None or cell.paper is None:
        return f"{delta:+.{decimals}f}"
    return f"{delta:+.{decimals}f} [{cell.low - cell.paper:+.{decimals}f}, {cell.high - cell.paper:+.{decimals}f}]"


EFFECT_HEADER = ["row", "vs row", "metric", "paper effect", "reproduced effect [95% CI]", "verdict"]


def effect_rows(view: TableView) -> list[list[str]]:
    """One line per (row, metric) with a ``compare_to`` row: the paper's effect, the reproduced one with its paired
    interval (same images, same replicates, seeds pooled) and the verdict."""
    out = []
    for row in view.rows:
        for m in view.spec.metrics:
            e = row.effects.get(m.key)
            if e is None or (e.paper is None and e.mean is None):
                continue
            paper = "–" if e.paper is None else f"{e.paper:+.{m.decimals}f}"
            said = f"{e.verdict}: {e.reason}" if e.reason else e.verdict
            out.append([f"{row.index + 1}. {row.label}", str(e.against + 1), m.label, paper,
                        format_effect(e, m.decimals), said])  # fmt: skip
    return out


def _pooled(recs: list[Record]) -> tuple[dict[str, Any] | None, dict[str, np.ndarray]]:
    """A row's bootstrap replicates pooled over its seeds: each replicate resamples the same images in every seed's
    predictions and also draws a multiset of the seeds (:func:`seed_draws`, the same draws in every row with as many
    seeds), and averages over the drawn seeds, so intervals and effects carry training noise as well as test-set
    noise. None when a seed has no replicates or they do not pair."""
    boots = [r.bootstrap for r in recs]
    if not boots or not all(boots) or not all(pairable(boots[0], b) for b in boots):
        return None, {}
    per_seed = [replicates(b) for b in boots]
    keys = set.intersection(*(set(v) for v in per_seed))
    draws = seed_draws(len(per_seed), len(next(iter(per_seed[0].values()), [])), int(boots[0].get("seed", 0)))
    pooled = {k: np.einsum("rs,sr->r", draws, np.stack([v[k] for v in per_seed])) / len(per_seed) for k in keys}
    return boots[0], pooled


def _add_intervals_and_effects(
    spec: TableSpec, rows: list[RowView], by_row: dict[int, list[Record]], profile: str
) -> None:
    """Per row and metric: the interval of the seed-pooled value; per row with a ``compare_to`` row: the paper's
    effect, the reproduced effect and its paired interval, and the verdict (``bench/metrics/bootstrap.py``). A row
    not measurable in smoke is marked so when it ran under smoke, or did not run in a smoke view (a default smoke
    run leaves it out, ``TableSpec.default_rows``)."""
    pooled = {i: _pooled(sorted(recs, key=lambda r: r.seed)) for i, recs in by_row.items()}
    for row in rows:
        meta, reps = pooled.get(row.index, (None, {}))
        for m in spec.metrics:
            if m.key in reps and row.cells[m.key].mean is not None:
                low, high = percentile_interval(reps[m.key] * m.scale, meta.get("level", 0.95) if meta else 0.95)
                row.cells[m.key].low, row.cells[m.key].high = low, high
        against = spec.compared_row(row.index)
        if against is None:
            continue
        other = rows[against]
        other_meta, other_reps = pooled.get(against, (None, {}))
        for m in spec.metrics:
            b, a = row.cells[m.key], other.cells[m.key]
            effect = EffectView(against, None if b.paper is None or a.paper is None else b.paper - a.paper)
            if b.mean is not None and a.mean is not None:
                effect.mean = b.mean - a.mean
                if meta and other_meta and pairable(meta, other_meta) and m.key in reps and m.key in other_reps:
                    diff = (reps[m.key] - other_reps[m.key]) * m.scale
                    effect.low, effect.high = percentile_interval(diff, meta.get("level", 0.95))
                    effect.verdict = verdict(effect.paper, effect.low, effect.high)
                else:
                    effect.verdict = "no interval"
            if effect.verdict in COUNTED and (why := _needs_seeds(by_row[row.index], by_row[against], against)):
                effect.verdict, effect.reason = NEEDS_SEEDS, why
            smoke = "smoke" in row.levels or (not row.levels and profile == "smoke")
            if reason := spec.rows[row.index].smoke_unmeasurable if smoke else None:
                effect.verdict, effect.reason = NOT_MEASURABLE, reason
            row.effects[m.key] = effect


MIN_SEEDS = 3
"""Seeds per row an effect between two separately trained models needs before it gets a verdict (issue 22)."""


def _trained(rec: Record, exact: bool) -> dict[str, str]:
    """The models a record's cell trained or read: its provenance's ``trained`` (every model, upstream ones included)
    when ``exact``, else its own keys of the training stages (records stored before ``trained`` existed)."""
    if exact:
        return dict(rec.provenance["trained"])
    return {k: v for k, v in rec.stage_keys.items() if k in TRAINING_FOLDERS or k.startswith("ensemble")}


def _needs_seeds(b: list[Record], a: list[Record], against: int) -> str | None:
    """Why row B's effect against row A gets no verdict, or None. With fewer than :data:`MIN_SEEDS` seeds a paired
    interval resamples the test set only; that is the whole noise of the effect when both rows evaluate the same
    trained weights (another NMS, another scorer on one model), not when they train different models: hie-pose Table
    3 row 1 trains to AP 47.8 ± 5.7 over seeds 0-2 at the smoke budget, far more than the paper's effects of
    +0.1 to +0.4 AP, and one seed's interval would not hold that."""
    seeds = min(len({r.seed for r in b}), len({r.seed for r in a}))
    if seeds >= MIN_SEEDS:
        return None
    exact = all("trained" in r.provenance for r in (*a, *b))
    by_seed = {r.seed: _trained(r, exact) for r in a}
    differ = sorted({k for r in b if r.seed in by_seed for k in (_trained(r, exact).items() ^ by_seed[r.seed].items())})
    if not differ:
        return None
    names = ", ".join(dict.fromkeys(k for k, _ in differ))
    return (
        f"trains other models than row {against + 1} ({names}); {seeds} seed{'s' if seeds > 1 else ''} cannot hold "
        f"their training noise (--seeds {MIN_SEEDS})"
    )


NOT_MEASURABLE = "not measurable in smoke"
"""The verdict of a row whose spec gives ``smoke_unmeasurable`` (with that reason), under the smoke level: not
counted among agree / within noise / oppose."""
NEEDS_SEEDS = "needs seeds"
"""The verdict of an effect between rows that train different models, measured over fewer than :data:`MIN_SEEDS`
seeds: its interval holds no training noise, so it is shown but not counted among agree / within noise / oppose."""
APART = (NOT_MEASURABLE, NEEDS_SEEDS)
COUNTED = ("agrees", "within noise", "opposes")


def verdict_counts(view: TableView) -> dict[str, int]:
    """How many effects of the table got each verdict: the counted ones (a paper value and a reproduced interval)
    and those set apart (:data:`APART`) that have a paper value."""
    counts: dict[str, int] = {}
    for row in view.rows:
        for e in row.effects.values():
            if e.verdict in COUNTED or (e.verdict in APART and e.paper is not None):
                counts[e.verdict] = counts.get(e.verdict, 0) + 1
    return counts


def verdict_summary(view: TableView) -> str:
    """``3 of 4 effects agree, 1 within noise`` (or why there is none); effects not measurable in smoke and effects
    that need seeds are named apart and not counted."""
    counts = verdict_counts(view)
    total = sum(counts.get(k, 0) for k in COUNTED)
    apart = [f"{counts[NOT_MEASURABLE]} {NOT_MEASURABLE}, not counted"] if counts.get(NOT_MEASURABLE) else []
    if n := counts.get(NEEDS_SEEDS):
        apart.append(
            f"{n} need{'s' if n == 1 else ''} seeds (the rows train different models; --seeds {MIN_SEEDS}), not counted"
        )
    if not total:
        none = "no counted effect" if apart else "no effect with a paper value and a reproduced interval yet"
        return "; ".join([none, *apart])
    parts = [f"{counts.get('agrees', 0)} of {total} effects agree"]
    parts += [f"{counts[k]} {k}" for k in ("opposes", "within noise") if counts.get(k)]
    one_seed = max((c.n for row in view.rows for c in row.cells.values()), default=0) <= 1
    notes = [*apart]
    if one_seed:
        notes.append(f"one seed: the intervals hold test-set noise only, not training noise (--seeds {MIN_SEEDS})")
    return "; ".join([", ".join(parts), *notes])


def params_text(view: TableView) -> str:
    """``Parameters trained: 1. label: train 1.28 M (full model 28.54 M); ...``: under smoke the stand-ins' sizes
    beside the paper's networks they stand in for (``bench/model_size.py``); empty without counts."""
    # deferred: start-up (torch, only when a row has counts)
    from crowdbench.bench.model_size import full_model_parameters

    def sizes(row: RowView) -> str:
        smoke_train = view.profile == "smoke" and "train" in row.params
        full = full_model_parameters(view.spec.id, row.index) if smoke_train else None
        return ", ".join(
            f"{k} {v / 1e6:.2f} M" + (f" (full model {full / 1e6:.2f} M)" if k == "train" and full else "")
            for k, v in row.params.items()
        )

    parts = [f"{row.index + 1}. {row.label}: {sizes(row)}" for row in view.rows if row.params]
    if not parts:
        return ""
    note = " Smoke trains stand-ins; the full model is the row's network under --profile full."
    note = note if view.profile == "smoke" else ""
    return "Parameters trained: " + "; ".join(parts) + "." + note


def format_interval(low: float | None, high: float | None, decimals: int) -> str:
    return "" if low is None or high is None else f"[{low:.{decimals}f}, {high:.{decimals}f}]"


def format_effect(effect: EffectView | None, decimals: int) -> str:
    """``+1.20 [0.40, 2.05]`` (reproduced effect and its paired interval), ``–`` when not run."""
    if effect is None or effect.mean is None:
        return "–"
    text = f"{effect.mean:+.{decimals}f}"
    if effect.low is not None:
        text += f" [{effect.low:+.{decimals}f}, {effect.high:+.{decimals}f}]"
    return text
