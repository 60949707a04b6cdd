"""Executors (issue 9): a real local Ray cluster (2 CPUs) and submitit's local executor run a tiny table and give the
same metrics as the local executor; each executor's failure is a one-line error naming the extra or the address."""

from __future__ import annotations

import builtins
import socket

import pytest
from tiny import DETECTION as TINY  # tests/ is on sys.path

from crowdbench.bench.device import cpu_isa
from crowdbench.bench.executor import ExecutorError, RayExecutor, SlurmExecutor, make_executor
from crowdbench.bench.runner import run_table
from crowdbench.bench.store import ResultStore, store_url

ROWS = [0, 1]  # two models: two groups, two tasks at once


def metrics(result) -> dict[int, dict[str, float | None]]:
    return {r.index: {k: c.mean for k, c in r.cells.items()} for r in result.view.rows if r.status == "done"}


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    # no thread setting here: every executor pins the cell's runtime.threads (the default), so Ray's 1-CPU workers
    # (OMP_NUM_THREADS=1) and SLURM tasks compute exactly what the local executor computes
    result = run_table("hie-pose/table3", overrides=TINY, run_dir=tmp_path_factory.mktemp("local"), rows=ROWS)
    assert not result.failed and len(metrics(result)) == 2
    return metrics(result)


def test_ray_local_cluster_gives_the_local_executors_metrics(local, tmp_path):
    pytest.importorskip("ray")
    result = run_table(
        "hie-pose/table3", overrides=TINY, run_dir=tmp_path, rows=ROWS, executor="ray", jobs=2, device="cpu"
    )
    assert not result.failed and result.ran == 2
    assert metrics(result) == local
    store = ResultStore(store_url(tmp_path))
    numerics = [r.provenance["numerics"] for r in store.query("hie-pose/table3")]
    want = {"device": "cpu", "isa": cpu_isa(), "threads": 2, "deterministic": True}
    assert numerics == [want] * 2  # pinned, not Ray's 1 CPU; the workers' kernel level is this machine's
    trained = {r.row_index: r.provenance["trained"] for r in store.query("hie-pose/table3")}
    assert set(trained[0]) == {"train"} and trained[0]["train"] != trained[1]["train"]  # EMD trains another detector


def test_submitit_local_executor_gives_the_local_executors_metrics(local, tmp_path):
    pytest.importorskip("submitit")
    options = {"cluster": "local", "folder": str(tmp_path / "slurm"), "cpus_per_task": 1, "time_min": 10}
    result = run_table("hie-pose/table3", overrides=TINY, run_dir=tmp_path, rows=ROWS, executor="slurm",
                       executor_options=options)  # fmt: skip
    assert not result.failed and result.ran == 2
    assert metrics(result) == local
    assert list((tmp_path / "slurm").glob("*_log.out"))  # submitit wrote the tasks' logs there


def test_unreachable_ray_address_is_a_one_line_error_naming_it(tmp_path):
    pytest.importorskip("ray")
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    executor = RayExecutor(address=f"127.0.0.1:{port}")
    with pytest.raises(ExecutorError, match=rf"^ray: cannot reach the cluster at 127\.0\.0\.1:{port}: \[Errno"):
        executor.run([], lambda status: None)


def test_missing_packages_name_the_extra(monkeypatch, tmp_path):
    real = builtins.__import__

    def without(name, *args, **kwargs):
        if name in ("ray", "submitit"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without)
    with pytest.raises(ExecutorError, match=r"--executor ray needs Ray: pip install 'crowdbench\[ray\]'"):
        make_executor("ray", None, "auto")
    with pytest.raises(ExecutorError, match=r"--executor slurm needs submitit: pip install 'crowdbench\[slurm\]'"):
        make_executor("slurm", None, "auto", {"folder": str(tmp_path)})
    with pytest.raises(ExecutorError, match="unknown executor 'dask'; executors: local, ray, slurm"):
        make_executor("dask", None, "auto")


def test_slurm_without_sbatch_says_how_to_test_locally(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch
    with pytest.raises(ExecutorError, match=r"no SLURM here .* --slurm-cluster local"):
        SlurmExecutor(tmp_path)._executor()


def test_shared_fsspec_cache_lets_another_run_dir_reuse_every_stage(tmp_path, local):
    remote = (tmp_path / "bucket").as_uri()  # file:///... stands in for s3:// or gs://
    first = run_table("hie-pose/table3", overrides=TINY, run_dir=tmp_path / "a", rows=[0], cache_url=remote)
    assert not first.failed and first.ran == 1
    stages = {p.parent.parent.name for p in (tmp_path / "bucket").glob("*/*/stage.json")}
    assert stages == {"train", "infer", "postprocess", "evaluate"}
    second = run_table("hie-pose/table3", overrides=TINY, run_dir=tmp_path / "b", rows=[0], cache_url=remote)
    assert second.view.rows[0].stages_run == [[]]  # every stage fetched from the shared cache, none recomputed
    assert metrics(second)[0] == metrics(first)[0]


def test_an_interrupted_upload_is_not_a_finished_stage(tmp_path):
    from crowdbench.bench.cache import StageCache

    remote = tmp_path / "bucket"
    (remote / "train" / "abc").mkdir(parents=True)
    (remote / "train" / "abc" / "model.pt").write_bytes(b"half")  # files uploaded, marker not yet
    cache = StageCache(tmp_path / "local", remote.as_uri())
    assert not cache.is_done("train", "abc")
    with cache.writing("train", "abc", {"stage": "train"}) as out:
        (out / "model.pt").write_bytes(b"whole")
    assert (remote / "train" / "abc" / "stage.json").is_file() and (
        remote / "train" / "abc" / "model.pt"
    ).read_bytes() == b"whole"
    fresh = StageCache(tmp_path / "other", remote.as_uri())
    assert (
        fresh.is_done("train", "abc") and (tmp_path / "other" / "train" / "abc" / "model.pt").read_bytes() == b"whole"
    )
