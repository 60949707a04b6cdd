"""Running one cached stage: cache hit, or compute under a lock into a temporary folder and publish."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crowdbench.bench.cache import StageCache
from crowdbench.bench.log import console


@dataclass
class StageResult:
    name: str
    key: str
    path: Path
    ran: bool
    seconds: float


@dataclass
class CellOutcome:
    """What one cell produced: metrics, the keys of its stages, the stages (run or cache hits) and any per-epoch
    curves recorded by training (``{"train": [{"epoch", "loss", ...}]}``)."""

    metrics: dict[str, float]
    stage_keys: dict[str, str]
    stages: list[StageResult] = field(default_factory=list)
    curves: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    bootstrap: dict[str, Any] = field(default_factory=dict)  # bench/metrics/bootstrap.py: bootstrap_record
    params: dict[str, int] = field(default_factory=dict)  # stage ("train", "reid") -> parameters of its model

    @property
    def stages_run(self) -> list[str]:
        return [s.name for s in self.stages if s.ran]


def run_stage(
    cache: StageCache, name: str, key: str, meta: dict[str, Any], compute: Callable[[Path, Path], None]
) -> StageResult:
    """``compute(out_dir, scratch_dir)`` fills ``out_dir``; ``scratch_dir`` survives interruption (checkpoints)."""
    if cache.is_done(name, key):
        console.print(f"  [green]cache hit[/]  {name:<11} {key}")
        return StageResult(name, key, cache.path(name, key), False, 0.0)
    with cache.lock(name, key):
        if cache.is_done(name, key):  # another process finished it while we waited
            console.print(f"  [green]cache hit[/]  {name:<11} {key} (computed by a concurrent cell)")
            return StageResult(name, key, cache.path(name, key), False, 0.0)
        console.print(f"  [yellow]running[/]    {name:<11} {key}")
        start = time.perf_counter()
        scratch = cache.scratch(name, key)
        with cache.writing(name, key, {**meta, "stage": name, "key": key}) as out:
            compute(out, scratch)
        seconds = time.perf_counter() - start
        shutil.rmtree(scratch, ignore_errors=True)
        console.print(f"  [cyan]done[/]       {name:<11} {key} in {seconds:.1f} s")
        return StageResult(name, key, cache.path(name, key), True, seconds)


BOOTSTRAP_FILE = "bootstrap.json"
RESAMPLER_FILE = "resampler.npz"


def bootstrap_slice(cfg: Any) -> dict[str, int]:
    """The settings of the replicates an evaluate stage keeps (part of its key: other settings, other replicates)."""
    e = cfg.evaluate
    return {"resamples": e.bootstrap, "seed": e.bootstrap_seed, "block_frames": e.block_frames}


def save_bootstrap(out: Path, resampler: Any, resamples: int, seed: int) -> None:
    """Keep an evaluation's per-unit sufficient statistics (``resampler.npz``, so any number of resamples can be
    drawn later without re-running the matching) and the replicates of the cell's record (``bootstrap.json``)."""
    # deferred: start-up (numpy)
    from crowdbench.bench.metrics.bootstrap import bootstrap_record

    if resampler is None or resamples <= 0:
        return
    if hasattr(resampler, "save"):
        resampler.save(out / RESAMPLER_FILE)
    (out / BOOTSTRAP_FILE).write_text(json.dumps(bootstrap_record(resampler, resamples, seed)))


def load_bootstrap(done: Path) -> dict[str, Any]:
    """The bootstrap record an evaluate stage kept ({} when it kept none)."""
    path = done / BOOTSTRAP_FILE
    return json.loads(path.read_text()) if path.is_file() else {}
