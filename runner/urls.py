"""Which database: resolve the URL from flags and environment, tell the dialect, redact secrets.

Pure string work, no driver imports, so every command can resolve its target cheaply.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, unquote

from .errors import UrlError

Dialect = Literal["sqlite", "postgres"]

DEFAULT_SQLITE_PATH = "~/.agor/agor.db"
ENV_ORDER = ("AGOR_DATABASE_URL", "DATABASE_URL", "AGOR_DB_PATH")
SUPPORTED = (
    "postgresql://user:password@host:5432/dbname (also postgres://, libpq query parameters)",
    "sqlite:///absolute/path.db, sqlite:relative/path.db",
    "file:~/.agor/agor.db, file:///absolute/path.db",
    "a plain file path such as ~/.agor/agor.db or ./agor.db",
)

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_SCHEME_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
# libpq reads user:password up to the first "@" that comes before any "/": "?" and "#" may be part
# of a password written without percent-encoding, so they must not end it here either.
_USERINFO_PASSWORD = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/@:]*:)(?P<pw>[^/@]*)(?P<tail>@)")
_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


@dataclass(frozen=True)
class DatabaseUrl:
    """A resolved database location.

    ``raw`` is what the user gave (never printed as is); ``display`` is safe to print.
    For SQLite ``path`` is the absolute file path (or ``:memory:``); for PostgreSQL ``conninfo``
    is handed to libpq unchanged so every libpq form keeps working.
    """

    dialect: Dialect
    raw: str
    source: str  # where it came from: "--database-url", "AGOR_DATABASE_URL", ..., "default"
    path: Path | None = None
    conninfo: str | None = None

    @property
    def display(self) -> str:
        if self.dialect == "sqlite":
            return f"sqlite:{self.path}"
        return redact_url(self.raw)

    @property
    def secrets(self) -> tuple[str, ...]:
        names = public_names(self.raw)
        return tuple(s for s in _passwords(self.raw) if s and s not in names)

    @property
    def is_memory(self) -> bool:
        return self.dialect == "sqlite" and str(self.path) == ":memory:"


def _passwords(raw: str) -> list[str]:
    found: list[str] = []
    m = _USERINFO_PASSWORD.match(raw)
    if m and m.group("pw"):
        found += [m.group("pw"), unquote(m.group("pw"))]
    if "?" in raw:
        for key, value in parse_qsl(raw.split("?", 1)[1], keep_blank_values=True):
            if key.lower() == "password" and value:
                found.append(value)
    for m2 in _KEYWORD_PASSWORD.finditer(raw):
        found.append(m2.group(2).strip("'"))
    return found


def redact_url(raw: str) -> str:
    """Replace every password in a URL (userinfo, ``?password=``, ``password=`` keyword) with ``***``.

    Plain string work, no URL parser: it must never fail, whatever a user typed."""
    if not _SCHEME_URL.match(raw):
        return _KEYWORD_PASSWORD.sub(lambda m: f"{m.group(1)}***", raw)
    out = _USERINFO_PASSWORD.sub(
        lambda m: f"{m.group('head')}***{m.group('tail')}" if m.group("pw") else m.group(0), raw
    )
    head, sep, query = out.partition("?")
    if not sep:
        return out
    query, hash_, fragment = query.partition("#")
    fields = []
    for item in query.split("&"):
        key, eq, _value = item.partition("=")
        fields.append(f"{key}=***" if eq and unquote(key).strip().lower() == "password" else item)
    return head + "?" + "&".join(fields) + hash_ + fragment


# Inside free text (messages, JSON): a URL's userinfo password, a ?password= / &password= query value,
# and a libpq keyword string's password=value (a keyword starts the text or follows whitespace).
_TEXT_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s/@:]*:)([^\s/]+)(@)")
_TEXT_QUERY = re.compile(r"([?&](?:password|pass%77ord)=)([^&\s#\"']*)", re.IGNORECASE)
_TEXT_KEYWORD = re.compile(r"(?<!\S)(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'\"]+)", re.IGNORECASE)
# Where a password's own text can show up in a driver's message: as an echoed value, right after a
# quote, "=" or ":" (`invalid input syntax for type integer: "s3cret"`, `missing "=" after "s3cret"`),
# and not glued to more of a word. Anywhere else it would only be a coincidence: with the password
# `p` or `agor`, "attempt", "postgresql" and "agor-db" are ordinary words and stay as they are.
_ECHO_BEFORE = "[\"'=:]"
_ECHO_AFTER = "[A-Za-z0-9_\\-]"


def mask_passwords(text: str) -> str:
    """Mask every password field found by structure in free text: URLs, query strings, keyword strings."""
    text = _TEXT_USERINFO.sub(lambda m: f"{m.group(1)}***{m.group(3)}", text)
    text = _TEXT_QUERY.sub(lambda m: f"{m.group(1)}***" if m.group(2) else m.group(0), text)
    return _TEXT_KEYWORD.sub(lambda m: f"{m.group(1)}***", text)


def redact(text: str, secrets: tuple[str, ...] | list[str] = ()) -> str:
    """Make a message safe to print: password fields by structure, then the known passwords' text
    where a driver could have echoed it (see _ECHO_BEFORE), never inside ordinary words."""
    text = mask_passwords(text)
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = re.sub(f"(?<={_ECHO_BEFORE}){re.escape(secret)}(?!{_ECHO_AFTER})", "***", text)
    return text


def public_names(raw: str) -> set[str]:
    """User, host and database names in a URL or keyword string: shown as they are, never masked,
    even when the password happens to be the same word (the dev default agor/agor/agor)."""
    names: set[str] = set()
    if _SCHEME_URL.match(raw):
        rest = raw.split("://", 1)[1]
        authority, _, path = rest.partition("/")
        userinfo, at, hosts = authority.rpartition("@")
        if at:
            names.add(unquote(userinfo.split(":", 1)[0]))
        names.update(unquote(h.rsplit(":", 1)[0]) for h in (hosts if at else authority).split(","))
        path, _, query = path.partition("?")
        names.add(unquote(path))
        pairs = parse_qsl(query.split("#", 1)[0], keep_blank_values=True)
    else:
        pairs = [(m.group(1), m.group(2).strip("'")) for m in re.finditer(r"(\w+)\s*=\s*('[^']*'|\S+)", raw)]
    names.update(v for k, v in pairs if k.lower() in ("user", "host", "hostaddr", "dbname"))
    return {n for n in names if n}


def parse_url(raw: str, source: str = "--database-url") -> DatabaseUrl:
    """Turn anything a user may write into a DatabaseUrl, or raise UrlError listing what is supported."""
    text = raw.strip()
    if not text:
        raise UrlError(f"the database URL from {source} is empty", hint=_supported_hint())
    m = _SCHEME.match(text)
    scheme = m.group(1).lower() if m and len(m.group(1)) > 1 else None
    if scheme in ("postgres", "postgresql"):
        if not text[len(scheme) + 1 :].startswith("//"):
            raise UrlError(
                f"cannot read the PostgreSQL URL from {source}: it must start with {scheme}://",
                hint=_supported_hint(),
            )
        _refuse_unencoded_userinfo(text, source)
        return DatabaseUrl("postgres", text, source, conninfo=text)
    if scheme == "sqlite":
        rest = text[len("sqlite:") :]
        if rest.startswith("//"):
            rest = rest[2:]
            if rest.startswith("//"):
                rest = rest[1:]
        return _sqlite(rest, text, source)
    if scheme == "file":
        rest = text[len("file:") :]
        if rest.startswith("//"):
            rest = rest[2:]
            # file://localhost/abs or file:///abs: the authority is empty or localhost
            if rest.startswith("localhost/"):
                rest = rest[len("localhost") :]
        return _sqlite(rest, text, source)
    if scheme is not None:
        raise UrlError(
            f"unsupported database URL scheme {scheme + ':'!r} (from {source})",
            hint=_supported_hint(),
        )
    return _sqlite(text, text, source)


def _refuse_unencoded_userinfo(text: str, source: str) -> None:
    """`postgresql://agor:p@ss@db/agor` or `agor:p/ss@db`: libpq would read another host or database
    name out of the password (and try to connect there); a usage error (exit 2) says what to do."""
    rest = text.split("://", 1)[1].split("?", 1)[0]
    authority, slash, path = rest.partition("/")
    if authority.count("@") > 1:
        char = "@"
    elif slash and "@" in path and ":" in authority:
        char = "/"
    else:
        return
    raise UrlError(
        f"cannot read the PostgreSQL URL from {source}: its user name or password contains an unencoded {char!r}",
        hint="percent-encode special characters in the user name and password: @ is %40, / is %2F, : is %3A, "
        "? is %3F, # is %23, % is %25 (python3 -c 'import sys, urllib.parse as u; print(u.quote(sys.argv[1], "
        "safe=\"\"))' 'p@ss')",
    )


def _sqlite(location: str, raw: str, source: str) -> DatabaseUrl:
    location = unquote(location.split("?", 1)[0])
    if not location:
        raise UrlError(f"the SQLite URL {raw!r} from {source} names no file", hint=_supported_hint())
    if location == ":memory:":
        return DatabaseUrl("sqlite", raw, source, path=Path(":memory:"))
    path = Path(os.path.expanduser(location))
    if not path.is_absolute():
        path = Path.cwd() / path
    return DatabaseUrl("sqlite", raw, source, path=Path(os.path.normpath(path)))


def _supported_hint() -> str:
    return "supported forms: " + "; ".join(SUPPORTED)


def resolve_url(flag: str | None, environ: dict[str, str] | None = None) -> DatabaseUrl:
    """--database-url, then AGOR_DATABASE_URL, DATABASE_URL, AGOR_DB_PATH, then ~/.agor/agor.db."""
    env = os.environ if environ is None else environ
    if flag is not None:  # an explicit empty value (-d "$UNSET_VAR") is an error, not "use the default"
        return parse_url(flag, "--database-url")
    for name in ENV_ORDER:
        value = env.get(name)
        if value:
            return parse_url(value, name)
    return _default_url(env)


def _default_url(env: os._Environ[str] | dict[str, str]) -> DatabaseUrl:
    # The image sets AGOR_DB_REQUIRE_URL=1: in a container ~/.agor/agor.db is a throwaway file, and a
    # deployment that forgot its database must fail instead of "succeeding" on it.
    if env.get("AGOR_DB_REQUIRE_URL", "") not in ("", "0"):
        raise UrlError(
            "no database given: set DATABASE_URL (or AGOR_DATABASE_URL, --database-url); the default "
            f"{DEFAULT_SQLITE_PATH} is off here (AGOR_DB_REQUIRE_URL is set)",
            hint=f"to use SQLite on purpose, name the file: AGOR_DB_PATH={DEFAULT_SQLITE_PATH} (on a volume)",
        )
    return parse_url(DEFAULT_SQLITE_PATH, "default")
