"""The copy's progress on screen: rich bars on a terminal, a plain line every few seconds otherwise.

Its own module so that importing the command line does not import the copier (every other command
would pay for it at start)."""

from __future__ import annotations

import time
from typing import Any

from ..copy.run import Progress
from .app import Session


class CopyProgress(Progress):
    """Rich progress bars on a terminal, a plain line every few seconds otherwise."""

    def __init__(self, s: Session, quiet: bool) -> None:
        self.s = s
        self.quiet = quiet
        self.rich = s.out.rich and not quiet
        self._bars: Any = None
        self._tasks: dict[str, Any] = {}
        self._last = 0.0
        self._totals: dict[str, int] = {}
        self._started: dict[str, float] = {}

    def phase(self, text: str) -> None:
        if not self.quiet:
            if self._bars is not None:
                self._bars.console.print(text)
            else:
                self.s.out.line(text)

    def table_start(self, table: str, total: int) -> None:
        self._totals[table] = total
        self._started[table] = time.perf_counter()
        if self.quiet:
            return
        if self.rich:
            if self._bars is None:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

                self._bars = Progress(
                    TextColumn("{task.description:<22}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]:>12}"),
                    TimeRemainingColumn(),
                    console=self.s.out.console,
                )
                self._bars.start()
            self._tasks[table] = self._bars.add_task(table, total=total, rate="")
        elif total >= 10_000:
            print(f"copying {table}: {total} rows", flush=True)

    def table_rows(self, table: str, done: int) -> None:
        if self.quiet:
            return
        elapsed = time.perf_counter() - self._started.get(table, time.perf_counter())
        rate = done / elapsed if elapsed > 0 else 0.0
        if self.rich and table in self._tasks:
            self._bars.update(self._tasks[table], completed=done, rate=f"{rate:,.0f} rows/s")
            return
        now = time.monotonic()
        if now - self._last >= 5:
            self._last = now
            total = self._totals.get(table, 0)
            eta = (total - done) / rate if rate > 0 else 0
            print(f"  {table}: {done}/{total} rows, {rate:,.0f} rows/s, ETA {eta:.0f} s", flush=True)

    def table_done(self, table: str, rows: int, seconds: float) -> None:
        if self.quiet:
            return
        if self.rich and table in self._tasks:
            self._bars.update(
                self._tasks[table], completed=rows, rate=f"{rows / seconds if seconds else 0:,.0f} rows/s"
            )

    def stop(self) -> None:
        if self._bars is not None:
            self._bars.stop()
            self._bars = None
