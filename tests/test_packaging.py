"""Issue 21 part 5: a wheel that works. setup.py lists every subpackage and ships every spec; a bare checkout
imports ``crowdbench.bench``. (``nox -s wheel`` builds the wheel, installs it without ``-e`` and runs a table.)"""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import setuptools

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup_kwargs() -> dict[str, Any]:
    """What setup.py passes to ``setuptools.setup`` (run with ``setup`` replaced by a recorder)."""
    got: dict[str, Any] = {}
    code = compile((ROOT / "setup.py").read_text(), str(ROOT / "setup.py"), "exec")
    real = setuptools.setup
    setuptools.setup = lambda **kw: got.update(kw)  # type: ignore[assignment]
    try:
        exec(code, {"__name__": "__main__", "__file__": str(ROOT / "setup.py")})
    finally:
        setuptools.setup = real
    return got


def test_every_code_folder_is_a_package(setup_kwargs: dict[str, Any]) -> None:
    packages = set(setup_kwargs["packages"])
    mapping = setup_kwargs["package_dir"]
    folders = {v: k for k, v in mapping.items()}
    for root in ("bench", "methods", "datasets", "reports"):
        for d in [ROOT / root, *(p for p in (ROOT / root).rglob("*") if p.is_dir())]:
            if "__pycache__" in d.parts or not any(d.glob("*.py")):
                continue
            assert (d / "__init__.py").is_file(), f"{d} holds modules but no __init__.py"
            name = ".".join([folders[root], *d.relative_to(ROOT / root).parts])
            assert name in packages, f"{name} ({d}) is not in setup.py's packages"
    assert "crowdbench.methods.pose.regression" in packages  # the one the old explicit list missed


def test_every_spec_recipe_and_template_is_package_data(setup_kwargs: dict[str, Any]) -> None:
    data = setup_kwargs["package_data"]
    for pkg, folder, suffixes in (
        ("crowdbench.results", "results", (".yaml",)),
        ("crowdbench.reports", "reports", (".j2",)),
    ):
        base = ROOT / folder
        files = [p.relative_to(base).as_posix() for p in base.rglob("*") if p.suffix in suffixes]
        assert files
        for f in files:
            assert any(fnmatch.fnmatch(f, pat) for pat in data[pkg]), f"{folder}/{f} is not package data"


def test_bare_checkout_imports_the_subpackages(tmp_path: Path) -> None:
    """No install (``-S``: no site-packages, no editable finder), only the checkout on ``PYTHONPATH``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = "import crowdbench.bench, crowdbench.datasets.formats.errors as e; print(crowdbench.bench.__file__)"
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(ROOT / "bench" / "__init__.py")
