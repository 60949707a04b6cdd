"""Parameter search over a cheap replay objective (e.g. DeepSORT parameters, paper 004 Table 4) with Optuna.

The search space is a mapping ``name -> definition``, as written in a table YAML::

    max_cosine_distance: {float: [0.1, 0.5], grid: [0.1, 0.2, 0.3]}    # uniform float in [low, high]
    lr:                  {float: [1.0e-4, 1.0e-1], log: true}           # log-uniform float
    max_age:             {int: [10, 70], step: 10, grid: [30, 50, 70]}  # integers low, low+step, ... high
    nn_budget:           {choices: [64, 128, 256]}                      # categorical (grid = all choices)
    n_init:              [1, 3, 5]                                      # shorthand for {choices: [...]}

``step`` and ``log`` are optional (not both); ``grid`` lists the values the grid sampler enumerates and is required
for float / int parameters when ``sampler="grid"`` (grid values must lie inside the range / among the choices).

Storage: by default an Optuna JournalStorage file ``run_dir/search/<study>.journal`` (safe for several processes on
one file system); ``storage`` may be a journal file (``journal:///abs/path`` or a path ending in ``.journal``) or any
RDB URL (``sqlite:///…``, ``postgresql://…``) handed to :class:`optuna.storages.RDBStorage` with heartbeats.

Grid claims (``sampler="grid"``; Optuna's GridSampler duplicates and skips cells under parallel workers): the grid is
the Cartesian product of the ``grid`` values in space order, cell 0 first. Trial numbers are assigned atomically by
the storage, so they order the claims: a new trial ``n`` first waits until every lower-numbered RUNNING trial has
written its cell (system attr ``crowdbench:cell``; a dead or silent trial is skipped after ``grace_period``), then
takes the lowest cell that no COMPLETE, RUNNING or WAITING trial holds (and that did not already fail in this run),
and writes it. Every trial decides after all lower-numbered trials decided and sees their cells, so two trials never
hold the same cell. The paper setting (trial 0) holds the cell equal to its parameters, if any. A trial that finds
the grid exhausted (only possible in a race) is told PRUNED. Failed cells of earlier runs are retried.

Restart: every trial records its owner (host, pid) and a heartbeat (system attrs, every ``heartbeat_interval`` s).
At start, a RUNNING trial whose owner process on this host is gone, or (other hosts, unknown owner) whose heartbeat is
older than ``grace_period`` seconds, is marked FAIL; RDB storages also use Optuna's own heartbeats with
:class:`~optuna.storages.RetryHeartbeatStaleTrialCallback`. The search then tops the study up to ``trials`` COMPLETE
trials (failed grid cells are retried), so a killed or repeated run loses and duplicates nothing. A process killed
while appending to a journal leaves its lock file; Optuna frees it after 30 s.

Target: a worker asks for a new trial while COMPLETE + RUNNING < ``trials``; racing workers can overshoot by up to
``workers - 1`` trials (never for the grid beyond its cells).

Sampler settings: passed explicitly, never Optuna's defaults (they changed in Optuna 5: TPE's ``multivariate`` and
``constant_liar``). ``sampler_options`` overrides :data:`TPE_DEFAULTS` / :data:`NSGA2_DEFAULTS`; the resolved settings
(:func:`sampler_settings`, the dict the sampler is built from) are the study's user attr ``sampler``. Worker ``i`` seeds
its sampler with ``seed + i``. A resumed study whose stored settings differ says so in one line and records both in
``sampler_history`` (``from_trial``: the first trial number the settings could apply to).

Objective seeds: with ``objective_seeds = N > 1`` the objective returns N metric dicts (one per seed, fold or data
split: the caller decides what varies and names it in ``seeds_label``); every metric of the trial is the mean over the
N values, which are kept per metric in the trial's user attr ``folds``. :func:`seed_interval` gives a Student-t interval
over them (mean ± t(N-1) · s / sqrt(N)); :func:`paired_interval` the same for the per-fold differences of two trials.
A study never mixes objective seed counts (a different N on resume is an error).

Workers: ``workers > 1`` spawns that many processes (``multiprocessing`` "spawn"), each running the ask/tell loop
against the same storage, so the objective must be picklable: a module-level function or a
:func:`functools.partial` of one. The main process reports finished trials (progress line, ``on_trial``).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import multiprocessing as mp
import os
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import optuna
import sqlalchemy
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from crowdbench.bench.errors import one_line
from crowdbench.bench.log import Tracker, console
from crowdbench.bench.store import StoreError, database_url, safe_url

Kind = Literal["float", "int", "categorical"]
Direction = Literal["maximize", "minimize"]
SamplerName = Literal["tpe", "grid", "nsga2"]

CELL = "crowdbench:cell"  # system attr: grid cell index held by the trial (-1: none)
RUN = "crowdbench:run"  # system attr: id of the run_search call that created the trial
OWNER = "crowdbench:owner"  # system attr: [host, pid] of the process evaluating the trial
HEARTBEAT = "crowdbench:heartbeat"  # system attr: time.time() of the last sign of life
METRICS = "metrics"  # user attr: the objective's full metrics dict
FOLDS = "folds"  # user attr: metric -> its N per-seed / per-fold values (objective_seeds > 1)
ERROR = "error"  # user attr: one-line error of a failed trial

_JSON_SCALARS = (type(None), bool, int, float, str)

TPE_DEFAULTS: dict[str, Any] = {"multivariate": True, "constant_liar": True, "n_startup_trials": 10}
"""TPE settings unless overridden: multivariate (DeepSORT's parameters interact) and constant liar (parallel workers
do not sample the same region), Optuna 5's defaults; 10 random startup trials (Optuna's default)."""
NSGA2_DEFAULTS: dict[str, Any] = {
    "population_size": 50, "mutation_prob": None, "crossover": "uniform", "crossover_prob": 0.9, "swapping_prob": 0.5,
}  # fmt: skip
"""NSGA-II settings unless overridden (Optuna's defaults); ``mutation_prob`` None resolves to 1 / number of params."""
GRID_ORDER = "space order, last parameter fastest; lowest free cell per trial number"


@dataclass(frozen=True)
class Param:
    """One searched parameter: a float / int range (optionally stepped or log-scaled) or categorical choices."""

    name: str
    kind: Kind
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None
    grid: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        err = f"search parameter {self.name!r}:"
        if self.kind == "categorical":
            if not self.choices:
                raise ValueError(f"{err} 'choices' must be a non-empty list")
            if any(not isinstance(c, _JSON_SCALARS) for c in self.choices):
                raise ValueError(f"{err} choices must be numbers, strings, booleans or null")
            if len(set(map(repr, self.choices))) != len(self.choices):
                raise ValueError(f"{err} duplicate choices")
            if self.grid is not None and any(g not in self.choices for g in self.grid):
                raise ValueError(f"{err} grid value not among the choices {list(self.choices)}")
        elif self.kind in ("float", "int"):
            if self.low is None or self.high is None or not self.low < self.high:
                raise ValueError(f"{err} needs low < high (got {self.low}, {self.high})")
            if self.log and self.low <= 0:
                raise ValueError(f"{err} log scale needs low > 0")
            if self.log and self.step is not None:
                raise ValueError(f"{err} 'step' and 'log' cannot be combined")
            if self.step is not None and self.step <= 0:
                raise ValueError(f"{err} 'step' must be > 0")
            if self.kind == "int" and any(
                not float(v).is_integer() for v in (self.low, self.high, self.step or 1) if v is not None
            ):
                raise ValueError(f"{err} int range and step must be integers")
            for g in self.grid or ():
                if isinstance(g, bool) or not isinstance(g, int | float) or not self.low <= g <= self.high:
                    raise ValueError(f"{err} grid value {g!r} outside [{self.low}, {self.high}]")
                if self.kind == "int" and not float(g).is_integer():
                    raise ValueError(f"{err} grid value {g!r} is not an integer")
                if self.step is not None and not math.isclose(
                    round((g - self.low) / self.step) * self.step, g - self.low, abs_tol=1e-9
                ):
                    raise ValueError(f"{err} grid value {g!r} is not on the step {self.step} from {self.low}")
        else:
            raise ValueError(f"{err} unknown kind {self.kind!r} (float, int or categorical)")
        if self.grid is not None and (not self.grid or len(set(map(repr, self.grid))) != len(self.grid)):
            raise ValueError(f"{err} 'grid' must be a non-empty list without duplicates")

    @property
    def grid_values(self) -> tuple[Any, ...]:
        """Values the grid sampler enumerates (categorical default: all choices)."""
        if self.grid is not None:
            cast = {"int": int, "float": float}.get(self.kind)
            return tuple(cast(g) if cast else g for g in self.grid)
        if self.kind == "categorical":
            return tuple(self.choices or ())
        raise ValueError(f"search parameter {self.name!r}: the grid sampler needs a 'grid' list")

    def distribution(self) -> BaseDistribution:
        if self.kind == "categorical":
            return CategoricalDistribution(list(self.choices or ()))
        if self.kind == "int":
            return IntDistribution(int(self.low or 0), int(self.high or 0), log=self.log, step=int(self.step or 1))
        return FloatDistribution(float(self.low or 0), float(self.high or 0), log=self.log, step=self.step)

    @classmethod
    def from_value(cls, name: str, spec: Any) -> Param:
        """Parse one definition (see the module docstring); ValueError names the parameter."""
        err = f"search parameter {name!r}:"
        if isinstance(spec, list | tuple):
            spec = {"choices": list(spec)}
        if not isinstance(spec, Mapping):
            raise ValueError(f"{err} expected a mapping like {{float: [low, high]}} or a list of choices, got {spec!r}")
        unknown = set(spec) - {"float", "int", "choices", "step", "log", "grid"}
        if unknown:
            raise ValueError(f"{err} unknown key(s) {sorted(unknown)} (float, int, choices, step, log, grid)")
        kinds = [k for k in ("float", "int", "choices") if k in spec]
        if len(kinds) != 1:
            raise ValueError(f"{err} give exactly one of 'float: [low, high]', 'int: [low, high]', 'choices: [...]'")
        grid = spec.get("grid")
        if grid is not None and not isinstance(grid, list | tuple):
            raise ValueError(f"{err} 'grid' must be a list")
        grid = tuple(grid) if grid is not None else None
        log = spec.get("log", False)
        if not isinstance(log, bool):
            raise ValueError(f"{err} 'log' must be true or false")
        if kinds[0] == "choices":
            if not isinstance(spec["choices"], list | tuple):
                raise ValueError(f"{err} 'choices' must be a list")
            if "step" in spec or log:
                raise ValueError(f"{err} 'step' / 'log' do not apply to choices")
            return cls(name, "categorical", choices=tuple(spec["choices"]), grid=grid)
        bounds = spec[kinds[0]]
        if (
            not isinstance(bounds, list | tuple)
            or len(bounds) != 2
            or any(isinstance(b, bool) or not isinstance(b, int | float) for b in bounds)
        ):
            raise ValueError(f"{err} '{kinds[0]}' must be [low, high] numbers, got {bounds!r}")
        step = spec.get("step")
        if step is not None and (isinstance(step, bool) or not isinstance(step, int | float)):
            raise ValueError(f"{err} 'step' must be a number")
        return cls(name, kinds[0], low=bounds[0], high=bounds[1], step=step, log=log, grid=grid)


class SearchSpace(tuple[Param, ...]):
    """An ordered tuple of :class:`Param` (the order fixes the grid enumeration)."""

    def __new__(cls, params: Sequence[Param] = ()) -> SearchSpace:
        names = [p.name for p in params]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"search parameter {dup[0]!r}: defined twice")
        return super().__new__(cls, params)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> SearchSpace:
        if not isinstance(spec, Mapping) or not spec:
            raise ValueError("search space: expected a non-empty mapping of parameter name -> definition")
        return cls([Param.from_value(str(name), value) for name, value in spec.items()])

    def grid_cells(self) -> list[dict[str, Any]]:
        """The Cartesian product of the grid values, in a fixed order (last parameter varies fastest)."""
        names = [p.name for p in self]
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(p.grid_values for p in self))]


