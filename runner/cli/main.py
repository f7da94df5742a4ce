"""The full command line: the app with every command group registered on it."""

from __future__ import annotations

import sys

from ..core import interrupts
from .app import app

# Each command module registers its commands on `app` when imported; this order is the order of --help.
from . import migrate, copy, ops, schema  # noqa: F401  isort: skip


def main() -> None:
    try:
        app(prog_name="agor-db")
    except (SystemExit, KeyboardInterrupt) as exc:
        # A stop request while typer builds the command or parses the arguments (before run() is in
        # charge) escapes, or becomes a silent Exit(130) inside typer even for SIGTERM: say so, and
        # keep 143 for SIGTERM.
        stop = exc if isinstance(exc, KeyboardInterrupt) else _stop_request(exc)
        if stop is None:
            raise
        print(f"error: {interrupts.describe(stop)}; nothing was changed", file=sys.stderr, flush=True)
        sys.exit(int(interrupts.exit_code(stop)))


def _stop_request(exc: BaseException) -> KeyboardInterrupt | None:
    seen: BaseException | None = exc
    for _ in range(4):  # SystemExit <- typer.Exit <- KeyboardInterrupt
        seen = seen.__cause__ or seen.__context__ if seen is not None else None
        if isinstance(seen, KeyboardInterrupt):
            return seen
    return None


if __name__ == "__main__":  # pragma: no cover
    main()
