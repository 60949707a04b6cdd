"""``crowdbench search tracking``: Optuna search over DeepSORT's parameters (paper 004 Table 4) on one table row.

The row's cell runs once (detector, ReID, embeddings: cached stages); every trial then replays only the tracker on the
cached boxes and embeddings with the trial's parameters and scores it with the row's MOT metrics. Trial 0 is the
row's own (paper) setting. Finished trials go to the result store as table ``<table>#search`` (row index = trial
number) with their full config, and the search page is written to ``<run dir>/reports/search/``.

Objective seeds (``objective_seeds = N > 1``, ``--objective-seeds``): the objective is the mean of the metric over N
disjoint folds of the search split, so a setting that wins on a few lucky videos does not win the search. The tracker
still runs once per trial on whole videos (the tracks are those of the plain replay); only the scoring is split.
Units: the split's videos, or, when it has fewer than N videos, each video cut into the fewest equal contiguous frame
blocks that give N units (each block scored as its own sequence). The units, sorted, are shuffled with a fixed seed
(0) and dealt round-robin into the N folds, so every trial and every resumed run scores the same folds. Each trial
records the N per-fold values (user attr ``folds``); the page and the terminal give the best trial's and trial 0's
95 % Student-t interval over the folds and the paired best - trial 0 difference. Studies with different N never mix.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np

from crowdbench.bench.cache import StageCache
from crowdbench.bench.config import RunConfig, set_dotted
from crowdbench.bench.device import apply_runtime, numerics, resolve_device
from crowdbench.bench.log import console
from crowdbench.bench.provenance import command_line, provenance
from crowdbench.bench.stages.data import check_data, load_frames
from crowdbench.bench.stages.tracking import evaluate_tracks, load_features, track_frames, tracked_boxes, videos_of
from crowdbench.bench.tasks import context, run_cell


@lru_cache(maxsize=2)
def _replay_inputs(config_json: str, cache_root: str) -> tuple[list, list, list | None]:
    """Frames, boxes and embeddings of a finished tracking cell (read once per worker process)."""
    cfg = RunConfig.model_validate_json(config_json)
    cache = StageCache(Path(cache_root))
    frames = load_frames(cfg.data, cfg.data.val_split)
    ctx = context(cfg, cache, "cpu")  # reads finished outputs only
    boxes = tracked_boxes(ctx, frames)
    features = load_features(ctx.path("embed"), len(frames)) if cfg.tracking.reid.enabled else None
    return frames, boxes, features


def _in_block(frame: Any, block: int) -> Any:
    """``frame`` relabelled as a frame of the sequence ``<video>#<block>`` (scored as its own sequence)."""
    return dataclasses.replace(frame, video=f"{frame.video}#{block}")


def fold_units(frames: list, n: int) -> tuple[list[list[tuple[int, Any]]], str]:
    """N disjoint folds of ``frames`` (see the module docstring): per fold, ``(frame index, frame)`` pairs, the frame
    relabelled ``<video>#<block>`` when videos are cut into blocks; and a label such as ``3 folds of 8 videos``."""
    videos = sorted(videos_of(frames), key=lambda idx: frames[idx[0]].video)
    if n > sum(len(v) for v in videos):
        raise ValueError(f"--objective-seeds {n}: the search split has only {sum(map(len, videos))} frames")
    blocks = max(1, math.ceil(n / max(1, len(videos))))
    units: list[list[tuple[int, Any]]] = []
    for idx in videos:
        for b, part in enumerate(np.array_split(np.asarray(idx), min(blocks, len(idx)))):
            units.append([(int(i), _in_block(frames[i], b) if blocks > 1 else frames[i]) for i in part])
    order = np.random.default_rng(0).permutation(len(units))
    folds: list[list[tuple[int, Any]]] = [[] for _ in range(n)]
    for k, u in enumerate(order):
        folds[k % n].extend(units[u])
    what = "videos" if blocks == 1 else f"video blocks ({blocks} per video)"
    return folds, f"{n} folds of {len(units)} {what}"


def trial_config(config_json: str, params: dict[str, Any]) -> RunConfig:
    cfg = RunConfig.model_validate_json(config_json)
    for key, value in params.items():
        set_dotted(cfg, key, value)
    return cfg


