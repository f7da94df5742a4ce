"""JSON as PostgreSQL's jsonb takes it: the canonical text (``jsonb::text``), NULs, numeric range.

The copier needs, for every JSON value, the exact text PostgreSQL will print for it (both sides of
the checksum are built from it) and, for a value it cannot take, why. The common case is answered in
Python (the C JSON scanner, with numbers kept as their decimal text); anything Python cannot answer
exactly — nesting deeper than Python's recursion limit, a string that contains the marker this module
uses for numbers — is asked of PostgreSQL itself (``JsonOracle``): PostgreSQL decides, never a guess.
A refusal is also confirmed by PostgreSQL when it is at hand, so valid data is never refused.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable, Iterator
from decimal import Decimal
from operator import itemgetter
from typing import Any, Protocol

from .longtext import TextPieces
from .pgbinary import SIGNATURE, TRAILER

# numeric's limits (src/include/utils/numeric.h): at most 131072 digits before the decimal point and
# 16383 after it. Checked on the parsed exponent, before any decimal expansion (``1e999999999``).
NUMERIC_INT_DIGITS = 131072
NUMERIC_DSCALE_MAX = 16383
OUT_OF_RANGE = "a number outside the range of PostgreSQL's numeric"


class JsonRefused(ValueError):
    """PostgreSQL's jsonb would refuse this text; the message says why."""


class Undecided(RuntimeError):
    """Python cannot produce the exact canonical text (too deep, a marker clash): ask PostgreSQL."""


Oracle = Callable[[str], str]  # PostgreSQL's jsonb::text for a text; raises JsonRefused


_NUM = "\ufdd0"  # a noncharacter: marks numbers kept as text through the encoder
_MARKER_ESCAPE = re.compile(r"\\u[fF][dD][dD]0")


def _range_checked(d: Decimal) -> str:
    """The plain decimal text of d as numeric prints it, or JsonRefused; bounded time for any exponent."""
    _sign, digits, exp = d.as_tuple()
    assert isinstance(exp, int)
    if -exp > NUMERIC_DSCALE_MAX:
        raise JsonRefused(OUT_OF_RANGE)
    if not any(digits):  # zero: numeric has no negative zero and ignores a positive exponent
        return "0" if exp >= 0 else "0." + "0" * -exp
    if d.adjusted() >= NUMERIC_INT_DIGITS:
        raise JsonRefused(OUT_OF_RANGE)
    return format(d, "f")


def _pg_number(text: str) -> float | str:
    """A JSON number with a fraction or exponent as jsonb prints it (numeric: the written digits, no
    exponent, no negative zero). Plain decimals that a float prints back exactly (``0.034819``) stay
    floats, which the C encoder writes directly; the rest travel as marked strings."""
    f = float(text)
    if f and "e" not in text and "E" not in text and repr(f) == text:
        return f
    return _NUM + _range_checked(Decimal(text)) + _NUM


def _pg_int(text: str) -> int | str:
    """An integer with more digits than Python's int() takes by default (4300)."""
    digits = len(text) - text.startswith("-")
    if digits <= 4000:
        return int(text)
    if digits > NUMERIC_INT_DIGITS:
        raise JsonRefused(OUT_OF_RANGE)
    # JSON integers have no leading zeros: a long one is never zero, and its text is numeric's
    return _NUM + text + _NUM


class _KeyOrder(dict[str, tuple[int, bytes]]):
    """jsonb's key order (byte length, then bytes) for non-ASCII keys. Keys repeat a lot, so their sort
    keys are cached and looked up by the C-level ``__getitem__`` (no Python call per key on a hit)."""

    def __missing__(self, key: str) -> tuple[int, bytes]:
        raw = key.encode("utf-8", "surrogatepass")
        if len(self) > 50_000:
            self.clear()
        self[key] = value = (len(raw), raw)
        return value


_ORDER = _KeyOrder()
_FIRST = itemgetter(0)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """One JSON object with its keys in jsonb's order; called by the C scanner for every object."""
    if len(pairs) < 2:
        return dict(pairs)
    # Code point order is UTF-8 byte order; the sort is stable, so duplicate keys stay in document order
    # and dict() keeps the last value, as jsonb does. A stable sort by length then gives jsonb's
    # (length, bytes) order, all in C, as long as length in characters is length in bytes (ASCII).
    pairs.sort(key=_FIRST)
    d = dict(pairs)
    keys = sorted(d, key=len)
    if not "".join(keys).isascii():
        keys = sorted(d, key=_ORDER.__getitem__)
    return {k: d[k] for k in keys}


def _no_constant(name: str) -> Any:
    raise JsonRefused(f"{name} is not JSON")


