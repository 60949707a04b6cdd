"""Results as a pandas DataFrame: ``crowdbench.results.load(run_dir_or_store_url)``.

One tidy row per (table, row, seed, metric) of the newest config variant of each row, as the reports show it:

- ``value`` (in the paper's unit, e.g. % for AP), ``low`` / ``high`` (95 % bootstrap interval of this seed's value over
  the test units), ``paper``;
- ``compare_to`` (1-based row), ``effect_paper``, ``effect`` (the row's seed-pooled effect against that row),
  ``effect_low`` / ``effect_high`` (paired bootstrap interval) and ``verdict``: row-level values, the same on every
  seed's line of that row and metric;
- ``level`` (smoke / full / full-modified), ``deviations`` (``; ``-joined ``setting: recipe → run``), ``profile``,
  ``config_hash`` and provenance fields (``commit``, ``dirty``, ``device``, ``numerics``, ``wall_s``, ``command``,
  ``created``).

``crowdbench export --format parquet|csv`` writes the same frame.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = [
    "table", "row", "row_label", "seed", "metric", "value", "low", "high", "paper", "compare_to", "effect_paper",
    "effect", "effect_low", "effect_high", "verdict", "level", "deviations", "profile", "config_hash", "commit",
    "dirty", "device", "numerics", "wall_s", "command", "created",
]  # fmt: skip


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


def _store_url(source: str | Path) -> str:
    text = str(source)
    if "://" in text:
        return text
    # deferred: start-up (sqlalchemy)
    from crowdbench.bench.store import store_url

    return store_url(Path(text))


def load(source: str | Path = "runs") -> pd.DataFrame:
    """Every table result of a run folder (its ``results.sqlite``) or a store URL, one row per (table, row, seed,
    metric); parameter-search trials (``<table>#search``) are left out."""
    import numpy as np
    import pandas as pd

    # deferred: start-up (sqlalchemy, jinja2)
    from crowdbench.bench.metrics.bootstrap import percentile_interval, replicates
    from crowdbench.bench.specs import SpecError, load_spec
    from crowdbench.bench.store import ResultStore
    from crowdbench.reports.site import table_view

    store = ResultStore(_store_url(source))
    lines: list[dict[str, Any]] = []
    try:
        for table_id in store.table_ids():
            if "#" in table_id:
                continue
            try:
                spec = load_spec(table_id)
            except SpecError:
                continue
            for profile in sorted({r.profile for r in store.query(table_id)}):
                view, records = table_view(store, spec, profile, "")
                rows = {r.index: r for r in view.rows}
                for rec in records:
                    row = rows[rec.row_index]
                    reps = replicates(rec.bootstrap) if rec.bootstrap else {}
                    prov = rec.provenance
                    for m in spec.metrics:
                        raw = rec.metrics.get(m.key)
                        if raw is None or raw == -1:
                            continue
                        low = high = None
                        if m.key in reps:
                            low, high = percentile_interval(reps[m.key] * m.scale, rec.bootstrap.get("level", 0.95))
                        e = row.effects.get(m.key)
                        lines.append(
                            {
                                "table": table_id, "row": rec.row_index + 1, "row_label": rec.row_label,
                                "seed": rec.seed, "metric": m.key, "value": raw * m.scale, "low": low, "high": high,
                                "paper": row.cells[m.key].paper,
                                "compare_to": None if e is None else e.against + 1,
                                "effect_paper": None if e is None else e.paper,
                                "effect": None if e is None else e.mean,
                                "effect_low": None if e is None else e.low,
                                "effect_high": None if e is None else e.high,
                                "verdict": None if e is None else e.verdict,
                                "level": rec.level,
                                "deviations": "; ".join(d["text"] for d in prov.get("deviations") or []),
                                "profile": rec.profile, "config_hash": rec.config_hash,
                                "commit": prov.get("commit"), "dirty": prov.get("dirty"),
                                "device": prov.get("device"),
                                "numerics": _json(prov.get("numerics")),
                                "wall_s": prov.get("wall_s"), "command": prov.get("command"), "created": rec.created,
                            }
                        )  # fmt: skip
    finally:
        store.dispose()
    frame = pd.DataFrame(lines, columns=COLUMNS)
    for col in ("value", "low", "high", "paper", "effect_paper", "effect", "effect_low", "effect_high", "wall_s"):
        frame[col] = frame[col].astype("float64").replace({None: np.nan})
    frame["compare_to"] = frame["compare_to"].astype("Int64")
    return frame


def export(source: str | Path, out: Path, fmt: str) -> Path:
    """Write :func:`load`'s frame as Parquet or CSV; returns the path."""
    frame = load(source)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        frame.to_parquet(out, index=False)
    elif fmt == "csv":
        frame.to_csv(out, index=False)
    else:
        raise ValueError(f"unknown export format {fmt!r}; formats: parquet, csv")
    return out