def replay_objective(
    params: dict[str, Any], *, config_json: str, cache_root: str, folds: int = 1
) -> dict[str, float] | list[dict[str, float]]:
    """MOT metrics of the tracker run with ``params`` (dotted config keys) on the cell's cached inputs; with
    ``folds`` > 1, one metrics dict per fold (:func:`fold_units`)."""
    frames, boxes, features = _replay_inputs(config_json, cache_root)
    cfg = trial_config(config_json, params)
    tracks = track_frames(frames, boxes, features, cfg)
    if folds == 1:
        return evaluate_tracks(frames, tracks)
    return [
        evaluate_tracks([f for _, f in fold], [tracks[i] for i, _ in fold]) for fold in fold_units(frames, folds)[0]
    ]


def study_name(table_id: str, cfg: RunConfig, sampler: str, multi: bool, folds: int = 1) -> str:
    """A study per table, profile, sampler, objective set, objective fold count and base cell (data, boxes, ReID):
    runs that differ in any of these never share trials (sampler settings may change: the study says so)."""
    base = cfg.model_dump(mode="json")
    base["tracking"].pop("deepsort")
    digest = hashlib.sha256(json.dumps(base, sort_keys=True).encode()).hexdigest()[:8]
    tail = f"{'-mo' if multi else ''}{f'-f{folds}' if folds > 1 else ''}"
    return f"{table_id.replace('/', '-')}-{cfg.profile}-{sampler}{tail}-{digest}"


@dataclasses.dataclass
class _TrialRecords:
    """``on_trial`` of the search: stores each COMPLETE trial as row ``trial number`` of table ``<table>#search``."""

    store: Any
    table_id: str
    study: str
    profile: str
    cell: Any
    dev: Any
    config_json: str
    seeds_label: str
    command: str = dataclasses.field(default_factory=command_line)

    def __call__(self, rec: Any) -> None:
        # deferred: start-up (sqlalchemy)
        from crowdbench.bench.matrix import config_hash
        from crowdbench.bench.store import Record

        if rec.state != "COMPLETE":
            return
        cfg, trial_cfg = self.cell.config, trial_config(self.config_json, rec.params)
        self.store.put(
            Record(
                table_id=f"{self.table_id}#search",
                row_index=rec.number,
                row_label=f"{self.study} trial {rec.number}",
                seed=cfg.seed,
                profile=self.profile,
                level=self.cell.level,
                config_hash=config_hash(trial_cfg),
                config=trial_cfg.model_dump(mode="json"),
                stage_keys={},
                stages_run=["track", "evaluate"],
                metrics={k: float(v) for k, v in rec.metrics.items()},
                provenance={
                    **provenance(self.dev, rec.seconds or 0.0, self.command, self.cell.level),
                    "study": self.study,
                    **({"objective_folds": {"what": self.seeds_label, "values": rec.folds}} if rec.folds else {}),
                    "numerics": numerics(cfg.runtime, self.dev),
                    "deviations": [d.to_dict() for d in self.cell.deviations],
                },
            )
        )


def _prepare_row(spec: Any, profile: str, overrides: dict[str, Any], device: str, cache: StageCache) -> tuple:
    """Expand the search row of ``spec`` and run its cell once (detector, ReID, embeddings, trial 0's own stages);
    return ``(row index, cell, device)``."""
    # deferred: start-up (optuna, sqlalchemy)
    from crowdbench.bench.matrix import expand

    row = int(spec.search.get("row", 1)) - 1
    over = dict(overrides)
    if device != "auto":
        over["device"] = device
    cell = expand(spec, profile=profile, overrides=over, rows=[row])[0]
    check_data(cell.config.data)
    dev = resolve_device(cell.config.device)
    apply_runtime(cell.config.runtime, dev)  # the same numerics as a table run of this row
    console.print(f"[bold]{spec.id}[/] search: preparing row {row + 1} '{cell.row_label}' (cached stages)")
    run_cell(cell.config, cache, dev)  # detector, ReID, embeddings (and trial 0's own stages)
    return row, cell, dev


