"""crowdbench: regenerate crowded-scene detection, pose and tracking ablation tables.

The code lives in four sibling folders installed under this namespace: ``crowdbench.bench`` (harness),
``crowdbench.methods`` (paper techniques as plugins), ``crowdbench.datasets`` (data model, formats, synthetic
crowds) and ``crowdbench.reports`` (terminal, Markdown, CSV, HTML).
"""

from pathlib import Path as _Path

__version__ = "0.1.0"

# A bare checkout (no install; ``PYTHONPATH=<checkout>``): the subpackages are the checkout's top-level folders, so
# the checkout root joins this package's search path. Only when it is the checkout (pyproject.toml beside
# bench/__init__.py): an installed copy has its subpackages inside this folder and must never alias site-packages.
_root = _Path(__file__).resolve().parent.parent
if (_root / "pyproject.toml").is_file() and (_root / "bench" / "__init__.py").is_file():
    __path__.append(str(_root))
