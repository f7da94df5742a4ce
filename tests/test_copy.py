"""agor-db copy: real fixtures copied into PostgreSQL and read back value by value; refusals and interruption."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import apsw
import psycopg
import pytest
from conftest import REPO, run_cli

from agor_db.core import migrate as core
from agor_db.core.source import bundled_sql_root
from agor_db.core.urls import parse_url

TABLES = (
    "users", "boards", "repos", "worktrees", "sessions", "tasks", "messages",
    "board_objects", "board_comments", "mcp_servers", "session_mcp_servers",
)  # fmt: skip


def adopt(path: Path) -> Path:
    """Bring a drizzle-era fixture under agor-db (what the error message tells the user to do)."""
    from agor_db.schema.adopter import ADOPTER

    core.migrate(parse_url(str(path)), bundled_sql_root(), core.RunOptions(backup=False), adopter=ADOPTER)
    return path


def pg_counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        out = {}
        for t in TABLES:
            exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (t,)).fetchone()[0]
            out[t] = conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] if exists else -1
        return out


def read_back_equal(source: Path, url: str) -> int:
    """Compare every value of every row: SQLite as stored vs PostgreSQL as converted. Returns values compared."""
    src = apsw.Connection(str(source), flags=apsw.SQLITE_OPEN_READONLY)
    compared = 0
    with psycopg.connect(url) as conn:
        for table in TABLES:
            types = dict(
                conn.execute(
                    "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s", (table,)
                ).fetchall()
            )
            cols = [r[1] for r in src.execute(f'PRAGMA table_info("{table}")')]
            collist = ", ".join(f'"{c}"' for c in cols)
            # keyed by the first two columns (the primary key, or session_mcp_servers' pair): no collation games
            pg_rows = {r[:2]: r for r in conn.execute(f"SELECT {collist} FROM {table}").fetchall()}
            sq_rows = src.execute(f'SELECT {collist} FROM "{table}"').fetchall()
            assert len(pg_rows) == len(sq_rows), table
            for s_row in sq_rows:
                p_row = pg_rows[s_row[:2]]
                for col, s, p in zip(cols, s_row, p_row, strict=True):
                    t = types[col]
                    if s is None:
                        assert p is None, (table, col)
                    elif t == "boolean":
                        assert p is bool(s) and s in (0, 1), (table, col, s, p)
                    elif t == "jsonb":
                        assert p == json.loads(s), (table, col)
                    else:
                        assert type(p) is type(s) and p == s, (table, col, s, p)
                    compared += 1
    return compared


def schema_of(url: str) -> tuple[set[tuple[str, ...]], set[tuple[str, ...]]]:
    """Every constraint (table, name, definition) and index (name, definition) of the public schema."""
    with psycopg.connect(url) as conn:
        constraints = conn.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE connamespace = 'public'::regnamespace"
        ).fetchall()
        indexes = conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'").fetchall()
    return set(constraints), set(indexes)


def test_legacy_fixture_copied_and_verified(fixture_copy, pg_db):
    source = adopt(fixture_copy("legacy-0010.db"))
    assert run_cli("migrate", "--database-url", pg_db).code == 0
    migrated = schema_of(pg_db)
    r = run_cli("copy", "--from", str(source), "--to", pg_db)
    assert r.code == 0, r.output
    assert "row counts and checksums verified" in r.stdout
    counts = pg_counts(pg_db)
    assert counts["messages"] == 2000 and counts["sessions"] == 40 and counts["session_mcp_servers"] == 60
    assert read_back_equal(source, pg_db) > 25_000
    with psycopg.connect(pg_db) as conn:
        # the keys, FKs and indexes dropped for the load are back, with their names and definitions
        fks = conn.execute("SELECT count(*) FROM pg_constraint WHERE contype = 'f'").fetchone()[0]
        assert fks >= 15
        assert conn.execute("SELECT to_regclass('messages_session_index_idx') IS NOT NULL").fetchone()[0]
        assert conn.execute("SELECT to_regclass('messages_pkey') IS NOT NULL").fetchone()[0]
        run = conn.execute("SELECT source, row_counts FROM agor_copy_runs").fetchall()
        assert len(run) == 1 and run[0][1]["messages"] == 2000 and str(source) in run[0][0]
    constraints, indexes = schema_of(pg_db)
    copy_runs = {c for c in constraints if c[0] == "agor_copy_runs"}, {i for i in indexes if "agor_copy_runs" in i[1]}
    assert (constraints - copy_runs[0], indexes - copy_runs[1]) == migrated

    # a second run reports what was done instead of duplicating
    r = run_cli("copy", "--from", str(source), "--to", pg_db)
    assert r.code == 0, r.output
    assert "nothing to do" in r.stdout and "already holds the copy" in r.stdout
    assert pg_counts(pg_db)["messages"] == 2000


def test_empty_fixture_and_json_summary(fixture_copy, pg_db):
    source = adopt(fixture_copy("legacy-empty-0010.db"))
    r = run_cli("copy", "--from", str(source), "--to", pg_db, "--json")
    assert r.code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["ok"] and all(t["copied_rows"] == 0 and t["verified"] for t in doc["tables"])
    assert set(pg_counts(pg_db).values()) == {0}


def test_non_empty_target_refused_then_truncate(fixture_copy, pg_db, tmp_path):
    source = adopt(fixture_copy("legacy-0010.db"))
    core.migrate(parse_url(pg_db), bundled_sql_root(), core.RunOptions())
    with psycopg.connect(pg_db) as conn:
        conn.execute(
            "INSERT INTO users (user_id, created_at, email, password, data) VALUES ('u1', 1, 'a@b', 'x', '{}')"
        )
    for check in ([], ["--check"]):  # --check refuses what the copy would refuse
        r = run_cli("copy", "--from", str(source), "--to", pg_db, *check)
        assert r.code == 1, (check, r.output)
        assert "is not empty" in r.stderr and "users (1 row)" in r.stderr and "--truncate" in r.stderr
    counts = pg_counts(pg_db)
    assert counts["users"] == 1 and counts["messages"] == 0
    r = run_cli("copy", "--from", str(source), "--to", pg_db, "--truncate", "--check")
    assert r.code == 0, r.output
    assert pg_counts(pg_db)["users"] == 1
    r = run_cli("copy", "--from", str(source), "--to", pg_db, "--truncate")
    assert r.code == 0, r.output
    assert pg_counts(pg_db)["users"] == 3
    r = run_cli("copy", "--from", str(source), "--to", pg_db, "--check")  # the same source: nothing to do
    assert r.code == 0 and "nothing to do" in r.stdout, r.output


def test_drizzle_era_source_refused_with_hint(fixture_copy, pg_db):
    source = fixture_copy("legacy-0010.db")
    before = source.read_bytes()
    r = run_cli("copy", "--from", str(source), "--to", pg_db)
    assert r.code == 1
    assert "has not been adopted" in r.stderr and f"agor-db migrate --database-url {source}" in r.stderr
    assert "backup" in r.stderr
    assert source.read_bytes() == before  # copy never writes to the source
    r = run_cli("copy", "--from", str(source), "--to", pg_db, "--json")  # the refusal as a document too
    doc = json.loads(r.stdout)
    assert r.code == 1 and doc["ok"] is False and doc["error"]["exit_code"] == 1
    assert "has not been adopted" in doc["error"]["message"] and doc["source_checksum"] is None
    assert doc["tables"] == [] and source.read_bytes() == before


def test_source_behind_newest_version_refused(tmp_path, pg_db):
    path = tmp_path / "old.db"
    core.migrate(parse_url(str(path)), bundled_sql_root(), core.RunOptions(target=5))
    r = run_cli("copy", "--from", str(path), "--to", pg_db)
    assert r.code == 1
    assert "is at version 0005" in r.stderr and "agor-db migrate --database-url" in r.stderr
    # nothing happened to the target either: refused before it was touched
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0] == 0


def test_check_writes_nothing(fixture_copy, pg_db):
    source = adopt(fixture_copy("legacy-0010.db"))
    r = run_cli("copy", "--from", str(source), "--to", pg_db, "--check")
    assert r.code == 0, r.output
    assert "check passed" in r.stdout
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0] == 0


@pytest.fixture(scope="module")
def generated_30k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated source of 30,000 messages, made once for the module (~4 s of CPU); tests copy it."""
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import gen_agor_db
    finally:
        sys.path.pop(0)
    path = tmp_path_factory.mktemp("generated") / "gen.db"
    gen_agor_db.generate(path, messages=30_000, huge=1)
    return path


