"""Registry-wide plugin checks (timm style): every registered plugin, one parametrised case each.

- ``apply`` changes only the config paths the plugin declares (``Plugin.edits``), with its defaults on the base
  config of every task and with each runnable table row's options on its table's task, under both profiles (the
  config dump before and after is compared leaf by leaf);
- a row of some table spec under ``results/papers/`` names the plugin (directly, or through another plugin's
  option such as ``pose_postproc.model_fusion``'s ``model``), or the plugin says why none does
  (``Plugin.library_only``), never both;
- its ``Config`` defaults construct, an unknown option is a ``PluginError``, and ``crowdbench list plugins`` shows it.
"""

from __future__ import annotations

import io
from collections import defaultdict
from contextlib import redirect_stdout, suppress
from functools import cache
from typing import Any, get_args

import pytest

from crowdbench.bench.cli import main
from crowdbench.bench.config import RunConfig
from crowdbench.bench.profiles import base_config
from crowdbench.bench.registry import PluginError, get_plugin, parse_plugin_ref, plugin_names
from crowdbench.bench.specs import available_tables, load_spec

PLUGINS = plugin_names()
TASKS: tuple[str, ...] = get_args(RunConfig.model_fields["task"].annotation)
PROFILES = ("smoke", "full")
# Plugins whose apply refuses to run without another plugin before it in the row.
REQUIRES: dict[str, tuple[str, ...]] = {"pose_tracking.optical_flow": ("pose_tracking.iou_reid",)}


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted path -> value of every leaf of a config dump; a list or tuple is one leaf."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_leaves(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def _dump(cfg: RunConfig) -> dict[str, Any]:
    return _leaves(cfg.model_dump(mode="json"))


@cache
def _base(profile: str, task: str) -> RunConfig:
    return base_config(profile, task)


def _covered(path: str, declared: tuple[str, ...]) -> bool:
    return any(path == d or path.startswith(d + ".") for d in declared)


@cache
def _spec_options() -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Plugin name -> (task, options) of every runnable row naming it with options."""
    found: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for table_id in available_tables():
        spec = load_spec(table_id)
        for _, row in spec.runnable_rows:
            for ref in row.plugins:
                name, options = parse_plugin_ref(ref)
                if options and (spec.task, options) not in found[name]:
                    found[name].append((spec.task, options))
    return found


@cache
def _spec_references() -> dict[str, set[str]]:
    """Plugin name -> the tables a row of which names it (pending rows included: they say what they will run)."""
    found: dict[str, set[str]] = defaultdict(set)
    for table_id in available_tables():
        for row in load_spec(table_id).rows:
            for ref in row.plugins:
                name, options = parse_plugin_ref(ref)
                found[name].add(table_id)
                with suppress(PluginError):  # a pending row's plugin or option that does not exist yet
                    options = get_plugin(name, options).config.model_dump()  # with the defaults filled in
                for value in options.values():
                    if isinstance(value, str) and value in PLUGINS:
                        found[value].add(table_id)
    return found


@cache
def _listing() -> str:
    buffer = io.StringIO()
    with redirect_stdout(buffer):  # rich's console writes to the sys.stdout of the moment
        assert main(["list", "plugins"]) == 0
    return buffer.getvalue()


def test_the_registry_has_every_plugin():
    assert len(PLUGINS) >= 60
    assert len(set(PLUGINS)) == len(PLUGINS)


@pytest.mark.parametrize("name", PLUGINS)
def test_apply_edits_only_the_declared_paths(name):
    plugin = get_plugin(name)
    declared = type(plugin).edits
    assert declared, f"{name}: declares no config paths (Plugin.edits)"
    every_path = _dump(RunConfig())
    unknown = [d for d in declared if not any(_covered(p, (d,)) for p in every_path)]
    assert not unknown, f"{name}: declared paths that are no RunConfig setting: {unknown}"
    cases = [(profile, task, {}) for profile in PROFILES for task in TASKS]  # defaults on every base config
    cases += [(profile, task, options) for profile in PROFILES for task, options in _spec_options().get(name, [])]
    for profile, task, options in cases:
        cfg = _base(profile, task).model_copy(deep=True)
        for required in REQUIRES.get(name, ()):
            get_plugin(required).apply(cfg)
        before = _dump(cfg)
        get_plugin(name, options).apply(cfg)
        after = _dump(cfg)
        assert before.keys() == after.keys()
        outside = sorted(p for p in after if after[p] != before[p] and not _covered(p, declared))
        assert not outside, f"{name} {options or ''} on a {profile} {task} config changed undeclared paths: {outside}"
        RunConfig.model_validate(cfg.model_dump())  # still a valid config


@pytest.mark.parametrize("name", PLUGINS)
def test_reachable_from_a_table_or_library_only(name):
    reason = type(get_plugin(name)).library_only
    tables = sorted(_spec_references().get(name, ()))
    if reason:
        assert len(reason) > 30, f"{name}: library_only needs a reason, not {reason!r}"
        assert not tables, f"{name} is marked library-only but {tables} name it: drop Plugin.library_only"
    else:
        assert tables, f"{name}: no row of results/papers/ names it; add it to a row or set library_only = '<why>'"


@pytest.mark.parametrize("name", PLUGINS)
def test_config_defaults_and_unknown_options(name):
    plugin = get_plugin(name)
    cls = type(plugin)
    assert cls.Config() == plugin.config  # the defaults construct and are what get_plugin gives
    assert cls.Config.model_config.get("extra") == "forbid"
    with pytest.raises(PluginError, match=f"plugin '{name}': bad option 'no_such_option'"):
        get_plugin(name, {"no_such_option": 1})
    doc = (cls.__doc__ or "").strip()
    assert doc and doc != (cls.__mro__[1].__doc__ or "").strip(), f"{name}: no docstring of its own"


@pytest.mark.parametrize("name", PLUGINS)
def test_list_plugins_shows_it(name):
    plugin = get_plugin(name)
    lines = [line.split() for line in _listing().splitlines()]
    assert [name, plugin.hook, plugin.stage] in [line[:3] for line in lines]
