"""Adopting drizzle-era SQLite databases (issue 5), through the real CLI.

The shared fixtures (made by drizzle's own migrator) cover 0010, 0005 and an empty 0010; every other
real-world state is built from the facts by tests/adopt_builders.py: bootstrap-era DDL, the withdrawn
0006/0007 window, a legacy journal that lags behind or runs ahead, WAL with a live -wal, a read-only
file, an unrelated app's database. Every test works on a copy in its own temp dir and checks rows and
values before and after; every refusal checks the message and that the file is byte-identical.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import adopt_builders as b
import apsw
import pytest
from agor_db.core.source import dialect_dir, list_migrations
from conftest import FIXTURES, CliResult, needs_shared, run_cli

ALL = [0, 1, 2, 3, 4, 5, 8, 9, 10]
FILES = {m.version: m for m in list_migrations(dialect_dir(b.SQL, "sqlite"))}


# -- helpers -------------------------------------------------------------------------------------


def migrate(path: Path, *extra: str) -> CliResult:
    return run_cli("migrate", "-d", f"sqlite://{path}", *extra)


def journal(path: Path) -> list[tuple[int, str, str]]:
    return b.rows(path, "SELECT version, how, checksum FROM agor_migrations ORDER BY version")


def hows(path: Path) -> dict[int, str]:
    return {v: how for v, how, _ in journal(path)}


def backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.backup-*"))


def has_table(path: Path, name: str) -> bool:
    return bool(b.scalar(path, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", name))


def assert_healthy(path: Path) -> None:
    ok, fk = b.health(path)
    assert ok == "ok"
    assert fk == []


def assert_adopted_then_applied(path: Path, upto: int) -> None:
    rows = journal(path)
    assert [v for v, _, _ in rows] == ALL
    for v, how, checksum in rows:
        assert how == ("adopted" if v <= upto else "applied"), (v, how)
        assert checksum == FILES[v].checksum  # our file's checksum, never drizzle's hash


def app_columns(path: Path) -> dict[str, list[str]]:
    return {t: cols for t, cols in b.columns_of(path).items() if t in b.APP_TABLES}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database agor-db migrated from nothing: the canonical schema every adopted file must end with."""
    from agor_db.core import migrate as core
    from agor_db.core.urls import parse_url

    path = tmp_path_factory.mktemp("fresh") / "fresh.db"
    core.migrate(parse_url(f"sqlite://{path}"), b.SQL, core.RunOptions())
    return path


# -- the shared fixtures -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["legacy-0010.db", "legacy-empty-0010.db"])
def test_legacy_0010_is_adopted_and_left_exactly_as_it_was(name: str, fixture_copy: Any, fresh: Path) -> None:
    db = fixture_copy(name)
    before = b.dump(db)  # every table, __drizzle_migrations included, with rowids
    assert "__drizzle_migrations" in before

    r = migrate(db)
    assert r.code == 0, r.output
    assert "schema: at upstream step 0010 (by its schema)" in r.stdout
    assert "adopted 0000..0010 (9 migrations)" in r.stdout
    assert "nothing to migrate" in r.stdout
    assert "applied 0" not in r.stdout and "repaired" not in r.stdout
    assert_adopted_then_applied(db, upto=10)

    after = b.dump(db)
    assert after.pop("agor_migrations")
    assert after == before  # every row and value of every table, and the legacy journal, untouched
    assert_healthy(db)
    assert b.schema_fingerprint(db) == b.schema_fingerprint(fresh)

    [backup] = backups(db)
    assert str(backup) in r.stdout
    assert b.dump(backup) == before  # taken before the first write
    assert not has_table(backup, "agor_migrations")
    assert_healthy(backup)

    digest = b.sha256(db)
    again = migrate(db)
    assert again.code == 0, again.output
    assert again.stdout.startswith("nothing to migrate") and len(again.stdout.splitlines()) == 1
    assert b.sha256(db) == digest
    assert backups(db) == [backup]


