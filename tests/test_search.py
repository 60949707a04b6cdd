"""Parameter search engine (bench/search.py) and its report page, on cheap deterministic objectives."""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import signal
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from crowdbench.bench.search import (
    NSGA2_DEFAULTS,
    TPE_DEFAULTS,
    SearchSpace,
    TrialRecord,
    _make_sampler,
    open_storage,
    run_search,
    sampler_settings,
    seed_interval,
    summary_lines,
)
from crowdbench.reports.search import render_search_page

SPACE = {"x": {"float": [-5.0, 5.0], "grid": [-1.0, 0.0, 1.0, 2.0]}, "y": {"int": [-4, 4], "grid": [-2, 0, 2]}}
GRID = [(x, y) for x in (-1.0, 0.0, 1.0, 2.0) for y in (-2, 0, 2)]  # the documented order: last parameter fastest


def quadratic(p: dict[str, Any], delay: float = 0.01) -> dict[str, float]:
    """Minimum 0 at x = 1, y = -2; ``extra`` checks that non-optimised metrics survive."""
    time.sleep(delay)
    return {"loss": (p["x"] - 1.0) ** 2 + (p["y"] + 2) ** 2, "extra": p["x"] + p["y"]}


def rendezvous(p: dict[str, Any], folder: str) -> dict[str, float]:
    """``quadratic`` that first waits (10 s at most) until two processes have called it, so both workers take part."""
    Path(folder, str(os.getpid())).touch()
    deadline = time.time() + 10
    while len(os.listdir(folder)) < 2 and time.time() < deadline:
        time.sleep(0.01)
    return quadratic(p, delay=0.02)


def slow_quadratic(p: dict[str, Any]) -> dict[str, float]:
    return quadratic(p, delay=0.4)


def flaky(p: dict[str, Any]) -> dict[str, float]:
    """Raises for x < -2.5, NaN for -2.5 <= x < -1."""
    time.sleep(0.005)
    if p["x"] < -2.5:
        raise ValueError(f"boom at\nx={p['x']:.2f}")
    out = quadratic(p, delay=0)
    if p["x"] < -1:
        out["loss"] = math.nan
    return out


def two_objectives(p: dict[str, Any]) -> dict[str, float]:
    time.sleep(0.005)
    return {"f1": p["x"] ** 2 + 0.1 * p["y"] ** 2, "f2": (p["x"] - 2) ** 2 + 0.1 * (p["y"] - 2) ** 2}


def _search(tmp_path: Path, **kw: Any):
    args: dict[str, Any] = dict(
        study_name="s", space=SearchSpace.from_dict(SPACE), objective=quadratic, objectives=[("loss", "minimize")],
        storage=None, run_dir=tmp_path,
    )  # fmt: skip
    args.update(kw)
    return run_search(**args)


def _cells(trials: list[TrialRecord]) -> list[tuple[float, int]]:
    return [(t.params["x"], t.params["y"]) for t in trials if t.state == "COMPLETE"]


def _journal(tmp_path: Path, name: str = "s") -> str:
    return f"journal://{tmp_path.resolve() / 'search' / f'{name}.journal'}"


def test_tpe_beats_paper_setting_and_keeps_all_metrics(tmp_path: Path) -> None:
    seen: list[TrialRecord] = []
    paper = {"x": 3.0, "y": 2}
    r = _search(tmp_path, trials=30, first_trial=paper, on_trial=seen.append)
    done = r.complete
    assert len(done) == 30 and len(seen) == 30
    assert r.trials[0].number == 0 and r.trials[0].params == paper and r.first_trial == r.trials[0]
    assert r.first_trial.metrics == {"loss": 20.0, "extra": 5.0}
    assert r.best[0].metrics["loss"] <= r.first_trial.metrics["loss"]
    assert r.best[0].metrics["loss"] < 1.0  # TPE actually searched
    assert all(set(t.metrics) == {"loss", "extra"} for t in seen)
    assert r.storage == _journal(tmp_path) and Path(r.storage.removeprefix("journal://")).is_file()
    assert r.to_dict()["best"][0]["number"] == r.best[0].number
    # a second run with the same target adds nothing; a larger one tops up, trial 0 is not enqueued again
    assert len(_search(tmp_path, trials=30, first_trial=paper).trials) == 30
    again = _search(tmp_path, trials=33, first_trial=paper)
    assert len(again.complete) == 33 and sum(t.params == paper for t in again.trials) == 1


