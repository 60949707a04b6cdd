"""Training killed right after its first checkpoint and resumed: the harness of the exact-resume tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


def train_killed_and_resumed(
    module: ModuleType, train: Callable[[Path, Path], object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Path]:
    """``train(out, scratch)`` once uninterrupted into ``ref/``, then into ``out/`` killed (``KeyboardInterrupt``) as
    soon as ``module.save_checkpoint`` has written the first checkpoint, which must leave the checkpoint and no model,
    and run again to resume from it. Returns ``(ref, out)``, whose models and histories the caller compares."""
    ref, out, scratch = tmp_path / "ref", tmp_path / "out", tmp_path / "scratch"
    for d in (ref, out, scratch, tmp_path / "s0"):
        d.mkdir()
    train(ref, tmp_path / "s0")
    real_save = module.save_checkpoint

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(out, scratch)
    assert (scratch / "checkpoint.pt").is_file() and not (out / "model.pt").exists()
    monkeypatch.setattr(module, "save_checkpoint", real_save)
    train(out, scratch)
    return ref, out
