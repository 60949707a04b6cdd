"""The pipeline protocol: each task declares its stage graph once; keys, execution order and DDP followers walk it.

A :class:`Stage` is one node of a cell's graph: its name (its entry in the cell's keys), cache folder, config slice,
inputs (the cell's own earlier stages by name, or :class:`Upstream` stages of other cells) and the modules whose
source keys it. ``compute(ctx, out, scratch)`` fills the output folder. A stage without ``compute`` runs nothing:
with one upstream input it is a *link* (its key and output are that stage's: the detector a pose cell reads, an S3
pre-training), without one a key only (ground-truth boxes, keyed by the data they come from).

A :class:`Task` holds the function that declares a cell's stages, what the cell produces (:class:`Artefact` by name,
what reports read), its metric columns and, for data-parallel training, its settings. :func:`stage_keys` and
:func:`run_cell` walk the same declaration; another cell's stages run first, recorded as ``prefix.stage``.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from crowdbench.bench.cache import StageCache, stage_key
from crowdbench.bench.checkpoints import state_parameters
from crowdbench.bench.config import RunConfig
from crowdbench.bench.stages.base import CellOutcome, StageResult, load_bootstrap, run_stage
from crowdbench.bench.stages.data import load_frames
from crowdbench.datasets.keypoints import COCO_17
from crowdbench.datasets.model import Frame, KeypointSchema


@dataclass(frozen=True)
class Upstream:
    """Stage ``stage`` of the ``task`` cell ``cfg``: it runs first (with the stages it needs, recorded as
    ``prefix.name``; no prefix: under their own names) and its key is an input."""

    task: str
    cfg: RunConfig
    stage: str
    prefix: str = ""


Input = str | Upstream
"""An input of a stage: an earlier stage of the same cell (by name) or another cell's stage."""


@dataclass(frozen=True)
class Stage:
    """One stage of a cell: ``key = stage_key(folder, config, input keys, modules)``."""

    name: str
    config: Any = None
    modules: tuple[str, ...] = ()
    compute: Callable[[Context, Path, Path], None] | None = None
    inputs: tuple[Input, ...] = ()
    folder: str = ""
    """Cache folder (default: ``name``); a stage's record name is its folder unless ``label`` says otherwise."""
    label: str = ""
    recorded: bool = True
    """Whether the key is among the cell's keys (a key-only input such as ground-truth boxes is not)."""
    data_parallel: bool = False
    """Trained by every rank of a ``torchrun`` launch (:func:`follow_training`)."""


def link(name: str, upstream: Upstream) -> Stage:
    """A stage that is another cell's stage: its key among this cell's keys, its output read by later stages."""
    return Stage(name, inputs=(upstream,))


@dataclass(frozen=True)
class Artefact:
    """A file a cell produces, ``<cache>/<stage>/<key>/<file>`` (``stage`` names a stage keyed under its folder),
    and how to read it per validation frame (``load(path, frames)``)."""

    stage: str
    file: str
    load: Callable[[Path, list[Any]], list[Any]]


@dataclass(frozen=True)
class DataParallel:
    """A task whose ``data_parallel`` stages train under ``torchrun``: ``settings(cfg)`` = (global batch, LR,
    whether BatchNorm trains), for the record's provenance."""

    settings: Callable[[RunConfig], tuple[int, float, bool]]


@dataclass(frozen=True)
class Task:
    name: str
    stages: Callable[[RunConfig], list[Stage]]
    """The stages of one cell, in execution order (the one declaration keys and execution come from)."""
    metric_keys: Callable[[RunConfig], tuple[str, ...]]
    artefacts: dict[str, Artefact] = field(default_factory=dict)
    figure: str = ""
    """The qualitative drawing of the cell's artefacts (``reports/qualitative.py``); empty: none."""
    check: Callable[[RunConfig], None] | None = None
    """One-line errors for settings that cannot work together, before any key or stage."""
    curves: Callable[[Context], dict[str, list[dict[str, Any]]]] | None = None
    shared: tuple[str, ...] = ("train",)
    """The heaviest stage (first present): cells sharing its key run one after another, the later ones hit it."""
    data_parallel: DataParallel | None = None
    schema: Callable[[RunConfig], KeypointSchema] = lambda _cfg: COCO_17
    """The keypoint schema the cell's frames are read in."""


TASKS: dict[str, Task] = {}
"""Every declared task by name (filled as the stage modules are imported; ``bench/tasks.py`` imports them all)."""


def register(task: Task) -> Task:
    TASKS[task.name] = task
    return task


def task_of(name: str) -> Task:
    if name not in TASKS:
        raise NotImplementedError(f"task {name!r} has no pipeline yet")
    return TASKS[name]


# ---------------------------------------------------------------------------------------------- the resolved graph


@dataclass
class Node:
    """A stage of one cell with its key; ``deps``: (prefix of an upstream input or None for an own one, node)."""

    stage: Stage
    cell: CellGraph
    key: str
    folder: str
    deps: list[tuple[str | None, Node]]


@dataclass
class CellGraph:
    """One cell's resolved graph: its stages by name, in declaration order."""

    task: Task
    cfg: RunConfig
    nodes: dict[str, Node] = field(default_factory=dict)
    memo: dict[str, Any] = field(default_factory=dict)

    @property
    def keys(self) -> dict[str, str]:
        return {name: n.key for name, n in self.nodes.items() if n.stage.recorded}