def test_legacy_0005_is_adopted_then_migrated_keeping_every_row(fixture_copy: Any, fresh: Path) -> None:
    db = fixture_copy("legacy-0005.db")
    columns = app_columns(db)
    before = b.rows_by_columns(db, columns)
    counts = b.counts(db)
    assert counts["messages"] == 2000
    assert b.scalar(db, "SELECT max(length(data)) FROM messages") > 1_000_000  # the 1 MB message rides along

    r = migrate(db)
    assert r.code == 0, r.output
    assert "adopted 0000..0005 (6 migrations)" in r.stdout
    for label in ("0008_stale_marauders", "0009_reconcile-missing-columns", "0010_add_archive_columns"):
        assert f"applied {label}.sql" in r.stdout
    assert "3 migration(s) applied" in r.stdout
    assert_adopted_then_applied(db, upto=5)

    # 0009 rebuilds sessions and worktrees, so rowids may move: compare every pre-existing column by value
    assert b.rows_by_columns(db, columns) == before
    assert b.counts(db) == counts
    assert b.schema_fingerprint(db) == b.schema_fingerprint(fresh)
    assert_healthy(db)
    # the new columns exist, with their defaults, on every old row
    assert b.scalar(db, "SELECT count(*) FROM tasks WHERE started_at IS NULL") == counts["tasks"]
    assert b.rows(db, "SELECT DISTINCT archived, archived_reason, ready_for_prompt FROM sessions") == [(0, None, 0)]
    assert b.rows(
        db, "SELECT DISTINCT archived, archived_at, archived_by, filesystem_status, needs_attention FROM worktrees"
    ) == [(0, None, None, None, 0)]
    assert b.rows(db, "SELECT count(*) FROM __drizzle_migrations") == [(6,)]
    assert len(backups(db)) == 1

    # status after: an ordinary journal, no adoption pending
    s = run_cli("status", "--json", "-d", f"sqlite://{db}")
    assert s.code == 0, s.output
    doc = json.loads(s.stdout)
    assert doc["adoption"] is None and doc["pending"] == []
    assert {a["version"]: a["how"] for a in doc["applied"]} == hows(db)


def test_dry_run_and_status_show_the_adoption_plan_and_change_nothing(fixture_copy: Any) -> None:
    db = fixture_copy("legacy-0005.db")
    digest = b.sha256(db)
    url = f"sqlite://{db}"

    dry = run_cli("migrate", "--dry-run", "-d", url)
    assert dry.code == 0, dry.output
    assert "migrate would adopt it" in dry.stdout
    assert "schema: at upstream step 0005 (by its schema)" in dry.stdout
    assert "will adopt: 0000..0005" in dry.stdout
    assert "a backup would be written next to it first" in dry.stdout
    assert "3 migration(s) would be applied" in dry.stdout
    assert "-- 0008_stale_marauders.sql" in dry.stdout and "-- 0005_" not in dry.stdout

    text = run_cli("status", "-d", url)
    assert text.code == 0, text.output
    assert "`agor-db migrate` will adopt this database" in text.stdout
    assert "legacy drizzle journal: 6 row(s): 0000_pretty_mac_gargan" in text.stdout
    assert "will adopt: 0000..0005" in text.stdout
    lines = text.stdout.splitlines()
    assert sum("to adopt" in line for line in lines if line.strip().startswith("00")) == 6
    assert "0 applied, 6 to adopt, 3 pending" in text.stdout
    assert sum("pending" in line for line in lines if line.strip().startswith("00")) == 3

    js = run_cli("status", "--json", "-d", url)
    assert js.code == 0, js.output
    doc = json.loads(js.stdout)
    adoption = doc["adoption"]
    assert adoption["schema_version"] == 5 and adoption["journal_says"] == 5
    assert adoption["adopt"] == [0, 1, 2, 3, 4, 5]
    assert adoption["repair"] == [] and adoption["differences"] == []
    assert [r["tag"] for r in adoption["legacy_journal"]][-1] == "0005_clammy_mole_man"
    assert [(p["version"], p["action"]) for p in doc["pending"]] == [
        *((v, "adopt") for v in (0, 1, 2, 3, 4, 5)),
        *((v, "apply") for v in (8, 9, 10)),
    ]
    assert doc["applied"] == []  # nothing is in agor-db's journal until migrate adopts it

    assert b.sha256(db) == digest
    assert backups(db) == []
    assert sorted(p.name for p in db.parent.iterdir()) == [db.name]  # no -journal, -wal or backup left


