"""Paper-vs-reproduced aggregation and the four renderings."""

from __future__ import annotations

import statistics

import pytest

from crowdbench.bench.specs import Row, TableSpec
from crowdbench.bench.store import Record
from crowdbench.reports.aggregate import aggregate
from crowdbench.reports.render import csv_text, html, markdown, terminal_table


@pytest.fixture
def spec() -> TableSpec:
    return TableSpec(
        id="hie-pose/table3",
        paper="hie-pose",
        paper_file="000_ddb63d29ac90dafd.txt",
        table=3,
        title="Detection in Crowded Scenes",
        task="detection",
        dataset="HIE val",
        data={"source": "hie"},
        metrics=[{"key": "AP", "label": "AP (%)"}, {"key": "mMR", "label": "mMR (%)", "higher_is_better": False}],
        rows=[
            Row(label="base", paper={"AP": 81.36, "mMR": 55.17}, source="Table 3, row 1"),
            Row(label="+ kd", plugins=["tfkd"], paper={"AP": 82.0, "mMR": None}, source="r2", pending="needs KD"),
            Row(label="+ x", paper={"AP": 81.0}, source="r3"),
        ],
    )


def _rec(row: int, seed: int, ap: float, mmr: float) -> Record:
    return Record(
        "hie-pose/table3",
        row,
        "base",
        seed,
        "smoke",
        "smoke",
        "h",
        {},
        {},
        [],
        {"AP": ap, "mMR": mmr},
        {"commit": "abc", "command": "crowdbench table hie-pose/table3"},
        created=f"2026-01-0{seed + 1}",
    )


def test_mean_std_delta_and_statuses(spec):
    view = aggregate(spec, [_rec(0, 0, 0.50, 0.80), _rec(0, 1, 0.60, 0.70), _rec(0, 2, 0.55, 0.90)], "smoke", "cmd")
    ap = view.rows[0].cells["AP"]
    assert ap.n == 3 and ap.mean == pytest.approx(55.0) and ap.std == pytest.approx(statistics.stdev([50, 60, 55]))
    assert ap.delta == pytest.approx(55.0 - 81.36)
    assert [r.status for r in view.rows] == ["done", "pending", "not run"]
    assert view.rows[1].cells["mMR"].paper is None and view.level == "smoke"


def test_renderings_show_pending_paper_values_and_smoke_label(spec):
    view = aggregate(
        spec, [_rec(0, 0, 0.50, 0.80), _rec(0, 1, 0.60, 0.70)], "smoke", "crowdbench table hie-pose/table3"
    )
    md = markdown(view)
    assert "55.00 ± 7.07 (n=2)" in md and "81.36" in md
    assert "-26.36" not in md  # smoke: no reproduced − paper column (not comparable)
    assert "pending: needs KD" in md and "NOT a reproduction" in md and "crowdbench table hie-pose/table3" in md
    rows = csv_text(view).splitlines()
    assert rows[1].startswith("hie-pose/table3,base,AP,81.36,55.0,") and "pending: needs KD" in rows[3]
    page = html(view)
    assert "Reproduction level: smoke" in page and "pending: needs KD" in page and "data:image/png;base64," in page
    assert terminal_table(view).renderables[0].row_count == 3


def test_wap_tables_state_the_weighting():
    from crowdbench.bench.specs import load_spec

    view = aggregate(load_spec("hie-pose/table5"), [], "smoke", "cmd")
    assert "official HIE2020 weighting is unpublished" in markdown(view)
    assert "official HIE2020 weighting is unpublished" in html(view)


def test_undefined_metric_is_not_a_measurement(spec):
    """pycocotools reports -1 for a bucket without ground truth (AP^L on small people): shown as missing."""
    view = aggregate(spec, [_rec(0, 0, -1.0, 0.80)], "smoke", "cmd")
    ap = view.rows[0].cells["AP"]
    assert ap.mean is None and ap.n == 0 and ap.delta is None
    assert view.rows[0].cells["mMR"].mean == pytest.approx(80.0)
