"""Build a migration folder in a scratch database and read back its schema model and snapshot text.

SQLite: a temporary file; PostgreSQL: a database created on the given server and dropped afterwards.
Both use the real runner, so what is read back is exactly what ``migrate`` would build.
"""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import DatabaseError, one_line
from ..core.urls import DatabaseUrl, parse_url, redact

if TYPE_CHECKING:
    from .model import Schema


def sqlite_schema(root: Path, kinds: Any, top: str = "") -> tuple[Schema, str]:
    """Apply sql/sqlite with the real runner to a scratch file; read its schema and snapshot back."""
    import apsw

    from ..core import migrate as core
    from .model import introspect_sqlite
    from .snapshot import render_sqlite

    with tempfile.TemporaryDirectory(prefix="agor-db-check-") as tmp:
        path = Path(tmp) / "check.db"
        core.migrate(parse_url(f"sqlite://{path}", "check"), root, core.RunOptions())
        conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
        try:
            return introspect_sqlite(conn, kinds), render_sqlite(conn, top)
        finally:
            conn.close()


def postgres_schema(server: DatabaseUrl, root: Path, kinds: Any, top: str = "") -> tuple[Schema, str]:
    """Apply sql/postgres to a scratch database created on ``server``, read its schema and snapshot, drop it."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    from ..core import migrate as core
    from ..drivers.postgres import connect
    from .model import introspect_postgres
    from .snapshot import render_postgres

    assert server.conninfo is not None
    name = f"agor_db_check_{uuid.uuid4().hex[:12]}"
    admin = connect(server)
    try:
        try:
            admin.execute(f'CREATE DATABASE "{name}"')
        except psycopg.Error as exc:
            raise DatabaseError(
                f"cannot create a scratch database on {server.display}: "
                f"{redact(one_line(exc), server.secrets)}",
                hint="check needs a role allowed to create databases (CREATEDB) on that server",
            ) from None
        except KeyboardInterrupt:
            _drop(admin, name, server)  # the server may have finished the CREATE before the cancel reached it
            raise
        try:
            conninfo = make_conninfo(server.conninfo, dbname=name)
            scratch = replace(server, raw=conninfo, conninfo=conninfo, source="check")
            core.migrate(scratch, root, core.RunOptions())
            conn = connect(scratch)
            try:
                return introspect_postgres(conn, kinds), render_postgres(conn, top)
            finally:
                conn.close()
        finally:
            _drop(admin, name, server)
    finally:
        admin.close()


def _drop(admin: Any, name: str, server: DatabaseUrl) -> None:
    """Drop the scratch database, also when Ctrl-C or SIGTERM cancelled the first attempt.

    A stop request that lands while the DROP runs cancels it on the server; without a second
    attempt the scratch database would stay behind on the user's server. The second attempt goes
    on a new connection: the interrupted one may still be busy with the cancelled command ("another
    command is already in progress"). The SIGTERM handler ignores further SIGTERMs, so it runs to
    its end.
    """
    from ..drivers.postgres import connect

    drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    try:
        admin.execute(drop)
    except KeyboardInterrupt:
        again = connect(server)
        try:
            again.execute(drop)
        finally:
            again.close()
        raise
