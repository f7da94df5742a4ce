"""Which database: resolve the URL from flags and environment, tell the dialect, redact secrets.

Pure string work, no driver imports, so every command can resolve its target cheaply.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, unquote

from .errors import UrlError

Dialect = Literal["sqlite", "postgres"]

DEFAULT_SQLITE_PATH = "~/.agor/agor.db"
ENV_ORDER = ("AGOR_DATABASE_URL", "DATABASE_URL", "AGOR_DB_PATH")
SUPPORTED = (
    "postgresql://user:password@host:5432/dbname (also postgres://, libpq query parameters; "
    "postgresql:// alone takes everything from the PG* environment variables)",
    "a libpq keyword/value string such as 'host=db port=5432 dbname=agor user=agor' or 'service=agor'",
    "sqlite:///absolute/path.db, sqlite:relative/path.db",
    "file:~/.agor/agor.db, file:///absolute/path.db",
    "a plain file path such as ~/.agor/agor.db, ./agor.db or /data/agor.db",
)
# A plain string (no scheme) is a SQLite path only when it looks like one: it names an existing file,
# has a directory part, or ends in one of these. A bare word ("agor", "db") is a mistake, not a file
# to create in the working directory.
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3", ".db3")

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_SCHEME_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
# libpq reads user:password up to the first "@" that comes before any "/": "?" and "#" may be part
# of a password written without percent-encoding, so they must not end it here either.
_USERINFO_PASSWORD = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/@:]*:)(?P<pw>[^/@]*)(?P<tail>@)")
_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
# libpq's keyword/value form: `keyword = value` pairs separated by whitespace; a value is either
# bare (no whitespace, no quote) or single-quoted with backslash escapes.
_KEYWORD_START = re.compile(r"^\s*[A-Za-z_][A-Za-z0-9_]*\s*=")
_KEYWORD_PAIR = re.compile(
    r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?:'((?:[^'\\]|\\.)*)'|((?:[^\s'\\]|\\.)(?:[^\s\\]|\\.)*)?)(?=\s|$)"
)
_BARE_VALUE = re.compile(r"^[^\s'\\]+$")
# A PostgreSQL URL that lost the ":" after its scheme (`postgresql//agor:pw@db/agor`) or the scheme
# itself (`//agor:pw@db/agor`) has no scheme left and a "/", so it would pass for a SQLite path: its
# password would be printed in "cannot create …" and could even become a directory or file name.
_SCHEMELESS_URL = re.compile(r"^(?:(?:postgres(?:ql)?)//|//[^/]*@)", re.IGNORECASE)


@dataclass(frozen=True)
class DatabaseUrl:
    """A resolved database location.

    ``raw`` is what the user gave (never printed as is); ``display`` is safe to print.
    For SQLite ``path`` is the absolute file path (or ``:memory:``); for PostgreSQL ``conninfo``
    is handed to libpq unchanged so every libpq form keeps working. A keyword/value string also
    keeps its parsed ``keywords``, so its password is masked by structure, not by pattern.
    """

    dialect: Dialect
    raw: str
    source: str  # where it came from: "--database-url", "AGOR_DATABASE_URL", ..., "default"
    path: Path | None = None
    conninfo: str | None = None
    keywords: tuple[tuple[str, str], ...] = ()
    # passwords libpq takes from elsewhere (PGPASSWORD, a service file): never in raw, still secret
    env_secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def display(self) -> str:
        if self.dialect == "sqlite":
            return f"sqlite:{self.path}"
        if self.keywords:
            return render_keywords(self.keywords, mask=True)
        return redact_url(self.raw)

    @property
    def secrets(self) -> tuple[str, ...]:
        names = public_names(self.raw)
        found = _passwords(self.raw) + [v for k, v in self.keywords if k.lower() == "password"] + list(self.env_secrets)
        return tuple(dict.fromkeys(s for s in found if s and s not in names))

    @property
    def is_memory(self) -> bool:
        return self.dialect == "sqlite" and str(self.path) == ":memory:"


def parse_keywords(text: str) -> tuple[tuple[str, str], ...] | None:
    """libpq's keyword/value pairs of ``text``, or None when it is not written in that form."""
    pairs: list[tuple[str, str]] = []
    pos = 0
    while text[pos:].strip():
        m = _KEYWORD_PAIR.match(text, pos)
        if not m:
            return None
        quoted, bare = m.group(2), m.group(3)
        value = quoted if quoted is not None else (bare or "")
        pairs.append((m.group(1), re.sub(r"\\(.)", r"\1", value)))
        pos = m.end()
    return tuple(pairs)


