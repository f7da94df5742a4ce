"""Worker processes that read, test and hash a large table's rows by rowid ranges, beside the main pass.

The main process keeps everything that needs the pass's order (the exact check of flagged rows,
policies, drops, orphans, claimed keys) and the one COPY (one transaction is one connection). The
workers take the per-row work that does not: the SELECT with the SQLite-side tests, the hash of the
values as they are sent (with the number pre-check), and the values themselves, for ranges of rowids
(``RangeTask``). A range in which any row is flagged, is not UTF-8, or fails the pre-check comes back
without values (``RangeDone.values is None``) and the main process reads it again itself, in order,
through the exact path. The table's checksum is a sum of the rows' digests, so the ranges' sums add up
in any order; the values are forwarded in range order, so the server receives the rows in the order
the single path sends them. For a staged table the workers may leave whether each JSON text parses to
PostgreSQL (``RangeTask.check_json`` False: no json_valid, no pre-check): its jsonb parse of the bytes
it received is the exact test, and a text it refuses has the pass done again with both (load.py).

Consistency: each worker reads in its own read transaction, begun after the watch below was made (for a
large source before the target is prepared, else after the main snapshot began). They see the same rows
unless a commit reached the source in between: ``SnapshotWatch`` reads SQLite's ``PRAGMA data_version``
(which changes with any other connection's commit) before the workers and the main snapshot begin and
after the pass, and the copier redoes the pass on the single path when it changed.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import signal
import struct
import subprocess
from collections import deque
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from itertools import islice
from statistics import median
from typing import Any

from ..core.errors import AgorDbError, UsageError
from .convert import Converter
from .json import check_sent
from .longtext import LONG
from .pgbinary import Encoder, HashingEncoder, TooLong, encoder, hashing_encoder
from .verify import RowHasher

WORKERS_ENV = "AGOR_DB_COPY_WORKERS"
RANGE_ROWS = 4000  # rows per range at most ...
RANGE_BYTES = 2 << 20  # ... and about this much data (a handful of ranges are in flight: memory stays flat)
# A range whose rows turn out far larger than the sample they were sized by (Agor's tool outputs grow
# late in a file) goes back to the main process, which reads it row by row: a worker never holds more.
RANGE_LIMIT = 8 << 20
BATCH_ROWS, BATCH_BYTES = 128, 1 << 20  # rows fetched at once, then encoded (see _range_rows)
MIN_ROWS = 5_000  # smaller tables stay on the single path (a range or two: the workers would not pay)
IN_FLIGHT = 2  # ranges queued per worker: enough to keep it busy, few enough to keep memory flat


class WorkerFailed(AgorDbError):
    """A worker process died or could not read the source; the copy is rolled back."""


def worker_count(option: int | None = None) -> int:
    """--workers, else $AGOR_DB_COPY_WORKERS, else the machine's cores; 1 means no worker processes."""
    value: Any = option
    where = "--workers"
    if value is None:
        value, where = os.environ.get(WORKERS_ENV), WORKERS_ENV
    if value is None or value == "":
        return max(1, os.cpu_count() or 1)
    try:
        n = int(value)
    except ValueError:
        raise UsageError(f"{where}={value!r}: expected a whole number of worker processes (1 = none)") from None
    if not 1 <= n <= 64:
        raise UsageError(f"{where}={n}: expected 1 to 64 worker processes (1 = none)")
    return n


@dataclass(frozen=True)
class RangeTask:
    """Rows with ``lo < rowid <= hi`` of one table: ``query`` selects (rowid, values..., flag) between them."""

    query: str
    converters: tuple[Converter, ...]
    lo: int
    hi: int
    oids: tuple[int, ...] | None = None  # the COPY's column types: the rows come back as binary COPY data
    limit: int = RANGE_LIMIT  # bytes of COPY data past which the range goes back to the main process
    wire: tuple[int, ...] | None = None  # the checksum's form (verify.RowHasher); ``oids``, when they are set
    # False: JSON texts go unchecked (the query has no json_valid either): PostgreSQL's own parse of what it
    # receives is the check, and a text it refuses has the pass done again with this True (load.py)
    check_json: bool = True


