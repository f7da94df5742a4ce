"""agor-db copy against bad SQLite data: every kind reported (all at once, grouped), refused by default with
the target unchanged, and each policy applied with its changes listed."""

from __future__ import annotations

import json
from pathlib import Path

import apsw
import psycopg
import pytest
from conftest import run_cli

from agor_db.core import migrate as core
from agor_db.copy.run import CopyOptions, copy
from agor_db.copy.convert import Converter, Policies
from agor_db.copy.json import jsonb_text
from agor_db.copy.scan import BadData
from agor_db.copy.target import Column
from agor_db.core.source import bundled_sql_root
from agor_db.core.urls import parse_url

T0 = 1_762_030_000_000
U, B, R, W, S, TK, M, MS = ("u" * 8, "b" * 8, "r" * 8, "w" * 8, "s" * 8, "t" * 8, "m" * 8, "x" * 8)


def base_source(path: Path) -> apsw.Connection:
    """A source at the newest version with one valid row in each table (FK checks off: SQLite's default)."""
    core.migrate(parse_url(str(path)), bundled_sql_root(), core.RunOptions())
    c = apsw.Connection(str(path))
    c.execute(f"""
        INSERT INTO users (user_id, created_at, email, password, data) VALUES ('{U}', {T0}, 'a@b', 'pw', '{{}}');
        INSERT INTO boards (board_id, created_at, name, data) VALUES ('{B}', {T0}, 'b', '{{}}');
        INSERT INTO repos (repo_id, created_at, slug, data) VALUES ('{R}', {T0}, 'o/r', '{{}}');
        INSERT INTO worktrees (worktree_id, repo_id, created_at, name, ref, worktree_unique_id, data)
            VALUES ('{W}', '{R}', {T0}, 'wt', 'main', 1, '{{}}');
        INSERT INTO sessions (session_id, created_at, status, agentic_tool, worktree_id, data)
            VALUES ('{S}', {T0}, 'idle', 'claude-code', '{W}', '{{"a": 1.50, "b": [1e2, -0, "\\u00e9"]}}');
        INSERT INTO tasks (task_id, session_id, created_at, status, data) VALUES ('{TK}', '{S}', {T0}, 'done', '{{}}');
        INSERT INTO messages (message_id, created_at, session_id, task_id, type, role, "index", timestamp, data)
            VALUES ('{M}', {T0}, '{S}', '{TK}', 'user', 'user', 0, {T0}, '{{"content": []}}');
        INSERT INTO mcp_servers (mcp_server_id, created_at, name, transport, scope, source, data)
            VALUES ('{MS}', {T0}, 'm', 'stdio', 'global', 'user', '{{}}');
        INSERT INTO session_mcp_servers (session_id, mcp_server_id, enabled, added_at) VALUES ('{S}', '{MS}', 1, {T0});
    """)
    return c


