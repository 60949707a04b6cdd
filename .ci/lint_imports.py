"""Check crowdbench's import contract (``[tool.importlinter]`` in ``pyproject.toml``) with ``lint-imports``.

``pyproject.toml`` maps the folders ``bench/``, ``methods/``, ``datasets/`` and ``reports/`` into the one
``crowdbench`` package (``package-dir``). grimp, import-linter's graph builder, reads a package from its one folder
(``crowdbench/``) and would miss them, so this script links the folders into a temporary ``crowdbench/`` tree and
runs ``lint-imports`` there (stdlib only; ``nox -s lint`` and ``nox -s tests`` call it).

    python .ci/lint_imports.py [--root CHECKOUT] [lint-imports options ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("bench", "methods", "datasets", "reports")
"""Top-level folders that ``package-dir`` installs as ``crowdbench.<folder>``."""


def package_view(root: Path, dest: Path) -> Path:
    """Link ``root``'s ``crowdbench/`` files and :data:`FOLDERS` into ``dest/crowdbench``; return ``dest``."""
    pkg = dest / "crowdbench"
    pkg.mkdir(parents=True)
    for path in (root / "crowdbench").iterdir():
        if path.name != "__pycache__":
            (pkg / path.name).symlink_to(path.resolve())
    for folder in FOLDERS:
        if not (pkg / folder).exists():
            (pkg / folder).symlink_to((root / folder).resolve(), target_is_directory=True)
    return dest


def lint_imports(root: Path = ROOT, args: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``lint-imports`` (next to this Python, else on ``PATH``) on ``root``'s contract; output captured."""
    exe = shutil.which("lint-imports", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    if exe is None:
        raise SystemExit("lint-imports not found: install the dev extra (pip install -e '.[dev]')")
    with tempfile.TemporaryDirectory(prefix="crowdbench-imports-") as tmp:
        view = package_view(Path(root), Path(tmp))
        # run from the view: lint-imports puts the working directory first on sys.path, so `crowdbench` is the view
        cmd = [exe, "--no-cache", str(Path(root).resolve() / "pyproject.toml"), *(args or [])]
        return subprocess.run(cmd, cwd=view, capture_output=True, text=True, check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout to check (default: this one)")
    known, rest = parser.parse_known_args(argv)
    result = lint_imports(known.root, rest)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
