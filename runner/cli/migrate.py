"""`migrate`, `status` and `new`: parse, call the core (or the scaffold), render."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from ..core.errors import ExitCode, UsageError
from ..core.migrate import Reporter
from ..core.urls import DatabaseUrl, env_parts, redact
from .app import (
    EXIT_CODES,
    DatabaseUrlOpt,
    DirectUrlOpt,
    LockTimeoutOpt,
    Session,
    SqlDirOpt,
    StatementLockTimeoutOpt,
    app,
    run,
)
from .output import Output


def _fmt_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def _parse_target(to: str | None, option: str = "--to") -> int | None:
    if to is None:
        return None
    digits = to.split("_", 1)[0]
    if not (digits.isascii() and digits.isdigit()):
        raise UsageError(f"{option} {to!r}: expected a version number such as 0010")
    return int(digits)


@app.command(epilog=EXIT_CODES)
def migrate(
    database_url: DatabaseUrlOpt = None,
    sql_dir: SqlDirOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and the SQL it would run; touch nothing.")
    ] = False,
    to: Annotated[
        str | None, typer.Option("--to", help="Apply pending migrations up to and including this version.")
    ] = None,
    allow_out_of_order: Annotated[
        bool,
        typer.Option("--allow-out-of-order", help="Apply pending files older than the newest applied one."),
    ] = False,
    lock_timeout: LockTimeoutOpt = 60.0,
    statement_lock_timeout: StatementLockTimeoutOpt = 3.0,
    direct_url: DirectUrlOpt = None,
    adopt_as: Annotated[
        str | None,
        typer.Option(
            "--adopt-as",
            help="Legacy SQLite database matching no archived step: adopt it as this version anyway "
            "(after reading the differences agor-db printed).",
        ),
    ] = None,
    no_repair: Annotated[
        bool,
        typer.Option("--no-repair", help="Adopt a legacy SQLite database without rebuilding cosmetic differences."),
    ] = False,
    no_backup: Annotated[
        bool,
        typer.Option("--no-backup", help="Do not copy a legacy SQLite database before the first write to it."),
    ] = False,
) -> None:
    """Apply every pending migration, each in its own transaction.

    An existing Agor SQLite database that drizzle migrated (no agor_migrations journal yet) is
    adopted first: its schema decides which archived steps it has; those are recorded as adopted,
    cosmetic differences are repaired, and a backup is written next to it before the first write.

    \b
    Examples:
      agor-db migrate                                   # ~/.agor/agor.db
      agor-db migrate -d postgresql://agor:agor@localhost:5432/agor
      agor-db migrate --dry-run                         # show what would run
      agor-db migrate --to 0005                         # stop after version 0005
    """

    def body(s: Session) -> int:
        from ..core import migrate as core
        from ..core.direct_url import resolve_direct_url
        from ..core.source import sql_root
        from ..schema.adopter import ADOPTER

        direct = resolve_direct_url(direct_url)
        if direct is not None:
            s.out.add_secrets(direct.secrets)
        url = direct or s.url(database_url)
        root = sql_root(sql_dir)
        options = core.RunOptions(
            _parse_target(to),
            allow_out_of_order,
            lock_timeout,
            adopt_as=_parse_target(adopt_as, "--adopt-as"),
            repair=not no_repair,
            backup=not no_backup,
            statement_lock_timeout=statement_lock_timeout,
        )
        if dry_run:
            return _dry_run(s, url, root, options)
        reporter = _MigrateReporter(s.out)
        started = time.perf_counter()
        result = core.migrate(url, root, options, reporter, direct=direct is not None, adopter=ADOPTER)
        versions = [a.version for a in result.plan.applied] + [a.version for a in result.applied]
        versions += list(result.by_others)
        at = f"{max(versions):04d}" if versions else "none"
        took = int((time.perf_counter() - started) * 1000)
        if result.applied:
            s.out.line(f"{len(result.applied)} migration(s) applied to {url.display} in {took} ms; version {at}")
        else:
            s.out.line(f"nothing to migrate: {url.display} is at version {at}")
        return 0

    run(body)


class _MigrateReporter(Reporter):
    def __init__(self, out: Output) -> None:
        self.out = out

    def planned(self, plan: Any) -> None:
        pass

    def applying(self, script: Any) -> None:
        pass

    def applied(self, script: Any, row: Any) -> None:
        self.out.line(f"applied {script.migration.label} ({row.duration_ms} ms)")

    def assessed(self, assessment: Any) -> None:
        self.out.line("existing database without an agor-db journal: adopting it")
        for line in assessment.describe():
            self.out.line(f"  {line}")

    def backed_up(self, path: Path) -> None:
        self.out.line(f"backup written to {path}")

    def adopted(self, rows: list[Any], repairs: list[str]) -> None:
        for r in repairs:
            self.out.line(r)
        if rows:
            self.out.line(f"adopted {rows[0].version:04d}..{rows[-1].version:04d} ({len(rows)} migrations)")

    def warn(self, message: str) -> None:
        self.out.warn(message)

    def waiting(self, message: str) -> None:
        self.out.warn(message)


def _dry_run(s: Session, url: DatabaseUrl, root: Path, options: Any) -> int:
    from ..core import migrate as core
    from ..schema.adopter import ADOPTER

    seen = core.inspect(url, root, options, ADOPTER)
    plan = seen.plan
    core.raise_for_problems(plan)
    scripts = core.parse_pending(seen.migrations, plan)
    s.out.line(f"dry run against {url.display}: nothing will be changed")
    if seen.assessment is not None:
        s.out.line("existing database without an agor-db journal: migrate would adopt it")
        for line in seen.assessment.describe():
            s.out.line(f"  {line}")
        if options.backup:
            s.out.line("  a backup would be written next to it first")
    if not scripts:
        s.out.line("nothing to migrate")
        return 0
    s.out.line(f"{len(scripts)} migration(s) would be applied, in this order:")
    for script in scripts:
        mode = "in one transaction" if script.transactional else "WITHOUT a transaction"
        s.out.line(f"\n-- {script.migration.label} ({mode})", style="bold")
        for st in script.statements:
            s.out.line(f"-- line {st.line}\n{st.sql}")
    return 0


@app.command(epilog=EXIT_CODES)
def status(
    database_url: DatabaseUrlOpt = None,
    sql_dir: SqlDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
    exit_code: Annotated[
        bool, typer.Option("--exit-code", help="Exit 6 when migrations are pending (for scripts).")
    ] = False,
) -> None:
    """Show applied and pending migrations. Reads only; never creates the journal.

    \b
    Examples:
      agor-db status
      agor-db status --json | jq '.pending | length'
      agor-db status --exit-code || agor-db migrate
    """

    def body(s: Session) -> int:
        from ..core import migrate as core
        from ..core.source import sql_root

        url = s.url(database_url)
        from ..schema.adopter import ADOPTER

        seen = core.inspect(url, sql_root(sql_dir), core.RunOptions(), ADOPTER)
        plan = seen.plan
        for note in seen.notes:
            s.out.warn(note)
        # A legacy database's steps are not in the journal yet: the plan lists them as applied (so that
        # pending is what migrate will run), but to the reader they are work still to do: adoption.
        journaled = [a for a in plan.applied if a.applied_at]
        to_adopt = [a for a in plan.applied if not a.applied_at]
        if as_json:
            print(redact(json.dumps(_status_doc(seen, url, journaled, to_adopt), indent=2), s.out.secrets))
        else:
            _status_text(s, seen, url, journaled, to_adopt)
        if plan.problems:
            return int(ExitCode.DRIFT)
        if exit_code and (plan.pending or to_adopt):
            return int(ExitCode.PENDING)
        return 0

    run(body)


@app.command(epilog=EXIT_CODES)
def new(
    name: Annotated[str, typer.Argument(help="What the migration does, e.g. add_session_tags.")],
    sql_dir: SqlDirOpt = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            "-d",
            help="A PostgreSQL server (CREATEDB) to refresh sql/schema/postgres.sql on first. "
            "Default: $AGOR_DATABASE_URL, $DATABASE_URL when they are PostgreSQL URLs.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Create the next migration as a pair: one file in sqlite/ and one in postgres/.

    The version is one above the highest in either folder. Both files must make the same schema
    change; `agor-db check` compares the results and lints both halves. First refreshes the
    committed schema snapshots (sql/schema/*.sql) from the folders as they stand; after you write the
    SQL, `agor-db check --write` refreshes them again with your change.

    \b
    Example:
      agor-db new add_session_tags
    """

    def body(s: Session) -> int:
        from ..core.source import sql_root
        from ..ops.scaffold import new_pair, next_stem, refresh_snapshots

        root = sql_root(sql_dir)
        stem = next_stem(root, name)
        server = _postgres_server(s, database_url)
        for note in refresh_snapshots(root, server):
            s.out.line(note)
        created = new_pair(root, name, stem)
        for path in created:
            s.out.line(f"created {path}")
        where = f" --sql-dir {root}" if sql_dir else ""
        s.out.line(
            f"next: write the change in both files, then run `agor-db check --write{where}` "
            "(with a PostgreSQL server) to lint the pair and refresh sql/schema/*.sql; commit all four files"
        )
        return 0

    run(body)


