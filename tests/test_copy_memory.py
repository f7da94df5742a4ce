"""Rows of many megabytes (Agor's tool outputs): peak memory stays under 150 MB + 3x the largest row, and
the pre-flight of a long JSON text is the same, piece by piece, as on the whole text."""

from __future__ import annotations

import json
from typing import Any
import random
import re
import subprocess
import sys
from pathlib import Path

import apsw
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_copy_baddata import base_source, counts, message

from agor_db.copy import json as copy_json

MB = 1 << 20
# The rule json._big_exponent applies with two patterns, as one (the reference).
_BIG_EXPONENT = re.compile(r"(?:^|[\[:,])\s*-?\d+(?:\.\d+)?[eE][-+]?\d{4}")


def _one_shot(text: str) -> bool:
    """may_be_refused's rule applied to the whole text at once (the reference for the piecewise one)."""
    raw = text.encode("utf-8")
    if len(raw) > copy_json._PLAIN_LIMIT:
        return True
    folded = raw.translate(copy_json._DIGITS)
    if (b"e0000" in folded or b"e+0000" in folded) and _BIG_EXPONENT.search(text):
        return True
    return len(raw) >= 1000 and b"0" * 1000 in folded


def _long_text(rnd: random.Random, inject: str, at: int) -> str:
    # (choices: a quarter of the CPU time of as many choice() calls, the same distribution)
    filler = "".join(rnd.choices(["ab ", "é ", "日本 ", "x1 ", "🙂"], k=copy_json._PIECE // 2))
    body = filler[:at] + inject + filler[at:]
    return json.dumps({"text": body[: copy_json._PIECE + 4000], "n": [1]}, ensure_ascii=False)


@pytest.mark.parametrize(
    "inject",
    [
        "",  # nothing to find
        '", "e": 1e99999, "t": "',  # a long exponent
        '", "e": 3E+12345, "t": "',
        '", "d": ' + "7" * 1200 + ', "t": "',  # a run of digits numeric may not hold
        "1e00001 in a string",  # looks like one, is text: the search is the regex's to refuse
        "9" * 999,  # one digit short of a run
    ],
)
def test_piecewise_pre_check_equals_the_whole_text_check(inject: str) -> None:
    rnd = random.Random(inject)
    piece = copy_json._PIECE
    # around the piece boundary (where a pattern straddles two pieces) and well inside a piece
    for at in (piece - 2, piece - 600, piece - len(inject) // 2, 1000):
        text = _long_text(rnd, inject, at)
        assert len(text) > piece
        assert copy_json.may_be_refused(text) == _one_shot(text), (inject[:20], at)


def test_a_long_text_jsonb_refuses_is_found_before_writing(tmp_path: Path, pg_db: str) -> None:
    """A text of megabytes with a number numeric cannot hold: found by the server-side check (streamed),
    named by its key, nothing written."""
    path = tmp_path / "s.db"
    c = base_source(path)
    big = json.dumps({"out": "y" * (3 * MB), "n": 1})[:-1] + ', "m": 1e999999}'
    message(c, "huge-bad", data=big)
    message(c, "huge-good", data=json.dumps({"out": "z" * (3 * MB)})[:-1] + ', "x": 1e1000, "y": "1e99999"}')
    c.close()
    for extra in (["--check"], []):
        r = subprocess.run(
            [sys.executable, "-m", "agor_db", "copy", "--from", str(path), "--to", pg_db, *extra],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 1, r.stderr
        assert "huge-bad" in r.stdout + r.stderr and "huge-good" not in r.stdout + r.stderr
        assert not any(counts(pg_db).values())


def test_peak_memory_is_bounded_by_three_times_the_largest_row(tmp_path: Path, pg_db: str) -> None:
    path = tmp_path / "s.db"
    c = base_source(path)
    rnd = random.Random(7)
    # The worst case for a Python str: one astral character makes every character four bytes.
    words = ["tool ", "output ", "línea ", "δεδομένα ", "ログ ", '"q" ', "tab\t", "\\path ", "🙂 "]
    # over 64 MB: past _PLAIN_LIMIT, so the server-side check streams it too
    text = "".join(rnd.choices(words, k=9_500_000))  # (choices: a quarter of the CPU time of 9.5M choice())
    doc = json.dumps({"type": "tool_result", "content": [{"text": text}], "n": [1.50, 1e2]}, ensure_ascii=False)
    size = len(doc.encode("utf-8"))
    assert size > copy_json._PLAIN_LIMIT
    with c:  # one transaction
        for i in range(6000):  # among thousands of ordinary rows (worker processes, chunks before and after)
            message(c, f"m{i}", data=json.dumps({"i": i, "text": "ok " * 20}))
            if i == 3000:
                message(c, "huge", data=doc)
    c.close()
    del text, doc
    # the copy runs as the child of a small Python that reports its children's peak RSS
    probe = (
        "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.stderr.write(r.stderr)"
    )
    cmd = [sys.executable, "-m", "agor_db", "copy", "--from", str(path), "--to", pg_db]
    r = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, timeout=600)
    code, peak_kb = (int(x) for x in r.stdout.split())
    assert code == 0, r.stderr
    limit_mb = 150 + 3 * size / MB
    print(f"peak {peak_kb / 1024:.0f} MB, row {size / MB:.0f} MB, limit {limit_mb:.0f}")
    assert peak_kb / 1024 < limit_mb, f"peak {peak_kb / 1024:.0f} MB, row {size / MB:.0f} MB, limit {limit_mb:.0f}"
    with psycopg.connect(pg_db) as conn:
        row = conn.execute("SELECT octet_length(data::text) > 0 FROM messages WHERE message_id = 'huge'").fetchone()
    assert row == (True,)


# -- long values in pieces (longtext.py), with the thresholds lowered so the cases stay small -----------

SMALL_LONG, SMALL_PIECE = 64 << 10, 4 << 10


@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Long values from 64 KB on, read in 4 KB pieces; returns the values read in pieces (by rowid)."""
    from agor_db.copy import longtext, verify

    monkeypatch.setattr(longtext, "LONG", SMALL_LONG)
    monkeypatch.setattr(longtext, "PIECE", SMALL_PIECE)
    monkeypatch.setattr(verify, "LONG", SMALL_LONG)
    read: list[str] = []
    real = longtext.LongText.pieces

    def pieces(self: longtext.LongText) -> Any:
        read.append(f"{self.table}.{self.column}@{self.rowid}")
        return real(self)

    monkeypatch.setattr(longtext.LongText, "pieces", pieces)
    return read


def _doc_around(rnd: random.Random, inject: str, at: int, plain: bool = False) -> str:
    """A JSON document of ~100 KB with ``inject`` (JSON members) starting exactly ``at`` bytes in, so a
    pattern can sit on a 4 KB piece seam; ``plain``: no text that looks like a surrogate escape or a long
    exponent (which would send the whole value to the server's check whatever is injected)."""
    words = ["ab ", "é ", "日本 ", "🙂 ", '\\"q\\" ', "\\\\udev ", "3e4512 ", "\\ud83d\\ude00 ", "tab\\t "]
    if plain:
        words = [w for w in words if "\\u" not in w and "3e" not in w]
    head = ['{"a": "']
    size = len(head[0])
    while size < at - 40:
        word = rnd.choice(words)
        head.append(word)
        size += len(word.encode())
    head.append("x" * max(0, at - 1 - size) + '"')
    tail = "".join(rnd.choice(words) for _ in range(12_000))
    doc = "".join(head) + inject + ', "z": "' + tail + '", "n": [1.50, 1e2, -0]}'
    assert not inject or doc.encode().index(inject.encode()) == max(at, len(head[0]) + 1)
    return doc


def _source_with(path: Path, docs: dict[str, str], small_rows: int = 40) -> None:
    c = base_source(path)
    for i in range(small_rows):
        message(c, f"s{i}", data=json.dumps({"i": i}), content_preview=None if i % 2 else "p")
    for mid, doc in docs.items():
        message(c, mid, data=doc, task_id=None, content_preview="preview", index=7)
    c.close()


def test_long_values_go_in_pieces_and_store_the_server_parse(
    tmp_path: Path, pg_db: str, small_pieces: list[str]
) -> None:
    from test_copy_baddata import run_copy

    rnd = random.Random(3)
    seam = 2 * SMALL_PIECE
    docs = {
        "plain": _doc_around(rnd, "", 0),
        "exp-at-seam": _doc_around(rnd, ', "e": 1e1000', seam - 10),  # numeric holds it: the server says so
        "exp-inside": _doc_around(rnd, ', "e": -2.5E+1234', seam + 900),
        "digits": _doc_around(rnd, ', "d": ' + "9" * 1500, seam - 700),
        "astral-keys": _doc_around(rnd, ', "🙂\\ud83d\\ude00": {"k": "\\u00e9"}, "🙂\\ud83d\\ude00": 2', seam - 3),
    }
    path = tmp_path / "s.db"
    _source_with(path, docs)
    run_copy(path, pg_db)
    assert len(small_pieces) >= 2 * len(docs)  # each long value read in pieces: checked and hashed, then sent
    with psycopg.connect(pg_db) as conn:
        for mid, doc in docs.items():
            row = conn.execute(
                "SELECT data = %s::jsonb, content_preview, task_id, index FROM messages WHERE message_id = %s",
                (doc, mid),
            ).fetchone()
            assert row == (True, "preview", None, 7), mid
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == (1 + 40 + len(docs),)  # base_source's 1


@pytest.mark.parametrize("check", [False, True])
def test_long_values_postgres_refuses_are_named_before_writing(
    tmp_path: Path, pg_db: str, small_pieces: list[str], check: bool
) -> None:
    from test_copy_baddata import run_copy

    from agor_db.copy.run import CopyOptions, copy
    from agor_db.copy.scan import BadData
    from agor_db.core.source import bundled_sql_root
    from agor_db.core.urls import parse_url

    rnd = random.Random(4)
    seam = 3 * SMALL_PIECE
    docs = {
        "big-exp-at-seam": _doc_around(rnd, ', "e": 1e999999', seam - 10, plain=True),
        "big-exp-inside": _doc_around(rnd, ', "e": 7E-99999', seam + 1000, plain=True),
        "lone-at-seam": _doc_around(rnd, ', "s": "x\\ud800y"', seam - 10, plain=True),
        "fine": _doc_around(rnd, ', "e": 1e1000', seam - 10, plain=True),
    }
    path = tmp_path / "s.db"
    _source_with(path, docs)
    if check:  # --check reports what it found instead of raising
        report = copy(parse_url(str(path)), parse_url(pg_db), bundled_sql_root(), CopyOptions(check=True)).report
        text = str(report.error())
    else:
        with pytest.raises(BadData) as exc:
            run_copy(path, pg_db)
        text = str(exc.value)
    for mid in ("big-exp-at-seam", "big-exp-inside", "lone-at-seam"):
        assert f"message_id='{mid}'" in text, text
    assert "'fine'" not in text and "3 value(s)" in text
    assert not any(counts(pg_db).values())


def test_a_long_value_that_is_not_utf8_is_named_or_replaced(
    tmp_path: Path, pg_db: str, small_pieces: list[str]
) -> None:
    from test_copy_baddata import run_copy

    from agor_db.copy.scan import BadData

    path = tmp_path / "s.db"
    _source_with(path, {})
    body = b'{"a": "' + "日本 🙂 ".encode() * 9000 + b"\xff\xfe" + b"x" * 5000 + b'"}'
    c = apsw.Connection(str(path))
    c.execute(
        "UPDATE messages SET data = CAST(? AS TEXT) WHERE message_id = 's3'", (body,)
    )  # bytes stored as TEXT: not UTF-8
    c.close()
    with pytest.raises(BadData) as exc:
        run_copy(path, pg_db)
    assert "message_id='s3'" in str(exc.value) and "not valid UTF-8" in str(exc.value)
    assert not any(counts(pg_db).values())
    run_copy(path, pg_db, invalid_utf8="replace")
    expected = body.decode("utf-8", "replace")
    with psycopg.connect(pg_db) as conn:
        row = conn.execute("SELECT data = %s::jsonb FROM messages WHERE message_id = 's3'", (expected,)).fetchone()
    assert row == (True,)


def test_a_long_value_with_nul_is_stripped_under_the_policy(
    tmp_path: Path, pg_db: str, small_pieces: list[str]
) -> None:
    """The exact check of a long value: past 1 MB PostgreSQL parses it (Python's parse would hold many copies)."""
    from test_copy_baddata import run_copy

    from agor_db.copy.json import strip_nul
    from agor_db.copy.scan import BadData

    rnd = random.Random(5)
    doc = _doc_around(rnd, ', "s": "a\\u0000b", "n": 1.10', 5000)
    big = "[" + ", ".join([doc] * 16) + ', "\\\\u0000 is text", "x\\u0000"]'  # ~1.2 MB
    assert len(big) > 1 << 20
    bad_big = big[:-1] + ", 1e999999]"  # refused with or without its NULs
    path = tmp_path / "s.db"
    _source_with(path, {"nul": doc, "nul-big": big, "nul-bad-big": bad_big})
    with pytest.raises(BadData) as exc:
        run_copy(path, pg_db)
    text = str(exc.value)
    assert "message_id='nul'" in text and "message_id='nul-big'" in text and not any(counts(pg_db).values())
    with pytest.raises(BadData) as exc:
        run_copy(path, pg_db, nul="strip")
    assert "invalid JSON: 1" in str(exc.value) and "message_id='nul-bad-big'" in str(exc.value)
    assert "value overflows numeric format" in str(exc.value)  # PostgreSQL's word, without the NULs
    assert "message_id='nul-big'" not in str(exc.value) and not any(counts(pg_db).values())
    run_copy(path, pg_db, nul="strip", invalid_json="drop")
    with psycopg.connect(pg_db) as conn:
        for mid, source in (("nul", doc), ("nul-big", big)):
            row = conn.execute("SELECT data = %s::jsonb FROM messages WHERE message_id = %s", (strip_nul(source), mid))
            assert row.fetchone() == (True,), mid
        gone = conn.execute("SELECT count(*) FROM messages WHERE message_id = 'nul-bad-big'").fetchone()
    assert gone == (0,)


def test_an_interrupt_while_a_long_value_streams_leaves_nothing(
    tmp_path: Path, pg_db: str, monkeypatch: pytest.MonkeyPatch, small_pieces: list[str]
) -> None:
    """Ctrl-C between two pieces of a long value the loader thread is writing: the copy stops (the thread
    does not wait for pieces that never come) and rolls back."""
    from test_copy_baddata import run_copy

    from agor_db.copy import longtext
    from agor_db.copy.run import CopyInterrupted

    path = tmp_path / "s.db"
    _source_with(path, {"long": _doc_around(random.Random(6), "", 0)})
    real = longtext.LongText.pieces
    calls = []

    def pieces(self: longtext.LongText) -> Any:
        calls.append(1)
        for i, piece in enumerate(real(self)):
            if len(calls) == 2 and i == 3:  # the second read is the COPY's
                raise KeyboardInterrupt
            yield piece

    monkeypatch.setattr(longtext.LongText, "pieces", pieces)
    with pytest.raises(CopyInterrupted):
        run_copy(path, pg_db)
    assert len(calls) == 2
    assert not any(counts(pg_db).values())


def test_nul_escapes_are_told_from_escaped_backslashes_as_a_left_to_right_scan_does() -> None:
    """has_nul/strip_nul look only at the "\\u0000" occurrences (a tool output is full of other escapes,
    and may be long); they agree with the plain reading of escapes left to right."""
    import re

    from agor_db.copy.json import has_nul, strip_nul

    escape = re.compile(r"\\u0000|\\.", re.S)

    def reference(text: str) -> tuple[bool, str]:
        text_ = text.replace("\x00", "")
        found = "\x00" in text or any(m.group() == "\\u0000" for m in escape.finditer(text_))
        return found, escape.sub(lambda m: "" if m.group() == "\\u0000" else m.group(), text_)

    rnd = random.Random(11)
    parts = ["\\", "u0000", "\\u0000", "a", "\\\\", '"', "\x00", "u", "0", "\\u00001", "é"]
    for _ in range(30_000):
        text = "".join(rnd.choice(parts) for _ in range(rnd.randint(0, 12)))
        assert (has_nul(text), strip_nul(text)) == reference(text), repr(text)


def test_a_refusal_of_a_long_value_in_the_loader_thread_rolls_everything_back(
    tmp_path: Path, pg_db: str, monkeypatch: pytest.MonkeyPatch, small_pieces: list[str]
) -> None:
    """Were the check of a long value ever to pass one PostgreSQL refuses, the server's refusal (in
    the loader thread, while or after the pieces stream) ends the copy with a clear error, nothing written."""
    from test_copy_baddata import run_copy

    from agor_db.copy.json import JsonOracle
    from agor_db.core.errors import DatabaseError

    monkeypatch.setattr(JsonOracle, "accepts", lambda self, text: None)
    rnd = random.Random(12)
    docs = {
        f"bad{i}": "[" + ", ".join([_doc_around(rnd, ', "e": 1e999999', 5000, plain=True)] * 2) + "]" for i in range(3)
    }
    assert all(len(d.encode()) > SMALL_LONG for d in docs.values())
    path = tmp_path / "s.db"
    _source_with(path, docs)
    with pytest.raises(DatabaseError) as exc:
        run_copy(path, pg_db)
    assert "PostgreSQL refused while copying rows" in str(exc.value) and "rolled back" in str(exc.value)
    assert small_pieces  # the values went in pieces
    assert not any(counts(pg_db).values())


def test_long_text_values_go_in_pieces_too(tmp_path: Path, pg_db: str, small_pieces: list[str]) -> None:
    """A long value in a text column (no length limit, no key) travels like a long JSON one; a NUL in one
    sends it to the exact check (reported, or stripped under --nul=strip)."""
    from test_copy_baddata import run_copy

    from agor_db.copy.scan import BadData

    rnd = random.Random(13)
    long_text = "".join(rnd.choice(["log line ", "é ", "🙂\n", "\t", "\\", '"']) for _ in range(30_000))
    assert len(long_text.encode()) > SMALL_LONG
    path = tmp_path / "s.db"
    _source_with(path, {})
    c = apsw.Connection(str(path))
    message(c, "two-long", content_preview=long_text, parent_tool_use_id=long_text[::-1], data=json.dumps([long_text]))
    message(c, "nul", content_preview=long_text + "\x00 after")
    c.close()
    with pytest.raises(BadData) as exc:
        run_copy(path, pg_db)
    assert "message_id='nul'" in str(exc.value) and "two-long" not in str(exc.value)
    assert not any(counts(pg_db).values())
    run_copy(path, pg_db, nul="strip")
    assert {s.split("@")[0] for s in small_pieces} >= {"messages.content_preview", "messages.parent_tool_use_id"}
    with psycopg.connect(pg_db) as conn:
        row = conn.execute(
            "SELECT content_preview = %s, parent_tool_use_id = %s, data = %s::jsonb FROM messages "
            "WHERE message_id = %s",
            (long_text, long_text[::-1], json.dumps([long_text]), "two-long"),
        ).fetchone()
        assert row == (True, True, True)
        stripped = conn.execute("SELECT content_preview FROM messages WHERE message_id = 'nul'").fetchone()
    assert stripped == (long_text + " after",)


@settings(max_examples=500, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list('[:,{} \n-+.eE0123456789a"')), max_size=40))
def test_the_split_exponent_patterns_find_what_the_one_pattern_finds(text: str) -> None:
    assert copy_json._big_exponent(text) == bool(_BIG_EXPONENT.search(text))
