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
from crowdbench.reports.aggregate import NEEDS_SEEDS, NOT_MEASURABLE, aggregate, verdict_counts, verdict_summary
from crowdbench.reports.scoreboard import as_json, scoreboard, table_score
from crowdbench.reports.site import build_site, table_view


def _put(
    store: ResultStore,
    table: str,
    row: int,
    rate: float,
    seed: int = 0,
    overrides: str | None = None,
    trained: dict[str, str] | None = None,
) -> None:
    spec = load_spec(table)
    (cell,) = expand(spec, rows=[row], seeds=[seed], overrides=parse_set([overrides] if overrides else []))
    people = np.random.default_rng(seed).integers(1, 20, N_IMAGES).astype(np.float64)
    res = RatioResampler({m.key: np.round(rate * people) for m in spec.metrics}, people)
    provenance = {"device": "cpu (test)", "wall_s": 90.0, **({"trained": trained} if trained is not None else {})}
    store.put(record_of(cell, res, provenance, resamples=200))


def test_an_effect_between_separately_trained_models_needs_seeds(tmp_path):
    """Rows 1 and 2 of hie-pose Table 3 train different detectors: with one or two seeds the planted +20 AP gets no
    verdict (shown, with the reason); rows 3 and 4 share one detector, so their one-seed verdict counts; with three
    seeds per row the first effect is counted too."""
    store = ResultStore(store_url(tmp_path))
    models = {0: {"train": "a"}, 1: {"train": "b"}, 2: {"train": "c"}, 3: {"train": "c"}}
    for row, rate in enumerate((0.5, 0.7, 0.5, 0.7)):
        _put(store, "hie-pose/table3", row, rate, trained=models[row])
    view, _ = table_view(store, load_spec("hie-pose/table3"), "smoke", "cmd")
    emd, set_nms = view.rows[1].effects["AP"], view.rows[3].effects["AP"]
    assert emd.verdict == NEEDS_SEEDS and emd.low > 15 and "other models than row 1 (train)" in emd.reason
    assert set_nms.verdict == "agrees" and set_nms.reason is None
    view.rows[3].effects.clear()  # only the effects that need seeds left
    assert verdict_summary(view).startswith("no counted effect; 4 need seeds")
    assert verdict_counts(view)[NEEDS_SEEDS] == 4  # AP and mMR of row 2 vs 1 and of row 3 vs 2
    assert "need seeds (the rows train different models; --seeds 3), not counted" in verdict_summary(view)
    score = table_score(store, load_spec("hie-pose/table3"))
    assert score.needs_seeds == verdict_counts(view)[NEEDS_SEEDS] and score.verdicts["row 2/AP"] == NEEDS_SEEDS
    for seed in (1, 2):
        for row, rate in enumerate((0.5, 0.7, 0.5, 0.7)):
            _put(store, "hie-pose/table3", row, rate, seed=seed, trained=models[row])
    view, _ = table_view(store, load_spec("hie-pose/table3"), "smoke", "cmd")
    assert view.rows[1].effects["AP"].verdict == "agrees"


