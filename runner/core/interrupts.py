"""Stop requests: SIGTERM is handled exactly like Ctrl-C (SIGINT), only with exit code 143.

``docker stop``, Kubernetes and systemd send SIGTERM. Without a handler Python dies at once, and as
PID 1 (``--entrypoint agor-db``, a Kubernetes ``command:``, an init container) the kernel does not
even deliver it, so the runner is killed after the grace period, mid-migration. With this handler the
signal raises ``Terminated`` (a KeyboardInterrupt), so every code path that rolls back on Ctrl-C rolls
back on SIGTERM too: psycopg cancels the running query, the SQLite progress handler aborts a long
statement. Stdlib only: it is installed before the fast path, which must stay cheap.
"""

from __future__ import annotations

import signal
from types import FrameType

from .errors import ExitCode


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived; handled wherever KeyboardInterrupt is."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    # Once is enough: a second SIGTERM during the rollback must not interrupt the rollback.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated()


def install() -> None:
    signal.signal(signal.SIGTERM, _raise_terminated)


def exit_code(exc: BaseException) -> ExitCode:
    """130 for Ctrl-C, 143 for SIGTERM."""
    return ExitCode.TERMINATED if isinstance(exc, Terminated) else ExitCode.INTERRUPTED


def describe(exc: BaseException) -> str:
    return "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
