"""The ``crowdbench`` command (also ``python -m crowdbench``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from rich.markup import escape

from crowdbench import __version__
from crowdbench.bench.checkpoints import CheckpointError
from crowdbench.bench.errors import NonFiniteLossError, one_line, quiet_broken_pipe
from crowdbench.bench.log import console, out
from crowdbench.bench.provenance import command_line
from crowdbench.datasets.formats.errors import FormatError
from crowdbench.results import export


def known_errors() -> tuple[type[BaseException], ...]:
    """Exception types whose message already names the file, record or option: what ``main`` and the cell worker
    report as one ``error:`` line instead of a traceback."""
    # deferred: start-up (sqlalchemy, pydantic): evaluated only when an exception reaches the handler
    from crowdbench.bench.executor import ExecutorError
    from crowdbench.bench.preflight import PreflightError
    from crowdbench.bench.registry import PluginError
    from crowdbench.bench.specs import SpecError
    from crowdbench.bench.store import StoreError
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
        OSError,
        ValueError,
        RecursionError,
        MemoryError,
    )


def parse_seeds(text: str) -> list[int]:
    """``"3"`` -> seeds 0, 1, 2; ``"0,5,7"`` -> exactly those."""
    try:
        if "," in text:
            return [int(s) for s in text.split(",") if s.strip()]
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: give a count (3) or a list (0,5,7)") from None
    if count < 1:
        raise argparse.ArgumentTypeError("--seeds must be at least 1")
    return list(range(count))


def parse_rows(text: str) -> list[int] | str:
    """``1,3`` -> ``[0, 2]``; ``all`` -> ``"all"`` (every runnable row, the smoke-unmeasurable ones included)."""
    if text.strip().lower() == "all":
        return "all"
    try:
        return [int(s) - 1 for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--rows {text!r}: give 1-based row numbers, e.g. 1,3") from None


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("table", help="table id, e.g. hie-pose/table3 (see `crowdbench list tables`)")
    p.add_argument("--profile", default="smoke", choices=("smoke", "full"), help="smoke: synthetic, CPU minutes")
    p.add_argument(
        "--seeds",
        type=parse_seeds,
        help="count (3 = seeds 0,1,2) or list; mean ± std (default: the table's smoke_seeds under smoke, `crowdbench "
        "list tables`; 1 under full)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override, e.g. --set train.iterations=100 (repeatable)",
    )
    p.add_argument("--data-root", type=Path, help="real dataset folder (full profile)")
    p.add_argument("--run-dir", type=Path, default=Path("runs"), help="cache, store and reports (default: runs/)")
    p.add_argument(
        "--db",
        "--store",
        dest="db",
        help="SQLAlchemy URL of the result store, e.g. postgresql://user@host/db (default: SQLite in the run dir)",
    )
    p.add_argument(
        "--cache",
        dest="cache_url",
        help="shared stage cache as an fsspec URL (s3://..., gs://..., file:///shared/...): finished stages are "
        "uploaded there and fetched from there instead of recomputed; the run dir keeps a local copy",
    )
    p.add_argument("--executor", default="local", choices=("local", "ray", "slurm"), help="local (default), ray, slurm")
    p.add_argument("--jobs", type=int, help="concurrent cells (default: number of GPUs, else 1; ray: local CPUs)")
    p.add_argument(
        "--nproc-per-cell",
        dest="nproc",
        type=int,
        help="local: run each cell as torchrun --nproc_per_node N (data-parallel training on N GPUs, or gloo on CPU)",
    )
    cluster = p.add_argument_group("ray / slurm executors (README: Running on a cluster)")
    cluster.add_argument("--address", help="ray: address of a running cluster (default: start a local one)")
    cluster.add_argument(
        "--ray-cpus", dest="cpus", type=int, help="ray: CPUs per CPU-only cell (default: runtime.threads)"
    )
    cluster.add_argument("--slurm-partition", dest="partition")
    cluster.add_argument("--slurm-time", dest="time_min", type=int, help="minutes per array task (default 1440)")
    cluster.add_argument("--slurm-gpus", dest="gpus_per_task", type=int, help="GPUs per array task (default 0)")
    cluster.add_argument("--slurm-cpus", dest="cpus_per_task", type=int, help="CPUs per array task (default 4)")
    cluster.add_argument("--slurm-parallelism", dest="array_parallelism", type=int, help="array tasks at once (16)")
    cluster.add_argument("--slurm-folder", dest="folder", help="submitit logs (default: <run-dir>/slurm)")
    cluster.add_argument("--slurm-cluster", dest="cluster", choices=("slurm", "local"), help="local: no SLURM")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument(
        "--rows",
        type=parse_rows,
        help="only these 1-based rows, e.g. 1,2, or all (default: every runnable row; under smoke without the rows "
        "whose effect is not measurable in smoke)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the resolved recipe (settings and sources) and each row's level and deviations; run nothing",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``crowdbench`` parser: table, report, search, export, list, eval and data commands."""
    parser = argparse.ArgumentParser(prog="crowdbench", description=__doc__)
    parser.add_argument("--version", action="version", version=f"crowdbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    table = sub.add_parser("table", help="regenerate a paper table (paper values beside reproduced ones)")
    _add_run_options(table)
    table.set_defaults(func=cmd_table)
    _add_report_command(sub)
    _add_search_command(sub)
    _add_export_and_list_commands(sub)

    ev = sub.add_parser("eval", help="evaluate prediction files with a metric").add_subparsers(
        dest="metric", required=True
    )
    # deferred: start-up (numpy)
    from crowdbench.bench.metrics.cli import add_eval_commands

    add_eval_commands(ev)

    data = sub.add_parser("data", help="datasets: write the synthetic crowds in native formats").add_subparsers(
        dest="data_command", required=True
    )
    # deferred: start-up (cv2, numpy)
    from crowdbench.bench.data_cli import add_data_commands

    add_data_commands(data)
    return parser


def _add_report_command(sub: argparse._SubParsersAction) -> None:
    """``crowdbench report``: the site, or one table's reports, from the store."""
    report = sub.add_parser(
        "report",
        help="build the report site (every table, figure and search) from the store without running anything; "
        "with one TABLE and no --out: that table's terminal view and md/csv/html under <run-dir>/reports",
    )
    report.add_argument("table", nargs="?", help="one table (e.g. hie-pose/table3): re-render its reports")
    report.add_argument("--tables", nargs="+", help="tables of the site (default: all of the five papers)")
    report.add_argument("--out", type=Path, help="site folder (default: <run-dir>/report)")
    report.add_argument(
        "--profile", choices=("smoke", "full"), help="only this profile (default: every profile in the store)"
    )
    report.add_argument("--run-dir", type=Path, default=Path("runs"))
    report.add_argument("--db")
    report.set_defaults(func=cmd_report)


def _add_search_command(sub: argparse._SubParsersAction) -> None:
    """``crowdbench search tracking``: the study, the run and the sampler options."""
    search = sub.add_parser("search", help="Optuna search over a pipeline's parameters (tracking: DeepSORT)")
    search.add_argument("what", choices=("tracking",), help="what to search")
    search.add_argument("--table", required=True, help="table with a `search:` block, e.g. hie-tracking/table4")
    search.add_argument("--trials", type=int, default=50, help="COMPLETE trials wanted in the study (tops up)")
    search.add_argument("--workers", type=int, default=1, help="worker processes sharing the study")
    search.add_argument("--storage", help="Optuna storage URL (default: a journal file in the run dir)")
    search.add_argument(
        "--sampler", default="tpe", choices=("tpe", "grid", "nsga2"), help="tpe (default) | grid | nsga2"
    )
    search.add_argument("--multi-objective", action="store_true", help="MOTA and ID switches (Pareto front)")
    search.add_argument("--profile", default="smoke", choices=("smoke", "full"))
    search.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    search.add_argument("--data-root", type=Path, help="real dataset folder (full profile)")
    search.add_argument("--run-dir", type=Path, default=Path("runs"))
    search.add_argument(
        "--db", "--store", dest="db", help="SQLAlchemy URL of the result store (default: SQLite in the run dir)"
    )
    search.add_argument("--device", default="auto")
    search.add_argument("--seed", type=int, default=0, help="sampler seed (worker i: seed + i; default 0)")
    search.add_argument(
        "--objective-seeds", type=int, default=1, metavar="N",
        help="objective = mean over N disjoint video folds of the search split (contiguous frame blocks when it has "
        "fewer than N videos); the best trial's 95%% t-interval over the folds reported (default 1: the whole split)",
    )  # fmt: skip
    # sampler options: None = bench.search.TPE_DEFAULTS / NSGA2_DEFAULTS (the help repeats them; tests check)
    tpe = search.add_argument_group("TPE sampler (passed explicitly; recorded in the study)")
    tpe.add_argument(
        "--tpe-multivariate", action=argparse.BooleanOptionalAction, default=None,
        help="multivariate TPE (default: on)",
    )  # fmt: skip
    tpe.add_argument(
        "--tpe-constant-liar", action=argparse.BooleanOptionalAction, default=None,
        help="constant liar for parallel workers (default: on)",
    )  # fmt: skip
    tpe.add_argument(
        "--tpe-startup-trials", type=int, default=None, metavar="N",
        help="random trials before TPE models the history (default 10)",
    )  # fmt: skip
    nsga = search.add_argument_group("NSGA-II sampler (passed explicitly; recorded in the study)")
    nsga.add_argument("--nsga2-population", type=int, default=None, metavar="N",
                      help="population size (default 50)")  # fmt: skip
    nsga.add_argument("--nsga2-mutation-prob", type=float, default=None, metavar="P",
                      help="mutation probability (default 1 / number of parameters)")  # fmt: skip
    nsga.add_argument("--nsga2-crossover-prob", type=float, default=None, metavar="P",
                      help="uniform crossover probability (default 0.9)")  # fmt: skip
    nsga.add_argument("--nsga2-swapping-prob", type=float, default=None, metavar="P",
                      help="uniform crossover swapping probability (default 0.5)")  # fmt: skip
    search.set_defaults(func=cmd_search)


def _add_export_and_list_commands(sub: argparse._SubParsersAction) -> None:
    """``crowdbench export`` (the store as one tidy table) and ``crowdbench list``."""
    export = sub.add_parser(
        "export", help="every result of the store as one tidy table (crowdbench.results.load): Parquet or CSV"
    )
    export.add_argument("--format", dest="fmt", default="parquet", choices=("parquet", "csv"))
    export.add_argument("--out", type=Path, help="output file (default: <run-dir>/results.<format>)")
    export.add_argument("--run-dir", type=Path, default=Path("runs"))
    export.add_argument("--db", "--store", dest="db", help="SQLAlchemy URL of the result store")
    export.set_defaults(func=cmd_export)

    lister = sub.add_parser("list", help="list tables, plugins or profiles")
    lister.add_argument("what", choices=("tables", "plugins", "profiles"))
    lister.add_argument(
        "--run-dir", type=Path, default=Path("runs"), help="tables: the scoreboard of this run dir's store (runs/)"
    )
    lister.add_argument("--profile", default="smoke", help="tables: the scoreboard's profile (default: smoke)")
    lister.add_argument("--json", action="store_true", help="tables: print the scoreboard as JSON")
    lister.set_defaults(func=cmd_list)


_EXECUTOR_OPTIONS = ("nproc", "address", "cpus", "partition", "time_min", "gpus_per_task", "cpus_per_task",
                     "array_parallelism", "folder", "cluster")  # fmt: skip
"""Options of the ray / slurm executors and ``--nproc-per-cell``, by their ``argparse`` dest (= the executor's key)."""
_TABLE_ARGS = ("profile", "seeds", "run_dir", "executor", "jobs", "device", "rows", "data_root", "cache_url", "dry_run")
"""``crowdbench table`` options passed to ``run_table`` under their own names."""
_SEARCH_ARGS = ("trials", "workers", "storage", "sampler", "multi_objective", "profile", "run_dir", "device", "seed",
                "objective_seeds")  # fmt: skip
"""``crowdbench search`` options passed to ``search_tracking`` under their own names."""


def _options(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """``{name: args.name}``: command-line values passed on under the same names."""
    return {name: getattr(args, name) for name in names}


def cmd_table(args: argparse.Namespace) -> int:
    # deferred: start-up (sqlalchemy, jinja2)
    from crowdbench.bench.matrix import parse_set
    from crowdbench.bench.runner import run_table

    executor_options = _options(args, *_EXECUTOR_OPTIONS)
    executor_options["folder"] = args.folder or str(Path(args.run_dir) / "slurm")
    result = run_table(
        args.table,
        overrides=parse_set(args.overrides),
        db_url=args.db,
        executor_options=executor_options,
        **_options(args, *_TABLE_ARGS),
    )
    return 1 if result is not None and result.failed else 0


def cmd_report(args: argparse.Namespace) -> int:
    # deferred: start-up (sqlalchemy, jinja2)
    from crowdbench.bench.specs import load_spec
    from crowdbench.bench.store import ResultStore, store_url
    from crowdbench.reports.render import terminal_table, write_reports
    from crowdbench.reports.site import PROFILE_ORDER, build_site, table_view

    run_dir = Path(args.run_dir).resolve()
    store = ResultStore(store_url(run_dir, args.db))
    if args.table and args.out is None and not args.tables:
        spec = load_spec(args.table)
        present = sorted({r.profile for r in store.query(spec.id)}, key=PROFILE_ORDER.index) or ["smoke"]
        for profile in [args.profile] if args.profile else present:
            view, _ = table_view(store, spec, profile, command_line())
            out_dir = run_dir / "reports" if profile == "smoke" else run_dir / "reports" / profile
            paths = write_reports(view, out_dir)
            out.print(terminal_table(view))
            console.print("Reports: " + ", ".join(str(p) for p in paths.values()))
        return 0
    tables = [load_spec(t).id for t in [*([args.table] if args.table else []), *(args.tables or [])]] or None
    index = build_site(
        store,
        args.out or run_dir / "report",
        tables=tables,
        profile=args.profile,
        cache_root=run_dir / "cache",
        search_dir=run_dir / "reports" / "search",
        command=command_line(),
    )
    console.print(f"Report: {index}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    # deferred: start-up (pydantic, yaml)
    from crowdbench.bench.matrix import parse_set
    from crowdbench.bench.search_tracking import search_tracking

    if args.sampler == "nsga2" and not args.multi_objective:
        console.print("[yellow]note:[/] nsga2 is a multi-objective sampler; add --multi-objective for MOTA + IDSw")
    overrides = parse_set(args.overrides)
    if args.data_root is not None:
        overrides["data.root"] = str(args.data_root)
    options: dict[str, object] = {}
    if args.sampler == "tpe":
        options = {"multivariate": args.tpe_multivariate, "constant_liar": args.tpe_constant_liar,
                   "n_startup_trials": args.tpe_startup_trials}  # fmt: skip
    elif args.sampler == "nsga2":
        options = {"population_size": args.nsga2_population, "mutation_prob": args.nsga2_mutation_prob,
                   "crossover_prob": args.nsga2_crossover_prob, "swapping_prob": args.nsga2_swapping_prob}  # fmt: skip
    result = search_tracking(
        args.table,
        overrides=overrides,
        db_url=args.db,
        sampler_options=options,
        **_options(args, *_SEARCH_ARGS),
    )
    return 0 if result.complete else 1


def _list_tables(args: argparse.Namespace) -> None:
    """Every table, with its smoke scenario and, when the run dir has a store, the scoreboard (agree, within noise,
    oppose, not measurable in smoke; seeds, minutes) and the totals."""
    # deferred: start-up (pydantic, yaml, sqlalchemy)
    from crowdbench.bench.specs import available_tables, load_spec
    from crowdbench.bench.store import ResultStore, store_url
    from crowdbench.reports.aggregate import MIN_SEEDS
    from crowdbench.reports.scoreboard import TableScore, as_json, scoreboard, totals

    has_store = (Path(args.run_dir) / "results.sqlite").exists()
    if has_store:
        store = ResultStore(store_url(Path(args.run_dir)))
        scores = scoreboard(store, profile=args.profile)
        store.dispose()
    else:
        specs = [load_spec(t) for t in available_tables()]
        scores = [TableScore.of(s) for s in specs]
    if args.json:
        print(json.dumps(as_json(scores), indent=1))
        return
    out.print(f"{'table':<23} {'rows':>5}  {'scenario':<15} {'agree':>5} {'noise':>5} {'oppose':>6} {'n/m':>4} "
              f"{'n/s':>4} {'seeds':>5} {'min':>5} {'ci':>5}  title", soft_wrap=True)  # fmt: skip
    for s in scores:
        spec = load_spec(s.table)
        title = spec.title.split(". ")[0].rstrip(".")
        title = title if len(title) <= 50 else title[:49] + "…"
        rows = f"{len(spec.runnable_rows)}/{len(spec.rows)}"
        board = f"{'not run' if s.runnable else 'no runnable row':>28} {f'-/{s.smoke_seeds}' if s.runnable else '':>5}"
        board += " " * 12
        if s.run:
            board = f"{s.agrees:>5} {s.within_noise:>5} {s.opposes:>6} {s.not_measurable:>4} {s.needs_seeds:>4}"
            board += f" {f'{len(s.seeds)}/{s.smoke_seeds}':>5} {s.minutes:>5.1f}"
            board += f" {'' if s.median_ci_width is None else f'{s.median_ci_width:.2f}':>5}"
        out.print(f"{s.table:<23} {rows:>5}  {s.scenario:<15} {board}  {title}", soft_wrap=True)
    if has_store:
        t = totals(scores)
        out.print(
            f"{args.profile} scoreboard ({args.run_dir}): {t['tables_run']} of {t['tables_runnable']} runnable tables "
            f"run; effects {t['agrees']} agree, {t['within_noise']} within noise, {t['opposes']} oppose; "
            f"not counted: {t['not_measurable']} not measurable in smoke (n/m), {t['needs_seeds']} need seeds (n/s: "
            f"the rows train different models, run with fewer than {MIN_SEEDS} seeds); {t['minutes']} min of compute. "
            "Only each row's default settings count. seeds: run / the table's smoke budget; ci: median width of the "
            "counted effects' 95% intervals (paper units).",
            soft_wrap=True,
        )


def cmd_list(args: argparse.Namespace) -> int:
    if args.what == "tables":
        _list_tables(args)
    elif args.what == "plugins":
        # deferred: start-up (pydantic)
        from crowdbench.bench.registry import get_plugin, plugin_names

        names = plugin_names()
        width = max(len(n) for n in names) + 1
        for name in names:
            plugin = get_plugin(name)
            doc = (type(plugin).__doc__ or "").strip().splitlines()[0]
            out.print(f"{name:<{width}} {plugin.hook:<12} {plugin.stage:<12} {doc}", soft_wrap=True)
    else:
        # deferred: start-up (pydantic, yaml)
        from crowdbench.bench.profiles import PROFILES

        out.print("\n".join(PROFILES))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    out = args.out or Path(args.run_dir) / f"results.{args.fmt}"
    path = export(args.db or args.run_dir, out, args.fmt)
    console.print(f"Wrote {path} (one row per table, row, seed and metric; crowdbench.results.load)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's final flush
        return code
    except BrokenPipeError:
        return quiet_broken_pipe()
    except KeyboardInterrupt:
        console.print(
            "[yellow]interrupted[/]: finished stages and cells are kept; run the same command again to resume."
        )
        return 130
    except known_errors() as exc:
        if os.environ.get("CROWDBENCH_DEBUG"):
            raise
        console.print(f"[red]error:[/] {escape(one_line(exc))}", soft_wrap=True)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
