"""agor-db check: clean on the shipped folders; on a sabotaged copy it prints exactly the lines that
drifted, exits 1, leaves the folder as it was and no scratch database behind."""

from __future__ import annotations

import hashlib
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from agor_db.core.sqltext import blank_comments_and_strings
from agor_db.schema.check import FolderFile, lint_dialect
from conftest import REPO, finish_cli, run_cli, spawn_cli

SQL = REPO / "sql"


def scratch_databases(pg_admin_of: Any, url: str) -> list[str]:
    with pg_admin_of(url) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'agor_db_check_%'").fetchall()
    return [r[0] for r in rows]


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_check_is_clean_on_the_shipped_folders(pg_db: str, pg_admin_of: Any) -> None:
    result = run_cli("check", "--database-url", pg_db, "--sql-dir", str(SQL))
    assert result.code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    assert lines[0].startswith("check: clean; sqlite/ (9 files, up to 0010) and postgres/ (1 file, up to 0010)")
    assert "(5 reviewed differences" in lines[0]
    assert scratch_databases(pg_admin_of, pg_db) == []


def test_check_reads_the_server_from_the_environment(pg_db: str) -> None:
    result = run_cli("check", "--sql-dir", str(SQL), env={"AGOR_DATABASE_URL": pg_db})
    assert result.code == 0, result.output
    assert result.stdout.startswith("check: clean;")


def test_check_points_at_every_sabotage(tmp_path: Path, pg_db: str, pg_admin_of: Any) -> None:
    root = tmp_path / "sql"
    shutil.copytree(SQL, root)
    baseline = root / "postgres" / "0010_baseline.sql"
    text = baseline.read_text()
    # 1. a changed column type; 2. a missing index
    text = text.replace(
        "    archived BOOLEAN NOT NULL DEFAULT false,\n    archived_reason",
        "    archived TEXT NOT NULL DEFAULT false,\n    archived_reason",
    )
    text = text.replace("CREATE INDEX tasks_status_idx ON tasks (status);\n", "")
    baseline.write_text(text)
    # 3. an unpaired migration after the baseline
    (root / "sqlite" / "0011_add_tags.sql").write_text("ALTER TABLE sessions ADD tags text;\n")
    # 4. a backtick in a postgres file of a proper pair (PostgreSQL also refuses to apply it)
    (root / "sqlite" / "0012_add_color.sql").write_text("ALTER TABLE boards ADD color text;\n")
    (root / "postgres" / "0012_add_color.sql").write_text(
        "-- `comment` backticks are fine\nALTER TABLE `boards` ADD color TEXT;\n"
    )
    # 5. an edited archived file
    archived = root / "sqlite" / "0003_tough_iron_lad.sql"
    pinned = hashlib.sha256(archived.read_bytes()).hexdigest()
    archived.write_text(archived.read_text() + "-- a harmless-looking edit\n")
    edited = hashlib.sha256(archived.read_bytes()).hexdigest()
    before = snapshot(root)

    result = run_cli("check", "--database-url", pg_db, "--sql-dir", str(root))

    assert result.code == 2, result.output  # a file the parser cannot read is bad input
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == f"check: {len(lines) - 1} problem(s) in {root}"
    problems = lines[:-1]
    assert problems[:3] == [
        "sqlite/0011_add_tags.sql: unpaired; postgres/0011_add_tags.sql is missing "
        "(every migration after 0010 is a pair; agor-db new NAME makes both)",
        f"sqlite/0003_tough_iron_lad.sql: archived file was edited (sha256 {edited[:12]}..., pinned {pinned[:12]}...); "
        "restore it and put the change in a new migration pair",
        'postgres/0012_add_color.sql:2: backtick quoting is SQLite/MySQL syntax; PostgreSQL quotes identifiers with "',
    ]
    assert problems[3] == (
        "postgres/0012_add_color.sql:2: invalid syntax-error: the parser says: expected table relation name"
    )
    assert problems[4] == (
        "postgres/: applying the migrations failed: migration 0012_add_color.sql failed at statement 1 of 1 "
        '(line 2): ALTER TABLE `boards` ADD color TEXT;; database said: syntax error at or near "`" (SQLSTATE 42601)'
    )
    assert problems[5].startswith("schema/sqlite.sql:") and "stale;" in problems[5]
    assert len(problems) == 6  # postgres did not build, so there is no schema comparison and no snapshot
    assert snapshot(root) == before
    assert scratch_databases(pg_admin_of, pg_db) == []

    # With the postgres pair fixed, the schema comparison shows the type, the index and the unpaired column.
    (root / "postgres" / "0012_add_color.sql").write_text("ALTER TABLE boards ADD color TEXT;\n")
    result = run_cli("check", "--database-url", pg_db, "--sql-dir", str(root))
    assert result.code == 1, result.output
    problems = [p for p in result.stdout.strip().splitlines()[:-1] if not p.startswith("schema/")]
    assert problems[2:] == [
        "sessions.archived: sqlite boolean(integer) vs postgres text",
        "sessions.tags: sqlite text(text) vs postgres absent",
        "tasks index tasks_status_idx: sqlite index (status) vs postgres absent",
    ]
    assert scratch_databases(pg_admin_of, pg_db) == []


