"""Exactness of `agor-db copy` as a property, differential against the suite's real PostgreSQL: for every
document PostgreSQL accepts as jsonb, what copy stores equals ``source_text::jsonb`` (compared on the
server), with and without each policy; a document it refuses is named, never crashes the copy."""

from __future__ import annotations

import json

import apsw
import psycopg
import pytest
from conftest import run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_copy_baddata import MS, T0, S, W, base_source, counts, message, run_copy

from agor_db.copy.convert import Converter
from agor_db.copy.json import JsonOracle, jsonb_loadable, may_be_refused, strip_nul
from agor_db.copy.scan import BadData
from agor_db.copy.target import Column

# -- generated JSON text: every number form, escape and code-point class, duplicate keys ---------------

DIGITS = st.text("0123456789", min_size=1, max_size=30)
INTEGERS = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.builds(lambda d: d.lstrip("0") or "0", DIGITS),
    st.sampled_from(["-0", "0", "9007199254740993", "12345678901234567890"]),
)
NUMBERS = st.one_of(
    INTEGERS,
    st.builds(
        lambda i, f, e: i + (("." + f) if f else "") + e,
        INTEGERS,
        st.one_of(st.just(""), DIGITS),
        st.one_of(st.just(""), st.builds(lambda c, s, n: f"{c}{s}{n}", st.sampled_from("eE"),
                                          st.sampled_from(["", "+", "-"]), st.integers(0, 400))),
    ),
    st.sampled_from(["1.10", "1e2", "-0.0", "1e400", "-1e-400", "0.1e1", "123e-5", "1E+2", "0e999999999"]),
)  # fmt: skip
CHARS = st.one_of(
    st.characters(codec="utf-8", exclude_categories=("Cs",)),  # every plane, noncharacters included
    st.sampled_from(["\ufdd0", "\ufdef", "\ufffe", "\uffff", "\U0010ffff", "\U0001f680", "é", "\u2028", '"', "\\"]),
)
ESCAPES = st.sampled_from(
    ["\\n", "\\t", "\\b", "\\f", "\\r", '\\"', "\\\\", "\\/", "\\u00e9", "\\uFDD0", "\\ufdd0", "\\ud83d\\ude80",
     "\\u001f", "\\u007F", "\\uffff", "\\\\u0000"]
)  # fmt: skip


def _escape_raw(ch: str) -> str:
    return json.dumps(ch, ensure_ascii=False)[1:-1]


STRINGS = st.lists(st.one_of(CHARS.map(_escape_raw), ESCAPES), max_size=8).map(lambda parts: '"' + "".join(parts) + '"')
KEYS = st.one_of(STRINGS, st.sampled_from(['"a"', '"b"', '"aa"', '"é"', '"\\ufdd0"', '"\\u00e9"']))
SPACE = st.sampled_from(["", " ", "\n", "\t ", "\r\n"])


def _container(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    arrays = st.lists(children, max_size=5).map(lambda xs: "[" + ",".join(xs) + "]")
    objects = st.lists(st.tuples(KEYS, SPACE, children), max_size=5).map(
        lambda kvs: "{" + ",".join(f"{k}{s}:{s}{v}" for k, s, v in kvs) + "}"
    )
    return st.one_of(arrays, objects)


JSON_TEXT = st.recursive(
    st.one_of(NUMBERS, STRINGS, st.sampled_from(["true", "false", "null"])), _container, max_leaves=20
)


@pytest.fixture(scope="module")
def pg_conn(pg_server):  # type: ignore[no-untyped-def]
    from conftest import _admin_connect

    with _admin_connect(pg_server.admin_url) as conn:
        yield conn


def _server_text(conn: psycopg.Connection, text: str) -> str | None:
    try:
        return str(conn.execute("SELECT %s::jsonb::text", (text,)).fetchone()[0])  # type: ignore[index]
    except psycopg.DataError:
        return None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=JSON_TEXT)
def test_canonical_text_is_postgres_own(pg_conn, text):
    """The client's canonical text of a value to load (Python, PostgreSQL for what Python cannot answer) is
    PostgreSQL's, and refused where PostgreSQL refuses (jsonb_loadable: jsonb_text leaves NULs to it)."""
    oracle = JsonOracle(lambda: pg_conn)
    expected = _server_text(pg_conn, text)
    try:
        got: str | None = jsonb_loadable(text, oracle)
        got.encode("utf-8")
    except ValueError:
        got = None
    assert got == expected


