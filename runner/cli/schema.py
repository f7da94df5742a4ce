"""Commands: agor-db schema / check (issue 4). Parse, call schema/check.py, render; no decisions here."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ..core.urls import redact
from .app import EXIT_CODES, DatabaseUrlOpt, Session, SqlDirOpt, app, run


@app.command(epilog=EXIT_CODES)
def schema(
    database_url: DatabaseUrlOpt = None,
    sql_dir: SqlDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the model as JSON.")] = False,
) -> None:
    """Print the live database's schema as agor-db's dialect-neutral model.

    Each column shows its kind (id36, text, json, boolean, epoch_ms, integer), the type the database
    declares, NOT NULL and default; then the primary key, foreign keys and indexes. Kinds of columns
    whose SQL type does not tell come from column-kinds.toml in the SQL folder. Reads only.

    \b
    Examples:
      agor-db schema
      agor-db schema -d postgresql://agor:agor@localhost:5432/agor --json
    """

    def body(s: Session) -> int:
        from ..core.source import sql_root
        from ..schema.check import read_live
        from ..schema.model import load_kinds, render, to_json

        url = s.url(database_url)
        kinds = load_kinds(sql_root(sql_dir))
        model = read_live(url, kinds)
        if as_json:
            doc = {"database": url.display, **to_json(model)}
            print(redact(json.dumps(doc, indent=2), s.out.secrets))
        else:
            s.out.line(f"database: {url.display} ({url.dialect}, {len(model.tables)} tables)")
            for line in render(model).splitlines():
                s.out.line(line)
        return 0

    run(body)


@app.command(epilog=EXIT_CODES)
def check(
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            "-d",
            help="A PostgreSQL server to create the scratch database on (the role needs CREATEDB). "
            "Default: $AGOR_DATABASE_URL, $DATABASE_URL.",
            show_default=False,
        ),
    ] = None,
    sql_dir: SqlDirOpt = None,
    write: Annotated[
        bool,
        typer.Option("--write", help="Write sql/schema/postgres.sql and sqlite.sql from what the folders build."),
    ] = False,
) -> None:
    """Prove sql/sqlite and sql/postgres build the same schema; exit 0 when clean, 1 otherwise.

    \b
    Lints both folders: malformed or duplicate versions; every migration after 0010 must be a pair
    (same version and name in both folders); the archived SQLite files 0000-0010 must match the
    checksums pinned in sqlite-archive.json; no SQL of the other dialect (backticks, PRAGMA,
    AUTOINCREMENT in postgres/; SERIAL, JSONB, :: casts in sqlite/).
    Then applies sqlite/ to a scratch SQLite file and postgres/ to a scratch database created on the
    server (and dropped afterwards), and compares the two schemas under the type map. Differences
    reviewed in differences.toml are accepted. Every problem is printed as one line.

    \b
    Lints every pair after 0010: squawk (with sql/squawk.toml) and agor-db's own rules on the
    PostgreSQL half, lost columns/indexes in table rebuilds and PRAGMA foreign_keys on the SQLite half;
    errors fail, warnings are printed. A file may allow a rule with
    '-- agor-db: allow RULE: reason'. Without squawk ($AGOR_SQUAWK, the virtualenv, PATH) that part
    is reported as skipped, never as clean. Compares sql/schema/*.sql with what the folders build;
    --write rewrites them. Exit 2: a file the parser cannot read, or a malformed suppression.

    \b
    Examples:
      agor-db check -d postgresql://agor:agor@localhost:5432/postgres
      agor-db check --write -d postgresql://agor:agor@localhost:5432/postgres
      AGOR_DATABASE_URL=postgresql://... agor-db check --sql-dir ./sql
    """

    def body(s: Session) -> int:
        from ..schema.check import check as check_folders

        result = check_folders(s.url(database_url), sql_dir, write=write)
        for line in result.problems:
            s.out.line(line, style="red")
        for line in result.warnings:
            s.out.line(line, style="yellow")
        for line in result.notes:
            s.out.line(line, style="yellow" if line.startswith("lint:") else "")
        s.out.line(result.summary, style="bold" if result.problems else "green")
        return result.exit_code

    run(body)
