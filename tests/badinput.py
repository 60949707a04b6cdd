"""Shared harness of the bad-input tests (issue 20): run ``crowdbench`` in-process and assert how it answers.

``expect_bad``: exit code 2, exactly one ``error:`` line (at most 3 lines of output in all), no traceback, nothing
written under the test's folder, and the error line naming what it must (file, record, field). ``expect_number``:
exit code 0 and the ``--json`` output parsed. ``Variant``: one malformed input of a fuzz table (``tests/test_fuzz_*``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from crowdbench.bench.cli import main

CATEGORIES = ("types", "finiteness", "ranges", "shape", "references", "required")


@dataclass(frozen=True)
class Variant:
    """One malformed input: ``mutate`` edits a deep copy of a valid parsed sample (or returns new text) in place.

    ``category``: one of :data:`CATEGORIES`. ``needles``: text the error line must contain (besides the file).
    ``lenient``: the reference tool accepts this input and computes a defined number from it, so ``--lenient`` must
    give that number (the test computes it with the reference, or ``None`` when ``--lenient`` must still refuse).
    """

    name: str
    category: str
    mutate: Callable[[Any], Any]
    needles: tuple[str, ...] = ()
    target: str = "gt"
    lenient: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        assert self.category in CATEGORIES, self.category


def _keys(path: str | tuple) -> list[Any]:
    """A dotted path (``"annotations.0.id"``: integers index lists) or a tuple of keys."""
    if isinstance(path, tuple):
        return list(path)
    return [int(p) if p.lstrip("-").isdigit() else p for p in path.split(".")]


def set_at(path: str | tuple, value: Any) -> Callable[[Any], None]:
    """Mutation for :class:`Variant`: ``data[k0][k1]... = value`` along ``path``."""

    def go(data: Any) -> None:
        *head, last = _keys(path)
        for key in head:
            data = data[key]
        data[last] = value

    return go


def delete_at(path: str | tuple) -> Callable[[Any], None]:
    """Mutation for :class:`Variant`: ``del data[k0][k1]...`` along ``path``."""

    def go(data: Any) -> None:
        *head, last = _keys(path)
        for key in head:
            data = data[key]
        del data[last]

    return go


def edited(data: Any, *mutations: Callable[[Any], None]) -> Any:
    """A deep copy of ``data`` with each mutation (:func:`set_at`, :func:`delete_at`) applied."""
    data = copy.deepcopy(data)
    for mutate in mutations:
        mutate(data)
    return data


def files_under(root: Path) -> set[Path]:
    return set(root.rglob("*"))


def expect_bad(argv: list[str], tmp_path: Path, capsys, monkeypatch, *needles: str) -> str:
    """``crowdbench ARGV`` exits 2 with one ``error:`` line (<= 3 lines in all), no traceback, nothing written."""
    monkeypatch.delenv("CROWDBENCH_DEBUG", raising=False)
    work = tmp_path / "cwd"
    work.mkdir(exist_ok=True)
    monkeypatch.chdir(work)
    before = files_under(tmp_path)
    code = main(argv)
    out, err = capsys.readouterr()
    text = (out + err).strip()
    assert code == 2, f"exit {code}: {text[:500]}"
    assert "Traceback" not in text, text
    assert len(text.splitlines()) <= 3, text
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, text
    assert files_under(tmp_path) == before
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def expect_number(argv: list[str], capsys) -> Any:
    """``crowdbench ARGV --json`` exits 0; its parsed output."""
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, (out + err)[-2000:]
    return json.loads(out)


def ids(variants: list[Variant]) -> list[str]:
    return [f"{v.category}-{v.name}" for v in variants]


def at_least(variants: list[Variant], n: int = 30) -> None:
    """The acceptance floor: at least ``n`` variants, and every category covered."""
    assert len(variants) >= n, len(variants)
    assert len({v.name for v in variants}) == len(variants)
    missing = set(CATEGORIES) - {v.category for v in variants}
    if missing:
        pytest.fail(f"categories without a variant: {sorted(missing)}")