def _workers_of(source: Path) -> list[int]:
    """Live copy worker processes reading ``source`` (their command line names it)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(source).encode() in argv and any(b"agor_db.copy.parallel" in a for a in argv):
            found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "code", "said"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated (SIGTERM)")],
    ids=["ctrl-c", "sigterm"],
)
def test_interrupted_copy_leaves_target_unchanged(tmp_path, pg_db, generated_30k, sig, code, said):
    source = tmp_path / "gen.db"  # a path of its own: _workers_of finds this test's workers by it
    shutil.copyfile(generated_30k, source)
    env_cmd = [sys.executable, "-m", "agor_db", "copy", "--from", str(source), "--to", pg_db]
    env = {**os.environ, "AGOR_DB_COPY_WORKERS": "2"}  # the worker processes are stopped too
    proc = subprocess.Popen(env_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("copying messages"):
            break
    assert len(_workers_of(source)) == 2  # the signal reaches a copy that has its worker processes
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, out + err
    assert f"{said}: the copy was rolled back, the target is unchanged" in err
    assert "Traceback" not in err
    assert not _workers_of(source), "a worker process outlived the copy"
    counts = pg_counts(pg_db)
    assert set(counts.values()) == {0}, counts  # migrated, but no row of the copy kept
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT to_regclass('agor_copy_runs')").fetchone()[0] is None
        # the dropped indexes and FKs came back with the rollback
        assert conn.execute("SELECT to_regclass('messages_session_index_idx') IS NOT NULL").fetchone()[0]
