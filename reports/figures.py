"""matplotlib for the reports: the headless backend, and a figure as an inlined (base64) PNG."""

from __future__ import annotations

import base64
import io
from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display on servers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_base64(fig: Any, dpi: int = 110) -> str:
    """``fig`` as a base64 PNG for a ``data:`` URI; the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    pyplot().close(fig)
    return base64.b64encode(buf.getvalue()).decode()