@dataclass
class TrialRecord:
    """One trial as the caller stores it: params, every metric the objective returned, state, wall seconds and the
    one-line error of a failed trial."""

    number: int
    params: dict[str, Any]
    metrics: dict[str, float]
    state: str
    seconds: float | None
    error: str | None = None
    folds: dict[str, list[float]] = field(default_factory=dict)

    @classmethod
    def from_frozen(cls, t: FrozenTrial, objectives: Sequence[tuple[str, str]] = ()) -> TrialRecord:
        metrics = dict(t.user_attrs.get(METRICS) or {})
        if not metrics and t.values is not None:
            metrics = {name: v for (name, _), v in zip(objectives, t.values, strict=False)}
        seconds = t.duration.total_seconds() if t.duration is not None else None
        folds = {str(k): [float(x) for x in v] for k, v in (t.user_attrs.get(FOLDS) or {}).items()}
        return cls(t.number, dict(t.params), metrics, t.state.name, seconds, t.user_attrs.get(ERROR), folds)


@dataclass
class SearchResult:
    """A study's summary: all trials, ``best`` (the best trial, or the Pareto front for two objectives) and trial 0
    (the paper's setting)."""

    study_name: str
    storage: str
    objectives: list[tuple[str, str]]
    trials: list[TrialRecord]
    best: list[TrialRecord]
    first_trial: TrialRecord | None
    sampler: str = ""
    target: int | None = None
    params: list[str] = field(default_factory=list)
    sampler_settings: dict[str, Any] = field(default_factory=dict)
    sampler_history: list[dict[str, Any]] = field(default_factory=list)
    objective_seeds: int = 1
    seeds_label: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def complete(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.state == "COMPLETE"]

    @classmethod
    def from_study(cls, study: optuna.Study, storage: str = "") -> SearchResult:
        """Summarise a study (best = best trial, or the Pareto front for several objectives)."""
        attrs = study.user_attrs
        objectives = [tuple(o) for o in attrs.get("objectives", [])] or [
            (f"value{i}", d.name.lower()) for i, d in enumerate(study.directions)
        ]
        frozen = study.get_trials(deepcopy=False)
        trials = [TrialRecord.from_frozen(t, objectives) for t in frozen]
        by_number = {t.number: t for t in trials}
        best: list[TrialRecord] = []
        if any(t.state == TrialState.COMPLETE for t in frozen):
            if len(study.directions) > 1:
                best = sorted((by_number[t.number] for t in study.best_trials), key=lambda r: r.number)
            else:
                best = [by_number[study.best_trial.number]]
        first = attrs.get("first_trial")
        first_rec = None
        if first is not None:
            first_rec = next((t for t in trials if t.params == first and t.state == "COMPLETE"), None) or next(
                (t for t in trials if t.params == first), None
            )
        stored = attrs.get("sampler", "")
        settings = dict(stored) if isinstance(stored, Mapping) else {}
        seeds = attrs.get("objective_seeds") or {}
        return cls(
            study.study_name,
            storage,
            [(str(n), str(d)) for n, d in objectives],
            trials,
            best,
            first_rec,
            sampler=str(settings.get("name", stored) if settings else stored),
            target=attrs.get("target"),
            params=list(attrs.get("params", [])),
            sampler_settings=settings,
            sampler_history=[dict(h) for h in attrs.get("sampler_history", [])],
            objective_seeds=int(seeds.get("n", 1)),
            seeds_label=str(seeds.get("what", "")),
        )