# Numbers at and beyond numeric's limits: long exponents, long digit runs (what json_valid accepts and
# jsonb may refuse), beside hex ids that look like exponents.
EXPONENTS = st.one_of(st.integers(0, 2000), st.integers(9000, 20000), st.integers(100000, 10**7))
EDGE_NUMBERS = st.builds(
    lambda sign, digits, frac, mark, esign, e: f"{sign}{digits}{frac}{mark}{esign}{e}",
    st.sampled_from(["", "-"]),
    st.one_of(st.just("1"), st.integers(1, 3).map(lambda n: "9" * n), st.integers(990, 1010).map(lambda n: "7" * n)),
    st.one_of(st.just(""), st.integers(1, 17000).map(lambda n: "." + "3" * n)),
    st.sampled_from(["e", "E"]),
    st.sampled_from(["", "+", "-"]),
    EXPONENTS,
)
EDGE_TEXT = st.recursive(
    st.one_of(EDGE_NUMBERS, NUMBERS, st.sampled_from(['"3e4512"', '"a 1e0000 b"', "null"])), _container, max_leaves=6
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=EDGE_TEXT)
def test_every_text_jsonb_refuses_gets_the_exact_check(pg_conn, text):
    """The copier sends JSON as it is, without parsing it in Python, when SQLite's json_valid accepts it, it
    holds no NUL byte and no \\u escape (the SELECT's test), and ``may_be_refused`` says no: jsonb must
    then accept it."""
    if _server_text(pg_conn, text) is None:
        assert _flagged_by_select(text) or may_be_refused(text), text[:200]


_SQLITE = apsw.Connection(":memory:")
_JSON_TEST = Converter(Column("data", "jsonb", None, True, False, 3802), "json").attention_sql()


def _flagged_by_select(text: str) -> bool:
    """The copier's own SQLite-side test of a JSON value (what its SELECT computes per row)."""
    (flag,) = _SQLITE.execute(f"SELECT {_JSON_TEST} FROM (SELECT ? AS data)", (text,)).fetchone()
    return bool(flag)


# Every \u escape class: NUL, lone and paired surrogates in both cases, their neighbours, noncharacters.
UNICODE_ESCAPES = st.sampled_from(
    ["\\u0000", "\\ud800", "\\uDFFF", "\\udbff\\udc00", "\\uD83D\\uDE80", "\\udc00\\ud800", "\\ud83d",
     "\\ude80x", "\\ud7ff", "\\uD7FF", "\\ue000", "\\u00e9", "\\u0001", "\\uFFFF", "\\\\u0000", "\\\\ud800"]
)  # fmt: skip
ESCAPED_TEXT = st.lists(st.one_of(UNICODE_ESCAPES, CHARS.map(_escape_raw)), max_size=6).map(
    lambda parts: '{"s": "' + "".join(parts) + '"}'
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=ESCAPED_TEXT)
def test_every_escape_jsonb_refuses_gets_the_exact_check(pg_conn, text):
    """A \\u escape jsonb refuses (\\u0000, an unpaired surrogate) is flagged by the SELECT or the pre-check;
    every other escape, valid surrogate pairs included, goes without the exact check."""
    refused = _server_text(pg_conn, text) is None
    examined = _flagged_by_select(text) or may_be_refused(text)
    if refused:
        assert examined, text
    elif "\\u0000" not in text:
        assert not examined, text


@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        ('"caf\\u00e9 \\u2705"', False),
        ('"\\ud83d\\ude80 \\uD83D\\uDE80"', False),
        ('"\\u0000"', True),
        ('"\\uDC00"', True),
        ('"\\ud83d"', True),
        ('"\\ud83d x\\ude80"', True),
        ('"\\\\ud83d\\ude80"', True),  # an escaped backslash, then a lone low surrogate
        ('"\\ud83d\\\\ude80"', True),  # a lone high surrogate, then an escaped backslash
    ],
)
def test_common_escapes_go_without_the_exact_check(text, flagged):
    assert (_flagged_by_select(text) or may_be_refused(text)) is flagged


@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        ("[1e999]", False),
        ('{"id": "3e4512", "n": 12e3}', False),
        ("[1.5E-999, -2e+12]", False),
        ("[1e1000]", True),
        ("[1e-16384]", True),
        (" [2E+0001] ", True),
        ("[" + "1" * 1000 + "]", True),
        ("[0." + "1" * 999 + "]", False),
    ],
)
def test_texts_sent_without_the_exact_check(text, flagged):
    assert may_be_refused(text) is flagged


