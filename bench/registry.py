"""Plugin registry (timm-style): ``@register`` a class under a dotted name, look it up with :func:`get_plugin`.

A plugin is a paper technique a table row switches on. It has a typed ``Config`` whose defaults are the
paper's values, names the stage whose config it changes, declares the config paths it may edit (``edits``), and
``apply`` writes itself into a run config. A plugin that no table spec's row names says why (``library_only``).
The code that does the computation lives in the same module as the plugin class, so one technique reads
top to bottom in one file.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

if TYPE_CHECKING:
    from crowdbench.bench.config import RunConfig

Stage = Literal["train", "infer", "postprocess", "evaluate"]
Hook = Literal["model", "loss", "augmentation", "schedule", "postprocess", "tracker", "data"]

# Modules that register plugins; imported lazily on first lookup so `crowdbench --help` stays fast.
PLUGIN_MODULES: tuple[str, ...] = (
    "crowdbench.methods.detection.crowddet",
    "crowdbench.methods.detection.kd",
    "crowdbench.methods.detection.fusion",
    "crowdbench.methods.detection.extra_data",
    "crowdbench.methods.detection.backbones",
    "crowdbench.methods.detection.faster_rcnn",
    "crowdbench.methods.detection.cascade",
    "crowdbench.methods.pose.plugins",
    "crowdbench.methods.pose.regression.plugins",
    "crowdbench.methods.tracking.plugins",
)


class PluginError(ValueError):
    """Unknown plugin name or invalid plugin option."""


class NoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Plugin:
    """Base class of all plugins."""

    name: ClassVar[str] = ""
    hook: ClassVar[Hook]
    stage: ClassVar[Stage]
    Config: ClassVar[type[BaseModel]] = NoConfig
    edits: ClassVar[tuple[str, ...]] = ()
    """Dotted ``RunConfig`` paths ``apply`` may change, each covering everything below it (``"model.k"``,
    ``"pose.test.ensemble"``); tests/test_plugin_registry.py fails on any other change."""
    library_only: ClassVar[str] = ""
    """Why no row of a table spec (``results/papers/``) switches it on; empty when one does."""

    def __init__(self, config: BaseModel | None = None) -> None:
        self.config = config if config is not None else self.Config()

    def apply(self, run: RunConfig) -> None:  # pragma: no cover - abstract
        """Switch the technique on in ``run`` (edit the slice of the stage named by ``stage``)."""
        raise NotImplementedError

    @classmethod
    def source_file(cls) -> str:
        return inspect.getfile(cls)


_REGISTRY: dict[str, type[Plugin]] = {}


def register(name: str) -> Callable[[type[Plugin]], type[Plugin]]:
    """Class decorator: register a plugin under ``name`` (e.g. ``"crowddet.set_nms"``)."""

    def wrap(cls: type[Plugin]) -> type[Plugin]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise PluginError(f"plugin {name!r} registered twice ({_REGISTRY[name].__module__}, {cls.__module__})")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def _load_all() -> None:
    for module in PLUGIN_MODULES:
        importlib.import_module(module)


def plugin_names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def get_plugin(name: str, options: dict[str, Any] | None = None) -> Plugin:
    """Instantiate plugin ``name`` with ``options``; unknown names and options list the valid ones."""
    _load_all()
    if name not in _REGISTRY:
        raise PluginError(f"unknown plugin {name!r}; known plugins: {', '.join(sorted(_REGISTRY))}")
    cls = _REGISTRY[name]
    try:
        config = cls.Config.model_validate(options or {})
    except ValidationError as exc:
        known = ", ".join(cls.Config.model_fields) or "none"
        err = exc.errors()[0]
        raise PluginError(
            f"plugin {name!r}: bad option {'.'.join(map(str, err['loc']))!r} ({err['msg']}); options: {known}"
        ) from None
    return cls(config)


def parse_plugin_ref(ref: str | dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A row lists a plugin as ``"name"`` or ``{"name": {option: value}}``."""
    if isinstance(ref, str):
        return ref, {}
    if isinstance(ref, dict) and len(ref) == 1:
        ((name, options),) = ref.items()
        return name, dict(options or {})
    raise PluginError(f"plugin reference {ref!r} is neither 'name' nor {{name: {{options}}}}")