def test_check_reports_stale_reviewed_differences(tmp_path: Path, pg_db: str) -> None:
    root = tmp_path / "sql"
    shutil.copytree(SQL, root)
    baseline = root / "postgres" / "0010_baseline.sql"
    baseline.write_text(
        baseline.read_text().replace(
            "CREATE UNIQUE INDEX worktrees_repo_name_unique", "CREATE INDEX worktrees_repo_name_unique"
        )
    )
    result = run_cli("check", "--database-url", pg_db, "--sql-dir", str(root))
    assert result.code == 1, result.output
    problems = result.stdout.splitlines()[:-1]
    assert problems[0] == (
        "differences.toml: stale entry, no such difference: worktrees index worktrees_repo_name_unique: "
        "sqlite index (repo_id, name) vs postgres unique index (repo_id, name)"
    )
    # the committed snapshot shows the same change, on its own line
    assert problems[1:] == [
        f"schema/postgres.sql:{problems[1].split(':')[1]}: stale; the file says 'CREATE UNIQUE INDEX "
        "worktrees_repo_name_unique ON worktrees USING btree (repo_id, name);', the folder builds 'CREATE INDEX "
        "worktrees_repo_name_unique ON worktrees USING btree (repo_id, name);'; run agor-db check --write"
    ]


def test_check_lints_names_and_versions(tmp_path: Path, pg_db: str) -> None:
    root = tmp_path / "sql"
    shutil.copytree(SQL, root)
    (root / "postgres" / "0011_a.sql").write_text("SELECT 1;\n")
    (root / "postgres" / "0011_b.sql").write_text("SELECT 1;\n")
    (root / "sqlite" / "12_short.sql").write_text("SELECT 1;\n")
    (root / "sqlite" / "notes.sql").write_text("SELECT 1;\n")
    result = run_cli("check", "--database-url", pg_db, "--sql-dir", str(root))
    assert result.code == 1, result.output
    problems = result.stdout.splitlines()[:-1]
    assert "sqlite/12_short.sql: malformed version '12'; versions have four digits (e.g. 0011)" in problems
    assert "sqlite/notes.sql: malformed file name; migrations are named NNNN_name.sql" in problems
    assert "postgres/: version 0011 is used by 2 files: 0011_a.sql, 0011_b.sql" in problems
    assert "sqlite/: not applied because of the problems above" in problems
    assert "postgres/: not applied because of the problems above" in problems


