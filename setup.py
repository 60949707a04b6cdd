"""Package discovery for setuptools (everything else is in pyproject.toml).

The code lives in top-level folders (``bench/``, ``methods/``, ``datasets/``, ``reports/``) installed as
subpackages of ``crowdbench``; ``results/`` (table specs and recipes) is package data of ``crowdbench.results``.
setuptools' own ``find`` cannot map a folder to another package name, so every folder holding an ``__init__.py``
under those roots is listed here; ``tests/test_packaging.py`` fails if one is missed.
"""

from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent
CODE = {"crowdbench": "crowdbench", "crowdbench.bench": "bench", "crowdbench.methods": "methods",
        "crowdbench.datasets": "datasets", "crowdbench.reports": "reports"}  # fmt: skip
DATA = {"crowdbench.results": "results"}


def packages() -> list[str]:
    """Every package under the code roots (a folder with an ``__init__.py``), plus the data package."""
    found = []
    for name, folder in CODE.items():
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            rel = init.parent.relative_to(ROOT / folder)
            found.append(".".join([name, *rel.parts]))
    return [*found, *DATA]


setup(
    packages=packages(),
    package_dir={**CODE, **DATA},
    package_data={
        "crowdbench.reports": ["templates/*.html.j2"],
        "crowdbench.results": ["papers/*/*.yaml", "recipes/*.yaml"],
    },
)
