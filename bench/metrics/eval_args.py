"""The parser of one ``crowdbench eval <metric>`` command with its two input files (imports nothing of crowdbench,
so every metric module can use it at import time)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_eval_parser(
    eval_subparsers: argparse._SubParsersAction,
    name: str,
    *,
    help: str,
    description: str,
    gt: tuple[str, str],
    pred: tuple[str, str],
) -> argparse.ArgumentParser:
    """``crowdbench eval <name>`` with ``--gt`` and ``--pred`` (each ``(metavar, help)``), both required paths."""
    p = eval_subparsers.add_parser(name, help=help, description=description)
    p.add_argument("--gt", type=Path, required=True, metavar=gt[0], help=gt[1])
    p.add_argument("--pred", type=Path, required=True, metavar=pred[0], help=pred[1])
    return p
