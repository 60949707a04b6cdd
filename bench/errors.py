"""Errors the CLI reports as one ``error:`` line (file / record / option named) instead of a traceback."""

from __future__ import annotations


def known_errors() -> tuple[type[BaseException], ...]:
    """Exception types whose message already names the file, record or option (imported lazily)."""
    from crowdbench.bench.checkpoints import CheckpointError
    from crowdbench.bench.executor import ExecutorError
    from crowdbench.bench.preflight import PreflightError
    from crowdbench.bench.registry import PluginError
    from crowdbench.bench.specs import SpecError
    from crowdbench.bench.stages.detector_training import NonFiniteLossError
    from crowdbench.bench.store import StoreError
    from crowdbench.datasets.formats.errors import FormatError
    from crowdbench.datasets.layout import DataError

    return (
        PluginError,
        SpecError,
        DataError,
        PreflightError,
        CheckpointError,
        NonFiniteLossError,
        FormatError,
        StoreError,
        ExecutorError,
        KeyError,
        FileNotFoundError,
        ValueError,
    )


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (KeyError's repr quotes are dropped)."""
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(str(text).split())
