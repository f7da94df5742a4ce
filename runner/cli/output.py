"""Presentation: rich on a terminal, plain lines otherwise. Rich is imported only when it is used."""

from __future__ import annotations

import os
import sys
from typing import Any

from ..core.urls import redact


class Output:
    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        self.secrets = secrets
        self.rich = sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        self._console: Any = None

    def add_secrets(self, secrets: tuple[str, ...]) -> None:
        self.secrets = tuple(set(self.secrets) | set(secrets))

    @property
    def console(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(highlight=False)
        return self._console

    def line(self, text: str = "", style: str | None = None) -> None:
        text = redact(text, self.secrets)
        if self.rich:
            from rich.markup import escape

            self.console.print(escape(text), style=style)
        else:
            print(text, flush=True)

    def table(self, title: str, columns: list[str], rows: list[list[str]]) -> None:
        rows = [[redact(c, self.secrets) for c in r] for r in rows]
        if self.rich:
            from rich.table import Table

            t = Table(title=title, title_justify="left")
            for c in columns:
                t.add_column(c)
            for r in rows:
                t.add_row(*r)
            self.console.print(t)
            return
        print(title)
        widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
        print("  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
        for r in rows:
            print("  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())

    def error(self, text: str) -> None:
        text = redact(text, self.secrets)
        if sys.stderr.isatty() and self.rich:
            from rich.console import Console
            from rich.markup import escape

            Console(stderr=True, highlight=False).print(escape(f"error: {text}"), style="bold red")
        else:
            print(f"error: {text}", file=sys.stderr, flush=True)

    def warn(self, text: str) -> None:
        print(f"warning: {redact(text, self.secrets)}", file=sys.stderr, flush=True)
