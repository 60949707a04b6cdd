"""The CUDA paths in one call (issue 18 part 6): ``python benchmarks/gpu_check.py [--out DIR]`` or ``nox -s gpu``.

Runs, each as a real crowdbench table cell on the smoke data (small models, a few dozen steps), and prints one line
per check, ``PASS`` / ``FAIL`` / ``SKIP name (seconds): detail``:

1. ``amp-detector``: a detector training with AMP + GradScaler (``train.amp`` is on for CUDA), inference, evaluation.
2. ``amp-pose``: a top-down pose training with AMP (``pose.train.amp``), inference and COCO keypoint AP.
3. ``amp-pose-regression``: a pose-regression training with AMP, torchvision's CUDA deformable conv.
4. ``two-cells``: two cells of one table, one GPU per cell (``--jobs`` = visible GPUs, at most 2).
5. ``deterministic``: the same cell in two fresh run folders gives bit-identical metrics (``runtime.deterministic``).
6. ``cudnn-benchmark``: ``runtime.deterministic=false`` turns ``cudnn.benchmark`` on; the cell runs and records it.
7. ``torchrun-2``: ``--nproc-per-cell 2`` (DDP over NCCL, SyncBatchNorm) when two GPUs are visible.

Exit code 0 when no check failed. Meant to finish in under 8 minutes on one GPU.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

DET = {"train.iterations": 40, "train.warmup_iters": 5, "train.checkpoint_every": 20}
POSE = {"pose.train.epoch_scale": 0.01, "pose.train.samples_per_epoch": 256}
REG = {"regression.train.epoch_scale": 0.05}


def _records(run_dir: Path, table: str) -> list[Any]:
    from crowdbench.bench.store import ResultStore, store_url

    return ResultStore(store_url(run_dir)).query(table)


def _run(table: str, run_dir: Path, overrides: dict[str, Any], rows: list[int], **kw: Any) -> dict[int, dict]:
    from crowdbench.bench.runner import run_table

    result = run_table(table, overrides=overrides, run_dir=run_dir, rows=rows, device="cuda", **kw)
    if result is None or result.failed:
        raise RuntimeError(f"{table}: cells failed: {result.failed if result else 'dry run'}")
    recs = _records(run_dir, table)
    for rec in recs:
        if rec.provenance.get("numerics", {}).get("device") != "cuda":
            raise RuntimeError(f"{table} row {rec.row_index + 1} ran on {rec.provenance.get('device')}, not CUDA")
    return {r.row_index: r.metrics for r in recs}


def check_amp_detector(tmp: Path) -> str:
    m = _run("hie-pose/table3", tmp / "det", DET, [0])
    return f"AP {m[0]['AP']:.4f}, mMR {m[0]['mMR']:.4f}"


def check_amp_pose(tmp: Path) -> str:
    m = _run("occlusion-aug/table4", tmp / "pose", POSE, [0])
    return f"AP {m[0]['AP']:.4f}"


def check_amp_pose_regression(tmp: Path) -> str:
    m = _run("pose-regression/table1", tmp / "reg", REG, [1])
    return f"AP {m[1]['AP']:.4f} (feature align: torchvision deform_conv2d on CUDA)"


def check_two_cells(tmp: Path) -> str:
    import torch

    jobs = min(2, torch.cuda.device_count())
    m = _run("hie-pose/table3", tmp / "two", DET, [0, 1], jobs=jobs)
    devices = {r.provenance["device"] for r in _records(tmp / "two", "hie-pose/table3")}
    return f"{len(m)} cells, {jobs} at once, devices {sorted(devices)}"


def check_deterministic(tmp: Path) -> str:
    a = _run("hie-pose/table3", tmp / "det-a", DET, [0])
    b = _run("hie-pose/table3", tmp / "det-b", DET, [0])
    if a != b:
        raise RuntimeError(f"two runs of one cell differ: {a[0]} vs {b[0]}")
    return f"bit-identical metrics in two fresh run folders: {a[0]}"


def check_cudnn_benchmark(tmp: Path) -> str:
    m = _run("hie-pose/table3", tmp / "bench", {**DET, "runtime.deterministic": False}, [0])
    num = _records(tmp / "bench", "hie-pose/table3")[0].provenance["numerics"]
    if num.get("deterministic") is not False:
        raise RuntimeError(f"numerics {num} do not record the non-deterministic setting")
    return f"AP {m[0]['AP']:.4f}; numerics {num}"


def check_torchrun(tmp: Path) -> str:
    import torch

    if torch.cuda.device_count() < 2:
        raise _Skip(f"{torch.cuda.device_count()} GPU visible; torchrun --nproc-per-node 2 needs two")
    _run("hie-pose/table3", tmp / "ddp", DET, [0], executor_options={"nproc": 2})
    dist = _records(tmp / "ddp", "hie-pose/table3")[0].provenance["distributed"]
    return f"world size {dist['world_size']}, BatchNorm {dist.get('batchnorm')}"


class _Skip(Exception):
    pass


CHECKS: list[tuple[str, Callable[[Path], str]]] = [
    ("amp-detector", check_amp_detector),
    ("amp-pose", check_amp_pose),
    ("amp-pose-regression", check_amp_pose_regression),
    ("two-cells", check_two_cells),
    ("deterministic", check_deterministic),
    ("cudnn-benchmark", check_cudnn_benchmark),
    ("torchrun-2", check_torchrun),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="keep the run folders here (default: a temporary folder)")
    parser.add_argument("--only", nargs="+", help="run only these checks")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print(f"SKIP all: CUDA is not available (torch {torch.__version__})")
        return 0
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.device_count()} x "
          f"{torch.cuda.get_device_name(0)}")  # fmt: skip
    lines, failed = [], 0
    with tempfile.TemporaryDirectory(prefix="crowdbench-gpu-") as tmp:
        root = args.out or Path(tmp)
        for name, check in CHECKS:
            if args.only and name not in args.only:
                continue
            start = time.perf_counter()
            try:
                detail, status = check(root), "PASS"
            except _Skip as exc:
                detail, status = str(exc), "SKIP"
            except Exception as exc:  # one line per check; the traceback goes to stderr
                traceback.print_exc(file=sys.stderr)
                detail, status = " ".join(f"{type(exc).__name__}: {exc}".split())[:300], "FAIL"
                failed += 1
            line = f"{status} {name} ({time.perf_counter() - start:.1f} s): {detail}"
            lines.append(line)
            print(line, flush=True)
    print("\n".join(["", "summary:", *lines]))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
