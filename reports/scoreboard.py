"""The honest scoreboard (issue 22): across tables, how many of the paper's effects the smoke runs reproduce.

Only records of a row's default configuration count (the spec's rows under the profile, any seed): a run with
``--set`` overrides is a check, not the table. Per table: the counted verdicts (agrees, within noise, opposes), the
effects not measurable in smoke (the row's ``smoke_unmeasurable``), the effects that need seeds (two separately
trained models run with too few seeds to hold their training noise), the seeds, the compute minutes of the records
(the workers' wall time, cache hits excluded) and the median width of the effect intervals.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from crowdbench.bench.matrix import config_hash, expand
from crowdbench.bench.specs import TableSpec, available_tables, load_spec
from crowdbench.bench.store import Record, ResultStore
from crowdbench.reports.aggregate import APART, COUNTED, NEEDS_SEEDS, NOT_MEASURABLE, aggregate, verdict_counts


@dataclass
class TableScore:
    """One table's line of the scoreboard (``runnable`` false: no runnable row; ``run`` false: no default record)."""

    table: str
    scenario: str
    runnable: bool
    run: bool = False
    smoke_seeds: int = 1  # the table's default seed count under smoke (its spec's budget)
    agrees: int = 0
    within_noise: int = 0
    opposes: int = 0
    not_measurable: int = 0
    needs_seeds: int = 0  # effects between separately trained models run with fewer seeds than MIN_SEEDS
    seeds: list[int] = field(default_factory=list)
    minutes: float = 0.0
    median_ci_width: float | None = None  # effects with an interval, in each metric's paper unit
    verdicts: dict[str, str] = field(default_factory=dict)  # "row N/metric" -> verdict (the regression guard)

    @classmethod
    def of(cls, spec: TableSpec) -> TableScore:
        """The unrun line of ``spec``."""
        return cls(spec.id, spec.smoke_scenario, bool(spec.runnable_rows), smoke_seeds=spec.smoke_seeds)


def default_records(spec: TableSpec, records: list[Record], profile: str) -> list[Record]:
    """The records whose config is the row's default under ``profile`` (no ``--set``), any seed."""
    seeds = sorted({r.seed for r in records})
    if not seeds:
        return []
    wanted = {(c.row_index, c.seed): config_hash(c.config) for c in expand(spec, profile=profile, seeds=seeds)}
    return [r for r in records if wanted.get((r.row_index, r.seed)) == r.config_hash]


def table_score(store: ResultStore, spec: TableSpec, profile: str = "smoke") -> TableScore:
    score = TableScore.of(spec)
    records = default_records(spec, store.query(spec.id, profile=profile), profile)
    if not records:
        return score
    view = aggregate(spec, records, profile, "")
    counts = verdict_counts(view)
    widths = []
    for row in view.rows:
        for key, e in row.effects.items():
            if e.verdict in (*COUNTED, *APART) and e.mean is not None:
                score.verdicts[f"row {row.index + 1}/{key}"] = e.verdict
            if e.low is not None and e.high is not None and e.verdict in COUNTED:
                widths.append(e.high - e.low)
    score.run = True
    score.agrees, score.within_noise = counts.get("agrees", 0), counts.get("within noise", 0)
    score.opposes, score.not_measurable = counts.get("opposes", 0), counts.get(NOT_MEASURABLE, 0)
    score.needs_seeds = counts.get(NEEDS_SEEDS, 0)
    score.seeds = sorted({r.seed for r in records})
    score.minutes = round(sum(float(r.provenance.get("wall_s", 0.0)) for r in records) / 60, 1)
    score.median_ci_width = round(statistics.median(widths), 2) if widths else None
    return score


def scoreboard(store: ResultStore, tables: list[str] | None = None, profile: str = "smoke") -> list[TableScore]:
    """Every table's score (default: all tables of the five papers)."""
    return [table_score(store, load_spec(t), profile) for t in tables or available_tables()]


def totals(scores: list[TableScore]) -> dict[str, Any]:
    run = [s for s in scores if s.run]
    return {
        "tables_run": len(run),
        "tables_runnable": sum(s.runnable for s in scores),
        "agrees": sum(s.agrees for s in run),
        "within_noise": sum(s.within_noise for s in run),
        "opposes": sum(s.opposes for s in run),
        "not_measurable": sum(s.not_measurable for s in run),
        "needs_seeds": sum(s.needs_seeds for s in run),
        "minutes": round(sum(s.minutes for s in run), 1),
    }


def as_json(scores: list[TableScore]) -> dict[str, Any]:
    return {"tables": [asdict(s) for s in scores], "totals": totals(scores)}
