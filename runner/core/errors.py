"""One exception hierarchy; every message is written for the person at the terminal.

The CLI prints ``str(error)`` (after redaction) and exits with ``error.exit_code``; a traceback is a bug.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1  # a migration failed, the database refused, an I/O error
    USAGE = 2  # bad option, bad URL, malformed migration folder or file
    DRIFT = 3  # the journal and the files disagree (edited, missing, out of order)
    LOCK_TIMEOUT = 4  # another runner held the lock for longer than --lock-timeout
    UNAVAILABLE = 5  # the database could not be reached or refused the login
    PENDING = 6  # `status --exit-code`: migrations are pending
    INTERRUPTED = 130  # Ctrl-C (SIGINT)
    TERMINATED = 143  # SIGTERM: docker stop, Kubernetes, systemd


class AgorDbError(Exception):
    """Base of every error agor-db reports to a user."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\nhint: {self.hint}"


class UsageError(AgorDbError):
    exit_code = ExitCode.USAGE


class UrlError(UsageError):
    pass


class MigrationFileError(UsageError):
    """A migration file or folder is malformed; found before anything is applied."""


class DriftError(AgorDbError):
    exit_code = ExitCode.DRIFT


class LockTimeout(AgorDbError):
    exit_code = ExitCode.LOCK_TIMEOUT


class DatabaseUnavailable(AgorDbError):
    exit_code = ExitCode.UNAVAILABLE


class MigrationFailed(AgorDbError):
    """A migration's SQL failed; its transaction was rolled back."""


class DatabaseError(AgorDbError):
    """The database refused an operation outside a migration (journal, introspection, ...)."""


def one_line(exc: BaseException | str) -> str:
    """A driver's message on one line: libpq's lines ("Connection refused" / "Is the server running on
    that host ...?") joined with "; " instead of running into each other."""
    lines = (" ".join(line.split()) for line in str(exc).splitlines())
    return "; ".join(line for line in lines if line)
