"""Data-parallel training (issue 9): a 2-process gloo DDP training step on CPU gives the loss and the weights of the
single-process step on the same global batch (pose-regression network, frozen BatchNorm: on CPU there is no
SyncBatchNorm; normalisers reduced over the ranks as FCOS does), and the distributed provenance says what changed."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from tiny import REGRESSION_MODEL  # tests/ is on sys.path

from crowdbench.bench.distributed import World, provenance, shard
from crowdbench.bench.matrix import expand
from crowdbench.bench.specs import load_spec

TINY = {
    **REGRESSION_MODEL,
    "regression.model.frozen_bn": True,
    "regression.train.batch_size": 4,
    "regression.train.epochs": 0.25,  # 16 frames x 0.25 x 0.5 / 4: one step
    "regression.train.lr": 0.05,
    "regression.train.grad_clip": None,
}


def config():
    # Table 3 '+ PSM': alignment, centre sampling, heatmap, OKSFilter and PSM, so every loss term is reduced
    return expand(load_spec("pose-regression/table3"), overrides=TINY, rows=[2])[0].config


def _train(rank: int, out: str, size: int, port: int) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(size), LOCAL_RANK=str(rank))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from pathlib import Path

    from crowdbench.bench.distributed import init_distributed
    from crowdbench.bench.stages.data import load_frames
    from crowdbench.bench.stages.pose import schema_of
    from crowdbench.bench.stages.pose_regression_training import iterations_of, train_regression

    cfg = config()
    schema = schema_of(cfg)
    frames = load_frames(cfg.data, "train", schema.name)
    assert iterations_of(cfg, len(frames)) == 1
    _, device = init_distributed("cpu")
    outdir = Path(out) / (f"rank{rank}" if size > 1 else "single")
    outdir.mkdir(parents=True)
    train_regression(cfg, frames, schema, device, outdir, outdir / "scratch")
    if size > 1:
        torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_step_equals_the_single_process_step(tmp_path):
    torch.set_num_threads(1)
    _train(0, str(tmp_path), 1, 0)
    mp.start_processes(_train, args=(str(tmp_path), 2, _free_port()), nprocs=2, start_method="spawn", join=True)
    single = json.loads((tmp_path / "single" / "losses.json").read_text())[0]
    ddp = json.loads((tmp_path / "rank0" / "losses.json").read_text())[0]
    assert set(single) == set(ddp) >= {"cls", "initial", "refined", "heatmap", "psm"}
    for key in single:
        assert ddp[key] == pytest.approx(single[key], rel=1e-5, abs=1e-7), key
    a = torch.load(tmp_path / "single" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "rank0" / "model.pt", weights_only=True)
    for name, value in a.items():
        torch.testing.assert_close(b[name], value, rtol=1e-4, atol=1e-6, msg=name)
    from crowdbench.methods.pose.regression.model import build_regression_model

    cfg = config()
    torch.manual_seed(cfg.seed)
    init = build_regression_model(cfg.regression.model, 17).state_dict()
    assert any(not torch.equal(init[k], a[k]) for k in a)  # the step moved the weights (so equal weights mean
    # equal gradients, not two untouched models)
    assert not (tmp_path / "rank1" / "model.pt").exists()  # only rank 0 writes


def test_the_global_batch_splits_evenly_and_the_provenance_records_it():
    assert shard(list(range(8)), World(1, 2, 1)) == [1, 3, 5, 7]
    with pytest.raises(ValueError, match=r"train\.batch_size 6 does not split over 4 processes"):
        shard(list(range(6)), World(0, 4, 0))
    p = provenance(World(0, 4, 0), 16, 0.02, "cpu", trainable_bn=True)
    assert p == {
        "world_size": 4,
        "backend": "gloo",
        "per_rank_batch": 4,
        "effective_batch": 16,
        "lr": 0.02,
        "lr_scaling": "none: the configured batch is the global batch, split over the ranks",
        "batchnorm": "per-rank BatchNorm statistics (no SyncBatchNorm on CPU)",
    }
    assert provenance(World(), 16, 0.02, "cpu", trainable_bn=True) is None


def test_nproc_per_cell_runs_the_cell_under_torchrun_and_records_it(tmp_path):
    from crowdbench.bench.runner import run_table
    from crowdbench.bench.store import ResultStore, store_url

    result = run_table("pose-regression/table1", overrides=TINY, run_dir=tmp_path, rows=[0], device="cpu",
                       executor_options={"nproc": 2})  # fmt: skip
    assert not result.failed and result.ran == 1
    (record,) = ResultStore(store_url(tmp_path)).query("pose-regression/table1")
    assert record.provenance["distributed"]["world_size"] == 2
    assert record.provenance["distributed"]["effective_batch"] == 4
    assert record.provenance["distributed"]["batchnorm"] == "frozen"
