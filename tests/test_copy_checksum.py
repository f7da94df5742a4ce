"""The checksum of a staged table's rows (copy/verify.py): the md5 of each row's binary COPY bytes, computed
by the client over what it writes and by PostgreSQL over what it parsed, must agree for every value the
copier sends; the pieces of a long value hash to the same digest as the value whole; and a run recorded
in the older row-text form is still recognised as a copy of the same source."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import apsw
import psycopg
import pytest
from conftest import run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agor_db.copy import verify
from agor_db.copy.convert import converter_for
from agor_db.copy.load import TEXT_OID, wire_types
from agor_db.copy.longtext import LongText
from agor_db.copy.pgbinary import binary_copy_types, row_writer
from agor_db.copy.target import Column
from agor_db.copy.verify import RowHasher, server_digest

# A staged table's columns as the copier sees them (the JSON column staged as text), NOT NULL and not.
COLUMNS = (
    Column("id", "character varying", 36, True, False, 1043),
    Column("t", "text", None, False, False, 25),
    Column("big", "bigint", None, True, False, 20),
    Column("n", "integer", None, False, False, 23),
    Column("s", "smallint", None, False, False, 21),
    Column("flag", "boolean", None, False, False, 16),
    Column("on", "boolean", None, True, False, 16),
    Column("blob", "bytea", None, False, False, 17),
    Column("data", "jsonb", None, False, False, 3802),
)
CONVERTERS = tuple(converter_for(c, "t") for c in COLUMNS)
WIRE = wire_types(COLUMNS, CONVERTERS)
STAGED_DDL = (
    'CREATE TABLE staged (id varchar(36), t text, big bigint, n integer, s smallint, flag boolean, "on" boolean, '
    "blob bytea, data text)"
)
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
JSON = st.sampled_from(['{"a": "caf\\u00e9 \u2705"}', "[1.50, -0, 1e2]", '"\\ud83d\\ude80"', "{}", ' {"b" : null} '])
ROWS = st.tuples(
    TEXT.map(lambda t: t[:36]),
    st.none() | TEXT,
    st.integers(-(2**63), 2**63 - 1),
    st.none() | st.integers(-(2**31), 2**31 - 1),
    st.none() | st.integers(-(2**15), 2**15 - 1),
    st.none() | st.sampled_from([0, 1, True, False]),
    st.sampled_from([0, 1]),
    st.none() | st.binary(max_size=300),
    st.none() | JSON,
)


def test_a_staged_table_of_these_types_is_hashed_as_binary_copy_bytes():
    assert WIRE == (1043, 25, 20, 23, 21, 16, 16, 17, TEXT_OID)
    numeric = (*COLUMNS, Column("x", "numeric", None, False, False, 1700))
    assert wire_types(numeric, tuple(converter_for(c, "t") for c in numeric)) is None  # no form here: row text
    assert wire_types(COLUMNS[:-1], CONVERTERS[:-1]) is None  # no JSON: copied straight, not staged


def _copy(conn: psycopg.Connection, rows: list[tuple[object, ...]]) -> None:
    cur = conn.cursor()
    staged = tuple(Column(c.name, "text", None, False, False, TEXT_OID) if c.oid == 3802 else c for c in COLUMNS)
    types = binary_copy_types(cur.adapters, staged, "utf-8")
    assert types is not None
    names = ", ".join(f'"{c.name}"' for c in COLUMNS)
    with cur.copy(f"COPY staged ({names}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


@pytest.fixture
def staged(pg_db):
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(STAGED_DDL)
        yield conn


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(ROWS, max_size=8))
def test_server_and_client_agree_on_every_value(staged, rows):
    """PostgreSQL's sum over the rows it parsed equals the client's over the bytes psycopg's COPY sent."""
    staged.execute("TRUNCATE staged")
    _copy(staged, rows)
    client = RowHasher(CONVERTERS, None, json_as_sent=True, wire=WIRE)
    for row in rows:
        client.add(row)
    assert server_digest(staged, "staged", CONVERTERS, json_as_sent=True, wire=WIRE) == client.digest()


def test_one_changed_value_changes_the_sum(staged):
    """The sums compare something: a value changed on the server (even only a NULL for an empty text, or a
    bool for its negation) is a different checksum."""
    rows = [("a", "", 1, None, 2, True, 0, b"", '{"k": 1}'), ("b", None, -5, 7, None, None, 1, None, None)]
    _copy(staged, rows)
    client = RowHasher(CONVERTERS, None, json_as_sent=True, wire=WIRE)
    for row in rows:
        client.add(row)
    for change in ("t = NULL WHERE id = 'a'", "t = '' WHERE id = 'b'", '"on" = NOT "on"', "data = '{\"k\":1}'"):
        with staged.transaction(force_rollback=True):
            staged.execute(f"UPDATE staged SET {change}")
            assert server_digest(staged, "staged", CONVERTERS, json_as_sent=True, wire=WIRE) != client.digest(), change