# -- bootstrap-era DDL ---------------------------------------------------------------------------

BOOTSTRAPS = {
    # name: (builder, the fixture its rows come from, step it stands at, tables that need repair)
    "at-0000": (lambda p, src: b.bootstrap_db(p, 0, src), "legacy-0005.db", 0, set(b.APP_TABLES)),
    "at-0010": (lambda p, src: b.bootstrap_db(p, 10, src), "legacy-0010.db", 10, set(b.APP_TABLES)),
    # drizzle's later runs rebuilt board_comments (0003), worktrees (0004, 0009) and sessions (0009)
    "at-0000-then-drizzle-0010": (
        b.bootstrap_then_drizzle,
        "legacy-0005.db",
        10,
        set(b.APP_TABLES) - {"board_comments", "worktrees", "sessions"},
    ),
}


@pytest.mark.parametrize("case", list(BOOTSTRAPS))
def test_bootstrap_era_database_is_adopted_and_repaired_to_canonical_form(
    case: str, fixture_copy: Any, tmp_path: Path, fresh: Path
) -> None:
    build, source, step, to_repair = BOOTSTRAPS[case]
    db = build(tmp_path / "agor.db", fixture_copy(source))
    # the builder really produced the bootstrap spelling
    sql = b.table_sql(db)
    assert '"user_id" TEXT PRIMARY KEY,' in sql["users"] and "UNIQUE" in sql["users"]
    assert "CHECK (role IN" in sql["messages"]
    assert b.rows(db, "SELECT hash FROM __drizzle_migrations LIMIT 1") == [("0000_pretty_mac_gargan",)]
    columns = app_columns(db)
    before = b.rows_by_columns(db, columns)
    counts = b.counts(db)
    assert counts["messages"] == 2000

    r = migrate(db)
    assert r.code == 0, r.output
    assert f"schema: at upstream step {step:04d} (by its schema)" in r.stdout
    repaired = {line.split()[1].rstrip(":") for line in r.stdout.splitlines() if line.startswith("repaired ")}
    assert repaired == to_repair
    for t in to_repair:
        assert (
            f"repaired {t}: rebuilt into the canonical form of {FILES[step].id}, {counts[t]} rows verified" in r.stdout
        )
    assert f"adopted 0000..{step:04d}" in r.stdout
    assert_adopted_then_applied(db, upto=step)

    # the file now has exactly the schema sql/sqlite builds: model, and even each table's DDL text
    assert b.schema_fingerprint(db) == b.schema_fingerprint(fresh)
    sql, canonical = b.table_sql(db), b.table_sql(fresh)
    assert {t: sql[t] for t in b.APP_TABLES} == {t: canonical[t] for t in b.APP_TABLES}
    assert_healthy(db)
    assert b.rows_by_columns(db, columns) == before
    assert b.counts(db) == counts
    assert b.rows(db, "SELECT hash FROM __drizzle_migrations LIMIT 1") == [("0000_pretty_mac_gargan",)]

    if case == "at-0000":  # the printed model too, once: agor-db schema of both files
        mine = run_cli("schema", "-d", f"sqlite://{db}")
        theirs = run_cli("schema", "-d", f"sqlite://{fresh}")
        assert mine.code == theirs.code == 0
        assert mine.stdout.splitlines()[1:] == theirs.stdout.splitlines()[1:]  # line 0 names the file