def _postgres_server(s: Session, flag: str | None) -> DatabaseUrl | None:
    """The --database-url given (it must be PostgreSQL), else a PostgreSQL URL from the environment."""
    if flag:
        url = s.url(flag)
        if url.dialect != "postgres":
            raise UsageError(f"--database-url must name a PostgreSQL server here, got {url.display}")
        return url
    for env in ("AGOR_DATABASE_URL", "DATABASE_URL"):
        if os.environ.get(env, "").startswith(("postgres://", "postgresql://")):
            return s.url(os.environ[env])
    return None


def _status_doc(seen: Any, url: DatabaseUrl, journaled: list[Any], to_adopt: list[Any]) -> dict[str, Any]:
    plan = seen.plan
    return {
        "dialect": plan.dialect,
        "database": url.display,
        "applied": [
            {"version": a.version, "name": a.name, "checksum": a.checksum, "applied_at": a.applied_at, "how": a.how}
            for a in journaled
        ],
        "pending": [{"version": a.version, "name": a.name, "action": "adopt"} for a in to_adopt]
        + [{"version": m.version, "name": m.name, "action": "apply"} for m in plan.pending],
        "problems": [{"kind": p.kind, "version": p.version, "message": p.message} for p in plan.problems],
        "adoption": seen.assessment.to_json() if seen.assessment else None,
    }


def _status_text(s: Session, seen: Any, url: DatabaseUrl, journaled: list[Any], to_adopt: list[Any]) -> None:
    plan = seen.plan
    env = env_parts(url)
    supplied = f"; {', '.join(env)} from the environment" if env else ""
    s.out.line(f"database: {url.display} ({plan.dialect}, from {url.source}{supplied})")
    if seen.assessment is not None:
        s.out.line("no agor-db journal yet: `agor-db migrate` will adopt this database")
        for line in seen.assessment.describe():
            s.out.line(f"  {line}")
    rows = [[f"{a.version:04d}", a.name, a.how, _fmt_ms(a.applied_at), f"{a.duration_ms} ms"] for a in journaled]
    rows += [[f"{a.version:04d}", a.name, "to adopt", "", ""] for a in to_adopt]
    rows += [[f"{m.version:04d}", m.name, "pending", "", ""] for m in plan.pending]
    if rows:
        s.out.table("migrations", ["version", "name", "state", "applied at", "took"], rows)
    adopting = f"{len(to_adopt)} to adopt, " if to_adopt else ""
    s.out.line(f"{len(journaled)} applied, {adopting}{len(plan.pending)} pending")
    for p in plan.problems:
        s.out.line(f"problem: {p.message}", style="red")
