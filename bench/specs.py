"""Table specs: one YAML per paper table under ``results/papers/<key>/table<N>.yaml``.

A spec names the paper and table, the metric columns, and the rows. Each row is a set of plugins and config
overrides plus the paper's own numbers, transcribed from ``shared/papers`` (``null`` where the extracted text
does not show the cell). Rows whose plugins do not exist yet carry ``pending: <what is missing>``.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from crowdbench.bench.config import DataConfig, RunConfig, set_dotted
from crowdbench.bench.recipes import RecipeSetting

PAPER_KEYS = ("hie-pose", "occlusion-aug", "pose-regression", "offset-guided", "hie-tracking")
TABLE_ID = re.compile(r"^(?P<key>[a-z-]+)/table(?P<num>\d+)$")


class SpecError(ValueError):
    """A table spec is missing, unknown or invalid."""


class MetricColumn(BaseModel):
    """One metric column of a table."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(description="metric key as the evaluator returns it, e.g. 'AP', 'mMR', 'JI'")
    label: str = Field(description="column header as the paper prints it, e.g. 'AP (%)'")
    higher_is_better: bool = True
    scale: float = Field(100.0, description="factor from the evaluator's value to the paper's unit (100 for %)")
    decimals: int = 2
    tolerance: float = Field(
        1.0, ge=0, description="|Δ| (paper's unit) within which a full-level number counts as matching the paper"
    )
    timing: bool = Field(
        False, description="a time measured on the machine that ran the cell: its header names that device"
    )


class Row(BaseModel):
    """One table row: what it switches on, and what the paper reports for it."""

    model_config = ConfigDict(extra="forbid")

    label: str
    plugins: list[str | dict[str, dict[str, Any]]] = Field(
        default_factory=list, description="plugin names, or {name: {option: value}}"
    )
    overrides: dict[str, Any] = Field(default_factory=dict, description="dotted config keys -> values")
    settings: dict[str, Any] = Field(
        default_factory=dict, description="descriptive non-metric columns as printed (e.g. grid parameters)"
    )
    paper: dict[str, float | None] = Field(default_factory=dict, description="metric key -> paper value or null")
    source: str = Field(description="where the paper values come from, e.g. 'Table 3, row 2'")
    smoke_unmeasurable: str | None = Field(
        None,
        min_length=10,
        description="why this row's effect cannot be measured at CPU scale (e.g. an ImageNet-scale backbone, a "
        "test-server row): under smoke its effects are 'not measurable in smoke' and never counted",
    )
    pending: str | None = Field(None, description="what is missing before this row can run")
    compare_to: int | str | None = Field(
        "above",
        description="the row this row's effect is measured against (paper effect = paper[this] - paper[that]; "
        "reproduced effect = paired bootstrap on the same images and seeds): 'above' (default; no effect when this "
        "row or the row above is another method's published result), a 1-based row number, a row label, or null "
        "for no effect",
    )

    @property
    def published_only(self) -> bool:
        """Another method's published result: nothing crowdbench switches on (pending, no plugins, no overrides)."""
        return self.pending is not None and not self.plugins and not self.overrides


