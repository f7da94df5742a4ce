"""PostgreSQL as deployed: behind a real PgBouncer, with the application's sessions holding locks,
with concurrent index builds racing, and with the server crashing in the middle of one."""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from conftest import TEST_PASSWORD, WRONG_PASSWORD, PgServer, finish_cli, run_cli, spawn_cli, write_migrations
from pgbouncer import pgbouncer

MIGRATIONS = 8
DEFAULTS = ("0", "0", "0", 0, 0)  # what a client of the pool must always see (see _probe)


@pytest.fixture(scope="module")
def bouncers(pg_server: PgServer) -> Iterator[dict[str, str]]:
    with (
        pgbouncer(pg_server.host, pg_server.port, pg_server.role, pg_server.password, "transaction") as tx,
        pgbouncer(pg_server.host, pg_server.port, pg_server.role, pg_server.password, "session") as sess,
    ):
        yield {"transaction": tx, "session": sess}


@pytest.fixture
def new_db(pg_server: PgServer) -> Iterator[Callable[[], str]]:
    """Make fresh databases owned by the test role; yields a maker returning each one's name."""
    made: list[str] = []

    def make() -> str:
        name = "p_" + uuid.uuid4().hex[:12]
        with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER {pg_server.role}')
        made.append(name)
        return name

    yield make
    with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
        for name in made:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _dbname(url: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    return str(conninfo_to_dict(url)["dbname"])


def _counter_files(root: Path) -> None:
    files = {"0001_counter.sql": "CREATE TABLE counter (version INTEGER NOT NULL);\n"}
    for v in range(2, MIGRATIONS + 1):
        files[f"{v:04d}_m{v}.sql"] = f"CREATE TABLE m{v} (id INTEGER);\nINSERT INTO counter VALUES ({v});\n"
    write_migrations(root, "postgres", files)


class _Probe(threading.Thread):
    """Another client of the pool (Agor's application): what does it find on its server connection?"""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.seen, self.errors, self.stop = url, set[tuple[Any, ...]](), list[str](), threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True, prepare_threshold=None) as conn:
            while not self.stop.is_set():
                try:
                    row = conn.execute(
                        "SELECT current_setting('lock_timeout'), current_setting('client_connection_check_interval'),"
                        " current_setting('idle_in_transaction_session_timeout'),"
                        " (SELECT count(*) FROM pg_prepared_statements)::int,"
                        " (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())::int"
                    ).fetchone()
                    self.seen.add(tuple(row or ()))
                except psycopg.Error as exc:
                    self.errors.append(str(exc))
                time.sleep(0.01)


@pytest.mark.parametrize(("mode", "databases", "runners"), [("transaction", 2, 6), ("session", 1, 4)])
def test_runners_race_through_pgbouncer(
    mode: str, databases: int, runners: int, bouncers: dict[str, str], new_db: Any, sql_root: Path, pg_admin_of: Any
) -> None:
    _counter_files(sql_root)
    names = [new_db() for _ in range(databases)]
    urls = [bouncers[mode].format(db=n) for n in names]
    probes = [_Probe(u) for u in urls]
    for p in probes:
        p.start()
    try:
        procs = [(u, spawn_cli(["migrate", "-d", u, "--sql-dir", str(sql_root)])) for u in urls for _ in range(runners)]
        results = [(u, *finish_cli(p, timeout=90)) for u, p in procs]  # a hang fails here
    finally:
        for p in probes:
            p.stop.set()
            p.join(10)
    failures = [err for _u, code, _out, err in results if code != 0]
    assert failures == [], failures
    for url, name in zip(urls, names, strict=True):
        applied = sum(out.count("applied 0") for u, _c, out, _e in results if u == url)
        assert applied == MIGRATIONS, f"{name}: each migration must be reported applied by exactly one runner"
        with pg_admin_of(f"postgresql:///{name}") as admin:
            journal = [r[0] for r in admin.execute("SELECT version FROM agor_migrations ORDER BY version")]
            counter = sorted(r[0] for r in admin.execute("SELECT version FROM counter"))
            locks = admin.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()
        assert journal == list(range(1, MIGRATIONS + 1))
        assert counter == list(range(2, MIGRATIONS + 1)), "a migration ran twice or never"
        assert locks == (0,), "an advisory lock survived on a server connection"
    for p in probes:
        assert p.errors == []
        assert p.seen == {DEFAULTS}, f"another client of the pool saw agor-db's session state: {p.seen}"


def _blocker_reads(conn: psycopg.Connection[Any]) -> None:
    conn.execute("BEGIN")
    conn.execute("SELECT count(*) FROM t").fetchone()  # ACCESS SHARE on t until the transaction ends