HARD = [
    '{"s":"a\\u0000b","n":1.10,"e":1e2,"big":12345678901234567890.123,"f":9007199254740993.0}',
    '{"s":"a\\u0000b","inf":1e400}',
    "[" * 990 + "]" * 990,
    "[" * 5000 + "1" + "]" * 5000,
    "[" + "9" * 5000 + "]",
    '["\\ufdd0", "\ufdd0x", {"\\ufdd0": 1.5, "\ufdd0": 1e2}]',
    '{"k\\ufdd0":["\ufdd0"]}',
    '{"a":"\\u0000","a":1}',  # a NUL in a value a duplicate key replaces: jsonb still refuses it
]


@pytest.mark.parametrize("text", HARD)
def test_hand_written_classes_stored_exactly(tmp_path, pg_db, text):
    """Each class of the issue: copied (with --nul=strip where it holds a NUL) and equal on the server to
    PostgreSQL's own parse of the (NUL-stripped) source text."""
    path = tmp_path / "h.db"
    c = base_source(path)
    message(c, "hard", data=text)
    c.close()
    policies = {"nul": "strip"} if "\\u0000" in text else {}
    run_copy(path, pg_db, **policies)
    with psycopg.connect(pg_db) as conn:
        same = conn.execute("SELECT data = %s::jsonb FROM messages WHERE message_id = 'hard'", (strip_nul(text),))
        assert same.fetchone() == (True,)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("[1e131072]", "outside the range of PostgreSQL's numeric"),
        ("[1e-16384]", "outside the range of PostgreSQL's numeric"),
        ('{"n":1e999999999}', "outside the range of PostgreSQL's numeric"),
        ('{"n":1e999999999999}', "outside the range of PostgreSQL's numeric"),
        ("[" * 20000 + "]" * 20000, "stack depth limit exceeded"),
        # refused while parsing, though a duplicate key replaces the value (--check used to pass it)
        ('{"a":"\\ud800","a":1}', "unpaired UTF-16 surrogate escape"),
        ('{"a":{"b":"x\\udc00"},"a":[]}', "unpaired UTF-16 surrogate escape"),
    ],
)
def test_values_only_postgres_refuses_found_by_check_and_named(tmp_path, pg_db, text, why):
    path = tmp_path / "r.db"
    c = base_source(path)
    message(c, "refused", data=text)
    c.close()
    r = run_cli("copy", "--from", str(path), "--to", pg_db, "--check")
    assert r.code == 1 and "message_id='refused'" in r.stderr and why in r.stderr, r.output
    with pytest.raises(BadData) as exc:
        run_copy(path, pg_db)
    assert "message_id='refused'" in str(exc.value)
    assert set(counts(pg_db).values()) == {0}
    run_copy(path, pg_db, invalid_json="drop")
    assert counts(pg_db)["messages"] == 1


def test_raw_nul_byte_inside_a_string_is_fixed_by_nul_strip(tmp_path, pg_db):
    path = tmp_path / "n.db"
    c = base_source(path)
    message(c, "raw-nul", data='{"a": "x\x00y", "n": 1.10}')
    c.close()
    r = run_cli("copy", "--from", str(path), "--to", pg_db, "--check")
    assert r.code == 1 and "NUL characters: 1" in r.stderr and "--nul=strip" in r.stderr
    run_copy(path, pg_db, nul="strip")
    with psycopg.connect(pg_db) as conn:
        row = conn.execute("SELECT data::text FROM messages WHERE message_id = 'raw-nul'").fetchone()
    assert row == ('{"a": "xy", "n": 1.10}',)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(JSON_TEXT, min_size=1, max_size=25), strip=st.booleans(), nul_at=st.integers(0, 24))
