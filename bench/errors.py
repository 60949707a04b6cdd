"""Errors the CLI reports as one ``error:`` line (file / record / option named) instead of a traceback."""

from __future__ import annotations

import os
import sys


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN/inf loss; the last checkpoint is kept for inspection and resuming."""


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (KeyError's repr quotes are dropped; an OS error names its file first)."""
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        what = "a folder, not a file" if isinstance(exc, IsADirectoryError) else exc.strerror.lower()
        text = f"{exc.filename}: {what}"
    elif isinstance(exc, RecursionError):
        text = f"input nested too deeply to read ({text})"
    elif isinstance(exc, MemoryError):
        text = f"out of memory reading the input ({text or 'MemoryError'})"
    return " ".join(str(text).split())


def need_file(path: os.PathLike | str) -> None:
    """``FileNotFoundError`` / ``IsADirectoryError`` (one line naming ``path``) unless ``path`` is a file."""
    if os.path.isdir(path):
        raise IsADirectoryError(21, "Is a directory", os.fspath(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")


def fail(exc: BaseException) -> int:
    """What a command's ``except`` prints: one ``error: ...`` line on stderr, return 2.

    ``CROWDBENCH_DEBUG=1`` re-raises (traceback); a ``BrokenPipeError`` (output piped to ``head``) is re-raised for
    :func:`quiet_broken_pipe` in ``main``, never reported as bad input.
    """
    if isinstance(exc, BrokenPipeError) or os.environ.get("CROWDBENCH_DEBUG"):
        raise exc
    print("error: " + one_line(exc), file=sys.stderr)
    return 2


def quiet_broken_pipe() -> int:
    """The reader of stdout went away (``crowdbench ... | head``): point stdout at devnull so that the interpreter's
    final flush does not fail again, and exit 1 quietly, as Python's documentation recommends."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (captured)
        pass
    return 1