def render_keywords(pairs: tuple[tuple[str, str], ...], *, mask: bool) -> str:
    """Write pairs back as a keyword/value string; with ``mask`` every password is ``***``."""
    out = []
    for key, value in pairs:
        if mask and key.lower() == "password":
            value = "***"
        elif not _BARE_VALUE.match(value):
            value = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        out.append(f"{key}={value}")
    return " ".join(out)


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
# A scheme starts where no scheme character comes before it: tried once per word, not at every letter
# (each try scans the word: a long run of letters would otherwise take quadratic time).
_TEXT_USERINFO = re.compile(r"(?<![A-Za-z0-9+.\-])([A-Za-z][A-Za-z0-9+.\-]*://[^\s/@:]*:)([^\s/]+)(@)")
_TEXT_QUERY = re.compile(r"([?&](?:password|pass%77ord)=)([^&\s#\"']*)", re.IGNORECASE)
_TEXT_KEYWORD = re.compile(r"(?<!\S)(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'\"]+)", re.IGNORECASE)
# Where a password's own text can show up in a driver's message: as an echoed value, right after a
# quote, "=" or ":" (`invalid input syntax for type integer: "s3cret"`, `missing "=" after "s3cret"`),
# and not glued to more of a word. Anywhere else it would only be a coincidence: with the password
# `p` or `agor`, "attempt", "postgresql" and "agor-db" are ordinary words and stay as they are.
_ALREADY_MASKED = re.compile(r"\*\*\*[:;,.)]?")
_ECHO_BEFORE = "[\"'=:]"
_ECHO_AFTER = "[A-Za-z0-9_\\-]"


def mask_passwords(text: str) -> str:
    """Mask every password field found by structure in free text: URLs, query strings, keyword strings."""
    text = _TEXT_USERINFO.sub(lambda m: f"{m.group(1)}***{m.group(3)}", text)
    text = _TEXT_QUERY.sub(lambda m: f"{m.group(1)}***" if m.group(2) else m.group(0), text)
    return _TEXT_KEYWORD.sub(_mask_keyword, text)


def _mask_keyword(m: re.Match[str]) -> str:
    # Our own masked display followed by the message's punctuation ("cannot connect to host=db
    # password=***: …") is already masked: keep the ':' instead of taking it for part of the value.
    # A password whose own text is "***:" is still caught by redact()'s known-secrets pass.
    if _ALREADY_MASKED.fullmatch(m.group(2)):
        return m.group(0)
    return f"{m.group(1)}***"


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


def parse_url(raw: str, source: str = "--database-url", environ: Mapping[str, str] | None = None) -> DatabaseUrl:
    """Turn anything a user may write into a DatabaseUrl, or raise UrlError listing what is supported.

    ``environ`` (default: the process environment) is only read for the passwords libpq would take
    from PGPASSWORD or a service file, so they can be kept out of every message."""
    env = os.environ if environ is None else environ
    text = raw.strip()
    if not text:
        raise UrlError(f"the database URL from {source} is empty", hint=_supported_hint())
    if any(ord(c) < 32 for c in text):
        raise UrlError(f"the database URL from {source} contains a line break or control character")
    m = _SCHEME.match(text)
    scheme = m.group(1).lower() if m and len(m.group(1)) > 1 else None
    if scheme is None and _KEYWORD_START.match(text):
        return _keyword_string(text, source, env)
    if scheme in ("postgres", "postgresql"):
        if not text[len(scheme) + 1 :].startswith("//"):
            raise UrlError(
                f"cannot read the PostgreSQL URL from {source}: it must start with {scheme}://",
                hint=_supported_hint(),
            )
        query = dict(parse_qsl(text.partition("?")[2].partition("#")[0], keep_blank_values=True))
        hidden = _libpq_env_secrets(query.get("service"), env)
        _refuse_unencoded_userinfo(text, source)
        return DatabaseUrl("postgres", text, source, conninfo=text, env_secrets=hidden)
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
    return _plain_path(text, source)


def _keyword_string(text: str, source: str, env: Mapping[str, str]) -> DatabaseUrl:
    pairs = parse_keywords(text)
    if pairs is None:
        # The message must not echo the string: it may hold a password.
        raise UrlError(
            f"cannot read the libpq keyword/value string from {source}: write it as keyword=value pairs "
            "separated by spaces, quoting a value that has spaces or quotes in it: password='a b'",
            hint="a SQLite file whose name contains '=' needs a directory part: ./name=x.db",
        )
    service = next((v for k, v in pairs if k == "service"), None)
    return DatabaseUrl(
        "postgres", text, source, conninfo=text, keywords=pairs, env_secrets=_libpq_env_secrets(service, env)
    )


