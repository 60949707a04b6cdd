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


class Tracker:
    """A progress bar on a terminal; in a log file, one line every 10 % instead."""

    def __init__(self, description: str, total: int, completed: int = 0) -> None:
        self.description, self.total, self.done = description, total, completed
        self._bar: Progress | None = None
        self._next_line = completed + max(1, total // 10)

    def __enter__(self) -> Tracker:
        if console.is_terminal:
            self._bar = progress()
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total, completed=self.done, status="")
        return self

    def advance(self, n: int = 1, status: str = "") -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(self._task, advance=n, status=status)
        elif self.done >= self._next_line or self.done == self.total:
            console.print(f"  {self.description:<11} {self.done}/{self.total} {status}")
            self._next_line = self.done + max(1, self.total // 10)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