def test_grid_in_order_once_and_first_trial_not_repeated(tmp_path: Path) -> None:
    r = _search(tmp_path, sampler="grid", trials=100)
    assert _cells(r.trials) == GRID and [t.number for t in r.trials] == list(range(len(GRID)))
    r = _search(tmp_path / "b", sampler="grid", trials=100, first_trial={"x": 1.0, "y": 0})
    assert _cells(r.trials)[0] == (1.0, 0) and sorted(_cells(r.trials)) == sorted(GRID)
    assert len(r.trials) == len(GRID)


def test_grid_two_workers_no_duplicates_and_top_up(tmp_path: Path) -> None:
    meet = [tmp_path / "meet1", tmp_path / "meet2"]
    for m in meet:
        m.mkdir()
    r = _search(tmp_path, sampler="grid", trials=5, workers=2, objective=partial(rendezvous, folder=str(meet[0])))
    assert len(r.complete) >= 5 and len(set(_cells(r.trials))) == len(r.complete)
    r = _search(tmp_path, sampler="grid", trials=100, workers=2, objective=partial(rendezvous, folder=str(meet[1])))
    assert Counter(_cells(r.trials)) == Counter(GRID)
    assert not [t for t in r.trials if t.state not in ("COMPLETE", "PRUNED")]
    study = optuna.load_study(study_name="s", storage=open_storage(r.storage))
    owners = {tuple(t.system_attrs["crowdbench:owner"]) for t in study.trials}
    assert len(owners) == 4  # both processes of both runs evaluated cells


def _run_grid_forever(run_dir: str) -> None:
    run_search(
        study_name="s", space=SearchSpace.from_dict(SPACE), objective=slow_quadratic,
        objectives=[("loss", "minimize")], trials=100, storage=None, run_dir=Path(run_dir), sampler="grid",
    )  # fmt: skip


def test_restart_after_killed_worker_and_abandoned_trial(tmp_path: Path) -> None:
    proc = mp.get_context("spawn").Process(target=_run_grid_forever, args=(str(tmp_path),))
    proc.start()
    storage = open_storage(_journal(tmp_path))
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            trials = optuna.load_study(study_name="s", storage=storage).trials
        except (KeyError, FileNotFoundError):  # the child has not created the study yet
            trials = []
        running = [t for t in trials if t.state == TrialState.RUNNING and len(t.params) == 2]
        if sum(t.state == TrialState.COMPLETE for t in trials) >= 2 and running:
            break
        time.sleep(0.05)
    time.sleep(0.1)  # inside the 0.4 s objective, not holding the journal lock (Optuna frees a dead holder's in 30 s)
    assert running, "the child never had a RUNNING trial"
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    killed = running[0].number
    # a second abandoned trial: asked, never told, no owner recorded (e.g. an external script)
    optuna.load_study(study_name="s", storage=storage).ask()
    time.sleep(0.3)
    r = _search(tmp_path, sampler="grid", trials=9, grace_period=0.2)
    assert len(r.complete) == 9 and len(set(_cells(r.trials))) == 9
    failed = [t for t in r.trials if t.state == "FAIL"]
    assert killed in [t.number for t in failed] and len(failed) == 2
    assert all(t.error and "stale" in t.error for t in failed)
    assert not [t for t in r.trials if t.state == "RUNNING"]
    r = _search(tmp_path, sampler="grid", trials=100)  # the killed cell is retried, the grid completes
    assert Counter(_cells(r.trials)) == Counter(GRID)


def test_failing_objective_recorded_and_search_goes_on(tmp_path: Path) -> None:
    seen: list[TrialRecord] = []
    r = _search(tmp_path, objective=flaky, trials=12, on_trial=seen.append, first_trial={"x": -4.0, "y": 0})
    assert len(r.complete) == 12
    failed = [t for t in r.trials if t.state == "FAIL"]
    assert r.trials[0].state == "FAIL" and r.trials[0].error == "ValueError: boom at x=-4.00"
    assert any("is nan" in (t.error or "") for t in failed) or all(t.params["x"] < -2.5 for t in failed)
    assert all(t.params["x"] < -1 for t in failed) and len(seen) == len(r.trials)
    assert r.first_trial is not None and r.first_trial.number == 0


