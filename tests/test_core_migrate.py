"""The runner core end to end through the real CLI, on real SQLite files and a real PostgreSQL 16.

Every test runs on both dialects with a synthetic SQL root, so it does not depend on Agor's schema.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli, write_migrations


@dataclass
class Db:
    dialect: str
    url: str
    query: Callable[[str], list[tuple[Any, ...]]]
    root: Path

    def run(self, *args: str) -> Any:
        return run_cli(*args, "-d", self.url, "--sql-dir", str(self.root))

    def write(self, files: dict[str, str]) -> Path:
        return write_migrations(self.root, self.dialect, files)

    def tables(self) -> set[str]:
        if self.dialect == "sqlite":
            rows = self.query("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")
        else:
            rows = self.query("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        return {r[0] for r in rows}

    def journal(self) -> list[tuple[Any, ...]]:
        if "agor_migrations" not in self.tables():
            return []
        return self.query("SELECT version, name, checksum, how FROM agor_migrations ORDER BY version")


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path, sql_root: Path) -> Db:
    if request.param == "sqlite":
        import apsw

        path = tmp_path / "agor.db"

        def q(sql: str) -> list[tuple[Any, ...]]:
            if not path.exists():
                return []
            conn = apsw.Connection(str(path))
            try:
                return [tuple(r) for r in conn.execute(sql)]
            finally:
                conn.close()

        return Db("sqlite", f"sqlite://{path}", q, sql_root)
    url = request.getfixturevalue("pg_db")
    admin = request.getfixturevalue("pg_admin_of")

    def pq(sql: str) -> list[tuple[Any, ...]]:
        with admin(url) as conn:
            return [tuple(r) for r in conn.execute(sql).fetchall()]

    return Db("postgres", url, pq, sql_root)


def _checksum(path: Path) -> str:
    from agor_db.core.source import checksum

    return checksum(path.read_bytes())


def test_fresh_migrate_applies_in_order_and_journals(db: Db) -> None:
    folder = db.write(
        {
            "0001_users.sql": "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n",
            "0002_seed.sql": "-- seed one row\nINSERT INTO users (id, name) VALUES (1, 'ann');\n",
            "0010_more.sql": "CREATE TABLE more (id INTEGER);\nCREATE INDEX more_id ON more (id);\n",
        }
    )
    r = db.run("migrate")
    assert r.code == 0, r.output
    assert [line.split(" (")[0] for line in r.stdout.splitlines()[:3]] == [
        "applied 0001_users.sql",
        "applied 0002_seed.sql",
        "applied 0010_more.sql",
    ]
    assert "version 0010" in r.stdout
    assert db.journal() == [
        (1, "users", _checksum(folder / "0001_users.sql"), "applied"),
        (2, "seed", _checksum(folder / "0002_seed.sql"), "applied"),
        (10, "more", _checksum(folder / "0010_more.sql"), "applied"),
    ]
    assert db.query("SELECT id, name FROM users") == [(1, "ann")]
    times = db.query("SELECT applied_at, duration_ms FROM agor_migrations")
    assert all(at > 1_700_000_000_000 and dur >= 0 for at, dur in times)

    again = db.run("migrate")
    assert again.code == 0, again.output
    assert "nothing to migrate" in again.stdout and "version 0010" in again.stdout
    assert db.query("SELECT count(*) FROM users") == [(1,)]


def test_journal_id_column_type(db: Db) -> None:
    db.write({"0001_a.sql": "CREATE TABLE a (id INTEGER);\n"})
    assert db.run("migrate").code == 0
    if db.dialect == "sqlite":
        ddl = db.query("SELECT sql FROM sqlite_master WHERE name='agor_migrations'")[0][0]
        assert "id INTEGER PRIMARY KEY AUTOINCREMENT" in ddl
    else:
        default = db.query(
            "SELECT column_default FROM information_schema.columns "
            "WHERE table_name='agor_migrations' AND column_name='id'"
        )[0][0]
        assert default.startswith("nextval(")  # SERIAL


def test_failing_statement_rolls_back_that_migration_only(db: Db) -> None:
    db.write(
        {
            "0001_ok.sql": "CREATE TABLE ok (id INTEGER);\n",
            "0002_bad.sql": "CREATE TABLE half (id INTEGER);\nINSERT INTO half VALUES (1);\n\n"
            "SELECT no_such_column FROM half;\n",
            "0003_later.sql": "CREATE TABLE later (id INTEGER);\n",
        }
    )
    r = db.run("migrate")
    assert r.code == 1
    assert "0002_bad.sql failed at statement 3 of 3 (line 4): SELECT no_such_column FROM half;" in r.stderr
    assert "no_such_column" in r.stderr.split("database said:")[1]
    assert "rolled back" in r.stderr
    assert [row[0] for row in db.journal()] == [1]
    assert {"ok", "agor_migrations"} <= db.tables()
    assert "half" not in db.tables() and "later" not in db.tables()


def test_error_line_points_into_multiline_statement(db: Db) -> None:
    db.write({"0001_a.sql": "-- header\n\nSELECT 1\n  FROM\n  no_such_table;\n"})
    r = db.run("migrate")
    assert r.code == 1
    assert "no_such_table" in r.stderr
    # PostgreSQL reports the error position, so the line is that of the bad name; SQLite names the statement
    assert ("(line 5)" if db.dialect == "postgres" else "(line 3)") in r.stderr
    assert db.journal() == []


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"0001_a.sql": "CREATE TABLE a (id INTEGER);\n", "0002_b.sql": "-- only a comment\n"}, "no SQL statements"),
        ({"0001_a.sql": "CREATE TABLE a (id INTEGER);\n", "2_b.sql.sql": "SELECT 1;\n"}, "malformed migration file"),
        ({"0001_a.sql": "CREATE TABLE a (id INTEGER);\n", "notes.sql": "SELECT 1;\n"}, "malformed migration file"),
        (
            {"0001_a.sql": "CREATE TABLE a (id INTEGER);\n", "001_b.sql": "SELECT 1;\n"},
            "two migrations share version 1",
        ),
        (
            {"0001_a.sql": "CREATE TABLE a (id INTEGER);\n", "0002_b.sql": "-- depends: 0009_x\nSELECT 1;\n"},
            "unknown migration(s): 0009_x",
        ),
        (
            {"0001_a.sql": "CREATE TABLE a (id INTEGER);\n", "0002_b.sql": "-- transactional: maybe\nSELECT 1;\n"},
            "must be true or false",
        ),
    ],
)
def test_malformed_input_applies_nothing(db: Db, files: dict[str, str], message: str) -> None:
    db.write(files)
    r = db.run("migrate")
    assert r.code == 2, r.output
    assert message in r.stderr
    assert "a" not in db.tables()
    assert db.journal() == []


def test_non_utf8_file_is_refused_before_anything_runs(db: Db) -> None:
    folder = db.write({"0001_a.sql": "CREATE TABLE a (id INTEGER);\n"})
    (folder / "0002_b.sql").write_bytes(b"INSERT INTO a VALUES (1); -- caf\xe9\n")
    r = db.run("migrate")
    assert r.code == 2
    assert "0002_b.sql is not valid UTF-8" in r.stderr
    assert "a" not in db.tables()


def test_edited_applied_migration_is_drift(db: Db) -> None:
    folder = db.write({"0001_a.sql": "CREATE TABLE a (id INTEGER);\n"})
    assert db.run("migrate").code == 0
    before = _checksum(folder / "0001_a.sql")
    (folder / "0001_a.sql").write_text("CREATE TABLE a (id BIGINT);\n")
    db.write({"0002_b.sql": "CREATE TABLE b (id INTEGER);\n"})
    r = db.run("migrate")
    assert r.code == 3
    assert "0001_a.sql was changed after it was applied" in r.stderr
    assert before[:16] in r.stderr and _checksum(folder / "0001_a.sql")[:16] in r.stderr
    assert "b" not in db.tables()
    status = db.run("status")
    assert status.code == 3 and "problem: 0001_a.sql was changed" in status.stdout


def test_line_endings_and_bom_do_not_count_as_edits(db: Db) -> None:
    folder = db.write({"0001_a.sql": "CREATE TABLE a (id INTEGER);\nCREATE TABLE b (id INTEGER);\n"})
    assert db.run("migrate").code == 0
    (folder / "0001_a.sql").write_bytes(b"\xef\xbb\xbfCREATE TABLE a (id INTEGER);\r\nCREATE TABLE b (id INTEGER);\r\n")
    r = db.run("migrate")
    assert r.code == 0, r.output
    (folder / "0001_a.sql").write_text("CREATE TABLE a (id INTEGER);\nCREATE TABLE b (id INTEGER); \n")
    assert db.run("migrate").code == 3  # trailing space is a real edit


def test_missing_and_renamed_applied_files_are_drift(db: Db) -> None:
    folder = db.write({"0001_a.sql": "CREATE TABLE a (id INTEGER);\n", "0002_b.sql": "CREATE TABLE b (id INTEGER);\n"})
    assert db.run("migrate").code == 0
    (folder / "0002_b.sql").rename(folder / "0002_bee.sql")
    r = db.run("migrate")
    assert r.code == 3 and "version 2 was applied as '0002_b.sql' but the file is now '0002_bee.sql'" in r.stderr
    (folder / "0002_bee.sql").unlink()
    r = db.run("migrate")
    assert r.code == 3 and "0002_b.sql is recorded as applied in the journal but the file is gone" in r.stderr


def test_out_of_order_refused_unless_allowed(db: Db) -> None:
    db.write({"0001_a.sql": "CREATE TABLE a (id INTEGER);\n", "0003_c.sql": "CREATE TABLE c (id INTEGER);\n"})
    assert db.run("migrate").code == 0
    db.write({"0002_b.sql": "CREATE TABLE b (id INTEGER);\n"})
    r = db.run("migrate")
    assert r.code == 3 and "0002_b.sql is pending but is older than the newest applied migration (0003)" in r.stderr
    assert "b" not in db.tables()
    r = db.run("migrate", "--allow-out-of-order")
    assert r.code == 0 and "applied 0002_b.sql" in r.stdout
    assert [row[0] for row in db.journal()] == [1, 2, 3]


def test_to_version_and_unknown_version(db: Db) -> None:
    db.write({f"000{i}_m{i}.sql": f"CREATE TABLE t{i} (id INTEGER);\n" for i in range(1, 5)})
    r = db.run("migrate", "--to", "0002")
    assert r.code == 0 and [row[0] for row in db.journal()] == [1, 2]
    r = db.run("migrate", "--to", "0007")
    assert r.code == 2, r.output
    said = f"--to 0007: the {db.dialect} folder has no migration with that version (it has 0001, 0002, 0003, 0004)"
    assert said in r.stderr
    assert [row[0] for row in db.journal()] == [1, 2]
    assert db.run("migrate").code == 0 and [row[0] for row in db.journal()] == [1, 2, 3, 4]


def test_dry_run_prints_sql_and_touches_nothing(db: Db, tmp_path: Path) -> None:
    db.write({"0001_a.sql": "CREATE TABLE a (id INTEGER);\n", "0002_b.sql": "-- note\n\nINSERT INTO a VALUES (7);\n"})
    r = db.run("migrate", "--dry-run")
    assert r.code == 0, r.output
    assert "2 migration(s) would be applied" in r.stdout
    assert "-- 0002_b.sql (in one transaction)" in r.stdout
    assert "-- line 3\nINSERT INTO a VALUES (7);" in r.stdout
    assert db.tables() == set()
    if db.dialect == "sqlite":
        assert not (tmp_path / "agor.db").exists()


def test_status_json_and_exit_code(db: Db) -> None:
    folder = db.write({"0001_a.sql": "CREATE TABLE a (id INTEGER);\n", "0002_b.sql": "CREATE TABLE b (id INTEGER);\n"})
    assert db.run("migrate", "--to", "1").code == 0
    r = db.run("status", "--json")
    assert r.code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["dialect"] == db.dialect
    assert [(a["version"], a["name"], a["how"]) for a in doc["applied"]] == [(1, "a", "applied")]
    assert doc["applied"][0]["checksum"] == _checksum(folder / "0001_a.sql")
    assert isinstance(doc["applied"][0]["applied_at"], int)
    assert doc["pending"] == [{"version": 2, "name": "b", "action": "apply"}]
    assert db.run("status", "--exit-code").code == 6
    text = db.run("status")
    assert "1 applied, 1 pending" in text.stdout and "0002" in text.stdout
    assert db.run("migrate").code == 0
    assert db.run("status", "--exit-code").code == 0


def test_status_never_creates_the_journal(db: Db) -> None:
    db.write({"0001_a.sql": "CREATE TABLE a (id INTEGER);\n"})
    r = db.run("status")
    assert r.code == 0 and "0 applied, 1 pending" in r.stdout
    assert "agor_migrations" not in db.tables()


def test_non_transactional_migration(db: Db) -> None:
    db.write({"0001_a.sql": "CREATE TABLE a (id INTEGER);\nINSERT INTO a VALUES (1);\n"})
    if db.dialect == "postgres":
        body = "-- transactional: false\nCREATE INDEX CONCURRENTLY a_id ON a (id);\n"
    else:
        body = "-- transactional: false\nVACUUM;\n"
    db.write({"0002_idx.sql": body})
    r = db.run("migrate")
    assert r.code == 0, r.output
    assert [row[0] for row in db.journal()] == [1, 2]
    if db.dialect == "postgres":
        assert db.query("SELECT indexname FROM pg_indexes WHERE tablename='a'") == [("a_id",)]


def test_failed_non_transactional_migration_is_not_journaled(db: Db) -> None:
    db.write({"0001_a.sql": "-- transactional: false\nCREATE TABLE a (id INTEGER);\nCREATE TABLE a (id INTEGER);\n"})
    r = db.run("migrate")
    assert r.code == 1
    assert "NOT transactional" in r.stderr and "not journaled" in r.stderr
    assert db.journal() == []


def test_new_creates_a_pair_above_the_highest_version(sql_root: Path) -> None:
    write_migrations(sql_root, "sqlite", {"0010_x.sql": "SELECT 1;\n"})
    write_migrations(sql_root, "postgres", {"0012_y.sql": "SELECT 1;\n"})
    r = run_cli("new", "Add session tags!", "--sql-dir", str(sql_root))
    assert r.code == 0, r.output
    for dialect, other in (("sqlite", "postgres"), ("postgres", "sqlite")):
        text = (sql_root / dialect / "0013_add_session_tags.sql").read_text()
        assert f"sql/{other}/0013_add_session_tags.sql" in text
        assert "equivalent" in text
    r = run_cli("new", "!!!", "--sql-dir", str(sql_root))
    assert r.code == 2 and "has no letters or digits" in r.stderr


def test_new_takes_a_name_not_a_file_name(sql_root: Path) -> None:
    """A user who types the file name they expect gets neither 0001_0001_add_tags.sql nor add_tags_sql."""
    r = run_cli("new", "0011_add_tags", "--sql-dir", str(sql_root))
    assert r.code == 2, r.output
    assert "starts with a version number; agor-db new numbers the pair itself" in r.stderr
    assert "hint: give only the name: agor-db new add_tags" in r.stderr
    assert list(sql_root.rglob("*.sql")) == []
    r = run_cli("new", "add_tags.sql", "--sql-dir", str(sql_root))
    assert r.code == 0, r.output
    made = sorted(str(p.relative_to(sql_root)) for d in ("sqlite", "postgres") for p in (sql_root / d).glob("*.sql"))
    assert made == ["postgres/0000_add_tags.sql", "sqlite/0000_add_tags.sql"]


def test_new_file_left_empty_is_refused_by_migrate(db: Db) -> None:
    assert run_cli("new", "todo", "--sql-dir", str(db.root)).code == 0
    r = db.run("migrate")
    assert r.code == 2 and "0000_todo.sql contains no SQL statements" in r.stderr


def test_fast_noop_path_says_what_the_full_cli_says(db: Db) -> None:
    db.write({"0001_a.sql": "CREATE TABLE a (id INTEGER);\n"})
    assert db.run("migrate").code == 0
    fast = db.run("migrate")
    full = run_cli("migrate", "-d", db.url, "--sql-dir", str(db.root), env={"AGOR_DB_NO_FASTPATH": "1"})
    assert (fast.code, fast.stdout) == (full.code, full.stdout)
    assert fast.stdout.startswith("nothing to migrate:") and "version 0001" in fast.stdout
    # an edited file is not "nothing to do": the fast path hands over and the full CLI reports drift
    (db.root / db.dialect / "0001_a.sql").write_text("CREATE TABLE a (id BIGINT);\n")
    assert db.run("migrate").code == 3


def test_closed_pipe_is_not_an_error(db: Db) -> None:
    import subprocess
    import sys

    db.write({f"{i:04d}_m.sql": f"CREATE TABLE t{i} (id INTEGER);\n" for i in range(1, 60)})
    proc = subprocess.run(
        f"{sys.executable} -m agor_db status -d '{db.url}' --sql-dir '{db.root}' | head -1",
        shell=True,
        capture_output=True,
        text=True,
        executable="/bin/bash",
    )
    assert proc.stdout.startswith("database:")
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr


@pytest.mark.parametrize("command", ["migrate", "status", "new", "copy", "wait", "schema", "check"])
def test_every_command_teaches_with_examples(command: str) -> None:
    r = run_cli(command, "--help")
    assert r.code == 0, r.output
    assert "Example" in r.stdout, f"`agor-db {command} --help` shows no example"
    codes = {line.split()[0] for line in r.stdout.split("Exit codes:")[1].splitlines() if line.strip()}
    assert {"0", "1", "2", "3", "4", "5", "130", "143"} <= codes, f"`agor-db {command} --help`: {sorted(codes)}"
    assert "Exit codes:" in run_cli("--help").stdout


def test_status_of_a_missing_sqlite_file_says_so_and_creates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "not-yet.db"
    r = run_cli("status", "-d", str(db))
    assert r.code == 0, r.output
    assert f"{db} does not exist yet: `agor-db migrate` creates it" in r.stderr
    assert "0 applied" in r.stdout
    assert not db.exists() and list(tmp_path.iterdir()) == []


def test_status_of_a_file_in_a_missing_directory_does_not_promise_migrate_creates_it(tmp_path: Path) -> None:
    db = tmp_path / "no-such-dir" / "agor.db"
    r = run_cli("status", "-d", str(db))
    assert r.code == 0, r.output
    said = f"{db} does not exist yet, nor does its directory {db.parent}: `agor-db migrate` creates the file, not"
    assert said in r.stderr
    assert "creates it and applies everything" not in r.stderr
    assert list(tmp_path.iterdir()) == []
    assert run_cli("migrate", "-d", str(db)).code == 5  # as status said


def test_unknown_option_is_a_usage_error() -> None:
    r = run_cli("migrate", "--no-such-flag")
    assert r.code == 2
    assert "No such option" in r.stderr
