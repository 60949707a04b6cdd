"""Regression guard of the smoke scoreboard (issue 22): rerun hie-pose Table 3 at default smoke settings and compare
each effect's verdict with the last recorded ones (``tests/smoke_verdicts/hie-pose_table3.json``).

Slow (~9 minutes on 2 cores), outside the default run:
``.venv/bin/python -m pytest -m slow tests/test_smoke_verdicts.py``.
The verdicts hold on the CPU kernel level they were recorded on (``numerics.isa``; another level trains other
one-seed models, hie-pose Table 3 row 1 AP 52.08 with AVX-512 + AMX vs 42.75 with AVX2): elsewhere the slow test
skips, naming both. Re-record from a finished default run (e.g. ``python3 -m nox -s table3``, whose run dir is
``runs/``) after a change that is meant to move a verdict, and say why in the commit:
``.venv/bin/python tests/test_smoke_verdicts.py runs``.
"""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

import pytest

from crowdbench.bench.cli import main
from crowdbench.bench.device import cpu_isa
from crowdbench.bench.specs import load_spec
from crowdbench.bench.store import ResultStore, store_url
from crowdbench.reports.scoreboard import table_score

TABLE = "hie-pose/table3"
RECORDED = Path(__file__).parent / "smoke_verdicts" / "hie-pose_table3.json"


def verdicts(run_dir: Path) -> dict[str, str]:
    """``"row N/metric" -> verdict`` of the table's default smoke records in ``run_dir``."""
    store = ResultStore(store_url(run_dir))
    try:
        return table_score(store, load_spec(TABLE)).verdicts
    finally:
        store.dispose()


def changed(recorded: dict[str, str], now: dict[str, str]) -> list[str]:
    """Every effect whose verdict differs (or that appeared or went), as ``row N/metric: old -> new``."""
    keys = sorted(set(recorded) | set(now))
    return [
        f"{k}: {recorded.get(k, 'absent')} -> {now.get(k, 'absent')}" for k in keys if recorded.get(k) != now.get(k)
    ]


def record(run_dir: Path) -> None:
    now = verdicts(run_dir)
    if not now:
        raise SystemExit(f"{run_dir}: no default smoke records of {TABLE}")
    RECORDED.parent.mkdir(parents=True, exist_ok=True)
    RECORDED.write_text(
        json.dumps(
            {
                "table": TABLE,
                "recorded": datetime.date.today().isoformat(),
                "run_dir": str(run_dir),
                "isa": cpu_isa(),
                "verdicts": now,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {RECORDED}: {len(now)} verdicts")


def test_changed_names_every_moved_verdict():
    assert changed({"row 2/AP": "agrees"}, {"row 2/AP": "agrees"}) == []
    assert changed({"row 2/AP": "agrees", "row 3/AP": "opposes"}, {"row 2/AP": "within noise"}) == [
        "row 2/AP: agrees -> within noise",
        "row 3/AP: opposes -> absent",
    ]


def test_recorded_verdicts_name_runnable_rows():
    data = json.loads(RECORDED.read_text())
    spec = load_spec(TABLE)
    rows = {f"row {i + 1}" for i, _ in spec.runnable_rows}
    metrics = {m.key for m in spec.metrics}
    assert data["verdicts"] and all(k.split("/")[0] in rows and k.split("/")[1] in metrics for k in data["verdicts"])


@pytest.mark.slow
def test_hie_pose_table3_smoke_verdicts_match_the_recorded_ones(tmp_path):
    data = json.loads(RECORDED.read_text())
    if data["isa"] != cpu_isa():
        pytest.skip(f"verdicts recorded with CPU kernels {data['isa']!r}, this machine runs {cpu_isa()!r}")
    assert main(["table", TABLE, "--run-dir", str(tmp_path)]) == 0
    moved = changed(data["verdicts"], verdicts(tmp_path))
    assert not moved, f"smoke verdicts of {TABLE} moved (re-record if intended): {moved}"


if __name__ == "__main__":
    record(Path(sys.argv[1]))
