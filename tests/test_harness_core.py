"""Harness core: cache atomicity and locking, store round trip, matrix expansion, overrides, errors."""

from __future__ import annotations

import sqlite3

import pytest

from crowdbench.bench.cache import StageCache, stage_key
from crowdbench.bench.config import RunConfig, set_dotted
from crowdbench.bench.matrix import config_hash, expand, parse_set
from crowdbench.bench.registry import PluginError, get_plugin
from crowdbench.bench.specs import Row, load_spec
from crowdbench.bench.store import Record, ResultStore, store_url


def test_interrupted_stage_leaves_nothing(tmp_path):
    cache = StageCache(tmp_path)
    with pytest.raises(RuntimeError), cache.writing("train", "k1", {}) as out:
        (out / "model.pt").write_text("half")
        raise RuntimeError("killed")
    assert not cache.is_done("train", "k1")
    assert not cache.path("train", "k1").exists()
    with cache.writing("train", "k1", {"a": 1}) as out:
        (out / "model.pt").write_text("whole")
    assert cache.is_done("train", "k1")
    assert (cache.path("train", "k1") / "model.pt").read_text() == "whole"
    assert cache.meta("train", "k1")["a"] == 1


def test_stage_key_depends_on_config_inputs_and_code():
    base = stage_key("train", {"lr": 0.1}, [], ["crowdbench.bench.cache"])
    assert base == stage_key("train", {"lr": 0.1}, [], ["crowdbench.bench.cache"])
    assert base != stage_key("train", {"lr": 0.2}, [], ["crowdbench.bench.cache"])
    assert base != stage_key("train", {"lr": 0.1}, ["x"], ["crowdbench.bench.cache"])
    assert base != stage_key("train", {"lr": 0.1}, [], ["crowdbench.bench.store"])
    assert base != stage_key("infer", {"lr": 0.1}, [], ["crowdbench.bench.cache"])


def test_store_round_trip_and_replace(tmp_path):
    store = ResultStore(store_url(tmp_path))
    rec = Record(
        "hie-pose/table3",
        0,
        "base",
        0,
        "smoke",
        "smoke",
        "h1",
        {"a": 1},
        {"train": "k"},
        ["train"],
        {"AP": 0.5},
        {"commit": "c"},
    )
    store.put(rec)
    rec.metrics = {"AP": 0.6}
    store.put(rec)  # same cell: replaced, not duplicated
    got = store.query("hie-pose/table3", profile="smoke")
    assert len(got) == 1 and got[0].metrics == {"AP": 0.6} and got[0].stage_keys == {"train": "k"}
    assert store.get("hie-pose/table3", 0, 0, "smoke", "other") is None
    store.dispose()
    mode = sqlite3.connect(tmp_path / "results.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_expand_applies_plugins_and_is_deterministic():
    spec = load_spec("hie-pose/table3")
    cells = expand(spec, profile="smoke", seeds=[0, 1])
    assert [(c.row_index, c.seed) for c in cells] == [(r, s) for r in range(5) for s in (0, 1)]
    by_row = {c.row_index: c.config for c in cells if c.seed == 0}
    assert (by_row[0].model.k, by_row[0].model.emd, by_row[0].model.refine) == (1, False, False)
    assert (by_row[1].model.k, by_row[1].model.emd) == (2, True)
    assert by_row[2].model.refine and by_row[2].postprocess.nms == "normal"
    assert by_row[3].postprocess.nms == "set"
    # the set-NMS row differs from the refine row only in post-processing
    assert by_row[3].model == by_row[2].model and by_row[3].train == by_row[2].train
    assert by_row[4].model.kd == "reg" and by_row[4].postprocess == by_row[3].postprocess  # + KD regularization
    again = expand(spec, profile="smoke", seeds=[0, 1])
    assert [c.config_hash for c in cells] == [c.config_hash for c in again]
    assert len({c.config_hash for c in cells}) == len(cells)


def test_stage_keys_shared_between_refine_and_set_nms_rows():
    from crowdbench.bench.tasks import stage_keys

    cfg = {c.row_index: c.config for c in expand(load_spec("hie-pose/table3"), profile="smoke")}
    refine, set_nms = stage_keys(cfg[2]), stage_keys(cfg[3])
    assert refine["train"] == set_nms["train"] and refine["infer"] == set_nms["infer"]
    assert refine["postprocess"] != set_nms["postprocess"]
    assert stage_keys(cfg[0])["train"] != refine["train"]


def test_command_line_overrides_win_and_unknown_keys_list_valid():
    spec = load_spec("hie-pose/table3")
    cells = expand(spec, overrides=parse_set(["postprocess.nms_iou=0.6", "train.iterations=7"]))
    assert all(c.config.postprocess.nms_iou == 0.6 and c.config.train.iterations == 7 for c in cells)
    with pytest.raises(KeyError, match=r"valid: .*iterations"):
        set_dotted(RunConfig(), "train.iters", 3)
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_set(["train.iterations"])


def test_unknown_plugin_lists_known_names():
    rows = [Row(label="x", plugins=["crowddet.emd_los"], source="s")]
    spec = load_spec("hie-pose/table3").model_copy(update={"rows": rows})
    with pytest.raises(PluginError, match=r"unknown plugin .crowddet.emd_los.; known plugins: .*crowddet.emd_loss"):
        expand(spec)
    with pytest.raises(PluginError, match="options: k"):
        get_plugin("crowddet.emd_loss", {"kk": 2})


def test_config_hash_ignores_device():
    a, b = RunConfig(), RunConfig(device="cuda")
    assert config_hash(a) == config_hash(b)
    b.seed = 1
    assert config_hash(a) != config_hash(b)


def test_variant_hash_groups_seeds_but_not_configs():
    from crowdbench.bench.matrix import variant_hash

    cells = expand(load_spec("hie-pose/table3"), seeds=[0, 1, 2])
    dumps = [c.config.model_dump(mode="json") for c in cells]
    by_row: dict[int, set[str]] = {}
    for cell, dump in zip(cells, dumps, strict=True):
        by_row.setdefault(cell.row_index, set()).add(variant_hash(dump))
    assert all(len(v) == 1 for v in by_row.values())  # one variant per row across its seeds
    assert len(set().union(*by_row.values())) == len(by_row) == 5  # rows differ
