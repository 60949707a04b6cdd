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
    return read_json_bytes(path)[0]


def read_json_bytes(path: Path) -> tuple[Any, bytes]:
    """:func:`read_json` that also returns the raw bytes (e.g. to know cheaply whether any ``true`` / ``false``
    token can be in the file).

    msgspec's C parser first (about twice as fast as :mod:`json`, the same objects on valid JSON); on anything it
    refuses (``NaN`` / ``Infinity`` tokens, ``1e400``, lone surrogates, bad UTF-8, invalid JSON) :mod:`json` decides,
    so what is accepted and every error message are :mod:`json`'s."""
    import msgspec

    raw = Path(path).read_bytes()
    try:
        return msgspec.json.decode(raw), raw
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        pass
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        return json.loads(text), raw
    except json.JSONDecodeError as exc:
        raise FormatError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON ({exc.msg})") from None
    except RecursionError:
        raise FormatError(f"{path}: JSON nested deeper than the parser allows") from None