def test_nsga2_pareto_front_non_dominated(tmp_path: Path) -> None:
    r = _search(
        tmp_path, objective=two_objectives, objectives=[("f1", "minimize"), ("f2", "minimize")], sampler="nsga2",
        trials=24, first_trial={"x": 0.0, "y": 0},
    )  # fmt: skip
    assert len(r.complete) == 24 and r.best

    def dominates(a: TrialRecord, b: TrialRecord) -> bool:
        va, vb = (a.metrics["f1"], a.metrics["f2"]), (b.metrics["f1"], b.metrics["f2"])
        return all(x <= y for x, y in zip(va, vb, strict=True)) and va != vb

    assert not any(dominates(o, f) for f in r.best for o in r.complete)
    assert all(any(dominates(f, o) for f in r.best) for o in r.complete if o.number not in {f.number for f in r.best})
    page = render_search_page(r, tmp_path / "html", title="pareto").read_text()
    assert "Pareto front" in page and page.count("<img") == 2


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        ({"a": {"float": [1, 0]}}, "a"),
        ({"b": {"float": [0, 1], "int": [0, 1]}}, "b"),
        ({"c": {"int": [0, 1.5]}}, "c"),
        ({"d": {"choices": []}}, "d"),
        ({"e": {"float": [0, 1], "grid": [0.5, 2.0]}}, "e"),
        ({"f": {"choices": [1, 2], "grid": [3]}}, "f"),
        ({"g": {"float": [0, 1], "log": True}}, "g"),
        ({"h": {"float": [0, 1], "lo": 3}}, "h"),
        ({"i": 3}, "i"),
        ({"j": {"int": [0, 10], "step": 5, "grid": [3]}}, "j"),
        ({"k": {"float": [0, 1], "grid": [0.5, 0.5]}}, "k"),
    ],
)
def test_bad_space_names_the_parameter(spec: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=f"'{name}'"):
        SearchSpace.from_dict(spec)


def test_grid_needs_grid_values_and_first_trial_checked(tmp_path: Path) -> None:
    space = SearchSpace.from_dict({"x": {"float": [0, 1]}, "n": [64, 128]})
    assert [p.kind for p in space] == ["float", "categorical"]
    with pytest.raises(ValueError, match="'x'"):
        _search(tmp_path, space=space, sampler="grid", trials=3)
    with pytest.raises(ValueError, match="'y'"):
        _search(tmp_path, trials=3, first_trial={"x": 0.0, "y": 9})


def test_render_search_page(tmp_path: Path) -> None:
    r = _search(tmp_path, sampler="grid", trials=8, first_trial={"x": 3.0, "y": 2})
    path = render_search_page(r, tmp_path / "html", title="DeepSORT search", paper={"loss": 19.5})
    page = path.read_text()
    assert path.name == "s.html" and "9 trials" not in page and "8 trials: 8 complete" in page
    assert page.count("<img") == 2 and "data:image/png;base64," in page and "http" not in page
    assert "paper (reported)" in page and "19.5" in page and "trial 0: paper setting" in page
    one = _search(tmp_path / "one", trials=1, first_trial={"x": 3.0, "y": 2}, study_name="one")
    study = optuna.load_study(study_name="one", storage=open_storage(one.storage))
    page = render_search_page(study, tmp_path / "html", title="one").read_text()
    assert "1 trials: 1 complete" in page and page.count("<img") == 1 and "at least 2 complete trials" in page


def folded_quadratic(p: dict[str, Any]) -> list[dict[str, float]]:
    """Three 'folds' of ``quadratic``: the same loss shifted by -0.3, 0, +0.6."""
    base = quadratic(p, delay=0)
    return [{**base, "loss": base["loss"] + shift} for shift in (-0.3, 0.0, 0.6)]


