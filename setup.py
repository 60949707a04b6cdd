"""Package discovery for setuptools (everything else is in pyproject.toml).

The code lives in top-level folders (``bench/``, ``methods/``, ``datasets/``, ``reports/``) installed as
subpackages of ``crowdbench``; ``results/`` (table specs and recipes) is package data of ``crowdbench.results``.
setuptools' own ``find`` cannot map a folder to another package name, so every folder holding a Python module under
those roots is listed here (found by walking them, never by hand); ``tests/test_packaging.py`` builds the wheel and
fails if a module, spec, recipe or template of the checkout is not in it.
"""

from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent
CODE = {"crowdbench": "crowdbench", "crowdbench.bench": "bench", "crowdbench.methods": "methods",
        "crowdbench.datasets": "datasets", "crowdbench.reports": "reports"}  # fmt: skip
DATA = {"crowdbench.results": "results"}


def packages() -> list[str]:
    """Every folder holding a ``.py`` file under the code roots (an ``__init__.py`` or not: a folder without one
    would still be importable from the checkout), plus the data package."""
    found = set()
    for name, folder in CODE.items():
        for module in (ROOT / folder).rglob("*.py"):
            parts = module.parent.relative_to(ROOT / folder).parts
            if all(part.isidentifier() for part in parts):  # skip what cannot be imported (a-b, .hidden)
                found.add(".".join([name, *parts]))
    return [*sorted(found), *DATA]


# setuptools runs this file as __main__; importing it (``crowdbench.setup`` from a bare checkout) does nothing
if __name__ == "__main__":
    setup(
        packages=packages(),
        package_dir={**CODE, **DATA},
        include_package_data=False,  # exactly package_data below (no MANIFEST.in; quiets "would be ignored" warnings)
        package_data={
            "crowdbench.reports": ["templates/*.html.j2"],
            "crowdbench.results": ["papers/*/*.yaml", "recipes/*.yaml"],
        },
    )
