"""The import contract (``[tool.importlinter]`` in ``pyproject.toml``, checked by ``.ci/lint_imports.py``): it holds on
this checkout, it breaks on a copy that imports upwards (a ``methods/`` module importing ``bench.stages``), and every
module of ``bench/`` and ``crowdbench/`` sits in a layer (a module named in none would go unchecked)."""

from __future__ import annotations

import importlib.util
import re
import shutil
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("lint_imports", ROOT / ".ci" / "lint_imports.py")
assert _spec is not None and _spec.loader is not None
lint = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lint)


def _layer_modules() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    return [m.strip() for layer in layers for m in re.split(r"[|:]", layer)]


def _copy(tmp_path: Path) -> Path:
    for folder in ("crowdbench", *lint.FOLDERS):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def test_contract_holds() -> None:
    result = lint.lint_imports(ROOT, ["--no-logo"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Contracts: (\d+) kept, 0 broken", result.stdout)


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        (
            "methods/tracking/reid.py",
            "from crowdbench.bench.stages import detector_training",
            "crowdbench.methods is not allowed to import crowdbench.bench.stages",
        ),
        (
            "methods/pose/codecs.py",
            "import crowdbench.bench.metrics.mot",
            "crowdbench.methods is not allowed to import crowdbench.bench.metrics",
        ),
        (
            "bench/config.py",
            "from crowdbench.bench.runner import run_table",
            "crowdbench.bench.config is not allowed to import crowdbench.bench.runner",
        ),
        (
            "datasets/synthetic.py",
            "from crowdbench.bench.specs import load_spec",
            "crowdbench.datasets is not allowed to import crowdbench.bench.specs",
        ),
        (
            "reports/aggregate.py",
            "from crowdbench.bench.stages.pose import TASK",
            "crowdbench.reports is not allowed to import crowdbench.bench.stages",
        ),
    ],
)
def test_an_upward_import_breaks_the_contract(tmp_path: Path, module: str, line: str, broken: str) -> None:
    root = _copy(tmp_path)
    with (root / module).open("a") as f:
        f.write(f"\n{line}\n")
    result = lint.lint_imports(root, ["--no-logo"])
    assert result.returncode == 1, result.stdout + result.stderr
    assert broken in result.stdout


def test_every_module_is_in_a_layer() -> None:
    layered = _layer_modules()
    names = []
    for folder in ("crowdbench", *lint.FOLDERS):
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            parts = parts if parts[0] == "crowdbench" else ("crowdbench", *parts)
            if parts[-1] != "__init__":
                names.append(".".join(parts))
    missing = [n for n in names if not any(n == m or n.startswith(m + ".") for m in layered)]
    assert not missing, f"modules in no layer of [tool.importlinter] (pyproject.toml): {missing}"
