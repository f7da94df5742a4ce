"""The ``agor-db`` entry point, with a fast path for the container-start case.

``agor-db migrate`` with nothing to do runs on every container start. The full CLI (typer, which pulls
in pydantic and click) costs more to import than the whole no-op check, so a plain ``migrate`` first
checks, without taking the lock, whether anything is pending. Journal rows commit together with their
migrations, so seeing every file applied and unchanged means there is truly nothing to do. In every
other case (pending work, drift, a legacy database, any error, any option it does not know) the fast
path steps aside and the full CLI runs as if it had never been here: it has written nothing.
"""

from __future__ import annotations

import os
import sys


def _noop_migrate(args: list[str]) -> int | None:
    """Return 0 after printing the no-op message, or None to hand over to the full CLI."""
    flags = {"-d": "url", "--database-url": "url", "--sql-dir": "sql_dir", "--lock-timeout": "lock"}
    given: dict[str, str] = {}
    it = iter(args)
    for arg in it:
        name, eq, value = arg.partition("=")
        if name not in flags or (name == "-d" and eq):
            return None
        if not eq:
            value = next(it, "")
            if not value or value.startswith("-"):
                return None
        given[flags[name]] = value
    from .core.errors import DatabaseUnavailable
    from .core.urls import DatabaseUrl, redact

    url: DatabaseUrl | None = None
    try:
        from .core.models import AppliedMigration
        from .core.plan import make_plan
        from .core.source import dialect_dir, list_migrations, sql_root
        from .core.urls import resolve_url
        from .drivers import open_driver

        url = resolve_url(given.get("url"))
        if url.dialect == "sqlite" and (url.is_memory or url.path is None or not url.path.is_file()):
            return None
        migrations = list_migrations(dialect_dir(sql_root(given.get("sql_dir")), url.dialect))
        try:
            busy = float(given.get("lock", os.environ.get("AGOR_LOCK_TIMEOUT", "60")))
        except ValueError:
            return None
        if url.dialect == "postgres":
            from .fast_pg import read_journal  # libpq through ctypes: no psycopg import

            rows = read_journal(url)
            if rows is None:
                return None
            applied = [AppliedMigration(0, v, name, digest, 0, 0) for v, name, digest in rows]
        else:
            driver = open_driver(url, readonly=True, busy_timeout=busy)
            try:
                if not driver.journal_exists():
                    return None
                applied = driver.read_journal()
            finally:
                driver.close()
        plan = make_plan(url.dialect, migrations, applied)
        if plan.problems or plan.pending:
            return None
    except DatabaseUnavailable as exc:
        # Handing over would only connect again (a second connect timeout on an unreachable host).
        print(f"error: {redact(str(exc), url.secrets if url else ())}", file=sys.stderr, flush=True)
        return int(exc.exit_code)
    except Exception:
        return None  # the full CLI reports it properly
    at = f"{max(a.version for a in plan.applied):04d}" if plan.applied else "none"
    print(f"nothing to migrate: {url.display} is at version {at}", flush=True)
    return 0


def main() -> None:
    argv = sys.argv[1:]
    try:
        from .core import interrupts

        interrupts.install()  # SIGTERM like Ctrl-C (exit 143), also as PID 1
        if argv[:1] == ["migrate"] and not os.environ.get("AGOR_DB_NO_FASTPATH"):
            # Ctrl-C while connecting or reading the journal: nothing was written
            code = _noop_migrate(argv[1:])
            if code is not None:
                sys.exit(code)
        from .cli.main import main as cli_main
    except KeyboardInterrupt as exc:
        # Also a stop request while the CLI is still being imported (a second or more on a busy host):
        # nothing has been touched yet; same message and exit code as the full CLI.
        from .core import interrupts

        print(f"error: {interrupts.describe(exc)}; nothing was changed", file=sys.stderr, flush=True)
        sys.exit(int(interrupts.exit_code(exc)))
    cli_main()