def test_no_repair_adopts_with_a_warning_and_rebuilds_nothing(fixture_copy: Any, tmp_path: Path) -> None:
    db = b.bootstrap_db(tmp_path / "agor.db", 10, fixture_copy("legacy-0010.db"))
    sql = b.table_sql(db)
    before = b.dump(db)

    r = migrate(db, "--no-repair")
    assert r.code == 0, r.output
    assert "--no-repair:" in r.output and "keep their non-canonical form" in r.output
    assert "repaired " not in r.stdout
    assert "adopted 0000..0010 (9 migrations)" in r.stdout
    assert_adopted_then_applied(db, upto=10)
    after = b.dump(db)
    after.pop("agor_migrations")
    assert after == before
    assert {t: s for t, s in b.table_sql(db).items() if t not in ("agor_migrations", "sqlite_sequence")} == sql


def test_a_row_the_canonical_form_forbids_refuses_the_repair_and_changes_nothing(
    fixture_copy: Any, tmp_path: Path
) -> None:
    """The bootstrap DDL let a TEXT primary key be NULL; the canonical NOT NULL cannot take that row."""
    db = b.bootstrap_db(tmp_path / "agor.db", 10, fixture_copy("legacy-0010.db"))
    conn = apsw.Connection(str(db))
    conn.execute("INSERT INTO users (user_id, created_at, email, password, data) VALUES (NULL, 1, 'x@y', 'p', '{}')")
    conn.close()
    digest = b.sha256(db)

    r = migrate(db)
    assert r.code == 3, r.output
    assert "cannot repair users into the canonical form of 0010_add_archive_columns" in r.stderr
    assert "NOT NULL constraint failed: users.user_id" in r.stderr
    assert "rolled back, nothing was changed" in r.stderr and "--no-repair" in r.stderr
    assert "__agor_repair" not in r.output
    assert b.sha256(db) == digest
    assert not has_table(db, "agor_migrations")


# -- the withdrawn 0006/0007 window --------------------------------------------------------------


@pytest.mark.parametrize("step", [5, 8])
def test_withdrawn_0006_0007_window_is_adopted_as_its_step(step: int, fixture_copy: Any, fresh: Path) -> None:
    db = fixture_copy("legacy-0005.db")
    conn = apsw.Connection(str(db))
    conn.execute('ALTER TABLE "sessions" ADD "ready_for_prompt" integer DEFAULT 0 NOT NULL')
    conn.execute('ALTER TABLE "worktrees" ADD "needs_attention" integer DEFAULT 0 NOT NULL')
    conn.execute("UPDATE sessions SET ready_for_prompt = 1 WHERE rowid % 2 = 0")
    conn.execute("UPDATE worktrees SET needs_attention = 1 WHERE rowid % 3 = 0")
    withdrawn = b.upstream()
    for v in (6, 7):
        conn.execute(
            "INSERT INTO __drizzle_migrations (hash, created_at) VALUES (?, ?)",
            (withdrawn[v]["hashes"][0], b.WITHDRAWN_WHENS[v]),
        )
    if step == 8:  # drizzle ran the published 0008 on top before anyone noticed
        b.apply_steps(conn, [8])
        conn.execute("INSERT INTO __drizzle_migrations (hash, created_at) VALUES (?, ?)", b.journal_rows([8])[0])
    conn.close()
    columns = {
        t: [c for c in cols if c not in ("ready_for_prompt", "needs_attention")] for t, cols in app_columns(db).items()
    }
    before = b.rows_by_columns(db, columns)
    counts = b.counts(db)

    r = migrate(db)
    assert r.code == 0, r.output
    assert "0006_add_ready_for_prompt, 0007_add_needs_attention" in r.stdout
    assert f"schema: at upstream step {step:04d} (by its schema)" in r.stdout
    assert "withdrawn upstream 0006/0007" in r.stdout
    assert "sessions: extra column ready_for_prompt" in r.stdout
    assert "worktrees: extra column needs_attention" in r.stdout
    assert "repaired " not in r.stdout
    assert f"adopted 0000..{step:04d}" in r.stdout
    assert_adopted_then_applied(db, upto=step)

    assert b.rows_by_columns(db, columns) == before
    assert b.counts(db) == counts
    # 0009 rebuilds both tables without copying the withdrawn flags, as upstream did: back to the 0 default
    assert b.rows(db, "SELECT DISTINCT ready_for_prompt FROM sessions") == [(0,)]
    assert b.rows(db, "SELECT DISTINCT needs_attention FROM worktrees") == [(0,)]
    assert b.schema_fingerprint(db) == b.schema_fingerprint(fresh)
    assert_healthy(db)