# ---------------------------------------------------------------------------------------------------------------------
# objective seeds: intervals over the per-seed / per-fold values


@dataclass(frozen=True)
class SeedInterval:
    """Mean of N per-seed (per-fold) values with its Student-t interval: mean ± t(N-1) · std / sqrt(N)."""

    mean: float
    std: float
    low: float
    high: float
    n: int
    level: float = 0.95

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def text(self, digits: int = 4, signed: bool = False) -> str:
        """``0.486 [0.452, 0.52]`` (mean [low, high]); ``signed``: ``+0.044 [-0.01, +0.098]``."""
        f = f"{'+' if signed else ''}.{digits}g"
        return f"{self.mean:{f}} [{self.low:{f}}, {self.high:{f}}]"


def seed_interval(values: Sequence[float], level: float = 0.95) -> SeedInterval | None:
    """The t-interval of the mean of ``values`` (None for fewer than 2 values)."""
    from scipy.stats import t as student_t

    v = [float(x) for x in values]
    n = len(v)
    if n < 2:
        return None
    mean = math.fsum(v) / n
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in v) / (n - 1))
    half = float(student_t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    return SeedInterval(mean, std, mean - half, mean + half, n, level)


def paired_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> SeedInterval | None:
    """The t-interval of the mean per-fold difference ``a - b`` (same folds; None if the lengths differ or < 2)."""
    if len(a) != len(b):
        return None
    return seed_interval([x - y for x, y in zip(a, b, strict=True)], level)


def summary_lines(r: SearchResult) -> list[str]:
    """Terminal lines: each best trial beside trial 0 (the paper setting) on the first objective, with their
    t-intervals over the objective seeds and the paired difference when the study has them."""
    if not r.best:
        return []
    name, _ = r.objectives[0]
    seeds = r.objective_seeds > 1

    def value(t: TrialRecord) -> str:
        iv = seed_interval(t.folds.get(name, [])) if seeds else None
        return iv.text() if iv else f"{t.metrics.get(name, math.nan):.4g}"

    first = r.first_trial if r.first_trial is not None and r.first_trial.state == "COMPLETE" else None
    how = f" (mean [95 % t-interval] over {r.seeds_label or f'{r.objective_seeds} objective seeds'})" if seeds else ""
    lines = []
    for t in r.best:
        line = f"best trial {t.number}: {name} {value(t)}"
        if first is not None:
            line += f"; trial 0 (paper setting): {value(first)}"
            diff = paired_interval(t.folds.get(name, []), first.folds.get(name, [])) if seeds else None
            if diff is not None and t.number != first.number:
                line += f"; difference {diff.text(signed=True)}"
        lines.append(line + how)
    return lines


def sampler_settings(
    name: str, *, seed: int = 0, n_params: int = 1, n_cells: int | None = None, options: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The explicit settings ``name`` is built from (defaults :data:`TPE_DEFAULTS` / :data:`NSGA2_DEFAULTS`
    overridden by ``options``); recorded as the study's user attr ``sampler``."""
    options = dict(options or {})
    if name == "grid":
        if options:
            raise ValueError(f"search: the grid sampler takes no options (got {sorted(options)})")
        return {"name": "grid", "cells": n_cells, "order": GRID_ORDER}
    defaults = {"tpe": TPE_DEFAULTS, "nsga2": NSGA2_DEFAULTS}.get(name)
    if defaults is None:
        raise ValueError(f"search: unknown sampler {name!r} (tpe, grid or nsga2)")
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(f"search: unknown {name} option(s) {unknown} ({', '.join(defaults)})")
    settings = {"name": name, "seed": seed, **defaults, **{k: v for k, v in options.items() if v is not None}}
    if name == "tpe":
        if int(settings["n_startup_trials"]) < 0:
            raise ValueError("search: tpe n_startup_trials must be >= 0")
        settings.update(
            multivariate=bool(settings["multivariate"]), constant_liar=bool(settings["constant_liar"]),
            n_startup_trials=int(settings["n_startup_trials"]),
        )  # fmt: skip
    else:
        if settings["mutation_prob"] is None:
            settings["mutation_prob"] = 1.0 / max(1, n_params)
        if settings["crossover"] != "uniform":
            raise ValueError(f"search: nsga2 crossover {settings['crossover']!r} is not supported (uniform)")
        if int(settings["population_size"]) < 2:
            raise ValueError("search: nsga2 population_size must be >= 2")
        for key in ("mutation_prob", "crossover_prob", "swapping_prob"):
            settings[key] = float(settings[key])
            if not 0.0 <= settings[key] <= 1.0:
                raise ValueError(f"search: nsga2 {key} must be in [0, 1]")
        settings["population_size"] = int(settings["population_size"])
    return settings


def _settings_change(old: Any, new: Mapping[str, Any]) -> str | None:
    """``"multivariate: True -> False, seed: 0 -> 1"`` when stored settings differ from ``new``; None if equal."""
    if old == new:
        return None
    if not isinstance(old, Mapping):
        return f"the stored study recorded no settings (sampler {old or '?'}: Optuna's defaults of its time)"
    keys = [k for k in new if old.get(k) != new[k]] + [k for k in old if k not in new]
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys)


# ---------------------------------------------------------------------------------------------------------------------
# storage


def default_storage(run_dir: Path, study_name: str) -> str:
    return f"journal://{(Path(run_dir) / 'search' / f'{study_name}.journal').resolve()}"


def open_storage(url: str, *, heartbeat_interval: int = 30, grace_period: float = 120.0) -> BaseStorage:
    """A JournalStorage for ``journal://PATH`` / ``*.journal``, else an RDBStorage with Optuna heartbeats."""
    if url.startswith("journal://") or url.endswith(".journal"):
        path = Path(url.removeprefix("journal://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))

    url = database_url(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return RDBStorage(
                url,
                heartbeat_interval=heartbeat_interval,
                grace_period=max(int(grace_period), heartbeat_interval + 1),
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
            )
        except sqlalchemy.exc.OperationalError as exc:
            raise StoreError(f"cannot open the search storage {safe_url(url)}: {one_line(exc.orig)[:300]}") from None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_stale(t: FrozenTrial, grace_period: float, now: float) -> bool:
    """A RUNNING trial whose owner died on this host, or that gave no sign of life for ``grace_period`` seconds."""
    owner = t.system_attrs.get(OWNER)
    if owner and owner[0] == socket.gethostname():
        return not _pid_alive(int(owner[1]))
    last = t.system_attrs.get(HEARTBEAT)
    if last is None:
        last = t.datetime_start.timestamp() if t.datetime_start is not None else now
    return now - float(last) > grace_period


def fail_stale_trials(study: optuna.Study, storage: BaseStorage, grace_period: float) -> list[int]:
    """Mark RUNNING trials left by dead processes FAIL (see module docstring); return their numbers."""
    if isinstance(storage, RDBStorage):
        optuna.storages.fail_stale_trials(study)  # Optuna's heartbeats (+ RetryFailedTrialCallback)
    sid, now, failed = storage.get_study_id_from_name(study.study_name), time.time(), []
    for t in storage.get_all_trials(sid, deepcopy=False, states=(TrialState.RUNNING,)):
        if _is_stale(t, grace_period, now):
            tid = storage.get_trial_id_from_study_id_trial_number(sid, t.number)
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                storage.set_trial_user_attr(tid, ERROR, "stale: its process died or stopped responding")
                storage.set_trial_state_values(tid, TrialState.FAIL)
                failed.append(t.number)
    return failed


# ---------------------------------------------------------------------------------------------------------------------
# worker


class _CellSampler(optuna.samplers.BaseSampler):
    """Returns the grid cell claimed for each trial (claims are made by :func:`_claim_cell`)."""

    def __init__(self) -> None:
        self.cells: dict[int, dict[str, Any]] = {}

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict) -> dict[str, Any]:
        return {}

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self.cells[trial.number][param_name]


def _cell_of(params: Mapping[str, Any], index: Mapping[str, int]) -> int:
    return index.get(_cell_key(params), -1)


def _cell_key(params: Mapping[str, Any]) -> str:
    return repr(sorted((k, float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v)
                       for k, v in params.items()))  # fmt: skip


def _free_cells(trials: Sequence[FrozenTrial], index: Mapping[str, int], n_cells: int, run_id: str,
                number: int | None = None) -> list[int]:  # fmt: skip
    """Grid cells held by no COMPLETE / WAITING / RUNNING (lower-numbered than ``number``) trial, nor failed in
    this run."""
    taken: set[int] = set()
    for t in trials:
        if t.number == number:
            continue
        if t.state == TrialState.COMPLETE:
            taken.add(_cell_of(t.params, index))
        elif t.state == TrialState.WAITING:
            taken.add(_cell_of(t.system_attrs.get("fixed_params", {}), index))
        elif t.state == TrialState.RUNNING and (number is None or t.number < number):
            taken.add(int(t.system_attrs.get(CELL, _cell_of(t.system_attrs.get("fixed_params", {}), index))))
        elif t.state == TrialState.FAIL and t.system_attrs.get(RUN) == run_id:
            taken.add(int(t.system_attrs.get(CELL, -1)))  # not retried within the run that saw it fail
    return [c for c in range(n_cells) if c not in taken]


def _claim_cell(storage: BaseStorage, study_id: int, trial_id: int, number: int, index: Mapping[str, int],
                n_cells: int, run_id: str, grace_period: float) -> int:  # fmt: skip
    """Claim the lowest free grid cell for trial ``number`` (the scheme is in the module docstring); -1: none left."""
    deadline = time.time() + grace_period
    while True:
        trials = storage.get_all_trials(study_id, deepcopy=False)
        now = time.time()
        undecided = [
            t
            for t in trials
            if t.number < number
            and t.state == TrialState.RUNNING
            and CELL not in t.system_attrs
            and not _is_stale(t, grace_period, now)
        ]
        if not undecided or now > deadline:
            break
        time.sleep(0.02)
    free = _free_cells(trials, index, n_cells, run_id, number)
    cell = free[0] if free else -1
    storage.set_trial_system_attr(trial_id, CELL, cell)
    return cell


def _suggest(trial: optuna.Trial, p: Param) -> Any:
    if p.kind == "categorical":
        return trial.suggest_categorical(p.name, list(p.choices or ()))
    if p.kind == "int":
        return trial.suggest_int(p.name, int(p.low or 0), int(p.high or 0), step=int(p.step or 1), log=p.log)
    return trial.suggest_float(p.name, float(p.low or 0), float(p.high or 0), step=p.step, log=p.log)


@dataclass
class _WorkerConfig:
    study_name: str
    storage: str
    space: SearchSpace
    objective: Callable[[dict[str, Any]], dict[str, float]]
    objectives: list[tuple[str, str]]
    trials: int
    sampler: dict[str, Any]
    run_id: str
    heartbeat_interval: int
    grace_period: float
    max_failures: int
    objective_seeds: int = 1
    worker: int = 0


def _make_sampler(settings: Mapping[str, Any], worker: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler of :func:`sampler_settings`'s dict, every setting explicit; worker ``i`` seeds with seed + i."""
    name = settings["name"]
    if name == "grid":
        return _CellSampler()
    seed = int(settings["seed"]) + worker
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            return optuna.samplers.TPESampler(
                seed=seed, multivariate=settings["multivariate"], constant_liar=settings["constant_liar"],
                n_startup_trials=settings["n_startup_trials"],
            )  # fmt: skip
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(
                seed=seed, population_size=settings["population_size"], mutation_prob=settings["mutation_prob"],
                crossover=optuna.samplers.nsgaii.UniformCrossover(settings["swapping_prob"]),
                crossover_prob=settings["crossover_prob"], swapping_prob=settings["swapping_prob"],
            )  # fmt: skip
    raise ValueError(f"search: unknown sampler {name!r} (tpe, grid or nsga2)")


def _heartbeat(storage: BaseStorage, trial_id: int, interval: float, stop: threading.Event) -> None:
    while not stop.wait(interval):
        try:
            if isinstance(storage, RDBStorage):
                storage.record_heartbeat(trial_id)
            storage.set_trial_system_attr(trial_id, HEARTBEAT, time.time())
        except Exception:  # finished meanwhile, or storage hiccup: the next beat retries
            pass


def _numeric(metrics: Any) -> dict[str, float]:
    if not isinstance(metrics, Mapping):
        raise TypeError(f"objective returned {type(metrics).__name__}, expected a dict of metrics")
    try:
        return {str(k): float(v) for k, v in metrics.items()}
    except (TypeError, ValueError) as exc:
        raise TypeError(f"objective returned a non-numeric metric: {one_line(exc)}") from None


def _evaluate(
    cfg: _WorkerConfig, params: dict[str, Any]
) -> tuple[list[float] | None, dict[str, float], dict[str, list[float]], str | None]:
    """Run the objective; (values, metrics, folds, None) or (None, metrics, folds, one-line error). With objective
    seeds, ``metrics`` are the means over the seeds and ``folds`` the per-seed values."""
    try:
        out = cfg.objective(dict(params))
    except Exception as exc:
        return None, {}, {}, f"{type(exc).__name__}: {one_line(exc)}"
    folds: dict[str, list[float]] = {}
    try:
        if cfg.objective_seeds > 1:
            if isinstance(out, Mapping) or not isinstance(out, Sequence) or len(out) != cfg.objective_seeds:
                n = len(out) if isinstance(out, Sequence) and not isinstance(out, Mapping) else "one"
                raise TypeError(f"objective returned {n} metric dicts, expected {cfg.objective_seeds} (one per seed)")
            per_seed = [_numeric(m) for m in out]
            common = [k for k in per_seed[0] if all(k in m for m in per_seed)]
            folds = {k: [m[k] for m in per_seed] for k in common}
            metrics = {k: math.fsum(v) / len(v) for k, v in folds.items()}
        else:
            metrics = _numeric(out)
    except TypeError as exc:
        return None, {}, {}, str(exc)
    values = []
    for name, _ in cfg.objectives:
        if name not in metrics:
            return None, metrics, folds, f"objective returned no {name!r} (got {sorted(metrics)})"
        bad = [v for v in folds.get(name, [metrics[name]]) if not math.isfinite(v)]
        if bad or not math.isfinite(metrics[name]):
            return None, metrics, folds, f"metric {name!r} is {bad[0] if bad else metrics[name]}"
        values.append(metrics[name])
    return values, metrics, folds, None


def _worker(cfg: _WorkerConfig, report: Callable[[FrozenTrial], None] | None = None) -> None:
    """Ask/tell loop until the study holds ``cfg.trials`` COMPLETE trials (or the grid is exhausted)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with Study.optimize")
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    storage = open_storage(cfg.storage, heartbeat_interval=cfg.heartbeat_interval, grace_period=cfg.grace_period)
    sampler = _make_sampler(cfg.sampler, cfg.worker)
    study = optuna.load_study(study_name=cfg.study_name, storage=storage, sampler=sampler)
    sid = storage.get_study_id_from_name(cfg.study_name)
    cells = cfg.space.grid_cells() if cfg.sampler["name"] == "grid" else []
    index = {_cell_key(c): i for i, c in enumerate(cells)}
    host, pid, failures = socket.gethostname(), os.getpid(), 0
    while failures < cfg.max_failures:
        now_trials = storage.get_all_trials(sid, deepcopy=False)
        if sum(t.state in (TrialState.COMPLETE, TrialState.RUNNING) for t in now_trials) >= cfg.trials:
            break
        waiting = any(t.state == TrialState.WAITING for t in now_trials)
        if cells and not waiting and not _free_cells(now_trials, index, len(cells), cfg.run_id):
            break  # grid exhausted
        trial = study.ask()
        tid = storage.get_trial_id_from_study_id_trial_number(sid, trial.number)
        storage.set_trial_system_attr(tid, OWNER, [host, pid])
        storage.set_trial_system_attr(tid, RUN, cfg.run_id)
        storage.set_trial_system_attr(tid, HEARTBEAT, time.time())
        if isinstance(storage, RDBStorage):
            storage.record_heartbeat(tid)
        fixed = storage.get_trial(tid).system_attrs.get("fixed_params")
        if cells:
            if fixed is not None:
                storage.set_trial_system_attr(tid, CELL, _cell_of(fixed, index))
            else:
                cell = _claim_cell(storage, sid, tid, trial.number, index, len(cells), cfg.run_id, cfg.grace_period)
                if cell < 0:  # grid exhausted by a concurrent worker between the check above and the claim
                    storage.set_trial_user_attr(tid, ERROR, "grid exhausted")
                    study.tell(trial, state=TrialState.PRUNED)
                    break
                sampler.cells[trial.number] = cells[cell]
        params = {p.name: _suggest(trial, p) for p in cfg.space}
        stop = threading.Event()
        beat = threading.Thread(target=_heartbeat, args=(storage, tid, cfg.heartbeat_interval, stop), daemon=True)
        beat.start()
        try:
            values, metrics, folds, error = _evaluate(cfg, params)
        finally:
            stop.set()
            beat.join()
        if metrics:
            storage.set_trial_user_attr(tid, METRICS, metrics)
        if folds:
            storage.set_trial_user_attr(tid, FOLDS, folds)
        if error is None:
            frozen = study.tell(trial, values)
            failures = 0
        else:
            storage.set_trial_user_attr(tid, ERROR, error)
            frozen = study.tell(trial, state=TrialState.FAIL)
            failures += 1
        if report is not None:
            report(frozen)
    if failures >= cfg.max_failures:
        console.print(f"[yellow]search {cfg.study_name}: stopping after {failures} failed trials in a row[/]")


def _spawn_worker(cfg: _WorkerConfig) -> None:  # entry point of a spawned process
    _worker(cfg)


# ---------------------------------------------------------------------------------------------------------------------
# driver


class _Reporter:
    """Progress line and ``on_trial`` for every trial finished during this run (main process only)."""

    def __init__(self, cfg: _WorkerConfig, tracker: Tracker, on_trial: Callable[[TrialRecord], None] | None) -> None:
        self.cfg, self.tracker, self.on_trial = cfg, tracker, on_trial
        self.seen: set[int] = set()
        self.best: list[float] | None = None

    def __call__(self, t: FrozenTrial) -> None:
        if t.number in self.seen or not t.state.is_finished():
            return
        self.seen.add(t.number)
        rec = TrialRecord.from_frozen(t, self.cfg.objectives)
        name, direction = self.cfg.objectives[0]
        if rec.state == "COMPLETE":
            v = rec.metrics[name]
            if self.best is None or (v > self.best[0] if direction == "maximize" else v < self.best[0]):
                self.best = [v]
            status = f"#{t.number} {name}={v:.4g} best={self.best[0]:.4g}"
            done = 1
        else:
            status = f"#{t.number} {rec.state}" + (f": {rec.error}" if rec.error else "")
            done = 0
        console.print(f"  trial {status} {rec.params}", soft_wrap=True, highlight=False, markup=False)
        if console.is_terminal:  # a bar below the per-trial lines; a log file gets the lines only
            self.tracker.advance(done, status)
        if self.on_trial is not None:
            self.on_trial(rec)

    def poll(self, study: optuna.Study) -> None:
        for t in study.get_trials(deepcopy=False):
            if t.system_attrs.get(RUN) == self.cfg.run_id:
                self(t)


def _check_request(
    space: SearchSpace | Sequence[Param],
    objectives: Sequence[tuple[str, Direction]],
    sampler: str,
    trials: int,
    workers: int,
    objective_seeds: int,
    first_trial: dict[str, Any] | None,
) -> SearchSpace:
    """Validate :func:`run_search`'s arguments (ValueError naming the bad one); return the space as a SearchSpace."""
    if not objectives or len(objectives) > 2:
        raise ValueError("search: give one or two (metric, direction) objectives")
    for name, direction in objectives:
        if direction not in ("maximize", "minimize"):
            raise ValueError(f"search objective {name!r}: direction must be maximize or minimize, got {direction!r}")
    if sampler not in ("tpe", "grid", "nsga2"):
        raise ValueError(f"search: unknown sampler {sampler!r} (tpe, grid or nsga2)")
    if trials < 1 or workers < 1 or objective_seeds < 1:
        raise ValueError("search: trials, workers and objective_seeds must be >= 1")
    space = space if isinstance(space, SearchSpace) else SearchSpace(space)
    names = {p.name for p in space}
    if first_trial is not None:
        missing, extra = names - set(first_trial), set(first_trial) - names
        if missing or extra:
            bad = sorted(missing or extra)[0]
            raise ValueError(f"search first_trial: parameter {bad!r} {'missing' if missing else 'not in the space'}")
        for p in space:
            v = first_trial[p.name]
            ok = v in (p.choices or ()) if p.kind == "categorical" else (p.low or 0) <= v <= (p.high or 0)
            if not ok:
                raise ValueError(f"search first_trial: parameter {p.name!r} value {v!r} outside its range / choices")
    return space


def _open_study(
    study_name: str, store: BaseStorage, objectives: Sequence[tuple[str, Direction]], objective_seeds: int
) -> optuna.Study:
    """Create or load the study; refuse a stored one with other directions or another objective seed count."""
    study = optuna.create_study(
        study_name=study_name,
        storage=store,
        directions=[d for _, d in objectives],
        load_if_exists=True,
    )
    if [d.name.lower() for d in study.directions] != [d for _, d in objectives]:
        raise ValueError(f"search {study_name!r}: the stored study has directions {study.directions}")
    stored_seeds = int((study.user_attrs.get("objective_seeds") or {}).get("n", 1))
    if study.get_trials(deepcopy=False) and stored_seeds != objective_seeds:
        raise ValueError(
            f"search {study_name!r}: the stored study averages {stored_seeds} objective seed(s), not {objective_seeds}"
        )
    return study


def _sampler_history(study: optuna.Study, sampler: str, settings: dict[str, Any]) -> tuple[list[dict], list[str]]:
    """The study's ``sampler_history`` with ``settings`` appended when they differ from the stored ones, and the
    note (printed) that says so."""
    notes, start, old = [], len(study.get_trials(deepcopy=False)), study.user_attrs.get("sampler")
    history = list(study.user_attrs.get("sampler_history") or []) if start else []
    if start and not history:  # a study from before the settings were recorded
        history = [{"from_trial": 0, **(old if isinstance(old, Mapping) else {"name": old or sampler})}]
    change = _settings_change(old, settings) if start else None
    if change is not None:
        notes.append(f"search {study.study_name}: sampler settings differ from the stored study's ({change}); "
                     f"trials from #{start} on use the new ones")  # fmt: skip
        console.print(notes[-1], soft_wrap=True, highlight=False, markup=False)
        history.append({"from_trial": start, **settings})
    elif not history:
        history = [{"from_trial": 0, **settings}]
    return history, notes


def _enqueue_first_trial(study: optuna.Study, first_trial: dict[str, Any]) -> None:
    """Enqueue the paper setting unless a live trial holds it (again if its earlier attempt failed, e.g. killed)."""
    key, live = _cell_key(first_trial), (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
    if not any(_cell_key(t.system_attrs.get("fixed_params", t.params)) == key for t in study.get_trials(states=live)):
        study.enqueue_trial(first_trial)


def _run_workers(cfg: _WorkerConfig, workers: int, study: optuna.Study, reporter: _Reporter) -> None:
    """Run the ask/tell loop here (one worker) or in ``workers`` spawned processes, reporting their trials."""
    if workers == 1:
        _worker(cfg, reporter)
        return
    ctx = mp.get_context("spawn")
    procs = []
    for i in range(workers):
        wcfg = _WorkerConfig(**{**cfg.__dict__, "worker": i})
        proc = ctx.Process(target=_spawn_worker, args=(wcfg,), name=f"search-{cfg.study_name}-{i}")
        proc.start()
        procs.append(proc)
    try:
        while any(p.is_alive() for p in procs):
            reporter.poll(study)
            time.sleep(0.2)
    finally:
        for p in procs:
            p.join(timeout=None if p.exitcode is not None else 5)
            if p.is_alive():
                p.terminate()
    reporter.poll(study)
    bad = [p.exitcode for p in procs if p.exitcode]
    if bad:
        console.print(f"[yellow]search {cfg.study_name}: worker exit codes {bad}; rerun to top up[/]")


def run_search(
    *,
    study_name: str,
    space: SearchSpace,
    objective: Callable[[dict[str, Any]], dict[str, float]],
    objectives: Sequence[tuple[str, Direction]],
    trials: int,
    workers: int = 1,
    storage: str | None,
    run_dir: Path,
    sampler: SamplerName = "tpe",
    first_trial: dict[str, Any] | None = None,
    seed: int = 0,
    sampler_options: Mapping[str, Any] | None = None,
    objective_seeds: int = 1,
    seeds_label: str = "",
    on_trial: Callable[[TrialRecord], None] | None = None,
    heartbeat_interval: int = 30,
    grace_period: float = 120.0,
    max_failures: int = 20,
) -> SearchResult:
    """Top the study ``study_name`` up to ``trials`` COMPLETE trials and summarise it.

    ``objective(params) -> metrics`` is maximised / minimised on ``objectives`` (1 or 2 ``(metric, direction)``);
    every metric it returns is kept (user attr ``metrics``). An exception or a non-finite optimised metric fails
    the trial (user attr ``error``, one line) and the search goes on; a worker gives up after ``max_failures``
    failures in a row. ``first_trial`` (the paper's setting) is enqueued once, so it becomes trial 0 of a new study.
    ``sampler_options``: see :func:`sampler_settings`. ``objective_seeds`` > 1: the objective returns that many metric
    dicts, the trial's metrics are their means (``seeds_label`` says what varies, e.g. "3 video folds").
    Storage, grid claims, restarts and workers: see the module docstring.
    """
    space = _check_request(space, objectives, sampler, trials, workers, objective_seeds, first_trial)
    n_cells = len(space.grid_cells()) if sampler == "grid" else None  # raises naming a parameter without grid
    settings = sampler_settings(sampler, seed=seed, n_params=len(space), n_cells=n_cells, options=sampler_options)
    url = storage or default_storage(run_dir, study_name)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = open_storage(url, heartbeat_interval=heartbeat_interval, grace_period=grace_period)
    study = _open_study(study_name, store, objectives, objective_seeds)
    history, notes = _sampler_history(study, sampler, settings)
    study.set_user_attr("objectives", [list(o) for o in objectives])
    study.set_user_attr("sampler", settings)
    study.set_user_attr("sampler_history", history)
    study.set_user_attr("objective_seeds", {"n": objective_seeds, "what": seeds_label})
    study.set_user_attr("target", trials)
    study.set_user_attr("params", [p.name for p in space])
    if first_trial is not None:
        study.set_user_attr("first_trial", first_trial)
    stale = fail_stale_trials(study, store, grace_period)
    if first_trial is not None:
        _enqueue_first_trial(study, first_trial)
    if stale:
        console.print(f"  search {study_name}: trials {stale} were left RUNNING by a dead process; marked FAIL")

    cfg = _WorkerConfig(
        study_name, url, space, objective, [(n, d) for n, d in objectives], trials, settings,
        uuid.uuid4().hex, heartbeat_interval, grace_period, max_failures, objective_seeds,
    )  # fmt: skip
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    total = min(trials, len(space.grid_cells())) if sampler == "grid" else trials
    tracker = Tracker(f"search {study_name}", total=max(total, done), completed=min(done, total))
    with tracker if console.is_terminal else contextlib.nullcontext():
        _run_workers(cfg, workers, study, _Reporter(cfg, tracker, on_trial))
    result = SearchResult.from_study(study, url)
    result.notes = notes
    return result


def load_result(study_name: str, storage: str) -> SearchResult:
    """The :class:`SearchResult` of a stored study (e.g. to render its page later)."""
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    return SearchResult.from_study(study, storage)