_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_float=_pg_number, parse_constant=_no_constant)
_BIG_INT_DECODER = json.JSONDecoder(
    object_pairs_hook=_object, parse_float=_pg_number, parse_int=_pg_int, parse_constant=_no_constant
)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "), check_circular=False, allow_nan=False)


def _decode(text: str) -> Any:
    try:
        return _DECODER.decode(text)
    except ValueError as exc:
        if "integer string conversion" not in str(exc):
            raise
    return _BIG_INT_DECODER.decode(text)


def python_jsonb_text(text: str) -> str:
    """The canonical text computed in Python; ValueError when invalid, Undecided when Python cannot tell."""
    try:
        out = _ENCODER.encode(_decode(text))
    except RecursionError:
        raise Undecided("nested too deeply for Python") from None
    if _NUM in out:
        if _NUM in text or ("\\u" in text and _MARKER_ESCAPE.search(text)):  # the data holds the marker
            raise Undecided("the text holds U+FDD0")
        out = out.replace('"' + _NUM, "").replace(_NUM + '"', "")
    return out


def jsonb_text(text: str, oracle: Oracle | None = None) -> str:
    """The text PostgreSQL's ``jsonb::text`` prints for this JSON document (ValueError if invalid).

    Numbers keep their decimal form (``1.50`` stays ``1.50``, ``1e2`` becomes ``100``) because jsonb
    stores them as numeric. Without an oracle, a document Python cannot answer raises Undecided.
    """
    try:
        return python_jsonb_text(text)
    except Undecided:
        if oracle is None:
            raise
        return oracle(text)


def jsonb_loadable(text: str, oracle: Oracle | None = None) -> str:
    """``jsonb_text`` for a value about to be loaded: also raises JsonRefused (a ValueError) when jsonb
    would refuse it: a NUL character, an unpaired surrogate escape."""
    out = jsonb_text(text, oracle)
    if has_nul(text):
        raise JsonRefused("NUL")
    if (why := refused_while_parsing(text)) is not None:
        raise JsonRefused(why)
    return out


def refused_while_parsing(text: str) -> str | None:
    """Why jsonb refuses a text Python's parse took: an unpaired surrogate escape. Looked for in the text,
    not in the parse: jsonb refuses it (and a NUL, see has_nul) also in a value that a later duplicate
    key replaces, which the parse has dropped."""
    if ("\\ud" in text or "\\uD" in text) and lone_surrogate(text):
        return "contains an unpaired UTF-16 surrogate escape"
    return None


# -- JSON sent as it is ------------------------------------------------------------------------
#
# The copier sends each JSON text as SQLite holds it and PostgreSQL parses it (load.py): the client
# no longer builds the canonical text of every value. What must still be decided before writing is
# whether jsonb would refuse a text. SQLite's json_valid (strict RFC 8259 since 3.45), run in the
# copier's SELECT, refuses every syntax error; beyond it jsonb refuses only a NUL byte (json_valid
# stops reading at it), which the same SELECT flags (convert.Converter.attention_sql), a \u0000 escape
# and an unpaired surrogate escape (tested here when the text holds a "\u" at all: ``lone_surrogate``
# when a "\ud"/"\uD"; Python's search is far cheaper than SQLite's instr), a number outside numeric's range, and texts
# past jsonb's size limits. A number is out of range only with an exponent of 4 or more digits (|e| >=
# 1000: numeric's bounds are about |e| > 16000 today, older servers refused |e| > 1000) or a run of
# thousands of digits; those, and very long texts, are tested here in C (bytes.translate, substring
# search), and a text that may hold one gets the exact check (``jsonb_loadable``).

_DIGITS = bytes.maketrans(b"123456789E-", b"000000000e+")  # digits -> 0, exponent and sign folded
_ZEROS = b"0" * 1000
# A number with an exponent of 4+ digits: r"(?:^|[\[:,])\s*-?\d+(?:\.\d+)?[eE][-+]?\d{4}", as two patterns
# (one anywhere after "[", ":" or ",", one at the start): re scans for a leading character class far
# faster than for an alternation with "^" (7 vs 17 us per text here; ~9 % of Agor's texts get this far,
# their ids fold to "e0000").
_EXPONENT_AFTER = re.compile(r"[\[:,]\s*-?\d+(?:\.\d+)?[eE][-+]?\d{4}")
_EXPONENT_FIRST = re.compile(r"\s*-?\d+(?:\.\d+)?[eE][-+]?\d{4}")
_PLAIN_LIMIT = 1 << 26  # jsonb's limits (2^28 bytes per string or container) are far above this


_ANY_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|.)", re.S)


