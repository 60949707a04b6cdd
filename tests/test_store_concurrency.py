"""Concurrent writers (issue 9): four processes write result records (a quarter of them the same cells) and Optuna
trials into one store at once, on a real PostgreSQL server on loopback and on SQLite; every record is there exactly
once and every trial is complete. Also: the one-line errors of a missing driver and an unreachable server."""

from __future__ import annotations

import multiprocessing as mp
import random

import pytest
import sqlalchemy as sa
from postgres_server import postgres_bin, postgres_server  # tests/ is on sys.path (rootdir import mode)

from crowdbench.bench.store import Record, ResultStore, StoreError, database_url, records

WORKERS = 4
SHARED = 15  # cells every worker writes
OWN = 15  # cells only one worker writes
TRIALS = 5  # Optuna trials per worker


@pytest.fixture(scope="module")
def postgres_url():
    if postgres_bin() is None:
        pytest.skip("no PostgreSQL server binaries (.ci/run installs Debian's postgresql)")
    with postgres_server() as url:
        yield url


def record(worker: int, cell: int) -> Record:
    return Record(
        table_id="t/table1",
        row_index=cell,
        row_label=f"row {cell}",
        seed=0,
        profile="smoke",
        level="smoke",
        config_hash="h",
        config={"cell": cell},
        stage_keys={},
        stages_run=[],
        metrics={"AP": float(worker)},
        provenance={"worker": worker},
    )


def _objective(trial) -> float:
    x = trial.suggest_float("x", -1, 1)
    return x * x


def write(url: str, worker: int, barrier) -> None:
    import optuna

    from crowdbench.bench.search import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = ResultStore(url)
    cells = list(range(SHARED)) + [SHARED + worker * OWN + i for i in range(OWN)]
    random.Random(worker).shuffle(cells)
    barrier.wait()
    for cell in cells:
        store.put(record(worker, cell))
    study = optuna.load_study(study_name="concurrency", storage=open_storage(url))
    study.optimize(_objective, n_trials=TRIALS)
    store.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'results.sqlite'}"
    return request.getfixturevalue("postgres_url")


def test_concurrent_writers_lose_and_duplicate_nothing(url):
    import optuna

    from crowdbench.bench.search import open_storage

    store = ResultStore(url)
    with store.engine.begin() as conn:  # the PostgreSQL database is shared by both runs of the module
        conn.execute(records.delete())
    optuna.create_study(study_name="concurrency", storage=open_storage(url), load_if_exists=False)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    procs = [ctx.Process(target=write, args=(url, w, barrier)) for w in range(WORKERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    assert [p.exitcode for p in procs] == [0] * WORKERS
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(records.c.row_index, records.c.metrics)).all()
    cells = [r.row_index for r in rows]
    assert len(cells) == len(set(cells)) == SHARED + WORKERS * OWN  # each cell exactly once
    for r in store.query("t/table1"):
        if r.row_index >= SHARED:  # an own cell carries its writer's value
            assert r.metrics["AP"] == (r.row_index - SHARED) // OWN
    study = optuna.load_study(study_name="concurrency", storage=open_storage(url))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == len(study.trials) == WORKERS * TRIALS
    assert sorted(t.number for t in done) == list(range(WORKERS * TRIALS))
    optuna.delete_study(study_name="concurrency", storage=open_storage(url))
    store.dispose()


def test_unreachable_server_and_missing_driver_are_one_line_errors(monkeypatch):
    with pytest.raises(
        StoreError, match=r"cannot open the result store postgresql\+psycopg://u:\*\*\*@127\.0\.0\.1:9/db: .*refused"
    ):
        ResultStore("postgresql://u:secret@127.0.0.1:9/db")
    import builtins

    real_import = builtins.__import__

    def no_psycopg(name, *args, **kwargs):
        if name == "psycopg":
            raise ImportError("No module named 'psycopg'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_psycopg)
    with pytest.raises(
        StoreError, match=r"pip install 'crowdbench\[postgres\]'.*URL postgresql\+psycopg://u:\*\*\*@h/db"
    ):
        database_url("postgres://u:pw@h/db")
