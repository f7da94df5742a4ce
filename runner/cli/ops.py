"""Commands: agor-db wait and other operational commands (issue 7).

Registered on the shared typer app; heavy imports stay inside the command bodies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ..core import interrupts
from .app import EXIT_CODES, MAX_SECONDS, DatabaseUrlOpt, Session, app, run

if TYPE_CHECKING:
    from ..ops.wait import Attempt

RETRY_NOTES = {
    "auth": " (login refused; retrying in case the role is still being created)",
    "no-database": " (retrying in case the database is still being created)",
}


@app.command(epilog=EXIT_CODES)
def wait(
    database_url: DatabaseUrlOpt = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            envvar="AGOR_WAIT_TIMEOUT",
            min=0,
            max=MAX_SECONDS,
            help="Give up (exit 5) after this many seconds. 0 checks once.",
        ),
    ] = 60.0,
    interval: Annotated[
        float, typer.Option("--interval", min=0.05, max=MAX_SECONDS, help="Seconds between two checks.")
    ] = 1.0,
) -> None:
    """Wait until the database can be migrated, then exit 0.

    PostgreSQL: the server accepts the login and is out of startup and recovery. SQLite: the file is
    a readable database, or it does not exist yet and its directory is writable. Every failure is
    retried until --timeout, including a refused login (the server may still be creating the role).

    \b
    Examples:
      agor-db wait && agor-db migrate
      agor-db wait -d postgresql://agor:agor@db:5432/agor --timeout 120
    """

    def body(s: Session) -> int:
        from ..ops.wait import REPORT_EVERY, wait_until_ready

        url = s.url(database_url)
        s.out.line(f"waiting up to {timeout:g}s for {url.display} (checking every {interval:g}s)")
        progress = _Progress(s, REPORT_EVERY)
        try:
            ready = wait_until_ready(url, timeout=timeout, interval=interval, on_retry=progress.retry)
        except KeyboardInterrupt as exc:
            s.out.error(f"{interrupts.describe(exc)} while waiting for the database")
            return int(interrupts.exit_code(exc))
        attempts = f"{ready.attempts} attempt" + ("" if ready.attempts == 1 else "s")
        s.out.line(f"ready after {ready.elapsed:.1f}s ({attempts}): {ready.detail}")
        return 0

    run(body)


class _Progress:
    """One line per failed attempt while the reason changes; the same reason at most every few seconds."""

    def __init__(self, s: Session, every: float) -> None:
        self.s = s
        self.every = every
        self.detail: str | None = None
        self.at = float("-inf")

    def retry(self, a: Attempt) -> None:
        if a.probe.detail == self.detail and a.elapsed - self.at < self.every:
            return
        note = RETRY_NOTES.get(a.probe.cause, "")
        self.s.out.line(f"attempt {a.number}, {a.elapsed:.1f}s: not ready: {a.probe.detail}{note}")
        self.detail, self.at = a.probe.detail, a.elapsed