def test_lock_queue_never_stalls_readers(pg_db: str, sql_root: Path, pg_admin_of: Any) -> None:
    write_migrations(sql_root, "postgres", {"0001_t.sql": "CREATE TABLE t (id INTEGER);\n"})
    assert run_cli("migrate", "-d", pg_db, "--sql-dir", str(sql_root)).code == 0
    write_migrations(sql_root, "postgres", {"0002_add.sql": "ALTER TABLE t ADD COLUMN c INTEGER;\n"})
    with (
        psycopg.connect(pg_db, autocommit=True, application_name="agor-app-idle") as blocker,
        psycopg.connect(pg_db, autocommit=True) as reader,
    ):
        _blocker_reads(blocker)
        args = ["migrate", "-d", pg_db, "--sql-dir", str(sql_root), "--lock-timeout", "3"]
        proc = spawn_cli([*args, "--statement-lock-timeout", "0.4"])
        slowest = 0.0
        while proc.poll() is None:  # the application keeps reading t while the migration waits
            started = time.monotonic()
            reader.execute("SELECT count(*) FROM t").fetchone()
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.02)
        code, _out, err = finish_cli(proc)
        assert code == 4, err
        assert "gave up on 0002_add.sql after 3s" in err
        assert f"pid {blocker.info.backend_pid}, application_name 'agor-app-idle', state 'idle in transaction'" in err
        assert "transaction open for" in err and "nothing of it was kept" in err
        assert "rolled back, retrying" in err  # said while waiting
        assert slowest < 1.5, f"a reader queued {slowest:.2f}s behind the waiting migration"
        cols = reader.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 't'").fetchall()
        assert cols == [("id",)]
        assert reader.execute("SELECT max(version) FROM agor_migrations").fetchone() == (1,)
        blocker.execute("COMMIT")
    r = run_cli("migrate", "-d", pg_db, "--sql-dir", str(sql_root))
    assert r.code == 0 and "applied 0002_add.sql" in r.stdout, r.output


def test_lock_timeout_bounds_the_last_statement_wait(pg_db: str, sql_root: Path) -> None:
    """A statement lock timeout longer than what is left of --lock-timeout is cut to what is left."""
    write_migrations(sql_root, "postgres", {"0001_t.sql": "CREATE TABLE t (id INTEGER);\n"})
    assert run_cli("migrate", "-d", pg_db, "--sql-dir", str(sql_root)).code == 0
    write_migrations(sql_root, "postgres", {"0002_add.sql": "ALTER TABLE t ADD COLUMN c INTEGER;\n"})
    with psycopg.connect(pg_db, autocommit=True) as blocker:
        _blocker_reads(blocker)
        started = time.monotonic()
        args = ["migrate", "-d", pg_db, "--sql-dir", str(sql_root), "--lock-timeout", "1"]
        code, _out, err = finish_cli(spawn_cli([*args, "--statement-lock-timeout", "20"]))
        took = time.monotonic() - started
        blocker.execute("ROLLBACK")
    assert code == 4, err
    assert "gave up on 0002_add.sql after 1s" in err
    assert took < 8, f"--lock-timeout 1 took {took:.1f}s (the 20 s statement lock timeout was not cut)"


def _cic_files(root: Path, rows: int) -> None:
    write_migrations(
        root,
        "postgres",
        {
            "0001_big.sql": "CREATE TABLE big (id INTEGER, v TEXT);\n"
            f"INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, {rows}) g;\n",
            "0002_idx.sql": "-- transactional: false\nCREATE INDEX CONCURRENTLY IF NOT EXISTS big_v ON big (v);\n",
            "0003_after.sql": "CREATE TABLE after_idx (id INTEGER);\n",
        },
    )


def _index_valid(admin: Any, name: str) -> Any:
    return admin.execute(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", (name,)
    ).fetchone()


@pytest.mark.parametrize("via", ["direct", "transaction"])
def test_concurrent_index_build_races_runners(
    via: str, pg_db: str, bouncers: dict[str, str], sql_root: Path, pg_admin_of: Any
) -> None:
    _cic_files(sql_root, 400_000)
    url = pg_db if via == "direct" else bouncers["transaction"].format(db=_dbname(pg_db))
    procs = [spawn_cli(["migrate", "-d", url, "--sql-dir", str(sql_root)]) for _ in range(5)]
    results = [finish_cli(p, timeout=120) for p in procs]
    assert [r[0] for r in results] == [0] * 5, [r[2] for r in results]
    assert sum(r[1].count("applied 0") for r in results) == 3
    with pg_admin_of(pg_db) as admin:
        assert _index_valid(admin, "big_v") == (True,)
        assert [r[0] for r in admin.execute("SELECT version FROM agor_migrations ORDER BY version")] == [1, 2, 3]
        assert admin.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone() == (0,)