# -- the legacy journal is evidence, the schema decides ------------------------------------------


LAGGING = {
    # name: (sabotage of the legacy journal, what the output says about it)
    "rows-up-to-0005": (
        f"DELETE FROM __drizzle_migrations WHERE created_at > {b.upstream()[5]['when']}",
        "the legacy journal says 0005 but the schema is at 0010; the schema decides",
    ),
    "no-legacy-journal": ("DROP TABLE __drizzle_migrations", "no legacy drizzle journal"),
}


@pytest.mark.parametrize("case", list(LAGGING))
def test_journal_lagging_behind_the_schema(case: str, fixture_copy: Any) -> None:
    sabotage, says = LAGGING[case]
    db = fixture_copy("legacy-0010.db")
    conn = apsw.Connection(str(db))
    conn.execute(sabotage)
    conn.close()
    before = b.dump(db)

    r = migrate(db, "--no-backup")
    assert r.code == 0, r.output
    assert says in r.stdout
    assert "schema: at upstream step 0010 (by its schema)" in r.stdout
    assert "adopted 0000..0010 (9 migrations)" in r.stdout and "applied 0" not in r.stdout
    assert_adopted_then_applied(db, upto=10)
    after = b.dump(db)
    after.pop("agor_migrations")
    assert after == before
    assert "backup written" not in r.stdout and backups(db) == []  # --no-backup


def test_journal_running_ahead_of_the_schema(fixture_copy: Any, fresh: Path) -> None:
    db = fixture_copy("legacy-0005.db")
    conn = apsw.Connection(str(db))
    for row in b.journal_rows([8, 9, 10]):
        conn.execute("INSERT INTO __drizzle_migrations (hash, created_at) VALUES (?, ?)", row)
    conn.close()
    columns = app_columns(db)
    before = b.rows_by_columns(db, columns)

    js = run_cli("status", "--json", "-d", f"sqlite://{db}")
    assert js.code == 0, js.output
    adoption = json.loads(js.stdout)["adoption"]
    assert (adoption["journal_says"], adoption["schema_version"]) == (10, 5)
    assert any("the schema decides" in n for n in adoption["notes"])

    r = migrate(db)
    assert r.code == 0, r.output
    assert "the legacy journal says 0010 but the schema is at 0005; the schema decides" in r.stdout
    assert "adopted 0000..0005" in r.stdout and "3 migration(s) applied" in r.stdout
    assert_adopted_then_applied(db, upto=5)
    assert b.rows_by_columns(db, columns) == before
    assert b.schema_fingerprint(db) == b.schema_fingerprint(fresh)


# -- refusals ------------------------------------------------------------------------------------

MISMATCHES = {
    "missing-column": (
        'ALTER TABLE "sessions" DROP COLUMN "archived_reason"',
        "sessions: missing column archived_reason",
    ),
    "extra-table": ("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)", "notes: extra table"),
}


@pytest.mark.parametrize("case", list(MISMATCHES))
def test_structural_mismatch_is_refused_until_the_operator_decides(case: str, fixture_copy: Any) -> None:
    sabotage, difference = MISMATCHES[case]
    db = fixture_copy("legacy-0010.db")
    conn = apsw.Connection(str(db))
    conn.execute(sabotage)
    conn.close()
    digest = b.sha256(db)
    before = b.dump(db)

    r = migrate(db)
    assert r.code == 3, r.output
    assert "matches no archived step; nearest is 0010_add_archive_columns" in r.stderr
    assert "its drizzle journal says 0010" in r.stderr
    assert f"  - {difference} (structural)" in r.stderr
    assert "nothing was changed" in r.stderr
    assert "--adopt-as" in r.stderr
    assert b.sha256(db) == digest
    assert backups(db) == []
    assert sorted(p.name for p in db.parent.iterdir()) == [db.name]

    forced = migrate(db, "--adopt-as", "0010")
    assert forced.code == 0, forced.output
    assert "schema: at upstream step 0010 (by --adopt-as)" in forced.stdout
    assert "adopting despite structural differences" in forced.stdout
    assert "adopted 0000..0010 (9 migrations)" in forced.stdout
    assert_adopted_then_applied(db, upto=10)
    after = b.dump(db)
    after.pop("agor_migrations")
    assert after == before
    assert len(backups(db)) == 1