def test_copy_stores_postgres_parse_of_every_accepted_document(tmp_path_factory, pg_server, docs, strip, nul_at):
    """End to end, with and without --nul=strip (one document then holds a NUL): every document PostgreSQL
    accepts is stored as exactly ``text::jsonb`` of what the policy lists; refused ones are named."""
    import uuid

    from conftest import _admin_connect

    if strip:
        i = nul_at % len(docs)
        docs[i] = '{"nul": "a\\u0000b", "d": ' + docs[i] + "}"
    name = "h_" + uuid.uuid4().hex[:10]
    with _admin_connect(pg_server.admin_url) as admin:
        admin.execute(f'CREATE DATABASE "{name}" OWNER {pg_server.role}')
    url = pg_server.url(name)
    try:
        path = tmp_path_factory.mktemp("prop") / "p.db"
        c: apsw.Connection = base_source(path)
        for i, d in enumerate(docs):
            message(c, f"m{i}", index=i + 1, data=d)
        c.close()
        expected = [strip_nul(d) if strip else d for d in docs]  # what the policy lists: NULs removed
        with _admin_connect(pg_server.admin_url) as admin:
            accepted = [_server_text(admin, e) is not None for e in expected]
        policies = {"nul": "strip"} if strip else {}
        if not all(accepted):
            with pytest.raises(BadData) as exc:
                run_copy(path, url, **policies)
            for i, ok in enumerate(accepted):
                assert (f"message_id='m{i}'" in str(exc.value)) != ok
            return
        run_copy(path, url, **policies)
        with psycopg.connect(url) as conn:
            for i, e in enumerate(expected):
                row = conn.execute("SELECT data = %s::jsonb FROM messages WHERE message_id = %s", (e, f"m{i}"))
                assert row.fetchone() == (True,), e
    finally:
        with _admin_connect(pg_server.admin_url) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _copied_source(tmp_path, pg_db):
    """A one-message source copied into pg_db."""
    path = tmp_path / "s.db"
    c = base_source(path)
    message(c, "m1", data='{"v": 1}')
    c.close()
    assert run_cli("copy", "--from", str(path), "--to", pg_db).code == 0
    return path


def _edit_message(path):
    c = apsw.Connection(str(path))
    c.execute("UPDATE messages SET data = '{\"v\": 2}' WHERE message_id = 'm1'")
    c.close()


def test_second_copy_compares_the_whole_source_checksum(tmp_path, pg_db):
    """Fresh or refused: an identical source is 'nothing to do'; a changed one (same row counts, other content;
    or other counts) is refused, naming what changed and how to redo it, and nothing is written."""
    path = _copied_source(tmp_path, pg_db)
    r = run_cli("copy", "--from", str(path), "--to", pg_db)
    assert r.code == 0 and "nothing to do" in r.stdout, r.output
    _edit_message(path)
    r = run_cli("copy", "--from", str(path), "--to", pg_db)
    assert r.code == 1 and "differs from it" in r.stderr and "source checksum" in r.stderr, r.output
    assert "the same row counts; changed rows in messages;" in r.stderr, r.output  # the table is named
    assert "--truncate" in r.stderr and "nothing was written" in r.stderr
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT data->>'v' FROM messages WHERE message_id = 'm1'").fetchone() == ("1",)
    c = apsw.Connection(str(path))
    message(c, "m2")
    c.close()
    r = run_cli("copy", "--from", str(path), "--to", pg_db, "--json")
    assert r.code == 1 and "messages 2 -> 3 rows" in r.stderr, r.output
    assert "changed rows in" not in r.stderr  # a table whose count changed is named once, with its counts
    assert counts(pg_db)["messages"] == 2
    assert run_cli("copy", "--from", str(path), "--to", pg_db, "--truncate").code == 0
    assert counts(pg_db)["messages"] == 3


def test_runs_recorded_before_per_table_checksums_still_compare(tmp_path, pg_db):
    """A target whose run table predates table_checksums: the column is added, the old run is still
    compared by its whole-source checksum, and the refusal says what it can without naming tables."""
    path = _copied_source(tmp_path, pg_db)
    with psycopg.connect(pg_db) as conn:
        conn.execute("ALTER TABLE agor_copy_runs DROP COLUMN table_checksums")  # as an older agor-db left it
    r = run_cli("copy", "--from", str(path), "--to", pg_db)
    assert r.code == 0 and "nothing to do" in r.stdout, r.output
    _edit_message(path)
    r = run_cli("copy", "--from", str(path), "--to", pg_db)
    assert r.code == 1 and "the same row counts; source checksum" in r.stderr, r.output
    assert run_cli("copy", "--from", str(path), "--to", pg_db, "--truncate").code == 0
    with psycopg.connect(pg_db) as conn:
        kept = conn.execute("SELECT table_checksums IS NOT NULL FROM agor_copy_runs ORDER BY id").fetchall()
    assert kept == [(False,), (True,)]


