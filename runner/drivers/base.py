"""The interface every dialect driver implements, and helpers they share."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..core.errors import MigrationFailed
from ..core.models import AppliedMigration, How, Migration, Script
from ..core.sqltext import LEADING_COMMENTS, Statement
from ..core.urls import DatabaseUrl


class Driver(Protocol):
    dialect: str
    url: DatabaseUrl
    warnings: list[str]  # things the last apply() noticed but did not fail on; the core reports and clears them

    def close(self) -> None: ...

    def lock(self, timeout: float) -> None:
        """Take the run lock, waiting at most ``timeout`` seconds; raise LockTimeout naming the holder."""

    def unlock(self) -> None: ...

    def begin_run(self, lock_timeout: float, statement_lock_timeout: float, on_wait: Callable[[str], None]) -> None:
        """Before ``migrate`` creates or reads the journal: take the run lock (SQLite), or remember how
        long to wait for the per-migration one and for table locks (PostgreSQL); ``on_wait`` hears
        about waits while they last."""

    def preflight(self, scripts: list[Script]) -> None:
        """Refuse, before anything runs, scripts this connection cannot run safely."""

    def journal_exists(self) -> bool: ...

    def ensure_journal(self) -> None: ...

    def read_journal(self) -> list[AppliedMigration]: ...

    def apply(self, script: Script, how: How = "applied") -> AppliedMigration | None:
        """Run the script and write its journal row atomically (or, for non-transactional
        scripts, write the row only after every statement succeeded). None: another runner
        applied it meanwhile (PostgreSQL, whose lock is per migration)."""

    def table_names(self) -> list[str]:
        """Tables of the database (excluding internal ones), for adoption and copy checks."""

    # -- the adoption hook: a feature (schema/adopt.py) works on the open connection -----------

    def connection(self) -> Any:
        """The open connection, for a feature that reads the database itself (adoption's introspection
        and backup). Raises for a dialect without adoption."""

    def adopt(
        self, steps: Sequence[Migration], rebuild: Callable[[Any], list[str]]
    ) -> tuple[list[AppliedMigration], list[str]]:
        """In one transaction (foreign keys off): create the journal, run ``rebuild(connection)`` (the
        repairs, returning what it did) and record ``steps`` as adopted. Either all of it happens or none."""


def statement_failed(
    script: Script,
    index: int,
    statement: Statement,
    db_message: str,
    *,
    offset_lines: int = 0,
    transactional: bool = True,
) -> MigrationFailed:
    first_line = statement.sql.strip().splitlines()[0]
    if len(first_line) > 100:
        first_line = first_line[:97] + "..."
    line = statement.line + offset_lines
    total = len(script.statements)
    outcome = (
        "its transaction was rolled back, nothing of it was kept"
        if transactional
        else "it is NOT transactional: statements before this one stay applied and it was not journaled"
    )
    return MigrationFailed(
        f"migration {script.migration.label} failed at statement {index + 1} of {total} "
        f"(line {line}): {first_line}\n"
        f"database said: {db_message.strip()}\n"
        f"{outcome}; earlier migrations stay applied.",
        hint=f"fix {script.migration.path} and run agor-db migrate again",
    )


# BEGIN/COMMIT/END/ROLLBACK/ABORT in a transactional migration would end agor-db's own transaction:
# what follows, and the journal row, would then run outside it (half a migration kept, or kept
# without being journaled). ROLLBACK TO (a savepoint) stays inside the transaction and is allowed.
_TRANSACTION_CONTROL = re.compile(
    r"(?:BEGIN|START\s+TRANSACTION|COMMIT|END|ABORT|ROLLBACK(?!\s+(?:(?:TRANSACTION|WORK)\s+)?TO\b))\b",
    re.IGNORECASE,
)


def controls_transaction(sql: str) -> bool:
    return bool(_TRANSACTION_CONTROL.match(LEADING_COMMENTS.sub("", sql, count=1)))


def transaction_control_refused(script: Script, sql: str) -> MigrationFailed:
    text = LEADING_COMMENTS.sub("", sql, count=1).strip()
    at = script.text.find(text)
    line = script.text.count("\n", 0, at) + 1 if at >= 0 else 0
    return MigrationFailed(
        f"migration {script.migration.label} controls the transaction itself (line {line}): {text.splitlines()[0]}\n"
        "agor-db runs every migration in its own transaction, together with its journal row; "
        "its transaction was rolled back, nothing of it was kept; earlier migrations stay applied.",
        hint=f"remove BEGIN/COMMIT/ROLLBACK from {script.migration.path}, or start it with "
        "'-- transactional: false' if it must manage transactions itself",
    )
