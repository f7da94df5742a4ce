"""Why a PostgreSQL connection or operation failed: one line naming the cause, and the exit code for it.

The server's own settings cause most surprises: a role's ``statement_timeout`` or
``idle_in_transaction_session_timeout``, ``default_transaction_read_only``, a hot standby, a
``search_path`` whose first schema is not where the journal was looked for. ``SessionFacts`` is read
once per connection (one round trip), so a failure can be explained even when the failed
transaction or the session itself can no longer be asked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from ..core.errors import AgorDbError, DatabaseError, DatabaseUnavailable, UrlError, one_line
from ..core.urls import DatabaseUrl, redact

WATCHED_SETTINGS = (
    "statement_timeout",
    "idle_in_transaction_session_timeout",
    "default_transaction_read_only",
)
FACTS_SQL = f"""
SELECT current_schema(), current_user, current_database(), pg_is_in_recovery(),
       array_agg(name ORDER BY name), array_agg(current_setting(name) ORDER BY name),
       array_agg(source ORDER BY name)
FROM pg_settings WHERE name IN ({", ".join(f"'{n}'" for n in WATCHED_SETTINGS)})
"""
# statement_timeout and idle_in_transaction_session_timeout do not apply to agor-db's own work: it waits
# for locks and runs migrations for as long as they take (its own limits are --lock-timeout and Ctrl-C).
GUARD_SQL = "SET LOCAL statement_timeout = 0; SET LOCAL idle_in_transaction_session_timeout = 0"
# libpq's own wording for a server that refused a startup setting (options=-c name=value, PGOPTIONS)
_BAD_OPTION = re.compile(
    r"invalid value for parameter|unrecognized configuration parameter|parameter \S+ cannot be (changed|set)",
    re.IGNORECASE,
)
# libpq's own wording for a connection parameter it cannot use (?sslmode=bogus, port=x): waiting or
# retrying cannot fix it, so it is a usage error
_BAD_CLIENT_OPTION = re.compile(
    r"invalid [\w ]+ value|invalid integer value .* for connection option|invalid port number", re.IGNORECASE
)
_HOST_FAILURE = re.compile(r"^- host: '([^']*)', port: '([^']*)'.*failed: (?:FATAL: +)?(.*)$")


@dataclass(frozen=True)
class Setting:
    value: str
    source: str  # pg_settings.source: default, configuration file, database, user, database user, client, ...


@dataclass(frozen=True)
class SessionFacts:
    schema: str | None  # current_schema(): the first schema of search_path that exists
    user: str
    database: str
    in_recovery: bool
    settings: dict[str, Setting]

    @classmethod
    def read(cls, conn: psycopg.Connection[Any]) -> SessionFacts:
        row = conn.execute(FACTS_SQL, prepare=False).fetchone()
        assert row is not None
        schema, user, database, recovery, names, values, sources = row
        settings = {n: Setting(v, s) for n, v, s in zip(names or [], values or [], sources or [], strict=True)}
        return cls(schema, user, database, bool(recovery), settings)

    def active(self, name: str) -> bool:
        value = self.settings.get(name, Setting("0", "default")).value
        return value not in ("0", "off", "")

    def origin(self, name: str) -> str:
        """Where a setting came from, for a message: 'set for role agor', 'in postgresql.conf', ..."""
        source = self.settings.get(name, Setting("", "default")).source
        return {
            "user": f"set for role {self.user} (ALTER ROLE … SET)",
            "database": f"set for database {self.database} (ALTER DATABASE … SET)",
            "database user": f"set for role {self.user} in database {self.database}",
            "client": "set in the connection options (options=-c …, PGOPTIONS)",
            "configuration file": "set in the server's configuration file",
            "session": "set in this session",
        }.get(source, f"from {source}")

    def reset_hint(self, name: str) -> str:
        source = self.settings.get(name, Setting("", "default")).source
        if source == "user":
            return f"ALTER ROLE {self.user} RESET {name}"
        if source == "database":
            return f"ALTER DATABASE {self.database} RESET {name}"
        if source == "database user":
            return f"ALTER ROLE {self.user} IN DATABASE {self.database} RESET {name}"
        if source == "client":
            return f"remove {name} from the connection options"
        return f"lower {name} where it is set"

    def describe(self, name: str) -> str:
        value = self.settings.get(name, Setting("?", "")).value
        return f"{name} = {value}, {self.origin(name)}"


def _one_line(url: DatabaseUrl, exc: BaseException) -> str:
    return redact(one_line(exc), url.secrets)


# -- connecting ---------------------------------------------------------------------------------


def bad_conninfo(url: DatabaseUrl, exc: BaseException) -> UrlError:
    """libpq could not read the URL or keyword string (an unknown keyword, a bad value)."""
    text = _one_line(url, exc)
    hint = None
    m = re.search(r'invalid (?:connection option|URI query parameter):? "([^"]+)"', text)
    if m:
        import difflib

        known = [d.keyword.decode() for d in psycopg.pq.Conninfo.get_defaults()]
        close = difflib.get_close_matches(m.group(1), known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "libpq keywords: " + ", ".join(sorted(known)[:40])
        if url.keywords:
            hint += " (a SQLite file whose name contains '=' needs a directory part: ./name=x.db)"
    return UrlError(f"cannot use the PostgreSQL connection string {url.display}: {text}", hint=hint)


def connect_failed(url: DatabaseUrl, exc: BaseException) -> AgorDbError:
    """A failed login, in one line: which host said what, and what to do about it."""
    raw = str(exc)
    hosts = [m.groups() for m in map(_HOST_FAILURE.match, raw.splitlines()) if m]
    if len(hosts) > 1:
        text = "every host failed: " + "; ".join(f"{h}:{p}: {' '.join(why.split())}" for h, p, why in hosts)
        text = redact(text, url.secrets)
    else:
        text = _one_line(url, exc)
    lowered = text.lower()
    if "definition of service" in lowered or "service file" in lowered:
        return UrlError(
            f"cannot use the connection service of {url.display}: {text}",
            hint="define it in the service file (PGSERVICEFILE, else ~/.pg_service.conf) or fix its name",
        )
    if _BAD_CLIENT_OPTION.search(text) and not _BAD_OPTION.search(text):
        return UrlError(
            f"cannot use the PostgreSQL URL {url.display}: {_after_fatal(text).removeprefix('connection is bad: ')}",
            hint="fix that parameter in the URL or keyword string (or the PG* environment variable that sets it)",
        )
    if _BAD_OPTION.search(text):
        return UrlError(
            f"the server refused a setting in the connection options of {url.display}: {_after_fatal(text)}",
            hint="fix the options=-c name=value part of the URL (or PGOPTIONS); the setting's name or value is wrong",
        )
    hint = "check that the server is running and the host, port and credentials are right"
    # "SASL authentication failed" is PgBouncer's wording for a wrong password
    if "authentication failed" in lowered or "no password supplied" in lowered:
        hint = "the user name or password is wrong"
    elif "does not exist" in lowered and "database" in lowered:
        hint = "create the database first (createdb NAME, or CREATE DATABASE NAME)"
    elif "session is read-only" in lowered or "hot standby mode" in lowered or "is not the primary" in lowered:
        hint = (
            "target_session_attrs asked for a primary but every host is a standby (a failover in progress?); "
            "agor-db wait retries until one is promoted"
        )
    elif "timeout" in lowered:
        hint = "the server did not answer in time; is the host reachable?"
    return DatabaseUnavailable(f"cannot connect to {url.display}: {text}", hint=hint)


def _after_fatal(text: str) -> str:
    return text.rsplit("FATAL:", 1)[-1].strip()


# -- while working ------------------------------------------------------------------------------


def standby(url: DatabaseUrl, doing: str) -> DatabaseUnavailable:
    return DatabaseUnavailable(
        f"{url.display} is a hot standby (read-only replica, pg_is_in_recovery() is true); refused while {doing}",
        hint="migrations must run against the primary; point --database-url at it, or list every host with "
        "target_session_attrs=read-write",
    )


def read_only(url: DatabaseUrl, facts: SessionFacts, doing: str) -> DatabaseError:
    name = "default_transaction_read_only"
    return DatabaseError(
        f"the session is read-only ({facts.describe(name)}); {url.display} refused while {doing}",
        hint=f"migrate as a role that may write, or {facts.reset_hint(name)}",
    )


def session_cause(
    url: DatabaseUrl,
    facts: SessionFacts | None,
    exc: BaseException,
    doing: str,
    *,
    outcome: str = "whatever it had not committed was rolled back; earlier migrations stay applied",
) -> AgorDbError | None:
    """The error for a failure caused by the server's settings or state rather than by SQL; None otherwise.

    ``outcome`` says what became of the work in progress (the caller knows whether it was transactional)."""
    text = _one_line(url, exc)
    if isinstance(exc, pg_errors.QueryCanceled) and "statement timeout" in text and facts is not None:
        name = "statement_timeout"
        return DatabaseError(
            f"the server cancelled agor-db while {doing}: {facts.describe(name)}; {outcome}",
            hint=f"agor-db's own statements are not meant to be cut short: {facts.reset_hint(name)}, "
            "or run agor-db as a role without it",
        )
    if isinstance(exc, pg_errors.IdleInTransactionSessionTimeout) or "idle-in-transaction timeout" in text:
        name = "idle_in_transaction_session_timeout"
        said = facts.describe(name) if facts else name
        return DatabaseError(
            f"the server ended agor-db's session while {doing}: {said}; {outcome}",
            hint=f"{facts.reset_hint(name) if facts else 'raise ' + name}, or run agor-db as a role without it",
        )
    if isinstance(exc, pg_errors.ReadOnlySqlTransaction) and facts is not None:
        return standby(url, doing) if facts.in_recovery else read_only(url, facts, doing)
    if isinstance(exc, pg_errors.InsufficientPrivilege):
        who = f"role {facts.user}" if facts else "this role"
        return DatabaseError(
            f"{who} lacks a privilege needed while {doing}: {text}; {outcome}",
            hint="grant it (the journal needs SELECT and INSERT on agor_migrations and USAGE on "
            "agor_migrations_id_seq, creating it needs CREATE on the schema), or migrate as the schema's owner",
        )
    if isinstance(exc, pg_errors.AdminShutdown | pg_errors.CrashShutdown) or _server_went_away(text):
        return DatabaseUnavailable(
            f"the server ended the session with {url.display} (a shutdown, restart or pg_terminate_backend) "
            f"while {doing}: {text}; "
            f"{outcome}",
            hint="run agor-db migrate again once the server is back",
        )
    return None


def _server_went_away(text: str) -> bool:
    lowered = text.lower()
    return "terminating connection due to administrator command" in lowered or (
        "server closed the connection unexpectedly" in lowered
    )