def test_adopt_as_cannot_overrule_a_schema_that_matches_a_step(fixture_copy: Any) -> None:
    """--adopt-as 0005 on a 0010 file would record 0008 as pending, and 0008 would fail on it forever."""
    db = fixture_copy("legacy-0010.db")
    digest = b.sha256(db)
    for value, code, message in (
        ("0005", 3, "--adopt-as 0005: this database's schema is at 0010_add_archive_columns (the schema decides)"),
        ("0007", 2, "--adopt-as 0007: there is no archived SQLite migration with that version (there are 0000,"),
    ):
        r = migrate(db, "--adopt-as", value)
        assert r.code == code, r.output
        assert message in r.stderr
        assert b.sha256(db) == digest
    assert sorted(p.name for p in db.parent.iterdir()) == [db.name]


def test_unrelated_database_is_refused_and_untouched(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    conn = apsw.Connection(str(db))
    conn.execute(
        "CREATE TABLE users (id INTEGER, name TEXT);"
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users (id), total REAL);"
        "INSERT INTO users VALUES (1, 'ann'), (2, 'bob');"
        "INSERT INTO orders VALUES (1, 1, 9.5), (2, 2, 12.0), (3, 1, 0.25);"
    )
    conn.close()
    digest = b.sha256(db)

    for args in (("migrate",), ("status",), ("migrate", "--dry-run")):
        r = run_cli(*args, "-d", f"sqlite://{db}")
        assert r.code == 3, (args, r.output)
        assert "not an Agor database (its tables: orders, users); nothing was changed" in r.stderr
        assert b.sha256(db) == digest
    assert sorted(p.name for p in tmp_path.iterdir()) == [db.name]
    assert b.rows(db, "SELECT count(*) FROM orders") == [(3,)]


def test_empty_file_is_an_ordinary_fresh_migrate(tmp_path: Path, fresh: Path) -> None:
    db = tmp_path / "agor.db"
    db.touch()
    r = migrate(db)
    assert r.code == 0, r.output
    assert "adopting" not in r.output and "backup written" not in r.output
    assert "9 migration(s) applied" in r.stdout
    assert hows(db) == dict.fromkeys(ALL, "applied")
    assert b.schema_fingerprint(db) == b.schema_fingerprint(fresh)
    assert backups(db) == []


# -- files Agor holds open, files we may not write -----------------------------------------------