def resolve(task: Task, cfg: RunConfig) -> CellGraph:
    """Every stage of the ``task`` cell ``cfg`` with its key (cheap: hashes configs and source files)."""
    cell = CellGraph(task, cfg)
    for stage in task.stages(cfg):
        deps: list[tuple[str | None, Node]] = []
        for x in stage.inputs:
            if isinstance(x, Upstream):
                deps.append((x.prefix, resolve(task_of(x.task), x.cfg).nodes[x.stage]))
            else:
                deps.append((None, cell.nodes[x]))
        if stage.compute is None and deps:  # a link: the upstream stage itself
            (_, target), *rest = deps
            assert not rest, f"{stage.name}: a link has one input"
            cell.nodes[stage.name] = Node(stage, cell, target.key, target.folder, deps)
            continue
        folder = stage.folder or stage.name
        key = stage_key(folder, stage.config, [d.key for _, d in deps], stage.modules)
        cell.nodes[stage.name] = Node(stage, cell, key, folder, deps)
    return cell


def stage_keys(cfg: RunConfig) -> dict[str, str]:
    """The keys of a cell's stages by name (links included, key-only inputs not); runs nothing."""
    return resolve(task_of(cfg.task), cfg).keys


def schedule(cell: CellGraph) -> list[tuple[str, Node]]:
    """Every stage to run for ``cell``, upstream ones first, once each: ``(record name, node)``."""
    order: list[tuple[str, Node]] = []
    seen: set[tuple[str, str]] = set()

    def visit(node: Node, prefix: str) -> None:
        for sub, dep in node.deps:
            visit(dep, prefix if sub is None else ".".join(p for p in (prefix, sub) if p))
        if node.stage.compute is not None and (node.folder, node.key) not in seen:
            seen.add((node.folder, node.key))
            name = node.stage.label or node.folder
            order.append((f"{prefix}.{name}" if prefix else name, node))

    for node in cell.nodes.values():
        visit(node, "")
    return order


# ------------------------------------------------------------------------------------------------------ running


@dataclass
class Context:
    """What a stage's ``compute`` sees: its cell's config, the cache, the device and the outputs it reads."""

    node: Node
    cache: StageCache
    device: str

    @property
    def cfg(self) -> RunConfig:
        return self.node.cell.cfg

    @property
    def memo(self) -> dict[str, Any]:
        """Values computed once per cell and shared by its stages (the validation frames)."""
        return self.node.cell.memo

    @property
    def inputs(self) -> list[Path]:
        """The output folders of the stage's inputs, in declared order."""
        return [self.cache.path(d.folder, d.key) for _, d in self.node.deps]

    def val_frames(self) -> list[Frame]:
        """The cell's validation frames in its task's keypoint schema (loaded once per cell)."""
        if "val" not in self.memo:
            cfg = self.cfg
            self.memo["val"] = load_frames(cfg.data, cfg.data.val_split, self.node.cell.task.schema(cfg).name)
        return self.memo["val"]

    def path(self, name: str) -> Path:
        """The output folder of the cell's stage ``name`` (a link: the upstream stage's)."""
        node = self.node.cell.nodes[name]
        return self.cache.path(node.folder, node.key)


def context(cfg: RunConfig, cache: StageCache, device: str) -> Context:
    """A context on a cell's finished outputs (its ``evaluate`` stage's view: every stage by name)."""
    return Context(resolve(task_of(cfg.task), cfg).nodes["evaluate"], cache, device)


def _run(node: Node, name: str, cache: StageCache, device: str) -> StageResult:
    assert node.stage.compute is not None
    ctx = Context(node, cache, device)
    meta = {"config": node.cell.cfg.model_dump(mode="json"), "device": device}
    done = run_stage(cache, node.folder, node.key, meta, lambda out, scratch: node.stage.compute(ctx, out, scratch))
    return replace(done, name=name)


def run_cell(cfg: RunConfig, cache: StageCache, device: str) -> CellOutcome:
    """Run (or fetch from the cache) every stage of one cell, upstream cells' stages first."""
    task = task_of(cfg.task)
    if task.check is not None:
        task.check(cfg)
    cell = resolve(task, cfg)
    stages = [_run(node, name, cache, device) for name, node in schedule(cell)]
    ctx = Context(cell.nodes["evaluate"], cache, device)
    done = ctx.path("evaluate")
    metrics = json.loads((done / "metrics.json").read_text())
    curves = task.curves(ctx) if task.curves is not None else {}
    return CellOutcome(metrics, cell.keys, stages, curves, load_bootstrap(done), trained_parameters(ctx))


def trained_parameters(ctx: Context) -> dict[str, int]:
    """The parameter count of each model the cell trained (its ``train`` and ``reid`` stages' ``model.pt``; running
    statistics left out): under smoke, the size of the stand-in a row ran, shown in the report (issue 22)."""
    # deferred: start-up (torch)
    import torch

    out = {}
    for name in ("train", "reid"):
        path = ctx.path(name) / "model.pt" if name in ctx.node.cell.nodes else None
        if path is not None and path.exists():
            out[name] = state_parameters(torch.load(path, map_location="cpu", weights_only=True))
    return out


def follow_training(cfg: RunConfig, cache: StageCache, device: str) -> None:
    """A non-zero rank of a ``torchrun`` launch (``bench/distributed.py``): join the training of every data-parallel
    stage rank 0 is about to compute (a Tf-KD self teacher's, fused detectors', the cell's own), in the same order,
    writing nothing. Checkpoints are read from rank 0's scratch folder, so a resumed run resumes on every rank."""
    for _, node in schedule(resolve(task_of(cfg.task), cfg)):
        if not node.stage.data_parallel or cache.is_done(node.folder, node.key):
            continue
        assert node.stage.compute is not None
        with tempfile.TemporaryDirectory(prefix="crowdbench-follower-") as tmp:
            node.stage.compute(Context(node, cache, device), Path(tmp), cache.scratch(node.folder, node.key))
