"""The scoreboard (issue 22): rows not measurable in smoke, counting only default settings, the CLI and the site."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_effects import N_IMAGES, RatioResampler, record_of  # tests/ is on sys.path

from crowdbench.bench.cli import main
from crowdbench.bench.matrix import expand, parse_set
from crowdbench.bench.specs import available_tables, load_spec
from crowdbench.bench.store import ResultStore, store_url
from crowdbench.reports.aggregate import NOT_MEASURABLE, verdict_counts, verdict_summary
from crowdbench.reports.scoreboard import as_json, scoreboard, table_score
from crowdbench.reports.site import build_site, table_view


def _put(store: ResultStore, table: str, row: int, rate: float, seed: int = 0, overrides: str | None = None) -> None:
    spec = load_spec(table)
    (cell,) = expand(spec, rows=[row], seeds=[seed], overrides=parse_set([overrides] if overrides else []))
    people = np.random.default_rng(seed).integers(1, 20, N_IMAGES).astype(np.float64)
    res = RatioResampler({m.key: np.round(rate * people) for m in spec.metrics}, people)
    store.put(record_of(cell, res, {"device": "cpu (test)", "wall_s": 90.0}, resamples=200))


def test_every_unmeasurable_reason_is_a_sentence_and_no_row_of_a_technique_is_hidden():
    for table in available_tables():
        for row in load_spec(table).rows:
            if row.smoke_unmeasurable:
                assert len(row.smoke_unmeasurable) > 40 and not row.pending, (table, row.label)
    # the techniques issue 22 names keep their verdicts
    for table in ("hie-pose/table3", "hie-tracking/table5", "occlusion-aug/table1", "occlusion-aug/table3"):
        assert not any(r.smoke_unmeasurable for r in load_spec(table).rows), table


def test_unmeasurable_row_gets_its_verdict_and_reason_and_is_not_counted(tmp_path):
    store = ResultStore(store_url(tmp_path))
    _put(store, "hie-pose/table1", 0, 0.5)
    _put(store, "hie-pose/table1", 1, 0.7)  # row 2: ResNet-152 vs ResNet-50, flagged in the spec
    view, _ = table_view(store, load_spec("hie-pose/table1"), "smoke", "cmd")
    e = view.rows[1].effects["AP"]
    assert e.verdict == NOT_MEASURABLE and "ImageNet-scale capacity" in e.reason
    assert e.low is not None and e.low > 0  # the interval is still shown
    counts = verdict_counts(view)
    assert counts == {NOT_MEASURABLE: 2}  # AP and mMR have paper values; JI has none
    assert verdict_summary(view).endswith("; 2 not measurable in smoke, not counted")


def test_scoreboard_counts_default_settings_only(tmp_path):
    store = ResultStore(store_url(tmp_path))
    for row, rate in enumerate((0.5, 0.7, 0.7, 0.9, 0.9)):
        _put(store, "hie-pose/table3", row, rate)
    _put(store, "hie-pose/table3", 1, 0.1, overrides="train.iterations=5")  # a check, not the table
    score = table_score(store, load_spec("hie-pose/table3"))
    assert score.run and score.seeds == [0] and score.minutes == pytest.approx(7.5)
    assert score.agrees == 2 and score.within_noise == 2 and score.opposes == 2
    assert score.verdicts["row 2/AP"] == "agrees" and score.verdicts["row 2/mMR"] == "opposes"
    assert score.median_ci_width is not None and score.median_ci_width > 0
    view, _ = table_view(store, load_spec("hie-pose/table3"), "smoke", "cmd")
    assert verdict_summary(view).endswith(
        "; one seed: the intervals hold test-set noise only, not training noise (--seeds 3)"
    )
    board = scoreboard(store, ["hie-pose/table3", "hie-pose/table1"])
    totals = as_json(board)["totals"]
    assert totals["tables_run"] == 1 and totals["agrees"] == 2 and totals["minutes"] == pytest.approx(7.5)
    _put(store, "hie-pose/table3", 0, 0.5, seed=1)
    view, _ = table_view(store, load_spec("hie-pose/table3"), "smoke", "cmd")
    assert "one seed" not in verdict_summary(view)


def test_list_tables_prints_the_scoreboard_and_json(tmp_path, capsys):
    store = ResultStore(store_url(tmp_path))
    _put(store, "hie-pose/table3", 0, 0.5)
    _put(store, "hie-pose/table3", 1, 0.7)
    store.dispose()
    assert main(["list", "tables", "--run-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "crowded_pairs" in text and "not run" in text and "1 of 20 runnable tables run" in text.replace("\n", " ")
    assert main(["list", "tables", "--run-dir", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    (t3,) = [t for t in data["tables"] if t["table"] == "hie-pose/table3"]
    assert t3["agrees"] == 1 and t3["verdicts"]["row 2/AP"] == "agrees"
    assert main(["list", "tables", "--run-dir", str(tmp_path / "empty")]) == 0  # no store: scenarios only
    assert "agree" in capsys.readouterr().out


def test_site_index_shows_the_scoreboard(tmp_path):
    store = ResultStore(store_url(tmp_path))
    _put(store, "hie-pose/table3", 0, 0.5)
    _put(store, "hie-pose/table3", 1, 0.7)
    index = build_site(store, tmp_path / "site", tables=["hie-pose/table3", "hie-pose/table1"])
    html = index.read_text()
    assert "Scoreboard" in html and "<strong>1 agree</strong>" in html and "not run" in html