class TableSpec(BaseModel):
    """A whole table of one paper."""

    model_config = ConfigDict(extra="forbid")

    id: str
    paper: Literal["hie-pose", "occlusion-aug", "pose-regression", "offset-guided", "hie-tracking"]
    paper_file: str
    table: int
    title: str
    task: Literal["detection", "pose", "pose_regression", "tracking", "pose_tracking"]
    dataset: str = Field(description="the paper's dataset and split")
    smoke_dataset: str = Field("synthetic/small", description="what the smoke profile runs on instead")
    smoke_scenario: str = Field(
        "plain",
        description="the synthetic scenario (datasets/synthetic.py SCENARIOS) every row runs on under smoke, chosen "
        "once from the rows' mechanisms (never per row, never from a result)",
    )
    smoke_why: str = Field("", description="which mechanism of the rows the scenario creates (paper, section)")
    smoke_seeds: int = Field(
        1,
        ge=1,
        le=10,
        description="seeds 0..N-1 that `crowdbench table` runs under smoke when --seeds is not given: the table's "
        "budget, chosen once from measured minutes (3 where the rows train different models and 3 seeds fit the "
        "20-minute smoke budget on 2 CPU cores, issue 22)",
    )
    smoke_budget: str = Field(
        "",
        description="why smoke_seeds and smoke_settings: the measured minutes per seed on 2 CPU cores and what the "
        "seeds resolve",
    )
    smoke_settings: dict[str, Any] = Field(
        default_factory=dict,
        description="dotted config settings every row of this table runs with under smoke, on top of the smoke "
        "profile (bench/profiles.py): the table's own budget (samples, iterations, sizes) where the profile's "
        "does not fit 20 minutes on 2 CPU cores; one choice for the whole table, stated in smoke_budget, never per "
        "row and never from a result",
    )
    data: dict[str, Any] = Field(
        description="the full profile's data.* settings: `source` (a datasets/layout.py key), splits, holdout videos"
    )
    metrics: list[MetricColumn]
    rows: list[Row]
    notes: str = ""
    recipe: dict[str, RecipeSetting] = Field(
        default_factory=dict,
        description="this table's own settings of the paper's full recipe (dotted key -> value, source), on top of "
        "results/recipes/<task>.yaml (bench/recipes.py)",
    )
    search: dict[str, Any] | None = Field(
        None,
        description="parameter search of `crowdbench search` (bench/search_tracking.py): row (1-based), objectives, "
        "multi_objective and space (dotted config keys -> bench/search.py definitions)",
    )

    @field_validator("id")
    @classmethod
    def _id_form(cls, value: str) -> str:
        if not TABLE_ID.match(value):
            raise ValueError(f"table id {value!r} is not of the form '<paper-key>/table<N>'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TableSpec:
        match = TABLE_ID.match(self.id)
        assert match is not None
        if match["key"] != self.paper or int(match["num"]) != self.table:
            raise ValueError(f"id {self.id!r} does not match paper {self.paper!r} / table {self.table}")
        if self.smoke_scenario != "plain" and not self.smoke_why.strip():
            raise ValueError(f"smoke_scenario {self.smoke_scenario!r} needs smoke_why: the rows' mechanism it creates")
        if self.smoke_seeds != 1 and not self.smoke_budget.strip():
            raise ValueError(f"smoke_seeds {self.smoke_seeds} needs smoke_budget: the measured minutes that justify it")
        if self.smoke_settings and not self.smoke_budget.strip():
            raise ValueError("smoke_settings needs smoke_budget: the measured minutes that justify them")
        for key, value in self.smoke_settings.items():
            try:
                set_dotted(RunConfig(task=self.task), key, value)
            except KeyError as exc:  # set_dotted: an unknown key, with the valid ones
                raise ValueError(f"smoke_settings {key}: {exc.args[0]}") from None
            except ValueError as exc:  # a value its field rejects
                raise ValueError(f"smoke_settings {key}: {str(exc).splitlines()[0]}") from None
        keys = {m.key for m in self.metrics}
        if len(keys) != len(self.metrics):
            raise ValueError("duplicate metric keys")
        for row in self.rows:
            unknown = set(row.paper) - keys
            if unknown:
                raise ValueError(f"row {row.label!r}: paper values for unknown metrics {sorted(unknown)}")

        try:
            DataConfig.model_validate(self.data)
        except ValueError as exc:
            raise ValueError(f"data: {' '.join(str(exc).splitlines()[:3])}") from None
        if "source" not in self.data:
            raise ValueError("data: needs 'source' (the dataset of the full profile)")
        labels = [r.label for r in self.rows]
        if len(set(labels)) != len(labels):
            raise ValueError("duplicate row labels")
        for i, row in enumerate(self.rows):
            ref = row.compare_to
            if isinstance(ref, int) and not (1 <= ref <= len(self.rows) and ref != i + 1):
                raise ValueError(f"row {row.label!r}: compare_to {ref} is not another row (1..{len(self.rows)})")
            if isinstance(ref, str) and ref != "above" and (ref not in labels or ref == row.label):
                raise ValueError(f"row {row.label!r}: compare_to {ref!r} is not another row's label")
        return self

    def compared_row(self, index: int) -> int | None:
        """The 0-based row that row ``index`` is compared against (``Row.compare_to``), or None."""
        ref = self.rows[index].compare_to
        if ref is None or (ref == "above" and index == 0):
            return None
        if ref == "above":  # two methods' published numbers are a comparison, not an ablation
            above = self.rows[index - 1]
            return None if self.rows[index].published_only or above.published_only else index - 1
        if isinstance(ref, int):
            return ref - 1
        return next(i for i, r in enumerate(self.rows) if r.label == ref)

    def default_seeds(self, profile: str) -> list[int]:
        """The seeds a run without --seeds gets: 0..smoke_seeds-1 under smoke, seed 0 under full (a GPU run's seed
        count is the user's budget, not the table's)."""
        return list(range(self.smoke_seeds)) if profile == "smoke" else [0]

    def default_rows(self, profile: str) -> list[int] | None:
        """The 0-based rows a run without --rows gets; None for every runnable row. Under smoke a row whose effect
        is not measurable in smoke (``Row.smoke_unmeasurable``: its verdicts are never counted) runs only on request
        (--rows), unless a measurable row is compared against it: such rows are ImageNet-scale backbones whose
        stand-ins cost the most CPU minutes of their tables (issue 22: each table's default fits 20 minutes)."""
        if profile != "smoke":
            return None
        keep: set[int] = set()
        for index, row in self.runnable_rows:
            if row.smoke_unmeasurable is None:
                keep.add(index)
                ref = self.compared_row(index)
                if ref is not None:
                    keep.add(ref)
        runnable = [index for index, _ in self.runnable_rows]
        chosen = [index for index in runnable if index in keep]
        return None if len(chosen) == len(runnable) else chosen

    def rows_on_request(self, profile: str) -> list[int]:
        """The 0-based runnable rows that :meth:`default_rows` leaves out (run them with --rows)."""
        chosen = self.default_rows(profile)
        return [] if chosen is None else [i for i, _ in self.runnable_rows if i not in chosen]

    @property
    def runnable_rows(self) -> list[tuple[int, Row]]:
        return [(i, r) for i, r in enumerate(self.rows) if r.pending is None]


def specs_root() -> Path:
    """Folder holding ``<paper-key>/table<N>.yaml``: ``results/papers`` beside the code folders, which is the
    checkout's copy (editable install, bare checkout) or the installed package data ``crowdbench/results/papers``
    (a wheel; setup.py)."""
    root = Path(__file__).resolve().parent.parent / "results" / "papers"
    if not root.is_dir():
        raise SpecError(f"no table specs: {root} does not exist (a broken install?)")
    return root


def available_tables(root: Path | None = None) -> list[str]:
    root = root or specs_root()
    return sorted(f"{p.parent.name}/{p.stem}" for p in root.glob("*/table*.yaml"))


@cache
def load_spec(table_id: str, root: Path | None = None) -> TableSpec:
    """Load and validate one spec; an unknown id lists the valid ones."""
    root = root or specs_root()
    path = root / f"{table_id}.yaml"
    if not TABLE_ID.match(table_id) or not path.is_file():
        raise SpecError(f"unknown table {table_id!r}; known tables: {', '.join(available_tables(root))}")
    try:
        data = yaml.safe_load(path.read_text())
        return TableSpec.model_validate(data)
    except (yaml.YAMLError, ValueError) as exc:
        first = str(exc).strip().splitlines()
        raise SpecError(f"{path}: invalid table spec: {' '.join(first[:3])}") from exc
