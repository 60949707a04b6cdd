"""Plugins declared as data: :class:`SettingPlugin` (the settings a plugin writes) and :func:`variant` (one plugin
class registered once per size, trunk or dataset).

``SettingPlugin.sets`` maps each dotted ``RunConfig`` path to the value written there: a constant (``True``,
``"psm"``) or an :class:`Option`, a field of the plugin's ``Config``. The paths, in order, are the plugin's
``edits`` unless it declares them itself (a plugin that extends ``apply`` with a conditional write)::

    @register("pose_regression.center_sampling")
    class CenterSampling(SettingPlugin):
        hook: ClassVar[Hook] = "loss"
        stage: ClassVar[Stage] = "train"
        sets: ClassVar[dict[str, Any]] = {
            "regression.train.center_sampling": True,
            "regression.train.center_radius": Option("radius"),
        }

``variant("backbone.resnet50", _BackbonePlugin, "ResNet-50 ...", full="resnet50")`` registers a subclass of
``_BackbonePlugin`` with the class attribute ``full`` (and docstring) under ``backbone.resnet50``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from crowdbench.bench.config import RunConfig, set_dotted
from crowdbench.bench.registry import Plugin, register


@dataclass(frozen=True)
class Option:
    """The value of the plugin option ``name``, passed through ``cast`` (e.g. ``tuple``) when given."""

    name: str
    cast: Callable[[Any], Any] | None = None

    def of(self, config: Any) -> Any:
        value = getattr(config, self.name)
        return value if self.cast is None else self.cast(value)


class SettingPlugin(Plugin):
    """A plugin that writes ``sets`` (path -> constant or :class:`Option`) into the run config, in order."""

    sets: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "edits" not in cls.__dict__:
            cls.edits = tuple(cls.sets)

    def apply(self, run: RunConfig) -> None:
        for path, value in self.sets.items():
            set_dotted(run, path, value.of(self.config) if isinstance(value, Option) else value)


def variant(name: str, base: type[Plugin], doc: str, **attrs: Any) -> type[Plugin]:
    """Register under ``name`` a subclass of ``base`` with the class attributes ``attrs`` and the docstring ``doc``
    (its first line is what ``crowdbench list plugins`` shows); the class is named after the plugin's last part."""
    cls = type(name.split(".")[-1], (base,), {"__doc__": doc, "__module__": base.__module__, **attrs})
    return register(name)(cls)
