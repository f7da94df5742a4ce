"""agor-db copy with worker processes (copy/parallel.py): the same rows on the server, byte for byte, as the
single path; flagged rows in a worker's range handled exactly as before; a dead or refusing worker and a
source written to during the copy handled without a wrong or half-written target."""

from __future__ import annotations

import itertools
import math
import os
import signal
import sys
from pathlib import Path
from typing import Any

import apsw
import psycopg
import pytest
from conftest import REPO, run_cli
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agor_db.copy import parallel
from agor_db.copy.convert import Policies, converter_for
from agor_db.copy.json import check_sent
from agor_db.copy.pgbinary import encoder, hashing_encoder
from agor_db.copy.target import Column
from agor_db.copy.verify import RowHasher
from agor_db.copy.parallel import RangeTask, WorkerFailed, Workers
from agor_db.copy.scan import BadData
from agor_db.copy.run import Copier, CopyOptions, CopyResult, Progress
from agor_db.core.errors import AgorDbError
from agor_db.core.source import bundled_sql_root
from agor_db.core.urls import parse_url

MESSAGES = 3000
T = 1_762_030_000_000


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import gen_agor_db
    finally:
        sys.path.pop(0)
    path = tmp_path_factory.mktemp("parallel") / "gen.db"
    gen_agor_db.generate(path, messages=MESSAGES, huge=1, shape="small")
    return path


@pytest.fixture
def source(generated: Path, tmp_path: Path) -> Path:
    path = tmp_path / "src.db"
    src, dst = apsw.Connection(str(generated)), apsw.Connection(str(path))
    with dst.backup("main", src, "main") as b:
        b.step()
    src.close()
    dst.close()
    apsw.Connection(str(path)).execute("PRAGMA journal_mode = WAL")
    return path


