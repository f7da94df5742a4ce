"""The SQLite-side filter of the copier's pass (Converter.attention_sql): a value goes to the exact check
exactly when it needs it. A row the filter passes is sent as it is, so a test it misses is bad data
written unchecked; one it flags for nothing costs the slow path."""

from __future__ import annotations

import apsw
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agor_db.copy.convert import EPOCH_MS_MAX, EPOCH_MS_MIN, INT_RANGES, Converter
from agor_db.copy.target import Column

_SQLITE = apsw.Connection(":memory:")
LONG = 64  # bytes: a text longer than this skips the tests that read it

COLUMNS = [
    Converter(Column("c", kind, length, not_null, False), family, epoch)
    for not_null in (True, False)
    for kind, family, length, epoch in (
        ("boolean", "bool", None, False),
        ("integer", "int", None, False),
        ("smallint", "int", None, False),
        ("bigint", "int", None, True),
        ("jsonb", "json", None, False),
        ("text", "text", None, False),
        ("character varying", "text", 8, False),
        ("double precision", "float", None, False),
        ("bytea", "bytea", None, False),
    )
]

VALUES = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, 2, -1, 2**15, -(2**15) - 1, 2**31, EPOCH_MS_MIN - 1, EPOCH_MS_MIN, EPOCH_MS_MAX + 1]),
    st.floats(allow_nan=False),
    st.text(alphabet=st.sampled_from('ab\x00é🙂{}[]":,1\\u0'), max_size=100),
    st.sampled_from(['{"a": 1}', "[1, 2]", '"x"', "{", '{"a": "\\u0000"}', '{"a": "b\x00"}', "12345678", "123456789"]),
    st.binary(max_size=20),
)


def _json_valid(text: str) -> bool:
    return bool(_SQLITE.execute("SELECT json_valid(?)", (text,)).fetchone()[0])


def _needs_exact_check(conv: Converter, value: object, long_from: int | None, nul: bool = True) -> bool:
    """What the filter must say, from the column's rules written out in Python. ``nul`` False: a NUL
    character is not the filter's to find (the binary form's hashing looks for it, verify.RowHasher)."""
    if value is None:
        return conv.column.not_null
    family = conv.family
    if family in ("bool", "int"):
        if type(value) is not int:
            return True
        if family == "bool":
            return value not in (0, 1)
        lo, hi = INT_RANGES[conv.column.type]
        if conv.epoch_ms:
            lo, hi = max(lo, EPOCH_MS_MIN), min(hi, EPOCH_MS_MAX)
        return not lo <= value <= hi
    if family == "float":
        return type(value) not in (int, float)
    if family == "bytea":
        return type(value) is not bytes
    if type(value) is not str:
        return True
    if long_from is not None and len(value.encode()) > long_from:
        return False  # read in pieces and tested there (longtext.py)
    if "\x00" in value:
        if nul:
            return True
        value = value.partition("\x00")[0]  # SQLite's length() and json_valid() stop at a NUL
    if family == "text":
        return conv.column.max_length is not None and len(value) > conv.column.max_length
    return not _json_valid(value)  # a \u0000 escape is json.may_be_refused's (see below)


@settings(max_examples=400, deadline=None)
@given(value=VALUES, index=st.integers(0, len(COLUMNS) - 1), guarded=st.booleans(), nul=st.booleans())
def test_the_filter_flags_a_value_exactly_when_it_needs_the_exact_check(value, index, guarded, nul):
    conv = COLUMNS[index]
    long_from = LONG if guarded and conv.family in ("text", "json") else None
    sql = conv.attention_sql(long_from, nul)
    (flag,) = _SQLITE.execute(f'SELECT {sql} FROM (SELECT ? AS "c")', (value,)).fetchone()
    assert bool(flag) == _needs_exact_check(conv, value, long_from, nul), (conv.column, value, sql)


def test_without_its_nul_test_the_filter_leaves_a_nul_to_the_hash_which_refuses_it():
    """``nul=False`` (a table hashed in its binary COPY form): a NUL character passes the filter, and the
    hash of the row refuses it, so the row still goes to the exact check (and its --nul policy)."""
    from agor_db.copy.verify import RowHasher

    text = Converter(Column("c", "text", None, True, False, 25), "text")
    json = Converter(Column("c", "jsonb", None, True, False, 3802), "json")
    for conv, value in ((text, "a\x00b"), (json, '{"a": 1}\x00')):
        sql = conv.attention_sql(None, nul=False)
        assert _SQLITE.execute(f'SELECT {sql} FROM (SELECT ? AS "c")', (value,)).fetchone()[0] == 0
        assert _SQLITE.execute(f'SELECT {conv.attention_sql()} FROM (SELECT ? AS "c")', (value,)).fetchone()[0] == 1
        hasher = RowHasher((conv,), None, json_as_sent=True, wire=(25,))
        with pytest.raises(ValueError, match="NUL"):
            hasher.add((value,))
        assert hasher.digest().rows == 0


def test_a_long_text_is_not_read_by_the_filter():
    """Past long_from only the storage class is tested: no content test reads the value (SQLite would
    hold it whole), so even a NUL byte in it is left to the piecewise check."""
    conv = Converter(Column("c", "jsonb", None, True, False), "json")
    sql = conv.attention_sql(LONG)
    long_bad = "{" + "\x00" * LONG + "}"
    assert _SQLITE.execute(f'SELECT {sql} FROM (SELECT ? AS "c")', (long_bad,)).fetchone()[0] == 0
    assert _SQLITE.execute(f'SELECT {sql} FROM (SELECT ? AS "c")', (long_bad[:10],)).fetchone()[0] == 1


def test_what_json_valid_takes_and_jsonb_refuses_is_left_to_the_check_as_rows_are_hashed():
    """A \\u0000 or unpaired surrogate escape passes the filter (json_valid takes it) and is caught where the
    row is hashed, before it is written (json.may_be_refused sends it to the exact check); an escaped
    backslash before the letters u0000 is only looked at, then taken."""
    from agor_db.copy.json import JsonRefused, may_be_refused, sent_text

    conv = Converter(Column("c", "jsonb", None, True, False), "json")
    for text in ('{"a": "\\u0000"}', '["x\\ud800"]'):
        assert _SQLITE.execute(f'SELECT {conv.attention_sql()} FROM (SELECT ? AS "c")', (text,)).fetchone()[0] == 0
        assert may_be_refused(text)
        with pytest.raises(JsonRefused):
            sent_text(text)
    assert not may_be_refused('{"a": "\\u00e9"}')
    escaped = '{"a": "\\\\u0000"}'  # \\ then u0000: no NUL
    assert may_be_refused(escaped) and sent_text(escaped) == escaped
