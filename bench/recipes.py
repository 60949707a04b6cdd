"""The paper's recipe of each ``full`` table, and the deviations of a run from it.

A recipe is the configuration the paper trained and tested with: data and splits, backbone, input size, schedule,
batch, learning rate, initialisation and test-time options, each setting with its source (paper, section or table,
or the reference code the paper names) and, where the papers do not state a value, ``known: false`` and why
crowdbench chose it. One file per task family, ``results/recipes/<task>.yaml``, holds the settings every table of
that family shares; a table spec's ``recipe:`` block holds what is specific to one table. The ``full`` profile is
built from these files (``bench/profiles.py``), so the defaults and the reviewed recipe cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from crowdbench.bench.config import set_dotted

if TYPE_CHECKING:
    from crowdbench.bench.config import RunConfig


class RecipeSetting(BaseModel):
    """One setting of a paper's recipe."""

    model_config = ConfigDict(extra="forbid")

    value: Any = Field(description="the value (as a --set value would be given)")
    source: str = Field(description="where it comes from: 'paper 001 section 4.2', 'CrowdDet config.py', ...")
    known: bool = Field(True, description="false: the papers do not state it; the source says why this value")


class InitSetting(BaseModel):
    """A pretrained initialisation the paper starts from (a weights path setting that must be given)."""

    model_config = ConfigDict(extra="forbid")

    weights: str = Field(description="what the paper initialises from, e.g. 'ImageNet ResNet-50'")
    source: str


class Recipe(BaseModel):
    """``results/recipes/<task>.yaml``: the shared recipe of one task family."""

    model_config = ConfigDict(extra="forbid")

    task: str
    title: str
    settings: dict[str, RecipeSetting] = Field(description="dotted RunConfig key -> the paper's value and source")
    init: dict[str, InitSetting] = Field(default_factory=dict, description="weights key -> what the paper used")
    notes: str = ""


# Settings that never change a number (infrastructure), or that the run does not share with the paper by nature
# (where the data lives, the seed, the device): never deviations.
NOT_RECIPE = (
    "device",
    "seed",
    "plugins",
    "data.root",
    "runtime.",
    "train.num_workers",
    "train.checkpoint_every",
    "pose.train.num_workers",
    "regression.train.num_workers",
    "regression.train.checkpoint_every",
    "infer.batch_size",
    "pose.test.batch_size",
    "regression.test.batch_size",
    "regression.test.timing_images",
    "regression.model.deform_impl",
    "evaluate.bootstrap",  # uncertainty settings: they give a value its interval, never change it
    "evaluate.bootstrap_seed",
    "evaluate.block_frames",  # the same function computed two ways (parity-tested), not a setting
)


class RecipeError(ValueError):
    """A recipe file is missing or invalid (one line: which file, which setting)."""


def recipes_root() -> Path:
    """``results/recipes`` next to the table specs (``results/papers``): the checkout's copy or the wheel's package
    data. Found without importing ``bench.specs``, so the table-spec schema stays outside every stage's import
    closure (``bench/cache.py``): editing it does not invalidate cached stages."""
    root = Path(__file__).resolve().parent.parent / "results" / "recipes"
    if not root.is_dir():
        raise RecipeError(f"no recipes: {root} does not exist (a broken install?)")
    return root


@cache
def load_recipe(task: str) -> Recipe:
    """The shared full recipe of ``task`` (``results/recipes/<task>.yaml``), validated."""
    path = recipes_root() / f"{task}.yaml"
    if not path.is_file():
        raise RecipeError(f"no full recipe for task {task!r}: {path} is missing")
    try:
        recipe = Recipe.model_validate(yaml.safe_load(path.read_text()))
    except (yaml.YAMLError, ValueError) as exc:
        raise RecipeError(f"{path}: {' '.join(str(exc).split())[:300]}") from None
    if recipe.task != task:
        raise RecipeError(f"{path}: task {recipe.task!r}, expected {task!r}")
    return recipe


@dataclass(frozen=True)
class Deviation:
    """One resolved setting of a run that differs from the paper's recipe."""

    key: str
    recipe: Any
    run: Any
    hint: str = ""  # what would remove it (shown before a run, not in the reports)

    def __str__(self) -> str:
        return f"{self.key}: {_show(self.recipe)} → {_show(self.run)}"

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "recipe": self.recipe, "run": self.run, "text": str(self), "hint": self.hint}


def _show(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if value is None:
        return "none"
    return str(value)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists and scalars are leaves (a list of models compares as a whole)."""
    if isinstance(tree, dict) and tree:
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): tree}


def _ignored(key: str) -> bool:
    return any(key == n or (n.endswith(".") and key.startswith(n)) for n in NOT_RECIPE)


def compare(recipe_cfg: RunConfig, run_cfg: RunConfig, init: dict[str, InitSetting]) -> list[Deviation]:
    """Every resolved setting of ``run_cfg`` that differs from ``recipe_cfg``, in config order, then each
    pretrained initialisation of the recipe that the run lacks (``initialisation: ImageNet ResNet-50 → none``)."""
    want = flatten(recipe_cfg.model_dump(mode="json"))
    have = flatten(run_cfg.model_dump(mode="json"))
    out = [
        Deviation(key, want.get(key), have.get(key))
        for key in dict.fromkeys([*want, *have])
        if not _ignored(key) and want.get(key) != have.get(key) and key not in init
    ]
    for key, setting in init.items():
        if have.get(key) is None:
            what = "ImageNet" if "imagenet" in setting.weights.lower() else setting.weights
            hint = f"{setting.weights}: --set {key}=PATH or <data-root>/{WEIGHTS_DIR}/{imagenet_file(run_cfg, key)}"
            out.append(Deviation(f"initialisation ({key})", what, None, hint))
    return out


WEIGHTS_DIR = "weights"
"""``<data-root>/weights/``: where a full run finds the ImageNet weights of its recipe's initialisation when no
``--set`` names them (:func:`imagenet_file`)."""


def get_dotted(cfg: Any, dotted: str) -> Any:
    """``cfg.a.b`` from ``"a.b"``."""
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def imagenet_file(cfg: RunConfig, key: str) -> str:
    """The file name under ``<data-root>/weights/`` of the ImageNet weights that ``key`` of ``cfg`` initialises
    from, named after the configured network: ``resnet50.pth``, ``hrnet_w32.pth``, ``resnext101.pth``, ..."""
    if key == "pose.model.weights":
        m = cfg.pose.model
        return f"hrnet_w{m.hrnet_width}.pth" if m.arch == "hrnet" else f"{m.backbone}.pth"
    if key == "regression.model.weights":
        return f"{cfg.regression.model.backbone}.pth"
    if key == "model.weights":
        return f"{cfg.model.backbone}.pth"
    if key == "tracking.reid.backbone_weights":
        return "resnet50.pth"
    return f"{key.replace('.', '_')}.pth"


def fill_initialisation(cfg: RunConfig, init: dict[str, InitSetting]) -> None:
    """Set each recipe initialisation that the config leaves empty to ``<data-root>/weights/<file>`` when that file
    exists (a data root that carries its ImageNet weights runs the paper's recipe with no ``--set``)."""
    if cfg.data.root is None:
        return
    for key in init:
        if get_dotted(cfg, key) is None:
            path = Path(cfg.data.root) / WEIGHTS_DIR / imagenet_file(cfg, key)
            if path.is_file():
                set_dotted(cfg, key, path)