def test_records_without_the_trained_map_compare_their_own_training_keys(tmp_path):
    """Records stored before ``trained`` existed: their own keys of the training stages decide."""
    from test_effects import record_of as bare

    store = ResultStore(store_url(tmp_path))
    spec = load_spec("hie-pose/table3")
    for row, rate in ((0, 0.5), (1, 0.7)):
        (cell,) = expand(spec, rows=[row], seeds=[0])
        people = np.random.default_rng(0).integers(1, 20, N_IMAGES).astype(np.float64)
        rec = bare(
            cell, RatioResampler({m.key: np.round(rate * people) for m in spec.metrics}, people), {}, resamples=200
        )
        rec.stage_keys = {"train": f"t{row}", "infer": f"i{row}", "evaluate": f"e{row}"}
        store.put(rec)
    view, _ = table_view(store, spec, "smoke", "cmd")
    assert view.rows[1].effects["AP"].verdict == NEEDS_SEEDS


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
    # AP and mMR have paper values (JI has none), for the backbone rows 2, 4 and 5; row 4 a default smoke run leaves
    # out. Rows 3, 6 and 7 change only the framework against a row of their own backbone: measurable, not run here
    assert counts == {NOT_MEASURABLE: 6}
    assert view.rows[3].effects["AP"].verdict == NOT_MEASURABLE and view.rows[3].status.startswith("not run: not")
    assert view.rows[2].effects["AP"].verdict == "not run" and not view.rows[2].status.startswith("not run: not")
    assert verdict_summary(view).endswith("; 6 not measurable in smoke, not counted")


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
    assert t3["smoke_seeds"] == 1 and t3["median_ci_width"] > 0
    assert main(["list", "tables", "--run-dir", str(tmp_path / "empty")]) == 0  # no store: scenarios and budgets
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "agree" in lines["table"] and " -/3 " in lines["hie-tracking/table5"]
    assert " -/1 " in lines["hie-pose/table3"] and " -/" not in lines["hie-pose/table4"]  # no runnable row


def test_a_run_without_seeds_gets_the_tables_smoke_budget(tmp_path, capsys):
    args = ["table", "hie-tracking/table5", "--run-dir", str(tmp_path), "--dry-run"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "Smoke budget: 3 seeds by default" in text
    cells = [line for line in text.splitlines() if " seed " in line and "level smoke" in line]
    assert {line.split(" seed ")[1][0] for line in cells} == set("012") and len(cells) == 15
    assert main([*args, "--seeds", "1"]) == 0
    assert "seed 1:" not in capsys.readouterr().out
    assert main(["table", "hie-pose/table3", "--run-dir", str(tmp_path), "--dry-run", "--rows", "1"]) == 0
    assert "seed 1:" not in capsys.readouterr().out and not (tmp_path / "results.sqlite").exists()


def test_a_smoke_run_without_rows_leaves_the_unmeasurable_rows_to_a_request(tmp_path, capsys):
    args = ["table", "offset-guided/table1", "--run-dir", str(tmp_path), "--dry-run"]
    assert main(args) == 0
    captured = capsys.readouterr()
    text = " ".join((captured.err + captured.out).split())  # rich folds long lines
    assert "run only on request (never counted): k, l; --rows 11,12 runs them" in text
    assert "row 10 'j'" in text and "row 11 'k'" not in text and "row 12 'l'" not in text
    settings = "pose.train.samples_per_epoch=256, pose.train.eval_every=0"
    assert f"Smoke settings of this table (on top of the smoke profile): {settings}" in text
    assert main([*args, "--rows", "all"]) == 0
    captured = capsys.readouterr()
    assert "row 12 'l'" in captured.out and "run only on request (never counted)" not in captured.err + captured.out
    assert main([*args, "--rows", "12"]) == 0
    assert "row 12 'l'" in capsys.readouterr().out and not (tmp_path / "results.sqlite").exists()


def test_reports_say_why_a_smoke_row_was_not_run():
    spec = load_spec("offset-guided/table1")
    rows = aggregate(spec, [], "smoke", "").rows
    assert rows[10].status == "not run: not measurable in smoke (--rows 11)" and rows[9].status == "not run"
    assert aggregate(spec, [], "full", "").rows[10].status == "not run"


def test_site_index_shows_the_scoreboard(tmp_path):
    store = ResultStore(store_url(tmp_path))
    _put(store, "hie-pose/table3", 0, 0.5)
    _put(store, "hie-pose/table3", 1, 0.7)
    index = build_site(store, tmp_path / "site", tables=["hie-pose/table3", "hie-pose/table1"])
    html = index.read_text()
    assert "Scoreboard" in html and "<strong>1 agree</strong>" in html and "not run" in html
    assert "<td>1 / 1</td>" in html  # seeds run / the table's smoke budget
