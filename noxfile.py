"""Nox sessions: thin calls into the ``crowdbench`` CLI, all sharing one environment (``.venv``).

The environment is created on first use and reinstalled only when ``pyproject.toml`` changes, so torch is
installed once and a second ``nox`` call starts at once.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
from pathlib import Path

import nox

nox.options.sessions = ["tests"]
ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".crowdbench-installed"
# TrackEval (the MOTChallenge reference, parity tests only) requires opencv-python, which would shadow the
# project's opencv-python-headless: install it without its dependencies (the others come with the dev extra).
NO_DEPS = ["trackeval==1.3.0"]


def shared_env(session: nox.Session) -> Path:
    """Create or update the shared ``.venv``; return its ``bin`` folder."""
    spec = (ROOT / "pyproject.toml").read_bytes() + (ROOT / "setup.py").read_bytes() + " ".join(NO_DEPS).encode()
    want = hashlib.sha256(spec).hexdigest()
    python = VENV / "bin" / "python"
    if not python.exists():
        session.run(sys.executable, "-m", "venv", str(VENV), external=True)
    if not STAMP.exists() or STAMP.read_text() != want:
        session.run(str(python), "-m", "pip", "install", "--upgrade", "pip", external=True)
        session.run(str(python), "-m", "pip", "install", "-e", f"{ROOT}[dev]", external=True)
        session.run(str(python), "-m", "pip", "install", "--no-deps", *NO_DEPS, external=True)
        STAMP.write_text(want)
    else:
        session.log(f"shared environment {VENV} is up to date; nothing to install")
    return VENV / "bin"


def run_lint(session: nox.Session, bin_dir: Path) -> None:
    """ruff check, ruff format --check, then ``lint-imports`` on the layers of ``[tool.importlinter]``
    (pyproject.toml), through ``.ci/lint_imports.py`` (it links the package-dir folders into one ``crowdbench`` tree,
    which import-linter needs)."""
    session.run(str(bin_dir / "ruff"), "check", ".", external=True)
    session.run(str(bin_dir / "ruff"), "format", "--check", ".", external=True)
    session.run(str(bin_dir / "python"), str(ROOT / ".ci" / "lint_imports.py"), "--no-logo", external=True)


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """Lint (ruff, the import contract), then the test suite without tests marked slow (add `-- -m slow` for those)."""
    bin_dir = shared_env(session)
    run_lint(session, bin_dir)
    args = session.posargs or ["-m", "not slow"]
    session.run(str(bin_dir / "python"), "-m", "pytest", *args, external=True)
    if not session.posargs:
        wheel(session)


@nox.session(venv_backend="none")
def wheel(session: nox.Session) -> None:
    """A non-editable install works: build the wheel (``.ci/build_wheel.py``: from a clean copy of the checkout),
    install it into a fresh venv without ``-e``, then run ``crowdbench list tables`` and a tiny table from an empty
    folder with that venv's ``crowdbench``.

    The fresh venv takes the dependencies from the shared ``.venv`` (one ``.pth`` line naming its site-packages,
    which adds the folder to ``sys.path`` without running its ``.pth`` files, so the editable crowdbench there is
    not importable); the check below fails if ``crowdbench`` is not the wheel's copy."""
    bin_dir = shared_env(session)
    work = Path(tempfile.mkdtemp(prefix="crowdbench-wheel-"))
    try:
        build = [str(bin_dir / "python"), str(ROOT / ".ci" / "build_wheel.py"), str(work / "dist")]
        session.run(*build, external=True, silent=True)
        (whl,) = (str(p) for p in (work / "dist").glob("crowdbench-*.whl"))
        fresh = work / "venv"
        session.run(str(bin_dir / "python"), "-m", "venv", "--without-pip", str(fresh), external=True)
        pip = [str(bin_dir / "python"), "-m", "pip", "--python", str(fresh / "bin" / "python"), "-q"]
        session.run(*pip, "install", "--no-deps", "--no-index", whl, external=True)
        (site,) = fresh.glob("lib/python*/site-packages")
        (shared,) = VENV.glob("lib/python*/site-packages")
        (site / "crowdbench-shared-deps.pth").write_text(f"{shared}\n")
        empty = work / "empty"
        empty.mkdir()
        session.chdir(empty)
        check = (
            "import sys, crowdbench, crowdbench.results as r; f = crowdbench.__file__;"
            " assert f.startswith(sys.prefix) and crowdbench.CHECKOUT is None, f;"
            " assert r.__file__.endswith('results.py'), r.__file__; print('crowdbench from', f)"
        )
        session.run(str(fresh / "bin" / "python"), "-c", check, external=True)
        listed = session.run(str(fresh / "bin" / "crowdbench"), "list", "tables", external=True, silent=True)
        if "pose-regression/table1" not in str(listed):
            session.error(f"`crowdbench list tables` from the wheel lacks the table specs:\n{listed}")
        # the pipeline end to end, tiny: row 1, 2 SGD steps, the tiny synthetic preset (8 test images)
        table = ["table", "hie-pose/table3", "--rows", "1", "--set", "train.iterations=2", "--set", "data.preset=tiny"]
        session.run(str(fresh / "bin" / "crowdbench"), *table, external=True)
    finally:
        session.chdir(ROOT)
        shutil.rmtree(work, ignore_errors=True)


@nox.session(venv_backend="none")
def lint(session: nox.Session) -> None:
    """ruff check + ruff format --check + the import contract (lint-imports)."""
    run_lint(session, shared_env(session))


@nox.session(venv_backend="none")
def table3(session: nox.Session) -> None:
    """hie-pose Table 3 (CrowdDet parts) on the embedded synthetic crowds: `nox -s table3 [-- options]`."""
    bin_dir = shared_env(session)
    session.run(str(bin_dir / "crowdbench"), "table", "hie-pose/table3", *session.posargs, external=True)


@nox.session(venv_backend="none")
def table(session: nox.Session) -> None:
    """Any table: `nox -s table -- <paper-key>/table<N> [--profile full --data-root DIR ...]`."""
    if not session.posargs:
        session.error("usage: nox -s table -- <paper-key>/table<N> [options]; list: crowdbench list tables")
    bin_dir = shared_env(session)
    session.run(str(bin_dir / "crowdbench"), "table", *session.posargs, external=True)


@nox.session(venv_backend="none")
def report(session: nox.Session) -> None:
    """The report site from the store of `runs/` (or `-- --run-dir DIR`): `runs/report/index.html`."""
    bin_dir = shared_env(session)
    session.run(str(bin_dir / "crowdbench"), "report", *session.posargs, external=True)


@nox.session(venv_backend="none")
def gpu(session: nox.Session) -> None:
    """The CUDA paths in one call, one line per check (benchmarks/gpu_check.py; under 8 minutes on one GPU)."""
    bin_dir = shared_env(session)
    session.run(str(bin_dir / "python"), str(ROOT / "benchmarks" / "gpu_check.py"), *session.posargs, external=True)
