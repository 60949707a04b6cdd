"""``crowdbench data``: ``synth`` (write the synthetic crowds in every native format), ``check`` (which datasets the
tables' full profile needs under a data root) and ``inspect`` (a dataset's format, counts and crowding)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.console import Console
from rich.table import Table

from crowdbench.bench.errors import fail, one_line
from crowdbench.bench.jsonout import dumps as strict_dumps
from crowdbench.datasets.formats.errors import FormatError
from crowdbench.datasets.inspect import UnknownFormatError, inspect_path, print_report
from crowdbench.datasets.layout import DataError, check_dataset, check_images
from crowdbench.datasets.synthetic import FORMATS, PRESETS, SCENARIOS, generate, write_native


def _synth_command(args: argparse.Namespace) -> int:
    dataset = generate(args.preset, seed=args.seed, scenario=args.scenario)
    paths = write_native(dataset, args.out, ext=args.ext, formats=args.format or None)
    table = Table(title=f"{dataset.name} (seed {args.seed}) -> {args.out}")
    table.add_column("statistic")
    for split in ("all", *dataset.splits):
        table.add_column(split, justify="right")
    settings = ("preset", "seed", "schema", "scenario", "width", "height")
    keys = [k for k in dataset.summary if "/" not in k and k not in settings]
    for key in keys:
        row = [str(dataset.summary[key])] + [str(dataset.summary.get(f"{s}/{key}", "")) for s in dataset.splits]
        table.add_row(key, *row)
    console = Console()
    console.print(table)
    for key, path in paths.items():
        console.print(f"{key}: {path}")
    return 0


def add_data_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``synth`` (``crowdbench data synth --preset small --seed 0 --out DIR [--format F]``) and
    ``inspect`` (``crowdbench data inspect PATH [--json]``) on ``subparsers``."""
    p = subparsers.add_parser("synth", help="generate the synthetic crowd videos and write every native format")
    p.add_argument("--preset", default="small", choices=sorted(PRESETS), help="dataset size (default: small)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--scenario", default="plain", choices=sorted(SCENARIOS), help="mechanisms in the scenes (default: plain)"
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--ext", default=".jpg", choices=(".jpg", ".png"), help="image format (default: .jpg)")
    p.add_argument(
        "--format",
        action="append",
        choices=FORMATS,
        help="native format to write; repeat for several (default: all)",
    )
    p.set_defaults(func=_synth_command)
    c = subparsers.add_parser("check", help="which datasets the tables' full profile needs, and what is missing")
    c.add_argument("--data-root", type=Path, required=True, help="the folder given to --data-root")
    c.add_argument("--table", help="one table id (default: every table)")
    c.set_defaults(func=_check_command)
    q = subparsers.add_parser("inspect", help="detect a dataset's format and print counts and crowding statistics")
    q.add_argument("path", type=Path, help="annotation file or folder")
    q.add_argument("--json", action="store_true", help="print the statistics as JSON")
    q.set_defaults(func=_inspect_command)


def _inspect_command(args: argparse.Namespace) -> int:
    try:
        report = inspect_path(args.path)
    except (UnknownFormatError, FormatError, OSError, ValueError, RecursionError, MemoryError) as exc:
        return fail(exc)
    if args.json:
        print(strict_dumps(report, indent=1))
    else:
        print_report(report)
    return 0


def _check_command(args: argparse.Namespace) -> int:
    """``crowdbench data check``: per table, the dataset and splits of its full profile, found or not under the root,
    and the images their annotations reference (``stat`` only: every image, or an evenly spread sample of huge splits).

    Exit 0 when everything asked for is there, 1 when something is missing (each missing split gets one line saying
    what to put where; each split with missing images one line with the count and the first missing path)."""
    # deferred: start-up (pydantic, yaml): every crowdbench command builds this parser; specs serve `data check` only
    from crowdbench.bench.specs import available_tables, load_spec

    tables = [args.table] if args.table else available_tables()
    table = Table(title=f"datasets for --profile full under {args.data_root}")
    for col in ("table", "dataset", "splits", "status"):
        table.add_column(col)
    problems: list[str] = []
    images: list[str] = []
    for table_id in tables:
        spec = load_spec(table_id)
        data = spec.data
        source = str(data["source"])
        train, val = str(data.get("train_split", "train")), str(data.get("val_split", "val"))
        needs = [(source, [train] if data.get("holdout_videos") else [train, val])]
        needs += [(str(extra), ["train"]) for extra in data.get("extra_train", ())]
        for key, splits in needs:
            try:
                check_dataset(args.data_root, key, splits, images=False)
                checks = [check_images(args.data_root, key, split) for split in splits]
            except DataError as exc:
                table.add_row(table_id, key, ", ".join(splits), "[red]missing[/]")
                problems.append(f"missing: {exc}")
                continue
            except (FormatError, OSError, RecursionError, MemoryError) as exc:
                if isinstance(exc, BrokenPipeError) or os.environ.get("CROWDBENCH_DEBUG"):
                    raise
                table.add_row(table_id, key, ", ".join(splits), "[red]unreadable[/]")
                problems.append(f"unreadable: {one_line(exc)}")
                continue
            images += [c.summary() for c in checks if not c.missing]
            problems += [f"missing: {c.summary()}" for c in checks if c.missing]
            status = "[red]images missing[/]" if any(c.missing for c in checks) else "[green]found[/]"
            table.add_row(table_id, key, ", ".join(splits), status)
    console = Console()
    console.print(table)
    for line in dict.fromkeys(images):
        console.print(f"images: {line}", markup=False, highlight=False, soft_wrap=True)
    for line in dict.fromkeys(problems):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    return 1 if problems else 0