def _wait_until(what: str, found: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not found():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_a_stop_while_check_drops_its_scratch_database_still_drops_it(pg_db: str, pg_admin_of: Any) -> None:
    """SIGTERM cancels check's DROP DATABASE on the server; the scratch database must not stay behind."""
    proc = spawn_cli(["check", "--database-url", pg_db, "--sql-dir", str(SQL)])
    waiting_drop = (
        "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND query LIKE 'DROP DATABASE IF EXISTS \"agor_db_check_%'"
    )
    with pg_admin_of(pg_db) as holder, pg_admin_of(pg_db) as watcher:
        _wait_until("the scratch database", lambda: scratch_databases(pg_admin_of, pg_db))
        # DROP DATABASE needs ROW EXCLUSIVE on pg_database: held off, it is surely running when the signal lands
        with holder.transaction():
            holder.execute("LOCK TABLE pg_database IN SHARE MODE")
            _wait_until("check's DROP DATABASE", lambda: len(watcher.execute(waiting_drop).fetchall()) == 1)
            (first,) = watcher.execute(waiting_drop).fetchone()
            proc.send_signal(signal.SIGTERM)
            # the cancelled DROP has returned to agor-db (its backend waits no more) before the lock goes
            _wait_until("the cancel of the DROP", lambda: (first,) not in watcher.execute(waiting_drop).fetchall())
        code, _out, err = finish_cli(proc)
    assert code == 143, err
    assert "terminated (SIGTERM)" in err
    assert scratch_databases(pg_admin_of, pg_db) == []


def test_check_needs_a_postgres_server(tmp_path: Path) -> None:
    result = run_cli("check", "--database-url", f"sqlite://{tmp_path / 'x.db'}", "--sql-dir", str(SQL))
    assert result.code == 2
    assert "check needs a PostgreSQL server" in result.stderr
    assert not (tmp_path / "x.db").exists()


def test_dialect_lint_ignores_comments_and_strings(tmp_path: Path) -> None:
    lite = tmp_path / "0011_x.sql"
    lite.write_text(
        "-- SERIAL and JSONB and :: in a comment are fine\n"
        "CREATE TABLE t (id SERIAL, doc JSONB, note text DEFAULT 'a::b');\n"
        "/* PRAGMA :: */ SELECT x::int FROM t;\n"
    )
    pg = tmp_path / "0011_y.sql"
    pg.write_text(
        "PRAGMA foreign_keys = ON;\nCREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, s TEXT DEFAULT '`');\n"
    )
    found = lint_dialect([FolderFile("sqlite", lite, 11, "x"), FolderFile("postgres", pg, 11, "y")])
    assert found == [
        "sqlite/0011_x.sql:2: SERIAL is PostgreSQL-only; in SQLite it is no rowid alias and stays NULL",
        "sqlite/0011_x.sql:2: JSONB is PostgreSQL-only; SQLite keeps JSON as text",
        "sqlite/0011_x.sql:3: '::' casts are PostgreSQL-only; use CAST(x AS type)",
        "postgres/0011_y.sql:1: PRAGMA is SQLite-only",
        "postgres/0011_y.sql:2: AUTOINCREMENT is SQLite-only; use GENERATED ... AS IDENTITY",
    ]
    assert blank_comments_and_strings("a -- b\nc 'd''e' f") == "a     \nc        f"


def test_defaults_compare_by_value_under_the_kind() -> None:
    from agor_db.schema.model import normalise_default

    assert normalise_default("0", "boolean") == normalise_default("false", "boolean") == "false"
    assert normalise_default("true", "boolean") == "true"
    assert normalise_default("'[]'::jsonb", "json") == normalise_default("'[]'", "json") == "'[]'"
    assert normalise_default("'{\"a\": 1}'", "json") == "'{\"a\":1}'"
    assert normalise_default("'anonymous'::character varying", "id36") == "'anonymous'"
    assert normalise_default("'it''s'::text", "text") == "'it''s'"
    assert normalise_default("(0)", "integer") == "0"
    assert normalise_default("NULL", "text") is None
    assert normalise_default("'a::b'", "text") == "'a::b'"


# -- schema snapshots ------------------------------------------------------------------------------


def test_snapshots_round_trip(pg_db: str, tmp_path: Path) -> None:
    """Applying sql/schema/postgres.sql (sqlite.sql) to an empty database gives the same schema,
    rendered identically, as the folder builds."""
    import apsw
    import psycopg

    from agor_db.schema.model import canonical, introspect_postgres, introspect_sqlite
    from agor_db.schema.snapshot import render_postgres, render_sqlite

    pg_text = (SQL / "schema" / "postgres.sql").read_text()
    top = pg_text.split("builds up to ", 1)[1].split(",", 1)[0]
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(pg_text.encode())
        assert render_postgres(conn, top) == pg_text
        from_snapshot = introspect_postgres(conn)
    lite_text = (SQL / "schema" / "sqlite.sql").read_text()
    lite = apsw.Connection(str(tmp_path / "s.db"))
    lite.execute(lite_text)
    assert render_sqlite(lite, lite_text.split("builds up to ", 1)[1].split(",", 1)[0]) == lite_text
    from_lite = introspect_sqlite(lite)
    lite.close()

    # and the same model the folders build with the real runner
    from agor_db.schema.scratch import sqlite_schema
    from agor_db.schema.model import load_kinds

    built, _text = sqlite_schema(SQL, load_kinds(SQL))
    assert canonical(from_lite, cosmetic=True) == canonical(built, cosmetic=True)
    assert len(from_snapshot.tables) == 11


def test_stale_snapshot_fails_check_naming_the_line_and_the_command(tmp_path: Path, pg_db: str) -> None:
    root = tmp_path / "sql"
    shutil.copytree(SQL, root)
    pair = "ALTER TABLE boards ADD color text;\n"
    (root / "sqlite" / "0011_add_color.sql").write_text(pair)
    (root / "postgres" / "0011_add_color.sql").write_text(pair.replace("text", "TEXT"))
    before = snapshot(root)
    result = run_cli("check", "--database-url", pg_db, "--sql-dir", str(root))
    assert result.code == 1, result.output
    problems = result.stdout.splitlines()[:-1]
    pg_lines = (root / "schema" / "postgres.sql").read_text().splitlines()
    # the first differing schema line is named, not the header comment that carries the top version
    pg_n = pg_lines.index("    CONSTRAINT boards_pkey PRIMARY KEY (board_id)") + 1
    assert problems[0].startswith("schema/sqlite.sql:") and "stale;" in problems[0]
    assert problems[0].endswith("the folder builds ', color text);'; run agor-db check --write")
    assert problems[1] == (
        f"schema/postgres.sql:{pg_n}: stale; the file says 'CONSTRAINT boards_pkey PRIMARY KEY (board_id)', "
        "the folder builds 'color text,'; run agor-db check --write"
    )
    assert len(problems) == 2
    assert snapshot(root) == before  # check without --write writes nothing

    # --write refreshes both; the diff a reviewer sees is the header and the new column
    result = run_cli("check", "--write", "--database-url", pg_db, "--sql-dir", str(root))
    assert result.code == 0, result.output
    assert result.stdout.splitlines()[:2] == ["schema/sqlite.sql: written", "schema/postgres.sql: written"]
    after = (root / "schema" / "postgres.sql").read_text().splitlines()
    added = [text for text in after if text not in pg_lines]
    assert added == [
        "-- The schema sql/postgres/ builds up to 0011_add_color, written by `agor-db check --write`; do not edit.",
        "    color text,",
    ]
    result = run_cli("check", "--database-url", pg_db, "--sql-dir", str(root))
    assert result.code == 0 and result.stdout.startswith("check: clean;"), result.output

    # a hand edit in the middle is named by its line
    text = (root / "schema" / "postgres.sql").read_text().replace("    color text,\n", "    colour text,\n")
    (root / "schema" / "postgres.sql").write_text(text)
    n = text.splitlines().index("    colour text,") + 1
    result = run_cli("check", "--database-url", pg_db, "--sql-dir", str(root))
    assert result.code == 1
    assert result.stdout.splitlines()[0] == (
        f"schema/postgres.sql:{n}: stale; the file says 'colour text,', the folder builds 'color text,'; "
        "run agor-db check --write"
    )
    # a missing snapshot
    (root / "schema" / "sqlite.sql").unlink()
    result = run_cli("check", "--database-url", pg_db, "--sql-dir", str(root))
    assert "schema/sqlite.sql: missing; run agor-db check --write" in result.stdout.splitlines()


# -- the lint through check ------------------------------------------------------------------------


def _pair(root: Path, name: str, sqlite: str, postgres: str) -> None:
    (root / "sqlite" / name).write_text(sqlite)
    (root / "postgres" / name).write_text(postgres)


def test_check_fails_on_an_unsafe_pair_and_prints_warnings(tmp_path: Path, pg_db: str) -> None:
    from agor_db.schema.lint import find_squawk

    if find_squawk() is None:
        pytest.skip("squawk (PyPI squawk-cli) is not installed")
    root = tmp_path / "sql"
    shutil.copytree(SQL, root)
    _pair(
        root,
        "0011_color.sql",
        "ALTER TABLE boards ADD color text NOT NULL DEFAULT 'blue';\n"
        "CREATE INDEX boards_color_idx ON boards (color);\n",
        "ALTER TABLE boards ADD COLUMN color TEXT NOT NULL DEFAULT 'blue';\n"
        "CREATE INDEX boards_color_idx ON boards (color);\n",
    )
    _pair(
        root,
        "0012_rename_slug.sql",
        "DROP INDEX boards_slug_idx;\nALTER TABLE boards RENAME COLUMN slug TO handle;\n",
        "-- agor-db: allow require-concurrent-index-deletion: boards holds a few rows per team\n"
        "DROP INDEX boards_slug_idx;\nALTER TABLE boards RENAME COLUMN slug TO handle;\n",
    )
    assert run_cli("check", "--write", "--database-url", pg_db, "--sql-dir", str(root)).code == 1
    before = snapshot(root)
    result = run_cli("check", "--database-url", pg_db, "--sql-dir", str(root))
    assert result.code == 1, result.output
    assert result.stdout.splitlines() == [
        "postgres/0011_color.sql:2: error require-concurrent-index-creation: CREATE INDEX blocks writes to the "
        "table while the index builds; instead: CREATE INDEX CONCURRENTLY IF NOT EXISTS in a migration of its own "
        "with '-- transactional: false'",
        "postgres/0012_rename_slug.sql:3: warning renaming-column: the running Agor still uses the old name during "
        "a rolling deploy; instead: add the new column, write both, switch readers, drop the old one",
        f"check: 1 problem(s) in {root}",
    ]
    assert snapshot(root) == before
    assert scratch_databases_of(pg_db) == []


def scratch_databases_of(url: str) -> list[str]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'agor_db_check_%'").fetchall()
    return [r[0] for r in rows]


def test_check_exits_2_on_sql_the_parser_cannot_read(tmp_path: Path, pg_db: str) -> None:
    root = tmp_path / "sql"
    shutil.copytree(SQL, root)
    _pair(root, "0011_broken.sql", "-- oops\nALTER TABLE boards ADD;\n", "SELECT 1;\n")
    result = run_cli("check", "--database-url", pg_db, "--sql-dir", str(root))
    assert result.code == 2, result.output
    assert 'sqlite/0011_broken.sql:2: invalid syntax-error: the parser says: near ";": syntax error' in result.stdout
    _pair(root, "0011_broken.sql", "-- agor-db: allow made-up-rule: because\nSELECT 1;\n", "SELECT 1;\n")
    result = run_cli("check", "--database-url", pg_db, "--sql-dir", str(root))
    assert result.code == 2, result.output
    assert "sqlite/0011_broken.sql:1: invalid suppression: unknown rule 'made-up-rule'" in result.stdout


def test_missing_squawk_is_a_clear_skip_never_clean(tmp_path: Path, pg_db: str) -> None:
    root = tmp_path / "sql"
    shutil.copytree(SQL, root)
    _pair(root, "0011_color.sql", "ALTER TABLE boards ADD color text;\n", "ALTER TABLE boards ADD COLUMN color TEXT;\n")
    missing = str(tmp_path / "no" / "squawk")
    result = run_cli("check", "--write", "--database-url", pg_db, "--sql-dir", str(root), env={"AGOR_SQUAWK": missing})
    assert result.code == 0, result.output
    lines = result.stdout.splitlines()
    assert (
        f"lint: SKIPPED the squawk lint of postgres/ (squawk not found (AGOR_SQUAWK or {missing}); install "
        "squawk-cli); its rules were not checked" in lines
    )
    assert lines[-1].startswith("check: no problems, but NOT clean: the squawk lint was skipped;")
    assert "clean;" not in lines[-1].replace("NOT clean:", "")


def test_migrate_refuses_concurrently_in_a_transactional_file(sql_root: Path, pg_db: str) -> None:
    from conftest import write_migrations

    write_migrations(
        sql_root,
        "postgres",
        {
            "0001_t.sql": "CREATE TABLE t (id BIGINT);\n",
            "0002_idx.sql": "-- an index\n\nCREATE INDEX CONCURRENTLY t_id_idx ON t (id);\n",
        },
    )
    result = run_cli("migrate", "--database-url", pg_db, "--sql-dir", str(sql_root))
    assert result.code == 2, result.output
    assert "0002_idx.sql:3: CONCURRENTLY cannot run inside a transaction, and this file runs in one" in result.stderr
    assert "-- transactional: false" in result.stderr
    import psycopg

    with psycopg.connect(pg_db) as conn:  # validation runs before anything: not even 0001 ran
        assert conn.execute("SELECT to_regclass('t')").fetchone() == (None,)


def test_new_refreshes_the_snapshots_and_says_what_to_run_next(tmp_path: Path, pg_db: str) -> None:
    root = tmp_path / "sql"
    shutil.copytree(SQL, root)
    shutil.rmtree(root / "schema")
    result = run_cli("new", "add_color", "--sql-dir", str(root))
    assert result.code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:2] == [
        "schema/sqlite.sql: written",
        "schema/postgres.sql: not refreshed (no PostgreSQL server; pass --database-url)",
    ]
    assert lines[-1] == (
        f"next: write the change in both files, then run `agor-db check --write --sql-dir {root}` (with a "
        "PostgreSQL server) to lint the pair and refresh sql/schema/*.sql; commit all four files"
    )
    assert (root / "schema" / "sqlite.sql").read_text() == (SQL / "schema" / "sqlite.sql").read_text()
    result = run_cli("new", "add_size", "--sql-dir", str(root), "--database-url", pg_db)
    assert result.code == 0, result.output
    # the folders hold an empty 0011 now, so they no longer build: said, and the pair is still made
    assert result.stdout.splitlines()[0].startswith("schema/sqlite.sql: not refreshed; sqlite/ does not build:")
    assert (root / "postgres" / "0012_add_size.sql").is_file()