def _paper_setting(space: Any, cfg: RunConfig) -> dict[str, Any]:
    """Trial 0: each searched dotted key's value in the row's own config."""
    dump = cfg.model_dump(mode="json")
    first = {}
    for p in space:
        node: Any = dump
        for part in p.name.split("."):
            node = node[part]
        first[p.name] = node
    return first


def _report(result: Any, spec: Any, row: int, cell: Any, profile: str, run_dir: Path, seconds: float) -> None:
    """Write the search page (paper values of the row for reference) and print the summary lines."""
    # deferred: start-up (optuna)
    from crowdbench.bench.search import summary_lines
    from crowdbench.reports.search import render_search_page

    scale = {m.key: m.scale for m in spec.metrics}
    paper = {k: v / scale.get(k, 1.0) for k, v in spec.rows[row].paper.items() if v is not None}
    title = f"{spec.id} search ({profile}; {cell.row_label}) — {cell.level} level"
    page = render_search_page(result, run_dir / "reports" / "search", title=title, paper=paper)
    for line in summary_lines(result):
        console.print(f"  {line}", soft_wrap=True, highlight=False, markup=False)
    done = len(result.complete)
    console.print(f"{done} complete trials in study {result.study_name} ({seconds:.1f} s); page: {page}")


def search_tracking(
    table_id: str,
    *,
    trials: int,
    workers: int = 1,
    storage: str | None = None,
    sampler: str = "tpe",
    multi_objective: bool = False,
    profile: str = "smoke",
    overrides: dict[str, Any] | None = None,
    run_dir: Path = Path("runs"),
    db_url: str | None = None,
    device: str = "auto",
    seed: int = 0,
    sampler_options: dict[str, Any] | None = None,
    objective_seeds: int = 1,
) -> Any:
    """Run (or top up) the search of ``table_id``'s ``search:`` block; returns the :class:`SearchResult`.
    ``sampler_options``: :func:`crowdbench.bench.search.sampler_settings`; ``objective_seeds``: folds averaged by
    the objective (module docstring)."""
    # deferred: start-up (optuna, sqlalchemy)
    from crowdbench.bench.search import SearchSpace, run_search
    from crowdbench.bench.specs import SpecError, load_spec
    from crowdbench.bench.store import ResultStore, store_url

    spec = load_spec(table_id)
    if spec.task != "tracking" or not spec.search:
        raise SpecError(f"{table_id} has no tracking search (a `search:` block); hie-tracking/table4 has one")
    run_dir = Path(run_dir).resolve()
    cache = StageCache(run_dir / "cache")
    row, cell, dev = _prepare_row(spec, profile, overrides or {}, device, cache)
    cfg = cell.config
    space = SearchSpace.from_dict(spec.search["space"])
    objectives = [tuple(o) for o in spec.search["multi_objective" if multi_objective else "objectives"]]
    config_json = cfg.model_dump_json()
    if objective_seeds < 1:
        raise ValueError("--objective-seeds must be >= 1")
    seeds_label = ""
    if objective_seeds > 1:
        seeds_label = fold_units(_replay_inputs(config_json, str(cache.root))[0], objective_seeds)[1]
        console.print(f"  objective: mean over {seeds_label} of the search split")
    name = study_name(spec.id, cfg, sampler, multi_objective, objective_seeds)
    store = ResultStore(store_url(run_dir, db_url))
    start = time.perf_counter()
    result = run_search(
        study_name=name,
        space=space,
        objective=partial(replay_objective, config_json=config_json, cache_root=str(cache.root), folds=objective_seeds),
        objectives=objectives,  # type: ignore[arg-type]
        trials=trials,
        workers=workers,
        storage=storage,
        run_dir=run_dir,
        sampler=sampler,  # type: ignore[arg-type]
        first_trial=_paper_setting(space, cfg),
        seed=seed,
        sampler_options=sampler_options,
        objective_seeds=objective_seeds,
        seeds_label=seeds_label,
        on_trial=_TrialRecords(store, spec.id, name, profile, cell, dev, config_json, seeds_label),
    )
    store.dispose()
    _report(result, spec, row, cell, profile, run_dir, time.perf_counter() - start)
    return result
