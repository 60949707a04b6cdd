"""Tables printed twice (hie-pose and hie-tracking share Tables 1-3) run the same cells, so the cache trains once."""

from __future__ import annotations

import pytest
from tiny import native_root  # tests/ is on sys.path

from crowdbench.bench.matrix import expand
from crowdbench.bench.specs import load_spec
from crowdbench.bench.stages.data import check_data
from crowdbench.bench.tasks import stage_keys
from crowdbench.datasets.layout import DataError


@pytest.fixture(scope="module")
def hie_root(tmp_path_factory):
    """Full-profile keys hash the files the splits read: a tiny HIE-layout data root."""
    return native_root(tmp_path_factory, "hie_layout", seed=0)


@pytest.mark.parametrize("profile", ["smoke", "full"])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_hie_tracking_detection_tables_reuse_hie_pose_cells(n: int, profile: str, hie_root) -> None:
    overrides = {"data.root": str(hie_root)} if profile == "full" else None
    pose = expand(load_spec(f"hie-pose/table{n}"), profile=profile, overrides=overrides)
    track = expand(load_spec(f"hie-tracking/table{n}"), profile=profile, overrides=overrides)
    assert len(track) >= 4
    for a, b in zip(pose, track, strict=False):  # hie-pose/table3 has one more row (KD), not printed by either paper
        assert a.row_label == b.row_label
        assert a.config_hash == b.config_hash
        try:
            check_data(a.config.data)
        except DataError:  # e.g. an extra training set without a reader: no keys, the same error for both
            with pytest.raises(DataError):
                stage_keys(b.config)
            continue
        assert stage_keys(a.config) == stage_keys(b.config)


def test_table2_baseline_is_table1_baseline() -> None:
    """The paper prints 61.68 / 74.01 for both: one trained detector serves both rows."""
    t1 = expand(load_spec("hie-pose/table1"), rows=[0])[0]
    t2 = expand(load_spec("hie-pose/table2"), rows=[0])[0]
    assert stage_keys(t1.config) == stage_keys(t2.config)
    assert t1.config.model.fpn is False and t1.config.model.backbone == "tiny_resnet50"