def message(c: apsw.Connection, mid: str, **values: object) -> None:
    row: dict[str, object] = {
        "message_id": mid, "created_at": T0, "session_id": S, "task_id": None, "type": "user", "role": "user",
        "index": 1, "timestamp": T0, "data": "{}",
    }  # fmt: skip
    row.update(values)
    cols = ", ".join(f'"{k}"' for k in row)
    c.execute(f"INSERT INTO messages ({cols}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))


def counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        tables = [
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            if r[0] != "agor_migrations"
        ]
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


def run_copy(src: Path, url: str, **policies: str) -> object:
    return copy(parse_url(str(src)), parse_url(url), bundled_sql_root(), CopyOptions(policies=Policies(**policies)))


@pytest.fixture
def bad_source(tmp_path: Path) -> Path:
    """One file with every kind of bad data the scan knows."""
    path = tmp_path / "bad.db"
    c = base_source(path)
    message(c, "orphan-msg", session_id="no-such-session")  # orphan (NOT NULL FK)
    message(c, "orphan-task", task_id="no-such-task")  # orphan (nullable FK)
    message(c, "bad-json", data='{"a": ')  # invalid JSON
    message(c, "nul-json", data='{"a": "x\\u0000y"}')  # \u0000 in JSON
    message(c, "nul-text", content_preview="a\x00b")  # NUL in text
    c.execute(
        'INSERT INTO messages (message_id, created_at, session_id, type, role, "index", timestamp, data, '
        "content_preview) VALUES ('bad-utf8', ?, ?, 'user', 'user', 2, ?, '{}', CAST(x'61ff62' AS TEXT))",
        (T0, S, T0),
    )  # invalid UTF-8
    message(c, "text-int", index="seven")  # text in an integer column
    message(c, "real-int", queue_position=1.5)  # a real
    message(c, "blob-text", content_preview=b"\x01\x02")  # a blob
    message(c, "sec-ts", created_at=1_762_030_000)  # epoch seconds
    message(c, "iso-ts", timestamp="2025-11-02T10:00:00Z")  # ISO string
    message(c, "x" * 40)  # over-long id
    c.execute(f"UPDATE sessions SET archived = 2 WHERE session_id = '{S}'")  # boolean 2
    c.execute(f"INSERT INTO session_mcp_servers VALUES ('{S}', '{MS}', 1, {T0 + 1})")  # duplicate pair
    c.close()
    return path


def test_check_reports_every_kind_grouped(bad_source, pg_db):
    before = bad_source.read_bytes()
    r = run_cli("copy", "--from", str(bad_source), "--to", pg_db, "--check")
    assert r.code == 1, r.output
    err = r.stderr
    assert "nothing was written" in err
    for title in (
        "orphaned foreign keys: 2", "invalid JSON: 1", "NUL characters: 2", "invalid UTF-8: 1",
        "values of the wrong storage class: 3", "booleans other than 0/1: 1", "values longer than the column allows: 1",
        "timestamps that are not epoch milliseconds: 2", "duplicates of a primary or unique key: 1",
    ):  # fmt: skip
        assert title in err, title
    assert "messages: " in err and "sessions: 1 problem(s)" in err and "session_mcp_servers: 1 problem(s)" in err
    assert "looks like epoch seconds" in err and "an ISO date string" in err
    assert "message_id='orphan-msg'" in err and "no sessions row has session_id = 'no-such-session'" in err
    assert "--orphans=null|drop" in err and "--nul=strip" in err and "--invalid-utf8=replace" in err
    assert bad_source.read_bytes() == before
    assert counts(pg_db) == {}  # --check did not even create the schema


def test_copy_refuses_and_target_unchanged(bad_source, pg_db):
    with pytest.raises(BadData) as exc:
        run_copy(bad_source, pg_db)
    assert "PostgreSQL cannot take; nothing was written" in str(exc.value)
    assert set(counts(pg_db).values()) == {0}  # migrated, not one row kept


def test_json_summary_lists_all_problems(bad_source, pg_db):
    r = run_cli("copy", "--from", str(bad_source), "--to", pg_db, "--check", "--json")
    assert r.code == 1
    doc = json.loads(r.stdout)
    assert not doc["ok"] and doc["problems"]["messages"]["orphan"]["count"] == 2
    keys = {row["key"] for row in doc["problems"]["messages"]["storage_class"]["rows"]}
    assert keys == {"message_id='text-int'", "message_id='real-int'", "message_id='blob-text'"}


def _only(tmp_path: Path, **row: object) -> Path:
    path = tmp_path / "one.db"
    c = base_source(path)
    message(c, "bad", **row)
    c.close()
    return path


def _pg_value(url: str, sql: str) -> object:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
        return row[0] if row else "absent"


@pytest.mark.parametrize(
    ("row", "policy", "sql", "expected", "change"),
    [
        (
            {"task_id": "gone"},
            {"orphans": "null"},
            "SELECT task_id FROM messages WHERE message_id='bad'",
            None,
            "orphaned foreign key set to NULL",
        ),
        (
            {"session_id": "gone"},
            {"orphans": "drop"},
            "SELECT 1 FROM messages WHERE message_id='bad'",
            "absent",
            "row dropped: orphaned foreign key",
        ),
        (
            {"content_preview": "a\x00b"},
            {"nul": "strip"},
            "SELECT content_preview FROM messages WHERE message_id='bad'",
            "ab",
            "NUL characters removed",
        ),
        (
            {"data": '{"k": "x\\u0000y"}'},
            {"nul": "strip"},
            "SELECT data->>'k' FROM messages WHERE message_id='bad'",
            "xy",
            "NUL characters removed from JSON strings",
        ),
        (
            {"data": "{oops"},
            {"invalid_json": "drop"},
            "SELECT 1 FROM messages WHERE message_id='bad'",
            "absent",
            "row dropped: invalid JSON",
        ),
    ],
)
def test_policies(tmp_path, pg_db, row, policy, sql, expected, change):
    src = _only(tmp_path, **row)
    with pytest.raises(BadData):
        run_copy(src, pg_db)
    assert set(counts(pg_db).values()) == {0}
    result = run_copy(src, pg_db, **policy)
    assert _pg_value(pg_db, sql) == expected
    assert any(change in line for line in result.report.change_lines()), result.report.change_lines()  # type: ignore[attr-defined]


def test_invalid_json_null_refused_on_not_null_column(tmp_path, pg_db):
    src = _only(tmp_path, data="[1,")
    with pytest.raises(BadData) as exc:
        run_copy(src, pg_db, invalid_json="null")
    assert "the column is NOT NULL, use --invalid-json=drop" in str(exc.value)
    assert set(counts(pg_db).values()) == {0}


def test_invalid_utf8_replace_and_duplicates_drop_via_cli(tmp_path, pg_db):
    path = tmp_path / "u.db"
    c = base_source(path)
    c.execute(
        'INSERT INTO messages (message_id, created_at, session_id, type, role, "index", timestamp, data, '
        "content_preview) VALUES ('bad', ?, ?, 'user', 'user', 2, ?, '{}', CAST(x'61ff62' AS TEXT))",
        (T0, S, T0),
    )
    c.execute(f"INSERT INTO session_mcp_servers VALUES ('{S}', '{MS}', 0, {T0 + 5})")
    c.close()
    r = run_cli("copy", "--from", str(path), "--to", pg_db)
    assert r.code == 1 and "invalid UTF-8: 1" in r.stderr and "duplicates of a primary or unique key: 1" in r.stderr
    assert set(counts(pg_db).values()) == {0}
    r = run_cli("copy", "--from", str(path), "--to", pg_db, "--invalid-utf8=replace", "--duplicates=drop")
    assert r.code == 0, r.output
    assert "invalid UTF-8 replaced with U+FFFD" in r.stdout and "duplicate of a newer row" in r.stdout
    assert _pg_value(pg_db, "SELECT content_preview FROM messages WHERE message_id='bad'") == "a\ufffdb"
    # the newest of the duplicate pair is kept
    assert _pg_value(pg_db, "SELECT enabled FROM session_mcp_servers") is False


def test_drop_cascades_to_children(tmp_path, pg_db):
    """A policy-dropped parent makes its children orphans; with --orphans=drop they go too, and are listed."""
    path = tmp_path / "c.db"
    c = base_source(path)
    c.execute(
        f"INSERT INTO tasks (task_id, session_id, created_at, status, data) VALUES ('t2', 'gone', {T0}, 'x', '{{}}')"
    )
    message(c, "child", task_id="t2")
    c.close()
    result = run_copy(path, pg_db, orphans="drop")
    assert _pg_value(pg_db, "SELECT 1 FROM tasks WHERE task_id='t2'") == "absent"
    # the message's task_id pointed at the dropped task: dropped as well
    assert _pg_value(pg_db, "SELECT 1 FROM messages WHERE message_id='child'") == "absent"
    assert "its tasks row was dropped by a policy" in "\n".join(result.report.change_lines())  # type: ignore[attr-defined]


def test_not_null_violation_is_reported():
    # SQLite enforces NOT NULL on insert, so a real file cannot be built with one; the converter is checked directly.
    conv = Converter(Column("data", "jsonb", None, True, False), "json")
    out = conv.convert(None, Policies())
    assert [(i.kind, i.detail) for i in out.issues] == [("not_null", "the column is NOT NULL")]


@pytest.mark.parametrize(
    "text",
    [
        '{"b": 1, "a": 2, "aa": [1.50, 1e2, -0, 0.0, 1E-7]}', '"\\u00e9\\/"', '{"a": 1, "a": 2}', "[]", "{}",
        '[0.034819, 7e-05, -0.0, 1E5, 100.0, 1.10, -2.5, 0.30000000000000004, 123456789012345678.0, 1e400, -1e-400]',
        '{"bb": 1, "a": 2, "bb": 3, "\u00e9": 4, "ab": 5, "z": {"yy": [], "x": null}, "é": 6, "aé": 7, "ba": 8}',
        '{"\\u0001\\b\\f\\n\\r\\t\\"\\\\": "\\u001F\\u007f\\ud83d\\ude80 ✅"}',
    ],
)  # fmt: skip
def test_jsonb_text_matches_postgres(pg_db, text):
    with psycopg.connect(pg_db) as conn:
        assert jsonb_text(text) == conn.execute("SELECT %s::jsonb::text", (text,)).fetchone()[0]


def test_lone_surrogate_escape_reported_not_crashed(tmp_path, pg_db):
    # json_valid accepts "\ud800", jsonb refuses it: the exact check must catch it when hashing, before writing.
    src = _only(tmp_path, data='{"a": "\\ud800"}')
    with pytest.raises(BadData) as exc:
        run_copy(src, pg_db)
    assert "unpaired UTF-16 surrogate" in str(exc.value) and "message_id='bad'" in str(exc.value)
    assert set(counts(pg_db).values()) == {0}
    r = run_cli("copy", "--from", str(src), "--to", pg_db, "--check")
    assert r.code == 1 and "unpaired UTF-16 surrogate" in r.stderr
    run_copy(src, pg_db, invalid_json="drop")
    assert _pg_value(pg_db, "SELECT 1 FROM messages WHERE message_id='bad'") == "absent"
    assert _pg_value(pg_db, "SELECT count(*) FROM messages") == 1


def test_nul_byte_after_json_and_escaped_backslash_u0000(tmp_path, pg_db):
    # SQLite's json_valid stops at a NUL byte; jsonb refuses it. A backslash followed by "u0000" is no NUL.
    path = tmp_path / "n.db"
    c = base_source(path)
    message(c, "nul-after", data='{"a": 1}\x00junk')
    message(c, "no-nul", data='{"a": "\\\\u0000"}')
    c.close()
    r = run_cli("copy", "--from", str(path), "--to", pg_db, "--check")
    assert r.code == 1 and "invalid JSON: 1" in r.stderr and "message_id='nul-after'" in r.stderr
    assert "no-nul" not in r.stderr
    with pytest.raises(BadData):
        run_copy(path, pg_db)
    assert set(counts(pg_db).values()) == {0}
    run_copy(path, pg_db, invalid_json="drop")
    assert _pg_value(pg_db, "SELECT data->>'a' FROM messages WHERE message_id='no-nul'") == "\\u0000"
    assert _pg_value(pg_db, "SELECT 1 FROM messages WHERE message_id='nul-after'") == "absent"


def test_the_hint_offers_only_the_policies_that_can_fix_the_rows(tmp_path: Path, pg_db: str) -> None:
    """An orphan in a NOT NULL column (messages.session_id) cannot be set to NULL: the hint says
    --orphans=drop; once a nullable orphan (messages.task_id) is there too, both choices are offered."""
    path = tmp_path / "s.db"
    c = base_source(path)
    message(c, "orphan-msg", session_id="no-such-session")
    message(c, "bad-json", data='{"a": ')  # messages.data is NOT NULL too
    c.close()
    for policy in ((), ("--orphans=null",)):
        r = run_cli("copy", "--from", str(path), "--to", pg_db, *policy)
        assert r.code == 1 and "--orphans=drop" in r.stderr and "--invalid-json=drop" in r.stderr, r.output
        assert "--orphans=null" not in r.stderr.split("hint:")[1] and "null|drop" not in r.stderr, r.output
        assert not any(counts(pg_db).values())
    c = apsw.Connection(str(path))
    message(c, "orphan-task", task_id="no-such-task")
    c.close()
    r = run_cli("copy", "--from", str(path), "--to", pg_db)
    assert r.code == 1 and "--orphans=null|drop" in r.stderr, r.output


def test_a_long_bad_token_is_reported_at_once_and_briefly(tmp_path: Path, pg_db: str) -> None:
    """PostgreSQL's reason for refusing a long invalid JSON value quotes the whole bad token: the report
    stays one screen, and printing it (password masking included) takes no time to speak of."""
    path = tmp_path / "s.db"
    c = base_source(path)
    message(c, "long-token", data='["' + "x" * 300_000)
    message(c, "long-word", data="[" + "y" * 300_000 + "]")
    c.close()
    for extra in (["--check", "--json"], []):
        r = run_cli("copy", "--from", str(path), "--to", pg_db, *extra, timeout=60)
        assert r.code == 1, r.output
        assert "long-token" in r.output and "long-word" in r.output
        assert max(map(len, r.output.splitlines())) < 1000, "a line quotes the whole token"
        assert not any(counts(pg_db).values())
