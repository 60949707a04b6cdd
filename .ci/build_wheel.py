"""Build crowdbench's wheel from a clean copy of the checkout: ``python .ci/build_wheel.py OUT_DIR`` prints its path.

The copy holds the files git tracks plus the untracked ones it does not ignore (``git ls-files -co
--exclude-standard``; without git: the tree minus caches, virtualenvs and build output). Building in the checkout
itself would reuse ``build/lib``, whose stale copies of deleted or moved modules setuptools puts in the wheel.
The build uses the running interpreter's setuptools (``--no-build-isolation``: no download, works offline).
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = (".git", ".venv", ".nox", "build", "dist", "runs", "*.egg-info", "__pycache__", "*.pyc", ".*_cache")


def _skipped(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in SKIP)


def source_files(root: Path = ROOT) -> list[Path]:
    """The checkout's files (relative to ``root``) that a clean clone with local edits would hold."""
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (an unpacked archive)
        files = []
        for folder, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not _skipped(d))  # prune in place: os.walk skips the rest
            files += [Path(folder, f).relative_to(root) for f in sorted(names) if not _skipped(f)]
        return files
    return [Path(p) for p in out.decode().split("\0") if p and (root / p).is_file()]


def build_wheel(out_dir: Path, root: Path = ROOT) -> Path:
    """Copy the sources to a temporary folder, build the wheel there into ``out_dir``; returns the wheel's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="crowdbench-src-") as tmp:
        src = Path(tmp)
        for rel in source_files(root):
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / rel, src / rel)
        pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out_dir)]
        subprocess.run([*pip, str(src)], check=True)
    (wheel,) = out_dir.glob("crowdbench-*.whl")
    return wheel


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python .ci/build_wheel.py OUT_DIR")
    print(build_wheel(Path(sys.argv[1]).resolve()))
