"""One rich console for the whole harness (progress bars and logs go to stderr, tables to stdout)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True, highlight=False)
out = Console(highlight=False)
if not out.is_terminal:  # piped or logged: do not squeeze tables into 80 columns
    out = Console(highlight=False, width=160)
if not console.is_terminal:
    console = Console(stderr=True, highlight=False, width=160)


def progress(description_width: int = 12) -> Progress:
    """A progress bar with count, elapsed and remaining time, and a free-text status field."""
    return Progress(
        TextColumn(f"  {{task.description:<{description_width}}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        transient=False,
    )