@pytest.mark.parametrize("encoding", ["LATIN1", "SQL_ASCII", "WIN1252"])
def test_non_utf8_target_refused_up_front_and_status_works(tmp_path, pg_server, encoding):
    import uuid

    from conftest import _admin_connect

    name = "e_" + uuid.uuid4().hex[:10]
    with _admin_connect(pg_server.admin_url) as admin:
        admin.execute(
            f"CREATE DATABASE \"{name}\" OWNER {pg_server.role} TEMPLATE template0 ENCODING '{encoding}' "
            "LC_COLLATE 'C' LC_CTYPE 'C'"
        )
    url = pg_server.url(name)
    try:
        path = tmp_path / "e.db"
        base_source(path).close()
        for extra in ((), ("--check",), ("--json",)):
            r = run_cli("copy", "--from", str(path), "--to", url, *extra)
            assert r.code == 1 and f"has encoding {encoding}" in r.stderr and "ENCODING 'UTF8'" in r.stderr, r.output
        with psycopg.connect(url) as conn:  # not even migrated
            assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
        r = run_cli("status", "--database-url", url)
        assert "internal error" not in r.output and r.code in (0, 6), r.output
        r = run_cli("migrate", "--database-url", url)
        assert r.code == 0, r.output
        r = run_cli("status", "--database-url", url)
        assert r.code == 0 and "internal error" not in r.output, r.output
    finally:
        with _admin_connect(pg_server.admin_url) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("where", ["url", "environment"])
def test_a_client_encoding_asked_for_does_not_change_what_is_stored(tmp_path, pg_db, where):
    """client_encoding=LATIN1 in the URL (or PGCLIENTENCODING): agor-db writes UTF-8 bytes itself, in the
    worker processes' binary COPY as in the main one's; a URL asking for LATIN1 ended in an internal error
    (on a character LATIN1 lacks). Text outside LATIN1 arrives exactly, through both paths."""
    path = tmp_path / "enc.db"
    c = base_source(path)
    text = "日本語 — naïve 🙂"
    count = 6000 if where == "url" else 10  # enough rows for the worker processes once
    with c:
        for i in range(count):
            message(c, f"e{i:07d}", data=json.dumps({"t": text, "i": i}, ensure_ascii=False), type=f"{text} {i}")
    c.execute("UPDATE boards SET name = ?", (text,))
    c.close()
    url, env = pg_db, None
    if where == "url":
        url += ("&" if "?" in url else "?") + "client_encoding=LATIN1"
    else:
        env = {"PGCLIENTENCODING": "LATIN1"}
    r = run_cli("copy", "--from", str(path), "--to", url, "--json", env=env)
    assert r.code == 0 and json.loads(r.stdout)["tables"], r.output
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT name FROM boards").fetchone() == (text,)
        same = "SELECT count(*) FROM messages WHERE data->>'t' = %s AND type LIKE %s"
        assert conn.execute(same, (text, text + " %")).fetchone() == (count,)
    assert run_cli("copy", "--from", str(path), "--to", url, env=env).code == 0  # and compares as the same source


def test_without_rowid_table_duplicates_and_invalid_utf8_named_by_key(tmp_path, pg_db):
    path = tmp_path / "w.db"
    c = base_source(path)
    c.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT, u TEXT) WITHOUT ROWID")
    c.execute("INSERT INTO kv VALUES ('a', 'x', 'dup'), ('b', 'y', 'dup'), ('d', 'w', 'q')")
    c.execute("INSERT INTO kv VALUES ('c', CAST(x'61ff62' AS TEXT), 'z')")
    c.close()
    assert run_cli("migrate", "--database-url", pg_db).code == 0
    with psycopg.connect(pg_db) as conn:
        conn.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT, u TEXT UNIQUE)")
    r = run_cli("copy", "--from", str(path), "--to", pg_db, "--check")
    assert r.code == 1 and "internal error" not in r.output, r.output
    assert "- k='a': u = u='dup'" in r.stderr and "- k='c': v = b'a\\xffb'" in r.stderr, r.stderr
    assert "rowid=" not in r.stderr
    r = run_cli("copy", "--from", str(path), "--to", pg_db, "--duplicates=drop", "--invalid-utf8=replace")
    assert r.code == 0, r.output
    with psycopg.connect(pg_db) as conn:
        rows = conn.execute("SELECT k, v FROM kv ORDER BY k").fetchall()
    assert rows == [("b", "y"), ("c", "a\ufffdb"), ("d", "w")]