def test_wal_file_with_a_live_wal_is_adopted_and_backed_up_consistently(fixture_copy: Any) -> None:
    db = fixture_copy("legacy-0005.db")
    agor = apsw.Connection(str(db))  # Agor, running: WAL, its writes not yet checkpointed into the file
    try:
        assert agor.execute("PRAGMA journal_mode = WAL").fetchone() == ("wal",)
        agor.execute("PRAGMA wal_autocheckpoint = 0")
        agor.execute("UPDATE users SET name = 'only in the wal' WHERE rowid = 1")
        agor.execute(
            "INSERT INTO boards (board_id, created_at, name, data) "
            "VALUES ('11111111-1111-4111-8111-111111111111', 1762030000000, 'wal board', '{}')"
        )
        wal = Path(f"{db}-wal")
        assert wal.stat().st_size > 0
        live = {t: [tuple(r) for r in agor.execute(f'SELECT rowid, * FROM "{t}" ORDER BY rowid')] for t in b.APP_TABLES}
        columns = app_columns(db)
        before = b.rows_by_columns(db, columns)

        r = migrate(db)
        assert r.code == 0, r.output
        assert "adopted 0000..0005" in r.stdout and "3 migration(s) applied" in r.stdout
        assert b.rows_by_columns(db, columns) == before

        [backup] = backups(db)
        assert b.dump(backup, b.APP_TABLES) == live  # the uncheckpointed writes are in the copy
        assert not has_table(backup, "agor_migrations")
        assert_healthy(backup)

        # Agor's connection sees the migrated database and keeps working
        assert [r[0] for r in agor.execute("SELECT version FROM agor_migrations ORDER BY version")] == ALL
        assert agor.execute("SELECT name FROM users WHERE rowid = 1").fetchone() == ("only in the wal",)
        agor.execute("UPDATE sessions SET archived = 1 WHERE rowid = 1")
    finally:
        agor.close()
    assert b.scalar(db, "SELECT archived FROM sessions WHERE rowid = 1") == 1
    assert_adopted_then_applied(db, upto=5)
    assert_healthy(db)


