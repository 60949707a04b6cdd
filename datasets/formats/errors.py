"""Errors raised by the dataset readers and writers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class FormatError(ValueError):
    """Malformed input file. The message is one line naming the file, the line or record, and the reason.

    Example: ``annotation_val.odgt:17: gtbox 3 has no 'fbox'``.
    """


def read_json(path: Path) -> Any:
    """Parse a JSON file; text that is not UTF-8, invalid JSON or JSON nested deeper than the parser allows is a
    one-line :class:`FormatError` naming the file (and line and column)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON ({exc.msg})") from None
    except RecursionError:
        raise FormatError(f"{path}: JSON nested deeper than the parser allows") from None