def test_duplicates_named_by_their_key(tmp_path, pg_db):
    path = tmp_path / "d.db"
    c = base_source(path)
    c.execute(f"INSERT INTO session_mcp_servers VALUES ('{S}', '{MS}', 0, {T0 + 5})")
    c.close()
    r = run_cli("copy", "--from", str(path), "--to", pg_db, "--check")
    assert r.code == 1 and f"session_id='{S}', mcp_server_id='{MS}'" in r.stderr and "rowid=" not in r.stderr, r.stderr


def test_policy_created_key_collisions_found_by_check_and_named(tmp_path, pg_db):
    """--nul=strip makes 'm1' + NUL equal to 'm1'; --invalid-utf8=replace maps two ids to one text."""
    path = tmp_path / "k.db"
    c = base_source(path)
    message(c, "m1")
    message(c, "m1\x00", index=2)
    c.execute(
        'INSERT INTO messages (message_id, created_at, session_id, type, role, "index", timestamp, data) '
        "VALUES (CAST(x'7aff' AS TEXT), ?, ?, 'user', 'user', 3, ?, '{}'), "
        "(CAST(x'7afe' AS TEXT), ?, ?, 'user', 'user', 4, ?, '{}')",
        (T0, S, T0, T0, S, T0),
    )
    c.close()
    r = run_cli("copy", "--from", str(path), "--to", pg_db, "--check", "--nul=strip", "--invalid-utf8=replace")
    assert r.code == 1 and "duplicates of a primary or unique key: 2" in r.stderr, r.output
    assert "message_id='m1\\x00'" in r.stderr and "after the policy's change it equals" in r.stderr
    with pytest.raises(BadData):
        run_copy(path, pg_db, nul="strip", invalid_utf8="replace")
    assert set(counts(pg_db).values()) == {0}
    r = run_cli(
        "copy", "--from", str(path), "--to", pg_db, "--nul=strip", "--invalid-utf8=replace", "--duplicates=drop"
    )
    assert r.code == 0 and "duplicate created by a policy" in r.stdout, r.output
    assert counts(pg_db)["messages"] == 3


def test_references_follow_the_parent_key_a_policy_makes(tmp_path, pg_db):
    """A parent id replaced by --invalid-utf8=replace: its children (with the same bad bytes, or already
    with the replaced text) are no orphans."""
    path = tmp_path / "r.db"
    c = base_source(path)
    c.execute(
        "INSERT INTO tasks (task_id, session_id, created_at, status, data) "
        f"VALUES (CAST(x'74ff' AS TEXT), '{S}', {T0}, 'done', '{{}}')"
    )
    c.execute(
        'INSERT INTO messages (message_id, created_at, session_id, task_id, type, role, "index", timestamp, data) '
        "VALUES ('c1', ?, ?, CAST(x'74ff' AS TEXT), 'user', 'user', 5, ?, '{}'), "
        "('c2', ?, ?, 't\ufffd', 'user', 'user', 6, ?, '{}')",
        (T0, S, T0, T0, S, T0),
    )
    c.close()
    result = run_copy(path, pg_db, invalid_utf8="replace", orphans="drop")
    assert result.report.ok, result.report.change_lines()  # type: ignore[attr-defined]
    with psycopg.connect(pg_db) as conn:
        rows = conn.execute("SELECT message_id FROM messages WHERE task_id = 't\ufffd' ORDER BY 1").fetchall()
    assert rows == [("c1",), ("c2",)], (result.report.change_lines(), conn_dump(pg_db))  # type: ignore[attr-defined]


def test_drop_referenced_by_an_earlier_row_of_the_same_table(tmp_path, pg_db):
    """A session dropped by a policy, referenced by a session read before it (parent_session_id): the
    child is an orphan too (dropped with --orphans=drop), the copy commits, and every FK holds."""
    path = tmp_path / "s.db"
    c = base_source(path)
    c.execute(
        "INSERT INTO sessions (session_id, created_at, status, agentic_tool, worktree_id, parent_session_id, data) "
        f"VALUES ('child', {T0}, 'idle', 'claude-code', '{W}', 'parent', '{{}}'), "
        f"('parent', {T0}, 'idle', 'claude-code', '{W}', NULL, '{{bad')"
    )
    c.close()
    r = run_cli("copy", "--from", str(path), "--to", pg_db, "--invalid-json=drop", "--orphans=drop")
    assert r.code == 0, r.output
    assert "its sessions row was dropped by a policy" in r.stdout
    with psycopg.connect(pg_db) as conn:
        got = conn.execute("SELECT session_id FROM sessions ORDER BY 1").fetchall()
    assert got == [(S,)]