RICH_PG = """
CREATE TYPE mood AS ENUM ('calm', 'busy');
CREATE TABLE parent (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    n SERIAL,
    feeling mood DEFAULT 'calm',
    twice BIGINT GENERATED ALWAYS AS (id * 2) STORED,
    "order" INTEGER CHECK ("order" >= 0)
);
CREATE TABLE "Child" (
    id VARCHAR(36) PRIMARY KEY,
    parent_id BIGINT REFERENCES parent (id) ON DELETE CASCADE,
    payload JSONB NOT NULL DEFAULT '{}'::jsonb
);
CREATE UNIQUE INDEX child_payload_kind ON "Child" ((payload ->> 'kind')) WHERE parent_id IS NOT NULL;
CREATE SEQUENCE tickets START WITH 100 INCREMENT BY 5;
CREATE VIEW busy_parents AS SELECT id, code FROM parent WHERE feeling = 'busy';
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.code := lower(NEW.code); RETURN NEW; END $$;
CREATE TRIGGER parent_touch BEFORE INSERT ON parent FOR EACH ROW EXECUTE FUNCTION touch();
"""


def test_postgres_snapshot_round_trips_what_later_migrations_may_add(pg_db: str) -> None:
    """Enums, identity and serial columns, generated columns, checks, unique constraints, expression and
    partial indexes, quoted names, sequences, views, functions and triggers: rendered, applied to an
    empty schema, rendered again, identical."""
    import psycopg

    from agor_db.schema.snapshot import render_postgres

    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA a; CREATE SCHEMA b; SET search_path = a")
        conn.execute(RICH_PG.encode())
        first = render_postgres(conn, "0011_rich")
        conn.execute("SET search_path = b")
        conn.execute(first.encode())
        second = render_postgres(conn, "0011_rich")
    assert second == first
    for expected in (
        "CREATE TYPE mood AS ENUM ('calm', 'busy');",
        'CREATE TABLE "Child" (',
        '    "order" integer,',
        "CREATE TRIGGER parent_touch BEFORE INSERT ON parent",
        "CREATE VIEW busy_parents AS",
    ):
        assert expected in first, first
    assert " a." not in first  # no schema names: the snapshot applies wherever search_path points


def test_sqlite_snapshot_round_trips_views_and_triggers(tmp_path: Path) -> None:
    import apsw

    from agor_db.schema.snapshot import render_sqlite

    one = apsw.Connection(str(tmp_path / "one.db"))
    one.execute(
        "CREATE TABLE b (id INTEGER PRIMARY KEY, name TEXT UNIQUE); CREATE INDEX b_name ON b (lower(name));"
        "CREATE TABLE a (id INTEGER PRIMARY KEY, b_id INTEGER REFERENCES b (id));"
        "CREATE VIEW named AS SELECT a.id, b.name FROM a JOIN b ON b.id = a.b_id;"
        "CREATE TRIGGER a_touch AFTER INSERT ON a BEGIN UPDATE b SET name = name WHERE id = NEW.b_id; END;"
        "CREATE TABLE agor_migrations (version INTEGER);"
    )
    first = render_sqlite(one, "0011_x")
    two = apsw.Connection(str(tmp_path / "two.db"))
    two.execute(first)
    assert render_sqlite(two, "0011_x") == first
    assert "agor_migrations" not in first
    assert first.index("CREATE TABLE a ") < first.index("CREATE TRIGGER a_touch") < first.index("CREATE TABLE b ")
