"""Intervals, paired effects and verdicts in the reports, and the tidy results frame (issue 19), on records whose
bootstrap replicates come from a hand-made per-image resampler (a ratio of sums, like recall)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

from crowdbench.bench.cli import main
from crowdbench.bench.matrix import Cell, config_hash, expand
from crowdbench.bench.metrics.bootstrap import bootstrap_record, verdict
from crowdbench.bench.specs import load_spec
from crowdbench.bench.store import Record, ResultStore, store_url
from crowdbench.reports.aggregate import effect_rows, verdict_summary
from crowdbench.reports.render import csv_text, markdown
from crowdbench.reports.site import table_view
from crowdbench.results import load

N_IMAGES = 200


@dataclass
class RatioResampler:
    """Per image: hits and people; metric = sum(w * hits) / sum(w * people) (a recall-like ratio of sums)."""

    hits: dict[str, np.ndarray]
    people: np.ndarray
    unit: str = "image"

    @property
    def units(self) -> list[str]:
        return [str(i) for i in range(len(self.people))]

    def values(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        return {k: (weights @ h) / (weights @ self.people) for k, h in self.hits.items()}


def _resampler(rate: dict[str, float], seed: int) -> RatioResampler:
    rng = np.random.default_rng(seed)
    people = rng.integers(1, 20, N_IMAGES).astype(np.float64)
    return RatioResampler({k: rng.binomial(people.astype(int), p).astype(np.float64) for k, p in rate.items()}, people)


def record_of(cell: Cell, res: RatioResampler, provenance: dict[str, Any], **bootstrap: Any) -> Record:
    """The smoke record a worker would store for ``cell`` whose evaluation is ``res`` (point = all images once)."""
    point = res.values(np.ones((1, N_IMAGES)))
    return Record(
        table_id=cell.table_id, row_index=cell.row_index, row_label=cell.row_label, seed=cell.seed, profile="smoke",
        level="smoke", config_hash=config_hash(cell.config), config=cell.config.model_dump(mode="json"),
        stage_keys={}, stages_run=[], metrics={k: float(v[0]) for k, v in point.items()}, provenance=provenance,
        bootstrap=bootstrap_record(res, **bootstrap),
    )  # fmt: skip


def _put(store: ResultStore, row: int, seed: int, res: RatioResampler) -> None:
    cell = expand(load_spec("hie-pose/table3"), rows=[row], seeds=[seed])[0]
    provenance = {"device": "cpu (test)", "commit": "abc", "numerics": {"device": "cpu", "threads": 2}}
    store.put(record_of(cell, res, provenance, resamples=500, seed=0))


@pytest.fixture
def store(tmp_path):
    """hie-pose Table 3: row 2 = row 1's predictions (identical), row 3 much better AP and much worse mMR than row 2
    (planted), two seeds each."""
    store = ResultStore(store_url(tmp_path))
    for seed in (0, 1):
        base = _resampler({"AP": 0.5, "mMR": 0.5, "JI": 0.4}, seed)
        _put(store, 0, seed, base)
        _put(store, 1, seed, base)  # identical predictions
        better = _resampler({"AP": 0.8, "mMR": 0.8, "JI": 0.4}, 100 + seed)
        _put(store, 2, seed, RatioResampler(better.hits, base.people))  # same images, planted effect
    return store, tmp_path


def test_identical_rows_have_a_zero_effect_with_a_zero_width_interval(store):
    s, _ = store
    view, _ = table_view(s, load_spec("hie-pose/table3"), "smoke", "cmd")
    e = view.rows[1].effects["AP"]
    assert e.mean == 0.0 and e.low == 0.0 and e.high == 0.0 and e.verdict == "within noise"


def test_planted_effects_agree_or_oppose_with_the_right_sign(store):
    s, _ = store
    view, _ = table_view(s, load_spec("hie-pose/table3"), "smoke", "cmd")
    ap, mmr = view.rows[2].effects["AP"], view.rows[2].effects["mMR"]
    assert ap.paper > 0 and ap.low > 15 and ap.verdict == "agrees"  # +30 AP points planted; paper +0.23 (seeds vary)
    assert mmr.paper < 0 and mmr.low > 15 and mmr.verdict == "opposes"  # mMR up 30 points; the paper's went down
    assert view.rows[2].cells["AP"].low < view.rows[2].cells["AP"].mean < view.rows[2].cells["AP"].high
    assert verdict_summary(view) == "1 of 4 effects agree, 1 opposes, 2 within noise"  # JI: no paper value
    assert len(effect_rows(view)) == 8  # rows 2-3 x 3 metrics, and row 4 (not run) where the paper has an effect
    assert "1 of 4 effects agree" in markdown(view) and ",agrees" in csv_text(view)
    assert "AP (%) Δ" not in markdown(view)  # smoke: no reproduced − paper column


def test_verdict_rule():
    assert verdict(1.0, 0.1, 0.5) == "agrees" and verdict(-1.0, 0.1, 0.5) == "opposes"
    assert verdict(1.0, -0.1, 0.5) == "within noise" and verdict(None, 0.1, 0.5) == "no paper effect"


def test_results_frame_and_export(store, tmp_path):
    _, run_dir = store
    frame = load(run_dir)
    assert len(frame) == 3 * 2 * 3  # rows x seeds x metrics
    assert set(frame.columns) >= {"value", "low", "high", "effect", "effect_low", "verdict", "level", "deviations",
                                  "config_hash", "numerics"}  # fmt: skip
    row3 = frame[(frame.row == 3) & (frame.metric == "AP")]
    assert (row3.verdict == "agrees").all() and (row3.low < row3.value).all() and (row3.value < row3.high).all()
    assert frame[frame.row == 2].effect.eq(0).all()
    for fmt in ("parquet", "csv"):
        out = tmp_path / f"r.{fmt}"
        assert main(["export", "--format", fmt, "--run-dir", str(run_dir), "--out", str(out)]) == 0
        back = pd.read_parquet(out) if fmt == "parquet" else pd.read_csv(out)
        assert len(back) == len(frame) and list(back.columns) == list(frame.columns)


def test_effect_intervals_carry_training_noise_across_seeds(tmp_path):
    """Two seeds whose effects disagree (+10 and -2 AP points, tiny test-set noise): image resampling alone would
    call +4 with a narrow interval; drawing the seeds in each replicate (hierarchical bootstrap) spans both seeds'
    effects, so the verdict is within noise. With one seed only test-set noise remains."""
    store = ResultStore(store_url(tmp_path))
    people = np.full(N_IMAGES, 1000.0)
    for seed, (a, b) in enumerate([(0.50, 0.60), (0.50, 0.48)]):
        _put(store, 0, seed, RatioResampler({"AP": a * people, "mMR": a * people, "JI": a * people}, people))
        _put(store, 1, seed, RatioResampler({"AP": b * people, "mMR": b * people, "JI": b * people}, people))
    view, _ = table_view(store, load_spec("hie-pose/table3"), "smoke", "cmd")
    e = view.rows[1].effects["AP"]
    assert e.mean == pytest.approx(4.0)
    assert e.low == pytest.approx(-2.0) and e.high == pytest.approx(10.0) and e.verdict == "within noise"
    one = ResultStore(store_url(tmp_path / "one"))
    _put(one, 0, 0, RatioResampler({"AP": 0.5 * people, "mMR": 0.5 * people, "JI": 0.5 * people}, people))
    _put(one, 1, 0, RatioResampler({"AP": 0.6 * people, "mMR": 0.6 * people, "JI": 0.6 * people}, people))
    single, _ = table_view(one, load_spec("hie-pose/table3"), "smoke", "cmd")
    assert single.rows[1].effects["AP"].low == pytest.approx(10.0) and single.rows[1].effects["AP"].verdict == "agrees"
