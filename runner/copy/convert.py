"""Per-column conversion from a SQLite value to the target column's PostgreSQL type.

Each target column gets a Converter chosen by its introspected type. A converter has two faces:
``attention_sql`` is a SQLite expression that is true when a value cannot go through as it is, so
the common case costs one C-level test per value and no Python; ``convert`` is the exact (slow)
check for the rows that expression flagged, returning the value to load or the problems found.

Values that pass go to PostgreSQL unchanged through text-format COPY: PostgreSQL's boolean input
accepts ``0``/``1`` and jsonb input parses the JSON text itself (no Python JSON dumper involved).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any, Literal

from ..core.errors import UsageError
from .json import Oracle, json_problem, jsonb_loadable, sent_text, strip_nul
from .target import Column, quote

Kind = Literal[
    "orphan", "invalid_json", "nul", "invalid_utf8", "storage_class", "boolean", "too_long",
    "not_null", "timestamp", "out_of_range", "duplicate",
]  # fmt: skip
KIND_TITLES: dict[str, str] = {
    "orphan": "orphaned foreign keys",
    "invalid_json": "invalid JSON",
    "nul": "NUL characters",
    "invalid_utf8": "invalid UTF-8",
    "storage_class": "values of the wrong storage class",
    "boolean": "booleans other than 0/1",
    "too_long": "values longer than the column allows",
    "not_null": "NULL in NOT NULL columns",
    "timestamp": "timestamps that are not epoch milliseconds",
    "out_of_range": "integers out of the column's range",
    "duplicate": "duplicates of a primary or unique key",
}

INT_RANGES = {"smallint": (-(2**15), 2**15 - 1), "integer": (-(2**31), 2**31 - 1), "bigint": (-(2**63), 2**63 - 1)}
# Epoch milliseconds between 1973-03-03 and 5138: a seconds value (~1.7e9) or microseconds (~1.7e15) falls outside.
EPOCH_MS_MIN, EPOCH_MS_MAX = 10**11, 10**14 - 1
# The SQLite storage classes a family's values may have (besides NULL).
_STORAGE: dict[str, tuple[str, ...]] = {
    "bool": ("integer",),
    "int": ("integer",),
    "json": ("text",),
    "text": ("text",),
    "float": ("integer", "real"),
    "bytea": ("blob",),
}
TEXT_TYPES = ("text", "character varying", "character", "citext")
JSON_TYPES = ("jsonb", "json")
FLOAT_TYPES = ("double precision", "real", "numeric")


def shorten(value: Any, limit: int = 60) -> str:
    # the repr of a prefix: a value can be many megabytes, its whole repr as large
    text = repr(value[: 4 * limit] if isinstance(value, str | bytes) else value)
    return (
        text
        if len(text) <= limit
        else text[: limit - 5] + "...'" + f" ({len(value) if hasattr(value, '__len__') else '?'} chars)"
    )


def is_epoch_ms(column: Column) -> bool:
    """Which integer columns hold times: Agor names them ``*_at`` (and messages.timestamp)."""
    return column.type in INT_RANGES and (column.name.endswith("_at") or column.name == "timestamp")


@dataclass(frozen=True)
class Issue:
    kind: str
    column: str
    value: str  # shortened, safe to print
    detail: str = ""
    fix: str = ""  # the policy that can fix it, when not every choice of its option can (a NOT NULL column)


@dataclass(frozen=True)
class Policies:
    orphans: Literal["fail", "null", "drop"] = "fail"
    nul: Literal["fail", "strip"] = "fail"
    invalid_json: Literal["fail", "null", "drop"] = "fail"
    invalid_utf8: Literal["fail", "replace"] = "fail"
    duplicates: Literal["fail", "drop"] = "fail"

    def as_dict(self) -> dict[str, str]:
        return {
            "orphans": self.orphans,
            "nul": self.nul,
            "invalid_json": self.invalid_json,
            "invalid_utf8": self.invalid_utf8,
            "duplicates": self.duplicates,
        }


@dataclass
class Outcome:
    """What the slow path made of one value."""

    value: Any
    issues: list[Issue] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)  # policy actions, for the summary
    drop_row: bool = False


class Bytes:
    """A TEXT value whose bytes are not valid UTF-8 (read with CAST AS BLOB after apsw refused it)."""

    __slots__ = ("raw",)

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def __repr__(self) -> str:
        return repr(self.raw)


_ISOISH = re.compile(r"^\d{4}-\d{2}-\d{2}")


# -- converters ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Converter:
    column: Column
    family: Literal["bool", "int", "json", "text", "float", "bytea"]
    epoch_ms: bool = False

    @property
    def name(self) -> str:
        return self.column.name

    def attention_sql(self, long_from: int | None = None, nul: bool = True, json: bool = True) -> str:
        """True (1) when the value needs the slow path; NULL counts as fine unless the column forbids it.
        With ``long_from``, a text of more bytes skips the tests that read the value (SQLite would hold it
        whole, and its JSON parse): it is read in pieces and tested there (longtext.py). ``nul`` False: a
        NUL byte in a text is left to the caller, which looks for it where the row is hashed (verify.py).
        ``json`` False: whether a JSON text parses is left to PostgreSQL's own parse (load.py)."""
        c = quote(self.name)
        # Each value is tested once: its storage class (which also catches a NULL where none may be), then
        # its content. A content test of a NULL is NULL, which the caller counts as fine. This runs for
        # every value of every row: each redundant term cost ~0.1 us (~2.5 us per row of Agor's messages).
        content = self._content_sql(c, nul, json)
        if content is None:
            return f"({self._storage_sql(c)})"
        if long_from is not None:  # CASE, not AND: SQLite evaluates both sides of an AND, and would read it
            content = f"CASE WHEN octet_length({c}) > {long_from} THEN 0 ELSE {content} END"
        return f"({self._storage_sql(c)} OR {content})"

    def _storage_sql(self, c: str) -> str:
        classes = _STORAGE[self.family]
        if self.column.not_null and len(classes) == 1:
            return f"typeof({c}) <> '{classes[0]}'"
        allowed = classes if self.column.not_null else (*classes, "null")
        return f"typeof({c}) NOT IN ({', '.join(repr(k) for k in allowed)})"

    def _content_sql(self, c: str, nul: bool = True, json: bool = True) -> str | None:
        if self.family == "bool":
            return f"{c} NOT IN (0, 1)"
        if self.family == "int":
            lo, hi = INT_RANGES[self.column.type]
            if self.epoch_ms:
                lo, hi = max(lo, EPOCH_MS_MIN), min(hi, EPOCH_MS_MAX)
            return f"{c} NOT BETWEEN {lo} AND {hi}"
        if self.family == "json":
            # json_valid ignores a NUL byte and whatever follows it: any NUL byte sends the value to the exact
            # check. The rest jsonb may refuse (\\u0000 and unpaired surrogate escapes, numbers outside
            # numeric's range) is tested as the row is hashed, before it is written: json.may_be_refused.
            # SQLite's instr looks for the NUL byte by a memcmp per position (~1.7 us per row of Agor's
            # messages over its texts); Python's search where the row is hashed is a memchr.
            tests = ([f"NOT json_valid({c})"] if json else []) + (
                [f"instr(CAST({c} AS BLOB), x'00') > 0"] if nul else []
            )
            return f"({' OR '.join(tests)})" if tests else None
        if self.family == "text":
            tests = [f"instr(CAST({c} AS BLOB), x'00') > 0"] if nul else []
            if self.column.max_length is not None:
                tests.append(f"length({c}) > {self.column.max_length}")
            return f"({' OR '.join(tests)})" if tests else None
        return None  # float, bytea: the storage class is all

    def convert(self, value: Any, policies: Policies, oracle: Oracle | None = None) -> Outcome:
        """The exact check: the value to load, the problems, and what a policy changed."""
        col = self.column
        out = Outcome(value)
        if isinstance(value, Bytes):
            if policies.invalid_utf8 == "replace":
                value = value.raw.decode("utf-8", "replace")
                out.value = value
                out.changes.append("invalid UTF-8 replaced with U+FFFD")
            else:
                out.issues.append(Issue("invalid_utf8", col.name, shorten(value.raw), "not valid UTF-8"))
                return out
        if value is None:
            if col.not_null:
                out.issues.append(Issue("not_null", col.name, "NULL", "the column is NOT NULL"))
            return out
        family = self.family
        if family == "bool":
            if type(value) is not int:
                out.issues.append(
                    Issue("storage_class", col.name, shorten(value), _class(value) + " in a boolean column")
                )
            elif value not in (0, 1):
                out.issues.append(Issue("boolean", col.name, shorten(value), "a boolean must be 0 or 1"))
        elif family == "int":
            self._int(value, out)
        elif family == "json":
            self._json(value, out, policies, oracle)
        elif family == "text":
            self._text(value, out, policies)
        elif family == "float":
            if type(value) not in (int, float):
                out.issues.append(
                    Issue("storage_class", col.name, shorten(value), _class(value) + f" in {_a(col.type)} column")
                )
        elif family == "bytea" and type(value) is not bytes:
            out.issues.append(Issue("storage_class", col.name, shorten(value), _class(value) + " in a bytea column"))
        return out

    def _int(self, value: Any, out: Outcome) -> None:
        col = self.column
        if type(value) is not int:
            if self.epoch_ms and isinstance(value, str):
                what = "an ISO date string" if _ISOISH.match(value) else "text"
                out.issues.append(Issue("timestamp", col.name, shorten(value), f"{what}, not epoch milliseconds"))
            else:
                out.issues.append(
                    Issue("storage_class", col.name, shorten(value), _class(value) + f" in {_a(col.type)} column")
                )
            return
        lo, hi = INT_RANGES[col.type]
        if not lo <= value <= hi:
            out.issues.append(Issue("out_of_range", col.name, shorten(value), f"outside the range of {col.type}"))
        elif self.epoch_ms and not EPOCH_MS_MIN <= value <= EPOCH_MS_MAX:
            if 10**8 <= value < EPOCH_MS_MIN:
                detail = "looks like epoch seconds"
            elif value > EPOCH_MS_MAX:
                detail = "looks like epoch microseconds or later than year 5000"
            else:
                detail = "not a plausible epoch-milliseconds time"
            out.issues.append(Issue("timestamp", col.name, shorten(value), detail))

    def _not_text(self, value: Any, out: Outcome) -> bool:
        """A text or JSON column holding another storage class (integer, real, blob) is an issue."""
        if type(value) is str:
            return False
        col = self.column
        detail = _class(value) + f" in {_a(col.type)} column"
        out.issues.append(Issue("storage_class", col.name, shorten(value), detail))
        return True

    def _text(self, value: Any, out: Outcome, policies: Policies) -> None:
        col = self.column
        if self._not_text(value, out):
            return
        if "\x00" in value:
            if policies.nul == "strip":
                value = value.replace("\x00", "")
                out.value = value
                out.changes.append("NUL characters removed")
            else:
                out.issues.append(Issue("nul", col.name, shorten(value), "PostgreSQL text cannot hold NUL"))
                return
        if col.max_length is not None and len(value) > col.max_length:
            out.issues.append(
                Issue(
                    "too_long", col.name, shorten(value), f"{len(value)} characters, the column allows {col.max_length}"
                )
            )

    def _json(self, value: Any, out: Outcome, policies: Policies, oracle: Oracle | None) -> None:
        col = self.column
        if self._not_text(value, out):
            return
        found = json_problem(value, oracle)
        if found is None:
            return
        kind, problem = found
        if kind == "nul":
            if policies.nul == "strip":  # on the text: numbers, escapes and key order stay as written
                out.value = strip_nul(value)
                out.changes.append("NUL characters removed from JSON strings")
                return
            out.issues.append(Issue("nul", col.name, shorten(value), problem))
            return
        if policies.invalid_json == "null" and not col.not_null:
            out.value = None
            out.changes.append(f"invalid JSON set to NULL ({problem})")
        elif policies.invalid_json == "drop":
            out.drop_row = True
            out.changes.append(f"row dropped: invalid JSON ({problem})")
        else:
            detail = (
                problem
                if policies.invalid_json == "fail"
                else f"{problem}; the column is NOT NULL, use --invalid-json=drop"
            )
            fix = "--invalid-json=drop" if col.not_null else ""
            out.issues.append(Issue("invalid_json", col.name, shorten(value), detail, fix))


