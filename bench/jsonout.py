"""Strict JSON for every ``--json`` output: NaN / inf become ``null`` and the reason goes in ``"undefined"``."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["dumps", "strict_json"]


def _why(value: float) -> str:
    return "not a number (NaN: undefined on this input)" if math.isnan(value) else f"infinite ({value})"


def strict_json(obj: Any, reasons: Mapping[str, str] | None = None) -> Any:
    """``obj`` with every non-finite float replaced by ``None`` (numpy scalars and arrays become plain values).

    When ``obj`` is a dict and something was replaced, ``obj["undefined"]`` maps each replaced value's dotted path
    (``"mMR"``, ``"sequences.MOT17-02.HOTA"``) to its reason: ``reasons[path]`` when given, else what it was.
    """
    undefined: dict[str, str] = {}
    reasons = dict(reasons or {})

    def walk(x: Any, path: str) -> Any:
        if isinstance(x, np.ndarray):
            x = x.tolist()
        elif isinstance(x, np.generic):
            x = x.item()
        if isinstance(x, float):
            if math.isfinite(x):
                return x
            undefined[path] = reasons.get(path) or reasons.get(path.rsplit(".", 1)[-1]) or _why(x)
            return None
        if isinstance(x, Mapping):
            return {str(k): walk(v, f"{path}.{k}" if path else str(k)) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(x)]
        return x

    out = walk(obj, "")
    if undefined and isinstance(out, dict):
        out["undefined"] = (
            {**out.get("undefined", {}), **undefined} if isinstance(out.get("undefined"), dict) else undefined
        )
    return out


def dumps(obj: Any, reasons: Mapping[str, str] | None = None, **kwargs: Any) -> str:
    """``json.dumps(strict_json(obj, reasons), allow_nan=False, ...)``: what every ``--json`` path prints."""
    kwargs.setdefault("indent", 2)
    kwargs.setdefault("default", str)
    return json.dumps(strict_json(obj, reasons), allow_nan=False, **kwargs)