def test_sampler_settings_recorded_as_passed_and_built_explicitly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    opts = {"multivariate": False, "constant_liar": False, "n_startup_trials": 4}
    r = _search(tmp_path, trials=5, seed=7, sampler_options=opts, first_trial={"x": 3.0, "y": 2})
    study = optuna.load_study(study_name="s", storage=open_storage(r.storage))
    assert study.user_attrs["sampler"] == {"name": "tpe", "seed": 7, **opts} == r.sampler_settings
    assert r.sampler == "tpe"
    assert study.user_attrs["sampler_history"] == [{"from_trial": 0, "name": "tpe", "seed": 7, **opts}]
    tpe = _make_sampler(r.sampler_settings, worker=1)
    assert (tpe._multivariate, tpe._constant_liar, tpe._n_startup_trials) == (False, False, 4)
    page = render_search_page(r, tmp_path / "html", title="t").read_text()
    assert "seed=7, multivariate=False, constant_liar=False, n_startup_trials=4" in page
    # the defaults are explicit too (Optuna 4 and 5 differ), and so are NSGA-II's and the grid's
    assert sampler_settings("tpe") == {"name": "tpe", "seed": 0, **TPE_DEFAULTS}
    nsga = sampler_settings("nsga2", seed=1, n_params=4, options={"population_size": 8})
    assert nsga == {**NSGA2_DEFAULTS, "name": "nsga2", "seed": 1, "population_size": 8, "mutation_prob": 0.25}
    built = _make_sampler(nsga)
    assert built._population_size == 8 and built._child_generation_strategy._mutation_prob == 0.25
    assert sampler_settings("grid", n_cells=12)["cells"] == 12
    with pytest.raises(ValueError, match="multivariat"):
        sampler_settings("tpe", options={"multivariat": True})
    # the CLI's documented defaults are these
    from crowdbench.bench.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["search", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"(default {TPE_DEFAULTS['n_startup_trials']})" in text and "multivariate TPE (default: on)" in text
    assert f"population size (default {NSGA2_DEFAULTS['population_size']})" in text


def test_changed_sampler_setting_on_resume_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = _search(tmp_path, trials=3)
    assert first.notes == []
    r = _search(tmp_path, trials=5, sampler_options={"multivariate": False})
    assert len(r.notes) == 1 and "multivariate: True -> False" in r.notes[0] and "from #3" in r.notes[0]
    assert r.notes[0] in " ".join(capsys.readouterr().err.split())
    assert [h["from_trial"] for h in r.sampler_history] == [0, 3] and r.sampler_settings["multivariate"] is False
    page = render_search_page(r, tmp_path / "html", title="t").read_text()
    assert "sampler settings changed" in page and "Trials from #3 on: tpe" in page
    assert _search(tmp_path, trials=6, sampler_options={"multivariate": False}).notes == []  # same again: silent


def test_objective_seeds_mean_folds_and_interval(tmp_path: Path) -> None:
    r = _search(tmp_path, trials=6, objective=folded_quadratic, objective_seeds=3, seeds_label="3 test folds",
                first_trial={"x": 3.0, "y": 2})  # fmt: skip
    study = optuna.load_study(study_name="s", storage=open_storage(r.storage))
    assert study.user_attrs["objective_seeds"] == {"n": 3, "what": "3 test folds"}
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        folds = t.user_attrs["folds"]["loss"]
        assert len(folds) == 3 and t.value == pytest.approx(sum(folds) / 3, rel=1e-12, abs=1e-12)
    assert r.first_trial.folds["loss"] == pytest.approx([19.7, 20.0, 20.6])
    best = r.best[0]
    iv = seed_interval(best.folds["loss"])
    assert iv is not None and iv.contains(best.metrics["loss"]) and iv.low < iv.high
    lines = summary_lines(r)
    assert len(lines) == 1 and f"best trial {best.number}: loss {iv.text()}" in lines[0]
    assert "trial 0 (paper setting): 20" in lines[0] and "3 test folds" in lines[0]
    page = render_search_page(r, tmp_path / "html", title="t").read_text()
    assert "95 % t-interval" in page and f"[{iv.low:.4g}, {iv.high:.4g}]" in page
    with pytest.raises(ValueError, match="averages 3 objective seed"):
        _search(tmp_path, trials=7, objective=quadratic)
    bad = _search(tmp_path / "b", trials=1, objective=quadratic, objective_seeds=2)
    assert bad.trials[0].state == "FAIL" and "expected 2" in (bad.trials[0].error or "")
