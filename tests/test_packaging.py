"""Issue 21 part 5: a wheel that works. The built wheel holds every module, spec, recipe and template of the checkout
and finds its specs when installed; a bare checkout imports ``crowdbench.bench.cli``. (``nox -s wheel`` installs the
wheel into a fresh venv without ``-e`` and runs a table from an empty folder.)"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODE = {"crowdbench": "crowdbench", "bench": "crowdbench/bench", "methods": "crowdbench/methods",
        "datasets": "crowdbench/datasets", "reports": "crowdbench/reports"}  # fmt: skip
DATA = {"results/papers": ".yaml", "results/recipes": ".yaml", "reports/templates": ".j2"}
DEPS = os.pathsep.join(dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib")))
"""This environment's site-packages, for ``python -S`` (no ``.pth`` files run, so no editable crowdbench)."""


def _checkout_files() -> list[Path]:
    """The files of the checkout a clean clone would hold (``.ci/build_wheel.py``'s list)."""
    sys.path.insert(0, str(ROOT / ".ci"))
    try:
        from build_wheel import source_files
    finally:
        sys.path.remove(str(ROOT / ".ci"))
    return source_files(ROOT)


def _run(code: str, cwd: Path, pythonpath: str) -> str:
    """``code`` in ``python -S`` (no site-packages, no editable finder) with only ``pythonpath`` importable."""
    env = {**os.environ, "PYTHONPATH": pythonpath}
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "build_wheel.py"), str(out)], capture_output=True, text=True, check=True
    )
    return Path(built.stdout.strip().splitlines()[-1])


def test_wheel_holds_every_module_spec_recipe_and_template(wheel: Path) -> None:
    """Each ``.py`` under crowdbench/ and the four code folders, and each data file, is in the wheel, and nothing
    else is (a stale copy of a deleted module would be)."""
    want = set()
    for rel in _checkout_files():
        top, posix = rel.parts[0], rel.as_posix()
        if rel.suffix == ".py" and top in CODE:
            want.add(f"{CODE[top]}/{Path(*rel.parts[1:]).as_posix()}")
        elif any(posix.startswith(f"{folder}/") and rel.suffix == suffix for folder, suffix in DATA.items()):
            want.add(f"crowdbench/{posix}")
    with zipfile.ZipFile(wheel) as archive:
        got = {n for n in archive.namelist() if not n.split("/")[0].endswith(".dist-info")}
    assert "crowdbench/methods/pose/regression/model.py" in want  # the subpackage the old explicit list missed
    missing, extra = sorted(want - got), sorted(got - want)
    assert not missing, f"in the checkout, not in the wheel (see setup.py): {missing}"
    assert not extra, f"in the wheel, not in the checkout: {extra}"


def test_every_code_folder_is_a_regular_package() -> None:
    """A folder of modules without ``__init__.py`` would be an implicit namespace package: refuse it."""
    folders = {rel.parent for rel in _checkout_files() if rel.suffix == ".py" and rel.parts[0] in CODE}
    missing = sorted(str(f) for f in folders if not (ROOT / f / "__init__.py").is_file())
    assert not missing, f"folders with modules but no __init__.py: {missing}"


def test_installed_wheel_finds_its_specs_and_recipes(wheel: Path, tmp_path: Path) -> None:
    """The wheel unpacked (``pip install --target``), nothing of the checkout importable: specs and recipes are
    the package data, ``crowdbench.results`` is still the module."""
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(target)]
    subprocess.run([*pip, str(wheel)], check=True, capture_output=True)
    code = (
        "import crowdbench, crowdbench.results as r\n"
        "from crowdbench.bench.specs import available_tables, specs_root, load_spec\n"
        "from crowdbench.bench.recipes import load_recipe\n"
        "import crowdbench.methods.pose.regression.model\n"
        "load_spec('pose-regression/table1'); load_recipe('pose_regression')\n"
        "print(crowdbench.__file__, r.__file__, specs_root(), len(available_tables()), sep='\\n')"
    )
    init, results, specs, count = _run(code, tmp_path, f"{target}{os.pathsep}{DEPS}").split()
    assert Path(init) == target / "crowdbench" / "__init__.py"
    assert Path(results) == target / "crowdbench" / "results.py"
    assert Path(specs) == target / "crowdbench" / "results" / "papers"
    assert int(count) == len(list((ROOT / "results" / "papers").glob("*/table*.yaml")))


def test_bare_checkout_imports_the_cli(tmp_path: Path) -> None:
    """No install: the checkout on ``PYTHONPATH`` (dependencies from site-packages, without its ``.pth`` files)."""
    code = (
        "import sys, crowdbench.bench.cli, crowdbench.methods.pose.regression.model\n"
        "from crowdbench.bench.specs import specs_root\n"
        "assert not [f for f in sys.meta_path if 'editable' in repr(f)], sys.meta_path\n"
        "print(crowdbench.bench.cli.__file__, specs_root(), sep='\\n')"
    )
    cli, specs = _run(code, tmp_path, f"{ROOT}{os.pathsep}{DEPS}").split()
    assert Path(cli) == ROOT / "bench" / "cli.py"
    assert Path(specs) == ROOT / "results" / "papers"