def conn_dump(url: str) -> object:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT message_id, task_id FROM messages").fetchall(), conn.execute(
            "SELECT task_id FROM tasks"
        ).fetchall()


def test_long_values_are_hashed_in_chunks_to_the_same_digest(monkeypatch):
    from agor_db.copy import verify as copy_verify
    from agor_db.copy.convert import Converter
    from agor_db.copy.target import Column

    convs = (
        Converter(Column("id", "text", None, True, False), "text"),
        Converter(Column("n", "bigint", None, False, False), "int"),
        Converter(Column("data", "jsonb", None, False, False), "json"),
    )
    rows = [("a", 1, '{"b": [1.50, "\\u00e9' + "x" * 3000 + '"], "a": 1e2}'), ("\u00e9" * 2000, None, None)]
    whole = copy_verify.RowHasher(convs)
    for r in rows:
        whole.add(r)
    monkeypatch.setattr(copy_verify, "LONG", 10)
    monkeypatch.setattr(copy_verify, "CHUNK", 7)
    chunked = copy_verify.RowHasher(convs)
    for r in rows:
        chunked.add(r)
    assert chunked.digest() == whole.digest()


def test_json_on_refusal_lists_every_problem(tmp_path, pg_db):
    path = tmp_path / "j.db"
    c = base_source(path)
    c.execute("BEGIN")
    for i in range(1100):
        message(c, f"bad{i}", index=i + 1, data="{oops")
    c.execute("COMMIT")
    c.close()
    r = run_cli("copy", "--from", str(path), "--to", pg_db, "--json")
    assert r.code == 1, r.output
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and doc["error"]["exit_code"] == 1 and "nothing was written" in doc["error"]["message"]
    group = doc["problems"]["messages"]["invalid_json"]
    assert group["count"] == 1100 and len(group["rows"]) == 1100
    assert "... and 1090 more (all of them: --json)" in r.stderr
    assert set(counts(pg_db).values()) == {0}


def test_staged_chunks_add_up_and_store_the_server_parse(tmp_path, pg_db, monkeypatch):
    """A table loaded in many staged chunks (by the loader thread): every row stored as its text::jsonb,
    and the verification (the sum of the chunks' server checksums against the client's) passes."""
    from agor_db.copy import load as copy_load

    monkeypatch.setattr(copy_load, "CHUNK_ROWS", 3)
    path = tmp_path / "c.db"
    c = base_source(path)
    docs = [f'{{"i": {i}, "x": [1.50, "é{i}"], "a": 1e2}}' for i in range(11)]
    for i, d in enumerate(docs):
        message(c, f"c{i}", index=i + 1, data=d)
    c.close()
    result = run_copy(path, pg_db)
    messages = next(t for t in result.tables if t.name == "messages")  # type: ignore[attr-defined]
    assert messages.copied_rows == 12 and messages.target_digest == messages.source_digest  # base_source's + 11
    assert messages.staged_digest == messages.source_digest and messages.stored_rows == 12
    with psycopg.connect(pg_db) as conn:
        for i, d in enumerate(docs):
            row = conn.execute("SELECT data = %s::jsonb FROM messages WHERE message_id = %s", (d, f"c{i}"))
            assert row.fetchone() == (True,)


def test_a_refusal_in_the_loader_thread_rolls_everything_back(tmp_path, pg_db, monkeypatch):
    """Were the pre-flight ever to let through a value PostgreSQL refuses, the server's refusal (raised in
    the loader thread) ends the copy with a clear error and the target unchanged."""
    from agor_db.copy import json as copy_json
    from agor_db.core.errors import DatabaseError

    monkeypatch.setattr(copy_json, "may_be_refused", lambda text: False)
    path = tmp_path / "x.db"
    c = base_source(path)
    message(c, "huge", data='{"n": 1e999999}')
    c.close()
    with pytest.raises(DatabaseError) as exc:
        run_copy(path, pg_db)
    assert "PostgreSQL refused while copying rows" in str(exc.value) and "rolled back" in str(exc.value)
    assert set(counts(pg_db).values()) == {0}