@pytest.fixture(autouse=True)
def small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranges of 200 rows for tables of 500 rows or more: the test data goes through the workers."""
    monkeypatch.setattr(parallel, "MIN_ROWS", 500)
    monkeypatch.setattr(parallel, "RANGE_ROWS", 200)


def copier(src: Path, url: str, workers: int, progress: Progress | None = None, **policies: str) -> Copier:
    options = CopyOptions(truncate=True, workers=workers, policies=Policies(**policies))  # type: ignore[arg-type]
    return Copier(parse_url(str(src)), parse_url(url), bundled_sql_root(), options, progress or Progress())


def run(c: Copier) -> tuple[CopyResult, AgorDbError | None]:
    try:
        return c.run(), None
    except AgorDbError as exc:
        return c.result, exc


def server_rows(url: str) -> dict[str, list[tuple[str, str]]]:
    """Every copied table's rows as PostgreSQL stores them: (ctid, the row's text), in physical order."""
    with psycopg.connect(url) as conn:
        tables = [
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
            if r[0] not in ("agor_migrations", "agor_copy_runs")
        ]
        return {t: conn.execute(f'SELECT ctid::text, t::text FROM "{t}" t ORDER BY ctid').fetchall() for t in tables}


def contents(rows: dict[str, list[tuple[str, str]]]) -> dict[str, list[str]]:
    """The rows, wherever each lies (a pass done again stores its rows among the first one's dead rows,
    and PostgreSQL may prune those and reuse their space)."""
    return {table: sorted(text for _, text in found) for table, found in rows.items()}


def report_of(result: CopyResult) -> tuple[Any, ...]:
    r = result.report
    return (
        {k: sorted(map(repr, g.items)) for k, g in r.problems.items()},
        {k: sorted(map(repr, g.items)) for k, g in r.changes.items()},
    )


def worker_rows(result: CopyResult) -> int:
    return sum(t.worker_rows for t in result.tables)


def test_workers_store_what_the_single_path_stores(source, pg_db):
    single, err = run(copier(source, pg_db, 1))
    assert err is None and worker_rows(single) == 0
    expected = server_rows(pg_db)
    par, err = run(copier(source, pg_db, 2))  # --truncate: the same target again
    assert err is None
    messages = next(t for t in par.tables if t.name == "messages")
    assert messages.worker_rows == messages.copied_rows == MESSAGES  # every message went through a worker
    assert par.passes_redone == 0  # every JSON text the workers left unchecked, PostgreSQL took
    assert server_rows(pg_db) == expected
    assert par.source_checksum == single.source_checksum
    assert [(t.name, t.source_digest, t.target_digest) for t in par.tables] == [
        (t.name, t.source_digest, t.target_digest) for t in single.tables
    ]


def _grow(path: Path) -> None:
    """Rows past the 2,000th grow to ~20 KB (Agor's tool outputs grow along a file)."""
    with apsw.Connection(str(path)) as c:
        c.execute("UPDATE messages SET data = json_set(data, '$.pad', printf('%.20000c', 'x')) WHERE rowid > 2000")


def test_ranges_follow_where_the_rows_grow_and_never_pass_the_limit(source, pg_db, monkeypatch):
    """Ranges are sized by rows sampled along the whole table, not by its first rows: where rows grow, the
    ranges hold fewer of them and stay with the workers. A range whose COPY data still passes RANGE_LIMIT
    goes back to the main process, which reads it row by row: a worker never holds more. Either way the
    same rows are stored, with the same checksums."""
    _grow(source)
    single, err = run(copier(source, pg_db, 1))
    assert err is None
    expected = server_rows(pg_db)
    monkeypatch.setattr(parallel, "RANGE_BYTES", 1 << 20)
    for limit, main_rows in ((3 << 20, 0), (1 << 19, 900)):  # 3 MB: a range sized by the first rows passes it
        monkeypatch.setattr(parallel, "RANGE_LIMIT", limit)
        par, err = run(copier(source, pg_db, 2))
        assert err is None
        messages = next(t for t in par.tables if t.name == "messages")
        assert messages.copied_rows == MESSAGES
        if main_rows:  # the grown rows (2001..3000) read by the main process, the small ones by workers
            assert 0 < messages.worker_rows <= MESSAGES - main_rows, limit
        else:
            assert messages.worker_rows == MESSAGES, limit
        assert server_rows(pg_db) == expected
        assert par.source_checksum == single.source_checksum
        assert [(t.name, t.source_digest, t.target_digest) for t in par.tables] == [
            (t.name, t.source_digest, t.target_digest) for t in single.tables
        ]


@settings(max_examples=200, deadline=None)
@given(
    lo=st.integers(-(2**40), 2**40),
    span=st.integers(1, 10**7),
    density=st.floats(0.01, 1.0),
    sizes=st.lists(st.floats(0, 10**7), min_size=1, max_size=50),
)
def test_sized_ranges_cover_every_rowid_once(lo, span, density, sizes):
    hi = lo + span - 1
    rows = max(1, int(span * density))
    step = max(1, span // len(sizes))
    samples = [(lo + i * step, size) for i, size in enumerate(sizes) if lo + i * step <= hi]
    bounds = parallel.split_sized(lo, hi, rows, samples)
    assert bounds[0][0] == lo - 1 and bounds[-1][1] == hi
    assert all(a < b for a, b in bounds)
    assert all(b == a2 for (_, b), (a2, _) in itertools.pairwise(bounds))


def _split_range_by_range(lo, hi, rows, samples):
    """The reference for split_sized: its ranges made one at a time."""
    per_rowid = rows / (hi - lo + 1)
    bounds, after, units = [], lo - 1, 0.0
    for i, (start, size) in enumerate(parallel._smoothed(samples)):
        end = samples[i + 1][0] - 1 if i + 1 < len(samples) else hi
        density = per_rowid / parallel.rows_per_range(size)
        pos = start - 1
        while (need := (1.0 - units) / density) <= end - pos:
            pos = min(end, pos + max(1, math.ceil(need)))
            bounds.append((after, pos))
            after, units = pos, 0.0
        units += density * (end - pos)
    return [*bounds, (after, hi)] if after < hi else bounds


@settings(max_examples=300, deadline=None)
@given(
    lo=st.integers(-(2**62), 2**62),
    span=st.integers(1, 5_000),
    sizes=st.lists(
        st.one_of(st.floats(0, 10**7), st.sampled_from([1.0, 499.0, 10_486.0, 2**21])), min_size=1, max_size=40
    ),
    data=st.data(),
)
def test_sized_ranges_are_those_made_one_at_a_time(lo, span, sizes, data):
    """split_sized counts a segment's whole ranges instead of looping over them: the same ranges, also for
    more rows than rowids, rowids near 2**62 (where a float no longer holds every integer), and a row per
    rowid (ranges of a whole number of rowids, where the last one fills a segment exactly)."""
    rows = data.draw(st.one_of(st.integers(1, 15_000), st.sampled_from([span, 2 * span, max(1, span // 2)])))
    hi = lo + span - 1
    step = max(1, span // len(sizes))
    samples = [(lo + i * step, size) for i, size in enumerate(sizes) if lo + i * step <= hi]
    assert parallel.split_sized(lo, hi, rows, samples) == _split_range_by_range(lo, hi, rows, samples)


def test_sized_ranges_that_fill_a_segment_exactly():
    """A row per rowid and ranges of 200 rows (RANGE_ROWS here): the second range ends where the first
    segment does, and the next segment starts a new one."""
    assert parallel.split_sized(1, 800, 800, [(1, 1.0), (401, 1.0)]) == [(0, 200), (200, 400), (400, 600), (600, 800)]
    assert parallel.split_sized(1, 800, 800, [(1, 1.0), (401, 1.0)]) == _split_range_by_range(
        1, 800, 800, [(1, 1.0), (401, 1.0)]
    )


def test_sized_ranges_hold_about_range_bytes():
    """Uniform rows: as many ranges as RANGE_BYTES (or RANGE_ROWS) make; rows 100 times larger in the
    second half: that half gets ~100 times the ranges."""
    per = parallel.rows_per_range(500.0)
    uniform = parallel.split_sized(1, 200_000, 200_000, [(1 + 200 * i, 500.0) for i in range(1000)])
    assert abs(len(uniform) - 200_000 / per) <= 1
    grown = [(1 + 200 * i, 500.0 if i < 500 else 50_000.0) for i in range(1000)]
    bounds = parallel.split_sized(1, 200_000, 200_000, grown)
    first = [b for b in bounds if b[1] <= 100_000]
    second = [b for b in bounds if b[0] >= 100_000]
    assert abs(len(first) - 100_000 / per) <= 1
    assert abs(len(second) - 100_000 / parallel.rows_per_range(50_000.0)) <= 2
    # one sampled row of 1 MB among rows of 500 bytes does not cut its neighbourhood into tiny ranges
    lone = [(1 + 200 * i, 1e6 if i == 300 else 500.0) for i in range(1000)]
    assert len(parallel.split_sized(1, 200_000, 200_000, lone)) == len(uniform)


def _spoil(path: Path) -> None:
    """Rows the SQLite-side tests flag, in the middle of worker ranges."""
    with apsw.Connection(str(path)) as c:
        c.execute("UPDATE messages SET data = '{\"a\": ' WHERE rowid = 701")  # invalid JSON
        c.execute("UPDATE messages SET session_id = 'no-such-session' WHERE rowid = 1502")  # orphan
        c.execute("UPDATE messages SET data = '{\"n\": 1e9999999}' WHERE rowid = 2203")  # jsonb refuses the number
        c.execute("UPDATE messages SET role = 'us' || char(0) || 'er' WHERE rowid = 2604")  # NUL in text


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ('{"n": 1e9999999}', "a number numeric cannot hold"),
        ('{"a": "\\u0000"}', "a \\u0000 escape"),
        ('["\\ud800"]', "an unpaired surrogate escape"),
        ('{"a": }', "invalid JSON"),
    ],
)
def test_a_text_postgresql_refuses_in_a_worker_range_has_the_pass_done_again(source, pg_db, text, kind):
    """Worker ranges send JSON unchecked, each kind of text jsonb refuses is refused by PostgreSQL itself, and
    the pass done again with the checks here reports the row as the single path does; nothing is kept."""
    with apsw.Connection(str(source)) as c:
        c.execute("UPDATE messages SET data = ? WHERE rowid = 1234", (text,))
    single, single_err = run(copier(source, pg_db, 1))
    phases: list[str] = []

    class Phases(Progress):
        def phase(self, text: str) -> None:
            phases.append(text)

    par, par_err = run(copier(source, pg_db, 2, Phases()))
    assert "PostgreSQL refused a JSON text: copying again, every one checked here first" in phases
    assert isinstance(par_err, BadData) and str(par_err) == str(single_err), kind
    assert report_of(par) == report_of(single) and par.report.problem_count == 1
    assert (single.passes_redone, par.passes_redone) == (0, 1)
    assert all(not rows for rows in server_rows(pg_db).values())


@pytest.mark.parametrize(
    ("policies", "refused"),
    [
        ({}, 4),
        ({"invalid_json": "drop", "nul": "strip"}, 1),  # the orphan still refused
        ({"invalid_json": "drop", "nul": "strip", "orphans": "drop"}, 0),
    ],
    ids=["refused", "orphan-refused", "all-dropped-or-stripped"],
)
def test_flagged_rows_in_worker_ranges_handled_as_before(source, pg_db, policies, refused):
    """The workers leave JSON texts to PostgreSQL's parse: the invalid one is refused there, and the pass is
    done again with every check on this side, which finds, reports and handles each row as the single
    path does, and stores the same rows."""
    _spoil(source)
    single, single_err = run(copier(source, pg_db, 1, **policies))
    expected = contents(server_rows(pg_db))
    par, par_err = run(copier(source, pg_db, 2, **policies))
    assert (str(par_err), report_of(par)) == (str(single_err), report_of(single))
    assert contents(server_rows(pg_db)) == expected
    assert (single.passes_redone, par.passes_redone) == (0, 1)
    assert 0 < worker_rows(par) < MESSAGES  # clean ranges from the workers, the spoiled ones redone in order
    assert par.report.problem_count == refused
    if refused:
        assert isinstance(par_err, BadData)
        assert all(not rows for rows in expected.values())  # refused: nothing was kept
    else:
        assert par_err is None and par.source_checksum == single.source_checksum
        assert par.report.change_count == 4 and len(expected["messages"]) == MESSAGES - 3


class _KillWorker(Progress):
    """Kills worker 0 (SIGKILL) once the first rows have come from the workers."""

    copier: Copier | None = None

    def table_rows(self, table: str, done: int) -> None:
        assert self.copier is not None
        if table == "messages" and self.copier.workers is not None and self.copier.workers._procs:
            proc = self.copier.workers._procs[0]
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


def test_dead_worker_rolls_everything_back(source, pg_db):
    progress = _KillWorker()
    c = progress.copier = copier(source, pg_db, 2, progress)
    _, err = run(c)
    assert isinstance(err, WorkerFailed)
    assert "copy worker 0 died (exit code -9) while reading rowids" in err.message
    assert "the copy was rolled back, the target is unchanged" in err.message
    assert all(not rows for rows in server_rows(pg_db).values())
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT to_regclass('agor_copy_runs')").fetchone()[0] is None
        assert conn.execute("SELECT to_regclass('messages_session_index_idx') IS NOT NULL").fetchone()[0]


class _MoveSource(Progress):
    """Takes the source file away once the main process has it open: the workers cannot open it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def phase(self, text: str) -> None:
        if text.startswith("starting 2 worker processes") and self.path.exists():
            for suffix in ("", "-wal", "-shm"):
                p = Path(str(self.path) + suffix)
                if p.exists():
                    p.rename(str(p) + ".moved")


def test_worker_that_cannot_read_the_source_rolls_everything_back(source, pg_db):
    _, err = run(copier(source, pg_db, 2, _MoveSource(source)))
    assert isinstance(err, WorkerFailed)
    assert "failed: cannot read the source" in err.message and "the target is unchanged" in err.message
    assert all(not rows for rows in server_rows(pg_db).values())


def test_workers_refuse_a_missing_file_with_a_clear_error(tmp_path):
    workers = Workers(str(tmp_path / "absent.db"), 1)
    try:
        with pytest.raises(WorkerFailed, match="copy worker 0 of table t failed: cannot read the source"):
            list(workers.run("t", [RangeTask("SELECT 1", (), 0, 1)]))
    finally:
        workers.close()


class _WriteSource(Progress):
    """Commits a change to the source (WAL: the main snapshot does not see it) before the workers start."""

    def __init__(self, path: Path) -> None:
        self.path, self.written = path, False
        self.phases: list[str] = []

    def phase(self, text: str) -> None:
        self.phases.append(text)

    def table_start(self, table: str, total: int) -> None:
        if table == "messages" and not self.written:
            self.written = True
            with apsw.Connection(str(self.path)) as c:
                c.execute("UPDATE messages SET data = '{\"changed\": true}' WHERE rowid = 10")


def test_source_written_during_the_copy_copies_the_snapshot(source, pg_db):
    with apsw.Connection(str(source)) as c:
        before = c.execute("SELECT message_id, data FROM messages WHERE rowid = 10").fetchone()
    progress = _WriteSource(source)
    result, err = run(copier(source, pg_db, 2, progress))
    assert err is None
    assert "the source changed during the copy: copying again without worker processes" in progress.phases
    assert worker_rows(result) == 0  # the pass that counts was the single one
    with psycopg.connect(pg_db) as conn:
        stored = conn.execute("SELECT data::text FROM messages WHERE message_id = %s", (before[0],)).fetchone()[0]
    assert "changed" not in stored  # the row as it was when the copy began


@pytest.mark.parametrize("value", ["0", "many", "65"])
def test_bad_worker_count_refused_before_anything(source, pg_db, value):
    r = run_cli("copy", "--from", str(source), "--to", pg_db, env={"AGOR_DB_COPY_WORKERS": value})
    assert r.code == 2, r.output
    assert f"AGOR_DB_COPY_WORKERS={value if value != 'many' else repr(value)}" in r.stderr
    with psycopg.connect(pg_db) as conn:  # not even migrated
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0] == 0


# -- the worker's one pass: binary COPY rows and their checksum terms ----------------------------------

COLUMNS = (
    Column("t", "text", None, False, False, 25),
    Column("created_at", "bigint", None, False, False, 20),
    Column("data", "jsonb", None, False, False, 3802),
    Column("flag", "boolean", None, False, False, 16),
    Column("blob", "bytea", None, False, False, 17),
    Column("n", "integer", None, False, False, 23),
    Column("s", "smallint", None, False, False, 21),
)
WIRE = (25, 20, 25, 16, 17, 23, 21)  # as staged: JSON as text
CONVERTERS = tuple(converter_for(c, "t") for c in COLUMNS)
ROWS = st.tuples(
    st.one_of(st.none(), st.text()),
    st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
    st.one_of(st.none(), st.sampled_from(['{"a": "caf\\u00e9 \u2705"}', "[1.50, -0, 1e2]", '"\\ud83d\\ude80"'])),
    st.one_of(st.none(), st.sampled_from([0, 1])),
    st.one_of(st.none(), st.binary()),
    st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1)),
    st.one_of(st.none(), st.integers(-(2**15), 2**15 - 1)),
).filter(lambda r: r[0] is None or r[0].encode("utf-8", "surrogatepass").decode("utf-8", "ignore") == r[0])


@settings(max_examples=300, deadline=None)
@given(row=ROWS)
@example(row=("a\x00b", None, None, None, None, None, None))
@example(row=("ab", None, '{"a": "\x00"}', None, None, None, None))
def test_hashing_encoder_gives_rowhasher_checksum_and_encoder_bytes(row):
    """The same checksum and bytes; a text with a NUL character (which the SQLite-side filter leaves to the
    binary form's hashing) refused by both, the row then going to the exact check."""
    expected = RowHasher(CONVERTERS, None, json_as_sent=True, wire=WIRE)
    encode_hash = hashing_encoder(WIRE, tuple(c.family for c in CONVERTERS), check_sent, 1 << 20)
    plain, hashed = bytearray(), bytearray()
    if any(v is not None and "\x00" in v for v in (row[0], row[2])):
        with pytest.raises(ValueError, match="NUL"):
            expected.add(row)
        with pytest.raises(ValueError, match="NUL"):
            encode_hash(row, hashed)
        assert expected.rows == 0 and hashed == b""
        return
    expected.add(row)
    encoder(WIRE)(row, plain)
    term = encode_hash(row, hashed)
    assert term == expected.total and hashed == plain


def test_worker_range_with_a_value_over_the_limit_hashes_it_in_chunks(tmp_path, monkeypatch):
    """Rows with a value longer than verify.LONG (here made 100) take the hasher's chunked path in the
    worker: the same checksum and COPY bytes as every other row's."""
    path = tmp_path / "r.db"
    src = apsw.Connection(str(path))
    src.execute("CREATE TABLE r (t, created_at, data, flag, blob, n, s)")
    rows = [("x" * (50 + 40 * i), T, '{"k": "' + "v" * (30 * i) + '"}', i % 2, b"\x00" * i, i, -i) for i in range(6)]
    src.executemany("INSERT INTO r VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    monkeypatch.setattr(parallel, "LONG", 100)
    names = ", ".join(c.name for c in COLUMNS)
    query = f"SELECT rowid, {names}, 0 FROM r WHERE rowid > ? AND rowid <= ?"
    task = RangeTask(query, CONVERTERS, 0, 6, WIRE, wire=WIRE)
    done = parallel._range(src, task, {})
    expected = RowHasher(CONVERTERS, None, json_as_sent=True, wire=WIRE)
    plain = bytearray()
    for row in rows:
        expected.add(row)
        encoder(WIRE)(row, plain)
    assert (done.rows, done.total, done.data) == (6, expected.total, plain)


def _serving_children() -> list[int]:
    """This process's worker processes still alive (parallel.WORKER_CODE in their command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"parallel import serve" in cmdline:
            found.append(int(entry.name))
    return found


def test_a_large_source_starts_its_workers_before_the_target_is_prepared(source, pg_db, monkeypatch):
    """Past EARLY_WORKERS_BYTES the workers start up while the target is migrated and read, and serve the
    copy as before; a target that cannot be reached stops them, and none is left behind."""
    from agor_db.copy import run as copy_run

    monkeypatch.setattr(copy_run, "EARLY_WORKERS_BYTES", 0)
    events: list[str] = []
    start, open_source = Workers.start, Copier._open_source

    def started(self: Workers) -> None:
        if not self._procs:
            events.append("workers started")
        start(self)

    def opened(self: Copier, newest: int, close_target: Any) -> Any:
        events.append("target prepared, source snapshot")
        return open_source(self, newest, close_target)

    monkeypatch.setattr(Workers, "start", started)
    monkeypatch.setattr(Copier, "_open_source", opened)
    result, err = run(copier(source, pg_db, 2))
    assert err is None and events[:2] == ["workers started", "target prepared, source snapshot"]
    assert worker_rows(result) > 0 and not _serving_children()

    events.clear()
    unreachable = pg_db.rsplit("/", 1)[0] + "/no_such_database_here"
    failed = copier(source, unreachable, 2)
    with pytest.raises(AgorDbError, match="no_such_database_here"):
        failed.run()
    assert events == ["workers started"] and failed.workers is None and not _serving_children()


def test_a_row_dropped_from_a_table_sends_only_its_children_to_the_exact_check(source, pg_db):
    """--invalid-json=drop drops one message: the worker ranges after it still go as they are (a message
    refers to sessions and tasks, none of which lost a row), while board_comments, which refers to messages,
    is checked row by row against the dropped key. The same rows as the single path stores."""
    with apsw.Connection(str(source)) as c:
        c.execute("UPDATE messages SET data = '{\"a\": ' WHERE rowid = 1234")
        dropped = c.execute("SELECT message_id FROM messages WHERE rowid = 1234").fetchone()[0]
        c.execute("UPDATE board_comments SET message_id = ? WHERE rowid = 1", (dropped,))
    single, err = run(copier(source, pg_db, 1, invalid_json="drop", orphans="null"))
    assert err is None
    expected = contents(server_rows(pg_db))
    par, err = run(copier(source, pg_db, 2, invalid_json="drop", orphans="null"))
    assert err is None and report_of(par) == report_of(single)
    assert contents(server_rows(pg_db)) == expected
    messages = next(t for t in par.tables if t.name == "messages")
    assert (messages.copied_rows, messages.dropped_rows) == (MESSAGES - 1, 1)
    assert messages.worker_rows >= MESSAGES - 200  # only the range holding the dropped row was read again
    (comment,) = report_of(par)[1][("board_comments", "orphaned foreign key set to NULL")]
    assert "column='message_id'" in comment and "its messages row was dropped by a policy" in comment
