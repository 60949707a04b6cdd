"""crowdbench: regenerate crowded-scene detection, pose and tracking ablation tables.

The code lives in four sibling folders installed under this namespace: ``crowdbench.bench`` (harness),
``crowdbench.methods`` (paper techniques as plugins), ``crowdbench.datasets`` (data model, formats, synthetic
crowds) and ``crowdbench.reports`` (terminal, Markdown, CSV, HTML).
"""

from pathlib import Path as _Path

__version__ = "0.1.0"

_root = _Path(__file__).resolve().parent.parent
CHECKOUT: _Path | None = (
    _root if (_root / "pyproject.toml").is_file() and (_root / "bench" / "__init__.py").is_file() else None
)
"""The source checkout this package runs from (pyproject.toml beside bench/__init__.py: an editable install or
``PYTHONPATH=<checkout>``); None for an installed wheel, whose subpackages sit inside this folder."""

# A bare checkout (no install): the subpackages are the checkout's top-level folders, so the checkout root joins this
# package's search path (an editable install finds the same files). Never for a wheel: it must not alias site-packages.
if CHECKOUT is not None:
    __path__.append(str(CHECKOUT))