def test_failed_concurrent_build_is_rebuilt_not_skipped(pg_db: str, sql_root: Path, pg_admin_of: Any) -> None:
    write_migrations(
        sql_root,
        "postgres",
        {
            "0001_t.sql": "CREATE TABLE t (v INTEGER);\nINSERT INTO t VALUES (1), (1), (2);\n",
            "0002_uniq.sql": "-- transactional: false\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS t_v ON t (v);\n",
        },
    )
    r = run_cli("migrate", "-d", pg_db, "--sql-dir", str(sql_root))
    assert r.code == 1, r.output
    assert "could not create unique index" in r.stderr
    assert "NOT transactional" in r.stderr and "INVALID (t_v)" in r.stderr and "drops it" in r.stderr
    with pg_admin_of(pg_db) as admin:
        assert _index_valid(admin, "t_v") == (False,)  # what a failed build leaves behind
        assert [r[0] for r in admin.execute("SELECT version FROM agor_migrations")] == [1]
        admin.execute("DELETE FROM t WHERE v = 1")
    r = run_cli("migrate", "-d", pg_db, "--sql-dir", str(sql_root))
    assert r.code == 0, r.output
    assert "dropped the invalid index public.t_v" in r.stderr and "applied 0002_uniq.sql" in r.stdout
    with pg_admin_of(pg_db) as admin:
        assert _index_valid(admin, "t_v") == (True,)


def test_session_settings_refused_through_a_pooler(
    pg_db: str, bouncers: dict[str, str], sql_root: Path, pg_admin_of: Any
) -> None:
    write_migrations(
        sql_root,
        "postgres",
        {
            "0001_t.sql": "CREATE TABLE t (v INTEGER);\n",
            "0002_idx.sql": "-- transactional: false\nSET maintenance_work_mem = '64MB';\n"
            "CREATE INDEX CONCURRENTLY t_v ON t (v);\n",
        },
    )
    pooled = bouncers["transaction"].format(db=_dbname(pg_db))
    r = run_cli("migrate", "-d", pooled, "--sql-dir", str(sql_root))
    assert r.code == 2, r.output
    assert "does not reach PostgreSQL directly" in r.stderr and "0002_idx.sql, line(s) 2" in r.stderr
    assert "--direct-url" in r.stderr and "AGOR_MIGRATION_DATABASE_URL" in r.stderr
    with pg_admin_of(pg_db) as admin:
        assert admin.execute("SELECT to_regclass('agor_migrations'), to_regclass('t')").fetchone() == (None, None)
    r = run_cli("migrate", "-d", pooled, "--sql-dir", str(sql_root), env={"AGOR_MIGRATION_DATABASE_URL": pg_db})
    assert r.code == 0, r.output
    assert "2 migration(s) applied" in r.stdout
    with pg_admin_of(pg_db) as admin:
        assert _index_valid(admin, "t_v") == (True,)


def test_direct_url_must_be_postgres(sql_root: Path, tmp_path: Path) -> None:
    r = run_cli("migrate", "--direct-url", str(tmp_path / "x.db"), "--sql-dir", str(sql_root))
    assert r.code == 2 and "--direct-url must be a PostgreSQL URL" in r.stderr, r.output
    assert not (tmp_path / "x.db").exists()


def test_server_crash_mid_concurrent_build(sql_root: Path) -> None:
    """On a dedicated server (the suite's must not be disturbed): crash it while CREATE INDEX
    CONCURRENTLY waits, then the next run drops the invalid index, builds it and journals it."""
    import pgserver
    from pgserver._commands import pg_ctl

    data = Path(tempfile.mkdtemp(prefix="agorcrash"))
    server = pgserver.get_server(data, cleanup_mode="delete")
    try:
        url = server.get_uri()
        _cic_files(sql_root, 1000)
        assert run_cli("migrate", "-d", url, "--sql-dir", str(sql_root), "--to", "0001").code == 0
        admin = psycopg.connect(url, autocommit=True)
        admin.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        admin.execute("SELECT count(*) FROM big").fetchone()  # an old snapshot the build must wait for
        proc = spawn_cli(["migrate", "-d", url, "--sql-dir", str(sql_root)])
        deadline = time.monotonic() + 30
        with psycopg.connect(url, autocommit=True) as watcher:
            while not watcher.execute("SELECT to_regclass('big_v')").fetchone()[0]:  # type: ignore[index]
                assert time.monotonic() < deadline, "the index build never started"
                time.sleep(0.05)
        pg_ctl(["-m", "immediate", "-w", "stop"], pgdata=data, user=server.system_user)
        admin.close()
        code, _out, err = finish_cli(proc)
        assert code == 5, err
        assert "0002_idx.sql is NOT transactional" in err and "it was not journaled" in err
        assert "(big_v) INVALID" in err and "drops it and builds it again" in err
        assert "rolled back whatever" not in err
        server.ensure_postgres_running()
        url = server.get_uri()
        r = run_cli("migrate", "-d", url, "--sql-dir", str(sql_root))
        assert r.code == 0, r.output
        assert "dropped the invalid index public.big_v" in r.stderr
        with psycopg.connect(url, autocommit=True) as admin:
            assert _index_valid(admin, "big_v") == (True,)
            assert [r[0] for r in admin.execute("SELECT version FROM agor_migrations ORDER BY 1")] == [1, 2, 3]
    finally:
        server.cleanup()