def test_a_long_value_hashed_in_pieces_gives_the_whole_value_digest(tmp_path, monkeypatch):
    """A row with a value longer than verify.LONG is hashed piece by piece, from a str or straight from the
    source's pages (LongText): the same digest as the row hashed whole."""
    text = "caf\u00e9 \u2705 " * 700
    data = json.dumps({"out": text, "n": [1.5, -0, 1e2]})
    row = ("id1", text, 3, None, 4, False, 1, b"\x00\xff" * 50, data)
    whole = RowHasher(CONVERTERS, None, json_as_sent=True, wire=WIRE)
    whole.add(row)

    path = tmp_path / "long.db"
    src = apsw.Connection(str(path))
    src.execute("CREATE TABLE t (t TEXT, data TEXT)")
    src.execute("INSERT INTO t VALUES (?, ?)", (text, data))
    monkeypatch.setattr(verify, "LONG", 100)
    monkeypatch.setattr("agor_db.copy.longtext.PIECE", 333)  # pieces that split characters
    pieces = RowHasher(CONVERTERS, None, json_as_sent=True, wire=WIRE)
    pieces.add(row)
    assert pieces.digest() == whole.digest()

    class Oracle(verify.JsonOracle):  # PostgreSQL's parse is not needed for this text: json.loads takes it
        def __init__(self) -> None:
            pass

        def accepts(self, value: object) -> None:
            assert isinstance(value, LongText)
            json.loads(value.whole())

    streamed = RowHasher(CONVERTERS, Oracle(), json_as_sent=True, wire=WIRE)
    size = len(text.encode())
    long_t, long_data = LongText(src, "t", "t", 1, size, json=False), LongText(src, "t", "data", 1, len(data))
    long_row = (*row[:1], long_t, *row[2:8], long_data)
    streamed.add(long_row)
    assert streamed.digest() == whole.digest()


def test_a_value_the_form_cannot_take_is_refused_before_it_is_counted():
    hasher = RowHasher(CONVERTERS, None, json_as_sent=True, wire=WIRE)
    surrogate = ("a", "\ud800", 1, None, None, None, 0, None, None)
    too_big = ("a", None, 2**63, None, None, None, 0, None, None)
    # psycopg's own integer and smallint dumpers would write 2**40 as 0 and 2**20 as 0: refused instead
    int4_too_big = ("a", None, 1, 2**40, None, None, 0, None, None)
    int2_too_big = ("a", None, 1, None, 2**20, None, 0, None, None)
    for bad in (surrogate, too_big, int4_too_big, int2_too_big):
        with pytest.raises(ValueError):
            hasher.add(bad)
    assert hasher.digest() == verify.Digest(0, 0)
    for oid, value in ((23, 2**40), (21, -(2**20))):
        with pytest.raises(struct.error):
            row_writer((oid,))((value,), bytearray())


def test_a_run_recorded_in_the_row_text_form_is_still_the_same_source(fixture_copy, pg_db):
    """A copy recorded by agor-db before staged tables were hashed as binary COPY bytes: a second copy
    compares the source with it in that run's own form, finds it the same, and writes nothing."""
    from test_copy import adopt, pg_counts

    from agor_db.copy import run
    from agor_db.copy.run import CopyOptions, Progress
    from agor_db.core.source import bundled_sql_root
    from agor_db.core.urls import parse_url

    source = adopt(fixture_copy("legacy-0010.db"))
    # the checksums as that older agor-db computed them: the row text for every table
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(run, "wire_types", lambda columns, converters: None)
        options = CopyOptions(check=True)
        old = run.copy(parse_url(str(source)), parse_url(pg_db), bundled_sql_root(), options, Progress())
    assert run_cli("copy", "--from", str(source), "--to", pg_db).code == 0
    with psycopg.connect(pg_db) as conn:
        new_form = conn.execute("SELECT source_checksum, table_checksums FROM agor_copy_runs").fetchone()
    old_tables = {t.name: f"{t.source_digest.rows}:{t.source_digest.total}" for t in old.tables if t.source_digest}
    assert old_tables != new_form[1]  # the forms differ on the staged tables
    old_checksum = run.source_checksum(old.tables)

    with psycopg.connect(pg_db) as conn:  # the run as that agor-db wrote it (no checksum_form column yet)
        old_run = (old_checksum, json.dumps(old_tables))
        conn.execute("UPDATE agor_copy_runs SET source_checksum = %s, table_checksums = %s", old_run)
        conn.execute("ALTER TABLE agor_copy_runs DROP COLUMN checksum_form")
    r = run_cli("copy", "--from", str(source), "--to", pg_db)
    assert r.code == 0, r.output
    assert "nothing to do" in r.stdout and "already holds the copy" in r.stdout
    assert pg_counts(pg_db)["messages"] == 2000

    with psycopg.connect(pg_db) as conn:  # the new form's checksum under an old run: not the same source
        conn.execute("UPDATE agor_copy_runs SET source_checksum = %s", (new_form[0],))
    r = run_cli("copy", "--from", str(source), "--to", pg_db)
    assert r.code != 0 and "differs from it" in r.output, r.output
    assert pg_counts(pg_db)["messages"] == 2000


def test_no_staged_table_changes_form(tmp_path: Path):
    """Tables without JSON are copied straight into place and keep the row-text form on both sides."""
    assert all(wire_types((c,), (v,)) is None for c, v in zip(COLUMNS[:-1], CONVERTERS[:-1], strict=True))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(ROWS, max_size=5))
def test_without_psycopg_row_writer_the_same_checksum(monkeypatch, rows):
    """psycopg's row writer is a private name: where it is missing (or writes otherwise) our own encoder
    writes the rows, and the checksums are the same."""
    from agor_db.copy import pgbinary

    with_psycopg = RowHasher(CONVERTERS, None, json_as_sent=True, wire=WIRE)
    with monkeypatch.context() as mp:
        mp.setattr(pgbinary, "_psycopg_writer", lambda oids: None)
        ours = RowHasher(CONVERTERS, None, json_as_sent=True, wire=WIRE)
    for row in rows:
        with_psycopg.add(row)
        ours.add(row)
    assert ours.digest() == with_psycopg.digest()