def lone_surrogate(text: str) -> bool:
    """Does the text hold a surrogate escape that is not one half of a high-low pair written back to back
    (which jsonb refuses)? Escapes are read left to right, so an escaped backslash is never taken for one."""
    high_end = -1  # where the last high surrogate escape ended, while it waits for its low half
    for m in _ANY_ESCAPE.finditer(text):
        code = int(m.group(1), 16) if m.group(1) else -1
        low = 0xDC00 <= code <= 0xDFFF
        if high_end >= 0:
            if not low or m.start() != high_end:
                return True
            high_end = -1
        elif low:
            return True
        elif 0xD800 <= code <= 0xDBFF:
            high_end = m.end()
    return high_end >= 0


def may_be_refused(text: str) -> bool:
    """For a text the copier's SQLite-side test passed (json_valid, no NUL byte): False when jsonb surely
    takes it, True when it needs the exact check (ValueError when it is not even UTF-8)."""
    return may_be_refused_encoded(text, None if len(text) > _PIECE else text.encode("utf-8"))


def may_be_refused_encoded(text: str, raw: bytes | None) -> bool:
    """may_be_refused, given the text's UTF-8 bytes when they are at hand (a worker encodes every text
    for the COPY anyway); a text longer than _PIECE is examined in pieces either way."""
    # jsonb refuses a \u0000 escape and an unpaired surrogate one (most texts hold no "\u" at all)
    if "\\u" in text and ("\\u0000" in text or (("\\ud" in text or "\\uD" in text) and lone_surrogate(text))):
        return True
    if raw is None or len(text) > _PIECE:
        return _long_may_be_refused(text)
    # Signs deleted as well: one search finds e0000, e+0000 and e-0000 (~1 us/row less on Agor's texts).
    # Deleting can only join runs of digits, never split one: more texts may get the exact check, none fewer.
    folded = raw.translate(_DIGITS, b"+-")
    if b"e0000" in folded and _big_exponent(text):
        return True  # a number with a long exponent (the search skips hex ids such as "3e4512")
    return len(raw) >= len(_ZEROS) and _ZEROS in folded


def _big_exponent(text: str) -> bool:
    return _EXPONENT_AFTER.search(text) is not None or _EXPONENT_FIRST.match(text) is not None


def check_sent(text: str, raw: bytes) -> None:
    """``sent_text`` for a text whose UTF-8 bytes ``raw`` are at hand: raises what it raises, returns nothing."""
    if may_be_refused_encoded(text, raw):
        sent_text(text)


_PIECE = 1 << 20


def _long_may_be_refused(text: str) -> bool:
    """may_be_refused in pieces: a value of many megabytes is never encoded or folded whole (each copy is
    as large as the value; Agor's tool outputs run to tens of MB)."""
    size, long_exponent, tail = 0, False, b""
    for i in range(0, len(text), _PIECE):
        raw = text[i : i + _PIECE].encode("utf-8")
        size += len(raw)
        folded = tail + raw.translate(_DIGITS)
        long_exponent = long_exponent or b"e0000" in folded or b"e+0000" in folded
        if _ZEROS in folded:
            return True
        tail = folded[-len(_ZEROS) :]  # a run or an exponent may straddle two pieces
    if size > _PLAIN_LIMIT:
        return True
    return long_exponent and _big_exponent(text)


def sent_text(text: str, oracle: Oracle | None = None) -> str:
    """The text as sent (the checksum covers exactly these bytes), after making sure jsonb takes it:
    ValueError (JsonRefused, UnicodeEncodeError) when it would not. Only for texts as may_be_refused says."""
    if may_be_refused(text):
        if len(text) <= _PIECE:
            jsonb_loadable(text, oracle).encode("utf-8")
        elif isinstance(oracle, JsonOracle):
            oracle.accepts(text)  # PostgreSQL parses a long text in far less memory than Python's json
        else:  # a worker process: the main one, which has the oracle, takes the row
            raise Undecided("a long text that may be refused is checked by PostgreSQL")
    return text


# -- NUL characters ----------------------------------------------------------------------------
#
# Backslashes occur in JSON only inside strings, as the first character of an escape, so a "\u0000"
# is a NUL character exactly when an even number of backslashes comes before it (none, or escaped
# backslashes): "\\u0000" is an escaped backslash, then the letters u0000. Only the occurrences of
# "\u0000" are looked at, never every escape (tool outputs are full of them, and a text may be long).


def _nul_escapes(text: str) -> Iterator[int]:
    """Where the \\u0000 escapes that are NUL characters begin."""
    at = text.find("\\u0000")
    while at >= 0:
        start = at
        while start and text[start - 1] == "\\":
            start -= 1
        if (at - start) % 2 == 0:
            yield at
        at = text.find("\\u0000", at + 1)


def has_nul(text: str) -> bool:
    return "\x00" in text or next(_nul_escapes(text), -1) >= 0