def test_concurrent_builds_are_found_in_a_file(tmp_path: Path) -> None:
    from agor_db.drivers.pg_indexes import IndexBuild, index_builds
    from agor_db.core.models import Migration, Script

    text = (
        "-- transactional: false\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS a_idx ON a (x);\n"
        '-- why\nCREATE UNIQUE INDEX CONCURRENTLY "B.idx" ON agor.b (y);\n'
        "create index concurrently c_idx on only c (z);\n"
        "REINDEX (VERBOSE) INDEX CONCURRENTLY agor.d_idx;\n"
        "CREATE INDEX e_idx ON e (x);\n"
        "VACUUM a;\n"
    )
    script = Script(Migration(2, "idx", tmp_path / "0002_idx.sql", "x"), text, transactional=False)
    assert index_builds(script) == [
        IndexBuild("a_idx", reindex=False),
        IndexBuild('agor."B.idx"', reindex=False),
        IndexBuild("c_idx", reindex=False),
        IndexBuild("agor.d_idx", reindex=True),
    ]


def test_wrong_password_through_pgbouncer_says_so(bouncers: dict[str, str], pg_db: str) -> None:
    # PgBouncer words a refused password "SASL authentication failed", not "password authentication failed"
    url = bouncers["transaction"].format(db=_dbname(pg_db))
    bad = url.replace(quote(TEST_PASSWORD, safe=""), quote(WRONG_PASSWORD, safe=""))
    assert bad != url
    r = run_cli("status", "-d", bad)
    assert r.code == 5, r.output
    assert "authentication failed" in r.stderr and "the user name or password is wrong" in r.stderr


def _copy_source(path: Path, messages: int) -> Path:
    from test_copy_baddata import base_source, message

    c = base_source(path)
    with c:
        for i in range(messages):
            message(c, f"m{i:05d}", index=i + 1, data=f'{{"i": {i}, "text": "{"x" * 200}"}}')
    c.close()
    return path


def test_copy_through_a_transaction_pooler_leaves_nothing_behind(
    bouncers: dict[str, str], new_db: Any, tmp_path: Path, pg_admin_of: Any
) -> None:
    """copy takes the migration lock for its own transaction only: other clients of the pool never find it
    on their server connection, and nothing of it is left once the copy is done."""
    source = _copy_source(tmp_path / "agor.db", 3000)
    name = new_db()
    url = bouncers["transaction"].format(db=name)
    probe = _Probe(url)
    probe.start()
    try:
        r = run_cli("copy", "--from", str(source), "--to", url)
    finally:
        probe.stop.set()
        probe.join(10)
    assert r.code == 0, r.output
    assert "row counts and checksums verified" in r.stdout
    with pg_admin_of(f"postgresql:///{name}") as admin:
        assert admin.execute("SELECT count(*) FROM messages").fetchone()[0] >= 3000
        locks = admin.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()
    assert locks == (0,), "an advisory lock survived on a server connection"
    assert probe.errors == []
    assert probe.seen == {DEFAULTS}, f"another client of the pool saw agor-db's session state: {probe.seen}"


def test_copy_waits_for_the_migration_lock_then_gives_up_unchanged(
    new_db: Any, tmp_path: Path, pg_server: PgServer, pg_admin_of: Any
) -> None:
    from agor_db.drivers.pg_lock import LOCK_KEY

    source = _copy_source(tmp_path / "agor.db", 10)
    name = new_db()
    url = pg_server.url(name)
    assert run_cli("migrate", "-d", url).code == 0  # the target at the newest version, as copy leaves it
    with psycopg.connect(url, autocommit=True, application_name="other-migrator") as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        started = time.monotonic()
        r = run_cli("copy", "--from", str(source), "--to", url, "--lock-timeout", "1")
        took = time.monotonic() - started
    assert r.code == 4, r.output
    assert "migration lock" in r.stderr and "other-migrator" in r.stderr, r.stderr
    assert took < 15
    with pg_admin_of(f"postgresql:///{name}") as admin:
        assert admin.execute("SELECT count(*) FROM messages").fetchone() == (0,)
        assert admin.execute("SELECT to_regclass('agor_copy_runs') IS NULL").fetchone() == (True,)