def _a(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def _class(value: Any) -> str:
    return {int: "integer", float: "real", str: "text", bytes: "blob"}.get(type(value), type(value).__name__)


def converter_for(column: Column, table: str) -> Converter:
    t = column.type
    if t == "boolean":
        return Converter(column, "bool")
    if t in INT_RANGES:
        return Converter(column, "int", is_epoch_ms(column))
    if t in JSON_TYPES:
        return Converter(column, "json")
    if t in TEXT_TYPES:
        return Converter(column, "text")
    if t in FLOAT_TYPES:
        return Converter(column, "float")
    if t == "bytea":
        return Converter(column, "bytea")
    raise UsageError(
        f"agor-db copy cannot fill {table}.{column.name}: no conversion from SQLite to PostgreSQL type {t}",
        hint="supported target types: boolean, smallint, integer, bigint, jsonb, json, text, varchar, "
        "double precision, real, numeric, bytea",
    )


# -- canonical row text for the checksums -----------------------------------------------------
#
# Each value becomes \x01 + its text + \x00, NULL becomes \x02. PostgreSQL text cannot hold NUL, so
# the encoding is unambiguous; the server builds the same bytes (copy_verify.server_digest_sql).


def canonical_source(conv: Converter, oracle: Oracle | None = None, json_as_sent: bool = False) -> Callable[[Any], str]:
    """How a value enters the row text. JSON: its canonical jsonb text, or with ``json_as_sent`` the text
    exactly as sent (checked to be one jsonb takes: a value PostgreSQL would refuse raises ValueError)."""
    family = conv.family
    if family == "json":
        check = sent_text if json_as_sent else jsonb_loadable
        return check if oracle is None else partial(check, oracle=oracle)
    if family == "bool":
        return lambda v: "t" if v else "f"
    if family == "float":
        return lambda v: format(Decimal(repr(float(v))), "f") if conv.column.type == "numeric" else repr(float(v))
    if family == "bytea":
        return lambda v: "\\x" + bytes(v).hex()
    return str