def _run_as_nobody(*args: str, home: Path) -> CliResult:
    proc = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m", "agor_db", *args],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith(("AGOR_", "DATABASE_URL"))}
        | {"HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1"},
        timeout=60,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory an unprivileged user can read (pytest's own tmp dirs are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="agor-adopt-ro-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("what", ["file-read-only", "directory-read-only"])
def test_unwritable_database_is_refused_clearly_and_unchanged(
    what: str, fixture_copy: Any, tmp_path: Path, shared_dir: Path
) -> None:
    """As root, run as nobody (root writes through any mode bits); as anyone else, as oneself."""
    root = os.geteuid() == 0
    if root and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: cannot make a file unwritable")
    folder = shared_dir if root else tmp_path / "ro"
    folder.mkdir(exist_ok=True)
    db = folder / "agor.db"
    shutil.copyfile(fixture_copy("legacy-0005.db"), db)
    if what == "file-read-only":
        db.chmod(0o444)
    else:  # the file may be written, its directory may not (no backup, no rollback journal)
        db.chmod(0o644)
        if root:
            os.chown(db, 65534, 65534)
        else:
            folder.chmod(0o555)
    digest = b.sha256(db)
    try:
        r = _run_as_nobody("migrate", "-d", f"sqlite://{db}", home=folder) if root else migrate(db)
    finally:
        folder.chmod(0o755)
    assert r.code == 1, r.output
    if what == "file-read-only":
        assert f"cannot adopt {db}: the file is read-only for this user; nothing was changed" in r.stderr
    else:
        assert f"cannot write the backup {db}.backup-" in r.stderr and "nothing was changed" in r.stderr
        assert "--no-backup" in r.stderr
    assert "internal error" not in r.output
    assert b.sha256(db) == digest
    assert sorted(p.name for p in folder.iterdir()) == [db.name]


# -- one difference at a time (in-process: the classification itself) ---------------------------


def _one_change(table: str, old: str, new: str, drop_index: str | None = None) -> list[str]:
    """Step 0010's canonical DDL with one edit in one table's CREATE (and optionally one index gone)."""
    out = []
    for st in b.canonical_ddl(10):
        if drop_index and f'"{drop_index}"' in st:
            continue
        if st.startswith(f'CREATE TABLE "{table}"'):
            assert old in st, (table, old)
            st = st.replace(old, new, 1)
        out.append(st)
    return out


TASKS_CHECK = "CHECK (status IN ('created', 'running', 'completed'))"
COSMETIC = {
    # name: (table, old, new, index to drop, a fragment of the difference line)
    "check-only": (
        "tasks",
        "ON DELETE cascade\n)",
        f"ON DELETE cascade,\n    {TASKS_CHECK}\n)",
        None,
        "CHECK constraint",
    ),
    "pk-nullable": ("users", "PRIMARY KEY NOT NULL", "PRIMARY KEY", None, "user_id nullable vs NOT NULL (primary key)"),
    "type-spelling": ("boards", '"created_by" text(36)', '"created_by" varchar(36)', None, "created_by type"),
    "default-0-for-false": ("users", "DEFAULT false", "DEFAULT 0", None, "onboarding_completed default 0 vs false"),
    "inline-unique": (
        "users",
        '"email" text NOT NULL',
        '"email" text NOT NULL UNIQUE',
        "users_email_unique",
        "unique constraint instead of index users_email_unique",
    ),
}
STRUCTURAL = {
    "not-null-dropped": (
        "users",
        '"password" text NOT NULL',
        '"password" text',
        "users: password nullable vs NOT NULL",
    ),
    "other-affinity": ("users", '"created_at" integer', '"created_at" text', "users: created_at type 'text'"),
    "foreign-key-action": (
        "board_comments",
        'REFERENCES "worktrees" ("worktree_id") ON UPDATE no action ON DELETE cascade',
        'REFERENCES "worktrees" ("worktree_id") ON UPDATE no action ON DELETE set null',
        "board_comments: extra foreign key ('worktree_id',) -> worktrees on delete SET NULL",
    ),
}


def _assess(ddl: list[str]) -> tuple[apsw.Connection, Any]:
    from agor_db.schema.adopt import assess

    conn = apsw.Connection(":memory:")
    for st in ddl:
        conn.execute(st)
    return conn, assess(conn, list(FILES.values()), b.SQL)


@pytest.mark.parametrize("case", list(COSMETIC))
def test_each_cosmetic_difference_alone_is_repaired_to_canonical(case: str) -> None:
    from agor_db.schema.adopt import perform
    from agor_db.schema.model import fingerprint, introspect_sqlite, load_kinds

    table, old, new, drop, fragment = COSMETIC[case]
    conn, a = _assess(_one_change(table, old, new, drop))
    assert a.version == 10 and not a.forced
    assert a.repair == (table,)
    assert {d.kind for d in a.differences} == {"cosmetic"}
    assert any(fragment in d.line for d in a.differences), [d.line for d in a.differences]
    conn.execute("BEGIN")
    done = perform(conn, a, repair=True)
    conn.execute("COMMIT")
    assert done == [f"repaired {table}: rebuilt into the canonical form of 0010_add_archive_columns, 0 rows verified"]
    kinds = load_kinds(b.SQL)
    assert fingerprint(introspect_sqlite(conn, kinds), cosmetic=True) == fingerprint(a.reference.schema, cosmetic=True)
    [(sql,)] = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchall()
    assert sql == a.reference.table_sql[table]  # the canonical DDL text itself, CHECK and UNIQUE gone


@pytest.mark.parametrize("case", list(STRUCTURAL))
def test_each_structural_difference_alone_is_refused(case: str) -> None:
    from agor_db.schema.adopt import AdoptionRefused

    table, old, new, fragment = STRUCTURAL[case]
    with pytest.raises(AdoptionRefused) as err:
        _assess(_one_change(table, old, new))
    assert fragment in err.value.message
    assert "(structural)" in err.value.message and "--adopt-as" in str(err.value)


def test_the_core_refuses_a_legacy_database_without_an_adopter(tmp_path: Path) -> None:
    """Adoption is the CLI's choice (it passes the Adopter): the core alone never applies the baseline on
    top of someone else's tables, and changes nothing."""
    from agor_db.core import migrate as core
    from agor_db.core.errors import DriftError
    from agor_db.core.urls import parse_url

    db = tmp_path / "agor.db"
    shutil.copy(needs_shared(FIXTURES / "legacy-0005.db"), db)
    before = db.read_bytes()
    with pytest.raises(DriftError) as exc:
        core.migrate(parse_url(f"sqlite://{db}"), b.SQL, core.RunOptions())
    assert "has tables but no agor-db journal" in str(exc.value) and "agor-db migrate" in (exc.value.hint or "")
    assert db.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["agor.db"]
    seen = core.inspect(parse_url(f"sqlite://{db}"), b.SQL, core.RunOptions())
    assert seen.legacy and seen.assessment is None