def strip_nul(text: str) -> str:
    """The text with every NUL character removed (raw NUL bytes and \\u0000 escapes), nothing else
    touched: numbers, other escapes, whitespace and key order stay exactly as written."""
    text = text.replace("\x00", "")
    nuls = list(_nul_escapes(text))
    if len(nuls) == text.count("\\u0000"):  # each one a NUL: one copy of a text that may be long
        return text.replace("\\u0000", "")
    parts, last = [], 0
    for at in nuls:
        parts.append(text[last:at])
        last = at + 6
    return "".join([*parts, text[last:]])


def json_problem(text: str, oracle: Oracle | None = None) -> tuple[str, str] | None:
    """(kind, why) when PostgreSQL's jsonb would refuse this text, kind "nul" when removing its NUL
    characters would make it acceptable, "invalid_json" otherwise; None when it is fine."""
    if has_nul(text):
        without = _problem(strip_nul(text), oracle)
        if without is None:
            return ("nul", "jsonb cannot hold a NUL character (\\u0000)")
        if len(text) > _PIECE:  # what PostgreSQL said of it without its NULs (Python's parse: many copies)
            return ("invalid_json", without)
        return ("invalid_json", _problem(text, None) or "a NUL character")
    why = _problem(text, oracle)
    return None if why is None else ("invalid_json", why)


def _problem(text: str, oracle: Oracle | None) -> str | None:
    if len(text) > _PIECE and isinstance(oracle, JsonOracle):  # Python's parse would hold many copies
        try:
            oracle.accepts(text)
        except JsonRefused as exc:
            return str(exc)
        return None
    try:
        jsonb_text(text, oracle).encode("utf-8")
        return refused_while_parsing(text)
    except UnicodeEncodeError:
        return "contains an unpaired UTF-16 surrogate escape"
    except JsonRefused as exc:
        return str(exc)
    except ValueError as exc:  # Python's parser refused it: PostgreSQL, when at hand, has the last word
        if oracle is None or "\x00" in text:
            return str(exc)
        try:
            oracle(text)
        except JsonRefused as refused:
            return str(refused)
    except Undecided as exc:
        return f"cannot be checked without PostgreSQL ({exc})"
    return None


class JsonOracle:
    """PostgreSQL's own jsonb input and output on a connection of its own (opened when first needed,
    autocommit: a refusal does not disturb anything else). The last answer is kept, since the slow
    path often asks about the value the hasher just asked about."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._conn: Any = None
        self._last: tuple[str, str | None, str] = ("", None, "")

    def __call__(self, text: str) -> str:
        import psycopg

        if self._last[0] is not text:
            if self._conn is None:
                self._conn = self._connect()
            try:
                row = self._conn.execute("SELECT %s::jsonb::text", (text,)).fetchone()
                self._last = (text, str(row[0]), "")
            except psycopg.Error as exc:
                if (exc.sqlstate or "")[:2] not in ("22", "54"):  # data exception, program limit exceeded
                    raise
                self._last = (text, None, _why(exc))
        if self._last[1] is None:
            raise JsonRefused(self._last[2])
        return self._last[1]

    def accepts(self, text: str | Pieces) -> None:
        """Raise JsonRefused unless jsonb takes ``text``, for texts of many megabytes: the text is streamed
        to the server in pieces (binary COPY into a temporary table of this one transaction, so nothing is
        left on a pooled connection) and parsed there; neither its encoded copy nor its parse is ever
        held here whole."""
        import psycopg

        if self._conn is None:
            self._conn = self._connect()
        value = TextPieces(text) if isinstance(text, str) else text
        try:
            with self._conn.transaction():
                self._conn.execute("CREATE TEMP TABLE agor_db_json_probe (t text) ON COMMIT DROP")
                with self._conn.cursor().copy("COPY agor_db_json_probe (t) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.write(SIGNATURE + struct.pack("!hi", 1, value.size))
                    for piece in value.pieces():
                        copy.write(piece)
                    copy.write(TRAILER)
                self._conn.execute("SELECT t::jsonb IS NULL FROM agor_db_json_probe")
        except psycopg.Error as exc:
            if (exc.sqlstate or "")[:2] not in ("22", "54"):  # data exception, program limit exceeded
                raise
            raise JsonRefused(_why(exc)) from None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class Pieces(Protocol):
    """A text given as its UTF-8 bytes in pieces, ``size`` bytes in all (longtext.LongText, TextPieces)."""

    size: int

    def pieces(self) -> Iterator[bytes]: ...


_WHY_LIMIT = 200  # PostgreSQL's detail quotes the offending token: of a long value, as long as it is


def _why(exc: Any) -> str:
    diag = exc.diag
    why = (diag.message_primary or str(exc)) + (f" ({diag.message_detail})" if diag.message_detail else "")
    return why if len(why) <= _WHY_LIMIT else f"{why[: _WHY_LIMIT - 40]}... ({len(why)} characters)"
