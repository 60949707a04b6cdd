"""A real `kill -9` of a running table, then the same command again: it resumes and loses nothing."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ARGS = [
    "--set", "data.preset=tiny",
    "--set", "train.iterations=30",
    "--set", "train.batch_size=2",
    "--set", "train.warmup_iters=2",
    "--set", "train.checkpoint_every=5",
    "--rows", "1,2",
]  # fmt: skip


def _start(run_dir: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "crowdbench", "table", "hie-pose/table3", "--run-dir", str(run_dir), *ARGS]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


@pytest.mark.slow
def test_kill_9_mid_training_then_resume(tmp_path):
    run_dir = tmp_path / "run"
    proc = _start(run_dir)
    deadline = time.time() + 240
    # wait until row 1 is stored and row 2 has written a training checkpoint, then kill everything
    while time.time() < deadline:
        checkpoints = list((run_dir / "cache" / "train").glob(".*.resume/checkpoint.pt"))
        db = run_dir / "results.sqlite"
        if checkpoints and db.exists():
            with sqlite3.connect(db) as conn:
                if conn.execute("select count(*) from records").fetchone()[0] == 1:
                    break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("row 2 never reached a checkpoint: " + proc.communicate()[0][-2000:])
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(run_dir / "results.sqlite") as conn:
        assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
        assert conn.execute("select count(*) from records").fetchone()[0] == 1

    again = _start(run_dir)
    log = again.communicate(timeout=300)[0]
    assert again.returncode == 0, log[-3000:]
    assert "record from" in log and "no stage recomputed" in log  # row 1: not retrained
    assert "resuming training at iteration" in log  # row 2: continues from its checkpoint
    with sqlite3.connect(run_dir / "results.sqlite") as conn:
        assert conn.execute("select count(*) from records").fetchone()[0] == 2