@dataclass(frozen=True)
class RangeDone:
    """A range's rows (count and digest sum), in rowid order as values or as binary COPY rows (``data``,
    pgbinary.py); ``clean`` False: the main process reads the range again on the exact path (a row needs it)."""

    lo: int
    hi: int
    rows: int = 0
    total: int = 0
    values: list[tuple[Any, ...]] | None = None
    data: bytes | bytearray | None = None

    @property
    def clean(self) -> bool:
        return self.values is not None or self.data is not None


def rows_per_range(row_bytes: float) -> int:
    """RANGE_ROWS, fewer for rows of many bytes (``row_bytes``: their size where the range lies)."""
    return max(1, min(RANGE_ROWS, int(RANGE_BYTES // max(row_bytes, 1.0))))


SAMPLES = 1000  # rows spread over a table whose sizes set its ranges


def sample_sql(table: str, size: str) -> str:
    """(rowid, bytes) of the first row at or after each of ~SAMPLES evenly spaced rowids (parameters:
    first, step, last): a seek each, reading lengths only. Rows of one table often grow along it (Agor's
    tool outputs): a sample of the first rows would size every range by the smallest."""
    return (
        "WITH RECURSIVE agor_db_p(agor_db_at) AS (SELECT ?1 UNION ALL SELECT agor_db_at + ?2 FROM agor_db_p "
        "WHERE agor_db_at + ?2 <= ?3) SELECT agor_db_at, "
        f"(SELECT {size} FROM {table} WHERE rowid >= agor_db_at ORDER BY rowid LIMIT 1) FROM agor_db_p"
    )


def sample_step(lo: int, hi: int) -> int:
    return max(1, (hi - lo + 1) // SAMPLES)


def _smoothed(samples: list[tuple[int, float]], around: int = 4) -> list[tuple[int, float]]:
    """Each size the median of its neighbours': a region of large rows counts, one large row alone (a
    sampled 1 MB value among 1 KB ones) does not cut its neighbourhood into ranges of a row each. A range
    it underestimates is caught by RANGE_LIMIT."""
    sizes = [size for _, size in samples]
    return [(at, median(sizes[max(0, i - around) : i + around + 1])) for i, (at, _) in enumerate(samples)]


def split_sized(lo: int, hi: int, rows: int, samples: list[tuple[int, float]]) -> list[tuple[int, int]]:
    """(after, upto] rowid bounds covering ``lo..hi``, each range about RANGE_BYTES (or RANGE_ROWS) by the
    sizes ``samples`` (rowid, bytes; ascending, the first at ``lo``) found where it lies. Rows are taken
    as spread evenly over the rowids."""
    if rows <= 0 or not samples:
        return [(lo - 1, hi)]
    per_rowid = rows / (hi - lo + 1)
    bounds: list[tuple[int, int]] = []
    after, units = lo - 1, 0.0  # units: the part of a range filled since ``after``
    for i, (start, size) in enumerate(_smoothed(samples)):
        end = samples[i + 1][0] - 1 if i + 1 < len(samples) else hi
        density = per_rowid / rows_per_range(size)  # ranges per rowid here
        pos = start - 1
        need = (1.0 - units) / density
        if need <= end - pos:  # the range open since ``after`` is filled here; whole ranges follow it
            pos = min(end, pos + max(1, math.ceil(need)))
            bounds.append((after, pos))
            pos = after = _whole_ranges(bounds, pos, end, 1.0 / density)
            units = 0.0
        units += density * (end - pos)
    if after < hi:
        bounds.append((after, hi))
    return bounds


def _whole_ranges(bounds: list[tuple[int, int]], pos: int, end: int, need: float) -> int:
    """Append the ranges of ``need`` rowids that start empty after ``pos`` and are filled by ``end``;
    return where the last one ends. Counted rather than looped for: where rows are large every rowid is
    a range of its own (millions in a segment). Exactly the ranges a range-by-range loop makes."""
    step = max(1, math.ceil(need))
    room = end - pos
    if need > room:
        return pos
    more = max(0, int((room - need) // step))  # the float estimate, then the exact test (int vs float)
    while more > 0 and not need <= room - more * step:
        more -= 1
    while need <= room - (more + 1) * step:
        more += 1
    last = pos + (more + 1) * step
    bounds.extend(zip(range(pos, last, step), range(pos + step, last + 1, step), strict=True))
    return last


# -- the worker process -----------------------------------------------------------------------


@dataclass
class _Table:
    """What a worker keeps per table: the hasher, and the binary COPY encoders when the rows go as such."""

    hasher: RowHasher
    encode: Encoder | None = None
    encode_hash: HashingEncoder | None = None


def _table(task: RangeTask) -> _Table:
    table = _Table(RowHasher(task.converters, None, json_as_sent=True, wire=task.wire))
    if task.oids:
        assert task.oids == task.wire  # the rows are hashed as the bytes encoded
        table.encode = encoder(task.oids)
        families = tuple(c.family for c in task.converters)
        table.encode_hash = hashing_encoder(task.oids, families, check_sent if task.check_json else _unchecked, LONG)
    return table


def _unchecked(text: str, raw: bytes) -> None:
    pass


def _range(src: Any, task: RangeTask, tables: dict[str, _Table]) -> RangeDone:
    # The rows of a range make no reference cycles (reference counting frees them): without the cyclic
    # collector walking them the range costs ~7 % less. It runs again between ranges.
    gc.disable()
    try:
        return _range_rows(src, task, tables)
    finally:
        gc.enable()


def _range_rows(src: Any, task: RangeTask, tables: dict[str, _Table]) -> RangeDone:
    key = f"{task.check_json} {task.query}"
    table = tables.get(key) or tables.setdefault(key, _table(task))
    hasher, encode, encode_hash = table.hasher, table.encode, table.encode_hash
    hasher.rows = hasher.total = 0
    out: list[tuple[Any, ...]] = []
    data = bytearray()
    rows = total = 0
    try:
        cursor = src.execute(task.query, (task.lo, task.hi))
        # Rows fetched a batch at a time, then encoded: SQLite's loop and the encoder's each run in turn
        # with their own code and data in the CPU's caches (~2-5 us a row less than one row at a time, on
        # Agor's messages). A batch holds about BATCH_BYTES, at the size of the rows encoded so far.
        size = 16
        while batch := list(islice(cursor, size)):
            for row in batch:
                if row[-1]:
                    return RangeDone(task.lo, task.hi)
                values = row[1:-1]
                if encode_hash is None:
                    hasher.add(values)
                    out.append(values)
                    continue
                try:
                    total += encode_hash(values, data)
                    rows += 1
                except TooLong:  # hashed in chunks by the hasher, then encoded
                    hasher.add(values)
                    encode(values, data)  # type: ignore[misc]
            if len(data) > task.limit:
                return RangeDone(task.lo, task.hi)
            if data:
                size = max(1, min(BATCH_ROWS, BATCH_BYTES * (rows + hasher.rows) // len(data)))
    except (ValueError, ArithmeticError, RuntimeError, TypeError, struct.error):  # the exact path decides
        return RangeDone(task.lo, task.hi)
    if encode_hash is None:
        return RangeDone(task.lo, task.hi, hasher.rows, hasher.total, values=out)
    return RangeDone(task.lo, task.hi, rows + hasher.rows, total + hasher.total, data=data)


def serve(path: str, tasks_fd: int, results_fd: int) -> None:
    """A worker's life: open the source read-only in one read transaction, then answer RangeTasks
    until None (or the main process is gone). Ctrl-C is the main process's to handle (it stops the workers)."""
    from multiprocessing.connection import Connection

    import apsw

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tasks, pipe = Connection(tasks_fd, writable=False), Connection(results_fd, readable=False)
    try:
        src = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
        src.setbusytimeout(5000)
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the read transaction starts here
    except apsw.Error as exc:
        pipe.send(("error", f"cannot read the source: {exc}"))
        return
    tables: dict[str, _Table] = {}
    try:
        while (task := tasks.recv()) is not None:
            try:
                pipe.send(_range(src, task, tables))
            except apsw.Error as exc:
                pipe.send(("error", f"reading rowids {task.lo + 1}..{task.hi}: {exc}"))
                return
    except (EOFError, BrokenPipeError):  # the main process is gone
        return


# A worker is a fresh interpreter (not multiprocessing's spawn, which would run the caller's __main__
# again, nor fork, of a process holding a connection and threads), talking through two pipes.
WORKER_CODE = "import sys; from agor_db.copy.parallel import serve; serve(sys.argv[1], *map(int, sys.argv[2:]))"


# -- the main process's side ------------------------------------------------------------------


class Workers:
    """``count`` worker processes reading ``path``; ``run`` hands them ranges and yields the results in
    the order of the ranges. Started when first needed, stopped by ``close`` (always: see Copier.run)."""

    def __init__(self, path: str, count: int) -> None:
        self.path, self.count = path, count
        self._procs: list[Any] = []
        self._pipes: list[Any] = []
        self._outstanding = 0  # tasks sent whose results are not read yet

    def start(self) -> None:
        """Start the worker processes (once; ``run`` does it when needed)."""
        if self._procs:
            return
        import sys
        from multiprocessing.connection import Connection

        for _ in range(self.count):
            task_r, task_w = os.pipe()
            done_r, done_w = os.pipe()
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-c", WORKER_CODE, self.path, str(task_r), str(done_w)],
                    pass_fds=(task_r, done_w),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,  # the terminal's Ctrl-C is the main process's; EOF stops a worker
                )
            finally:
                os.close(task_r)  # the worker's ends: a dead worker's results pipe then reads as EOF here
                os.close(done_w)
            self._procs.append(proc)
            self._pipes.append((Connection(task_w, readable=False), Connection(done_r, writable=False)))

    def run(self, table: str, tasks: Iterable[RangeTask]) -> Generator[RangeDone, None, None]:
        self.start()
        pending: deque[tuple[int, RangeTask]] = deque()
        todo = iter(enumerate(tasks))
        for i, task in todo:
            self._send(i, task, table)
            pending.append((i, task))
            if len(pending) >= self.count * IN_FLIGHT:
                break
        try:
            while pending:
                i, task = pending.popleft()
                done = self._receive(i % self.count, table, task)
                nxt = next(todo, None)
                if nxt is not None:
                    self._send(*nxt, table)
                    pending.append(nxt)
                yield done
        finally:
            if pending:  # left with results in their pipes: these workers cannot serve another table
                self.close()

    def _send(self, i: int, task: RangeTask, table: str) -> None:
        w = i % self.count
        try:
            self._pipes[w][0].send(task)
        except OSError:  # the worker is gone: what it said last (why it stopped) is in its results pipe
            while True:
                self._receive(w, table, task)
        self._outstanding += 1

    def _receive(self, w: int, table: str, task: RangeTask) -> RangeDone:
        try:
            got = self._pipes[w][1].recv()
            self._outstanding -= 1
        except (EOFError, OSError):
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._procs[w].wait(timeout=5)  # it is gone (or going): its exit code
            code = self._procs[w].poll()
            why = f"exit code {code}" if code is not None else "its pipe closed"
            raise WorkerFailed(
                f"copy worker {w} died ({why}) while reading rowids {task.lo + 1}..{task.hi} of {table}; "
                "the copy was rolled back, the target is unchanged",
                hint=f"run again; {WORKERS_ENV}=1 copies without worker processes",
            ) from None
        if isinstance(got, RangeDone):
            return got
        raise WorkerFailed(
            f"copy worker {w} of table {table} failed: {got[1]}; the copy was rolled back, the target is unchanged",
            hint=f"{WORKERS_ENV}=1 copies without worker processes",
        )

    def close(self) -> None:
        for tasks, _ in self._pipes:
            with contextlib.suppress(OSError):
                tasks.send(None)
            tasks.close()
        for proc in self._procs:
            if self._outstanding:  # results nobody will read (an error, Ctrl-C): no need to wait for them
                proc.kill()
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:  # busy with a task whose result nobody will read
                proc.kill()
                proc.wait()
        for _, results in self._pipes:
            results.close()
        self._procs, self._pipes, self._outstanding = [], [], 0


class SnapshotWatch:
    """Did any commit reach the source since the watch was made (before the main snapshot began)?"""

    def __init__(self, path: str) -> None:
        import apsw

        self._conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
        self._conn.setbusytimeout(5000)
        self._first = self._version()

    def _version(self) -> int:
        row = self._conn.execute("PRAGMA data_version").fetchone()
        assert row is not None
        return int(row[0])

    def changed(self) -> bool:
        return self._version() != self._first

    def close(self) -> None:
        self._conn.close()
