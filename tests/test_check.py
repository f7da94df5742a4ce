"""agor-db check: clean on the shipped folders; on a sabotaged copy it prints exactly the lines that
drifted, exits 1, leaves the folder as it was and no scratch database behind."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

from agor_db.cli_schema import FolderFile, blank_comments_and_strings, lint_dialect
from conftest import REPO, run_cli

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

    assert result.code == 1, result.output
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
        "postgres/: applying the migrations failed: migration 0012_add_color.sql failed at statement 1 of 1 "
        '(line 2): ALTER TABLE `boards` ADD color TEXT;; database said: syntax error at or near "`" (SQLSTATE 42601)'
    )
    assert len(problems) == 4  # postgres did not build, so there is no schema comparison
    assert snapshot(root) == before
    assert scratch_databases(pg_admin_of, pg_db) == []

    # With the postgres pair fixed, the schema comparison shows the type, the index and the unpaired column.
    (root / "postgres" / "0012_add_color.sql").write_text("ALTER TABLE boards ADD color TEXT;\n")
    result = run_cli("check", "--database-url", pg_db, "--sql-dir", str(root))
    assert result.code == 1, result.output
    problems = result.stdout.strip().splitlines()[:-1]
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
    assert result.stdout.splitlines()[:-1] == [
        "differences.toml: stale entry, no such difference: worktrees index worktrees_repo_name_unique: "
        "sqlite index (repo_id, name) vs postgres unique index (repo_id, name)"
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
    from agor_db.schema import normalise_default

    assert normalise_default("0", "boolean") == normalise_default("false", "boolean") == "false"
    assert normalise_default("true", "boolean") == "true"
    assert normalise_default("'[]'::jsonb", "json") == normalise_default("'[]'", "json") == "'[]'"
    assert normalise_default("'{\"a\": 1}'", "json") == "'{\"a\":1}'"
    assert normalise_default("'anonymous'::character varying", "id36") == "'anonymous'"
    assert normalise_default("'it''s'::text", "text") == "'it''s'"
    assert normalise_default("(0)", "integer") == "0"
    assert normalise_default("NULL", "text") is None
    assert normalise_default("'a::b'", "text") == "'a::b'"
