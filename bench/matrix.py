"""Matrix expansion: table spec x seeds x profile -> cells, each keyed by the hash of its resolved config."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import yaml

from crowdbench.bench.cache import canonical_json
from crowdbench.bench.config import RunConfig, set_dotted
from crowdbench.bench.profiles import base_config
from crowdbench.bench.recipes import Deviation, compare, fill_initialisation, get_dotted, load_recipe
from crowdbench.bench.registry import get_plugin, parse_plugin_ref
from crowdbench.bench.specs import Row, SpecError, TableSpec


@dataclass
class Cell:
    """One (row, seed) of a table under one profile, with its deviations from the paper's recipe (``full``)."""

    table_id: str
    row_index: int
    row_label: str
    seed: int
    config: RunConfig
    deviations: list[Deviation] = field(default_factory=list)

    @property
    def level(self) -> str:
        """``smoke`` (synthetic data), ``full`` (real data, the paper's recipe) or ``full-modified`` (real data, one
        or more deviations from the recipe)."""
        return level_of(self.config, self.deviations)

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)

    @property
    def name(self) -> str:
        return f"{self.table_id} row {self.row_index + 1} '{self.row_label}' seed {self.seed}"


def level_of(cfg: RunConfig, deviations: list[Any]) -> str:
    """The reproduction level of a run of ``cfg`` with ``deviations`` from its recipe."""
    if cfg.level == "smoke":
        return "smoke"
    return "full-modified" if deviations else "full"


def config_hash(cfg: RunConfig) -> str:
    """Hash of everything that decides the result (the device does not)."""
    payload = cfg.model_dump(mode="json", exclude={"device"})
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:16]


def variant_hash(config: dict[str, Any]) -> str:
    """Hash of a stored config with seed and device left out: the records of one row variant across seeds."""
    payload = {k: v for k, v in config.items() if k not in ("seed", "device")}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:16]


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["train.iterations=100", "model.k=2"]`` -> dotted overrides (values parsed as YAML scalars)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. train.iterations=100")
        out[key.strip()] = yaml.safe_load(raw)
    return out


def expand(
    spec: TableSpec,
    *,
    profile: str = "smoke",
    seeds: list[int] | None = None,
    overrides: dict[str, Any] | None = None,
    rows: list[int] | None = None,
) -> list[Cell]:
    """Cells of the runnable rows in table order, seeds inner. Deterministic for a given input.

    A cell's config is the profile's base (``full``: the family recipe), then under ``full`` the spec's ``recipe:``
    block and its ``data:`` block (what crowdbench runs), then the row's overrides and plugins, then ``overrides``
    (the command line wins). Under ``full`` each cell also carries its deviations: every resolved setting that
    differs from the recipe config (base, the spec's data then recipe blocks, the row), and each pretrained
    initialisation of the recipe that is not given."""
    seeds = seeds if seeds is not None else [0]
    cells = []
    for index, row in spec.runnable_rows:
        if rows is not None and index not in rows:
            continue
        for seed in seeds:
            cfg = row_config(spec, row, profile, seed, overrides or {})
            deviations = []
            if profile == "full":
                recipe = row_config(spec, row, profile, seed, {}, recipe=True)
                deviations = compare(recipe, cfg, load_recipe(spec.task).init)
            cells.append(Cell(spec.id, index, row.label, seed, cfg, deviations))
    return cells


def _check_overrides_held(spec: TableSpec, row: Row, held: dict[str, Any], cfg: RunConfig, plugin: str) -> None:
    """A row's ``overrides`` are set before its plugins, so a plugin that sets the same key would silently replace
    the spec's value (offset-guided Table 5 row 6 asked for ``pose_tracking.propagation_kp_thr: 0.15`` and ran 0.3,
    the plugin's default). That is a spec error naming the plugin option to use instead."""
    for key, value in held.items():
        if get_dotted(cfg, key) != value:
            raise SpecError(
                f"{spec.id} row {row.label!r}: overrides {key}={value!r}, but plugin {plugin!r} sets it "
                f"(to {get_dotted(cfg, key)!r}); give the value as that plugin's option instead"
            )


def row_config(
    spec: TableSpec, row: Row, profile: str, seed: int, overrides: dict[str, Any], *, recipe: bool = False
) -> RunConfig:
    """The resolved config of one row (see :func:`expand`); ``recipe``: the paper's recipe of that row instead of
    what crowdbench runs (the spec's ``recipe:`` block wins over its ``data:`` block)."""
    cfg = base_config(profile, spec.task)
    if profile == "smoke":  # the table's scenario (the mechanisms its rows claim to handle) and budget (issue 22)
        cfg.data.scenario = spec.smoke_scenario
        for key, value in spec.smoke_settings.items():
            set_dotted(cfg, key, value)
    if profile == "full":  # the paper's dataset and split (spec `data`, `recipe`); smoke keeps the synthetic data
        data = {f"data.{key}": value for key, value in spec.data.items()}
        table = {key: s.value for key, s in spec.recipe.items()}
        for key, value in ({**data, **table} if recipe else {**table, **data}).items():
            set_dotted(cfg, key, value)
    for key, value in row.overrides.items():
        set_dotted(cfg, key, value)
    held = {key: get_dotted(cfg, key) for key in row.overrides}
    for ref in row.plugins:
        name, options = parse_plugin_ref(ref)
        get_plugin(name, options).apply(cfg)
        cfg.plugins.append(name)
        _check_overrides_held(spec, row, held, cfg, name)
    for key, value in overrides.items():  # the command line wins over rows and plugins
        set_dotted(cfg, key, value)
    if profile == "full" and not recipe:  # ImageNet weights the data root carries (<data-root>/weights/)
        fill_initialisation(cfg, load_recipe(spec.task).init)
    cfg.seed = seed
    return cfg
