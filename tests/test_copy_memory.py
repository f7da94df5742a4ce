"""Rows of many megabytes (Agor's tool outputs): peak memory stays under 150 MB + 3x the largest row, and
the pre-flight of a long JSON text is the same, piece by piece, as on the whole text."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

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
    filler = "".join(rnd.choice(["ab ", "é ", "日本 ", "x1 ", "🙂"]) for _ in range(copy_json._PIECE // 2))
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
    words = ["tool ", "output ", "línea ", "δεδομένα ", "ログ ", '"q" ', "tab\t", "\\path "]
    # over 64 MB: past _PLAIN_LIMIT, so the server-side check streams it too
    text = "".join(rnd.choice(words) for _ in range(9_000_000))
    doc = json.dumps({"type": "tool_result", "content": [{"text": text}], "n": [1.50, 1e2]}, ensure_ascii=False)
    size = len(doc.encode("utf-8"))
    assert size > copy_json._PLAIN_LIMIT
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
    assert peak_kb / 1024 < limit_mb, f"peak {peak_kb / 1024:.0f} MB, row {size / MB:.0f} MB, limit {limit_mb:.0f}"
    with psycopg.connect(pg_db) as conn:
        row = conn.execute("SELECT octet_length(data::text) > 0 FROM messages WHERE message_id = 'huge'").fetchone()
    assert row == (True,)


@settings(max_examples=500, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list('[:,{} \n-+.eE0123456789a"')), max_size=40))
def test_the_split_exponent_patterns_find_what_the_one_pattern_finds(text: str) -> None:
    assert copy_json._big_exponent(text) == bool(_BIG_EXPONENT.search(text))
