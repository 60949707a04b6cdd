"""Training killed right after its first checkpoint and resumed: the harness of the exact-resume tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from crowdbench.bench import training


def train_killed_and_resumed(
    train: Callable[[Path, Path], object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Path, dict[str, Any]]:
    """``train(out, scratch)`` once uninterrupted into ``ref/``, then into ``out/`` killed (``KeyboardInterrupt``) as
    soon as the trainer's ``save_checkpoint`` (``crowdbench.bench.training``, every loop's) has written the first
    checkpoint, which must leave the checkpoint and no model, and run again to resume from it. Returns ``(ref, out,
    progress)``: ``progress`` is what the killed checkpoint recorded (``iteration`` or ``epoch`` and the log); the
    caller compares the models and histories."""
    ref, out, scratch = tmp_path / "ref", tmp_path / "out", tmp_path / "scratch"
    for d in (ref, out, scratch, tmp_path / "s0"):
        d.mkdir()
    train(ref, tmp_path / "s0")
    real_save, saved = training.save_checkpoint, []

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        saved.append(kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(out, scratch)
    assert (scratch / "checkpoint.pt").is_file() and not (out / "model.pt").exists()
    monkeypatch.setattr(training, "save_checkpoint", real_save)
    train(out, scratch)
    return ref, out, saved[0]
