"""Matrix expansion: table spec x seeds x profile -> cells, each keyed by the hash of its resolved config."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import yaml

from crowdbench.bench.cache import canonical_json
from crowdbench.bench.config import RunConfig, set_dotted
from crowdbench.bench.profiles import base_config
from crowdbench.bench.registry import get_plugin, parse_plugin_ref
from crowdbench.bench.specs import TableSpec


@dataclass
class Cell:
    """One (row, seed) of a table under one profile."""

    table_id: str
    row_index: int
    row_label: str
    seed: int
    config: RunConfig

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)

    @property
    def name(self) -> str:
        return f"{self.table_id} row {self.row_index + 1} '{self.row_label}' seed {self.seed}"


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
    """Cells of the runnable rows in table order, seeds inner. Deterministic for a given input."""
    seeds = seeds if seeds is not None else [0]
    cells = []
    for index, row in spec.runnable_rows:
        if rows is not None and index not in rows:
            continue
        for seed in seeds:
            cfg = base_config(profile, spec.task)
            if profile == "full":  # the paper's dataset and split (spec `data`); smoke keeps the synthetic data
                for key, value in spec.data.items():
                    set_dotted(cfg, f"data.{key}", value)
            for key, value in row.overrides.items():
                set_dotted(cfg, key, value)
            for ref in row.plugins:
                name, options = parse_plugin_ref(ref)
                get_plugin(name, options).apply(cfg)
                cfg.plugins.append(name)
            for key, value in (overrides or {}).items():  # the command line wins over rows and plugins
                set_dotted(cfg, key, value)
            cfg.seed = seed
            cells.append(Cell(spec.id, index, row.label, seed, cfg))
    return cells
