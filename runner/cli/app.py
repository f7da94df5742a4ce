"""The ``agor-db`` command line: parse arguments, call the core, render results. No decisions here."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from .. import __version__
from ..core import interrupts
from ..core.errors import AgorDbError, ExitCode
from ..core.urls import DatabaseUrl, redact, resolve_url
from .output import Output

EXIT_CODES = """\b
Exit codes:
  0  success (nothing to do is success too)
  1  failure: a migration's SQL failed (and was rolled back), or the database refused
  2  usage: bad option or URL, malformed migration file or folder
  3  drift: an applied migration was edited, renamed or deleted, a pending one is out of order,
     or an existing SQLite database matches no archived step (or is not an Agor database)
  4  lock timeout: another agor-db held the migration lock, or other sessions held the locks a
     migration needs, longer than --lock-timeout (PostgreSQL: that migration was rolled back)
  5  database unavailable: unreachable, wrong password, missing database, a hot standby,
     a server restart mid-run, unusable file
  6  pending migrations (only with `status --exit-code`)
  130  interrupted by Ctrl-C: what was in progress was rolled back
  143  stopped by SIGTERM (docker stop, Kubernetes): handled like Ctrl-C
"""

app = typer.Typer(
    name="agor-db",
    help="Agor's database migration tool: raw SQL files in dialect folders (sql/sqlite, sql/postgres), "
    "applied in order, each atomically, with a journal, checksums and a lock.\n\n"
    "The database comes from --database-url, else AGOR_DATABASE_URL, DATABASE_URL, AGOR_DB_PATH, "
    "else ~/.agor/agor.db (SQLite).",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

DatabaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        "-d",
        help="postgresql://user:pass@host:5432/db (or postgresql:// with PG* variables), a libpq keyword string "
        "('host=db dbname=agor user=agor', 'service=agor'), sqlite:///abs/path.db, file:~/.agor/agor.db or a path. "
        "Default: $AGOR_DATABASE_URL, $DATABASE_URL, $AGOR_DB_PATH, ~/.agor/agor.db.",
        show_default=False,
    ),
]
SqlDirOpt = Annotated[
    str | None,
    typer.Option(
        "--sql-dir",
        envvar="AGOR_SQL_DIR",
        help="Root holding sqlite/ and postgres/ migration folders. Default: the folders shipped with agor-db.",
        show_default=False,
    ),
]
# SQLite's busy timeout and PostgreSQL's lock_timeout are milliseconds in a 32-bit int; larger
# values (or inf) would end in an OverflowError / "invalid value" instead of a usage message.
MAX_SECONDS = 2_000_000  # about 23 days

LockTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--lock-timeout",
        envvar="AGOR_LOCK_TIMEOUT",
        min=0,
        max=MAX_SECONDS,
        help="Seconds to wait, in all, for another agor-db run to finish and (PostgreSQL) for a migration's "
        "table locks across its retries, before giving up (exit 4).",
    ),
]

StatementLockTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--statement-lock-timeout",
        envvar="AGOR_STATEMENT_LOCK_TIMEOUT",
        min=0.01,
        max=MAX_SECONDS,
        help="PostgreSQL: seconds one migration statement may wait for a table lock before its migration is "
        "rolled back and retried (until --lock-timeout), so the application's queries never queue behind it.",
    ),
]
DirectUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--direct-url",
        help="PostgreSQL URL reaching the server without a pooler; migrate uses it instead of --database-url. "
        "Default: $AGOR_MIGRATION_DATABASE_URL.",
        show_default=False,
    ),
]

F = TypeVar("F", bound=Callable[..., Any])


class Session:
    """Per-invocation state shared by the command bodies: the output and the secrets to hide."""

    def __init__(self) -> None:
        self.out = Output()

    def url(self, flag: str | None) -> DatabaseUrl:
        url = resolve_url(flag)
        self.out.add_secrets(url.secrets)
        return url


def run(body: Callable[[Session], int | None]) -> None:
    """Run a command body; turn every AgorDbError into one redacted message and its exit code."""
    session = Session()
    try:
        code = body(session) or 0
    except AgorDbError as exc:
        session.out.error(str(exc))
        code = int(exc.exit_code)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (interrupts.Terminated)
        session.out.error(f"{interrupts.describe(exc)}; the migration in progress (if any) was rolled back")
        code = int(interrupts.exit_code(exc))
    except (typer.Exit, typer.Abort):
        raise
    except BrokenPipeError:
        # the reader went away (`agor-db schema --json | head`): not an error worth a message
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 0
    except Exception as exc:  # a bug: still no traceback unless asked for
        if os.environ.get("AGOR_DB_DEBUG"):
            raise
        session.out.error(
            f"internal error: {type(exc).__name__}: {redact(str(exc), session.out.secrets)}\n"
            "this is a bug in agor-db; rerun with AGOR_DB_DEBUG=1 for a traceback and report it"
        )
        code = int(ExitCode.FAILURE)
    raise typer.Exit(code)


def version_callback(value: bool) -> None:
    if value:
        print(f"agor-db {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=version_callback, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    pass