def _plain_path(text: str, source: str) -> DatabaseUrl:
    """A string without scheme is a SQLite file only if it exists, has a directory part or a SQLite suffix."""
    expanded = os.path.expanduser(text)
    if _SCHEMELESS_URL.match(text) and not os.path.exists(expanded):
        meant = redact_url("postgresql://" + text.split("//", 1)[1])
        raise UrlError(
            f"the database from {source} looks like a PostgreSQL URL without its scheme's ':' "
            f"(did you mean {meant}?); it is not used as a SQLite path",
            hint="write postgresql://user:password@host:5432/dbname (with '://')",
        )
    looks_like_path = (
        "/" in text or text.startswith("~") or text.lower().endswith(SQLITE_SUFFIXES) or os.path.isfile(expanded)
    )
    if not looks_like_path:
        raise UrlError(
            f"the database {text!r} from {source} is neither a URL nor a SQLite file path",
            hint="write a PostgreSQL URL (postgresql://…) or keyword string (host=… dbname=…), or a file path "
            "with a directory part or a .db suffix (./agor, agor.db)",
        )
    return _sqlite(text, text, source)


_ENV_PARTS = {
    "PGHOST": "host",
    "PGHOSTADDR": "hostaddr",
    "PGPORT": "port",
    "PGDATABASE": "dbname",
    "PGUSER": "user",
    "PGSERVICE": "service",
}


def env_parts(url: DatabaseUrl, env: Mapping[str, str] | None = None) -> list[str]:
    """The PG* variables (never PGPASSWORD) that supply what a PostgreSQL URL leaves out, as NAME=value:
    what `status` shows beside a bare ``postgresql://``, so it is clear which server it talks to."""
    if url.dialect != "postgres":
        return []
    env = os.environ if env is None else env
    given = {k.lower() for k, v in url.keywords if v} if url.keywords else _url_parts(url.raw)
    if "service" in given:
        return []  # the service file says the rest
    return [f"{name}={env[name]}" for name, part in _ENV_PARTS.items() if env.get(name) and part not in given]


def _url_parts(raw: str) -> set[str]:
    """The connection parameters a postgresql:// URL sets itself."""
    rest, _, query = raw.partition("://")[2].partition("?")
    authority, _, dbname = rest.partition("/")
    userinfo, _, hosts = authority.rpartition("@")
    given = {k for k, v in parse_qsl(query.partition("#")[0], keep_blank_values=True) if v}
    given |= {"user"} if userinfo.partition(":")[0] else set()
    given |= {"dbname"} if dbname.partition("#")[0] else set()
    for host in hosts.split(","):
        if host.startswith("["):  # [IPv6]:port
            name, port = host[1:].partition("]")[0], host.partition("]")[2][1:]
        else:
            name, _, port = host.partition(":")
        given |= ({"host"} if name else set()) | ({"port"} if port else set())
    return given


def _libpq_env_secrets(service: str | None, env: Mapping[str, str]) -> tuple[str, ...]:
    """The passwords libpq would read from PGPASSWORD and the connection service file."""
    found = [env.get("PGPASSWORD", "")]
    service = service or env.get("PGSERVICE")
    if service:
        from configparser import ConfigParser
        from configparser import Error as ConfigError

        files = [env.get("PGSERVICEFILE") or os.path.expanduser("~/.pg_service.conf")]
        if env.get("PGSYSCONFDIR"):
            files.append(os.path.join(env["PGSYSCONFDIR"], "pg_service.conf"))
        for name in files:
            parser = ConfigParser(interpolation=None, strict=False)
            try:
                parser.read(name, encoding="utf-8")
                found.append(parser.get(service, "password", fallback=""))
            except (OSError, ValueError, ConfigError):
                continue  # libpq reports an unreadable service file itself
    return tuple(p for p in found if p)


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


def resolve_url(flag: str | None, environ: Mapping[str, str] | None = None) -> DatabaseUrl:
    """--database-url, then AGOR_DATABASE_URL, DATABASE_URL, AGOR_DB_PATH, then ~/.agor/agor.db."""
    env = os.environ if environ is None else environ
    if flag is not None:  # an explicit empty value (-d "$UNSET_VAR") is an error, not "use the default"
        return parse_url(flag, "--database-url", env)
    for name in ENV_ORDER:
        value = env.get(name)
        if value:
            return parse_url(value, name, env)
    return _default_url(env)


def _default_url(env: Mapping[str, str]) -> DatabaseUrl:
    # The image sets AGOR_DB_REQUIRE_URL=1: in a container ~/.agor/agor.db is a throwaway file, and a
    # deployment that forgot its database must fail instead of "succeeding" on it.
    if env.get("AGOR_DB_REQUIRE_URL", "") not in ("", "0"):
        raise UrlError(
            "no database given: set DATABASE_URL (or AGOR_DATABASE_URL, --database-url); the default "
            f"{DEFAULT_SQLITE_PATH} is off here (AGOR_DB_REQUIRE_URL is set)",
            hint=f"to use SQLite on purpose, name the file: AGOR_DB_PATH={DEFAULT_SQLITE_PATH} (on a volume)",
        )
    return parse_url(DEFAULT_SQLITE_PATH, "default", env)
