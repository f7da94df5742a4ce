"""One driver per dialect behind the narrow ``Driver`` interface; imported lazily by URL dialect."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..core.urls import DatabaseUrl
    from .base import Driver


def open_driver(
    url: DatabaseUrl, *, readonly: bool = False, busy_timeout: float = 60.0, direct: bool = False
) -> Driver:
    """Connect to the database behind ``url``. psycopg is only imported for PostgreSQL URLs."""
    if url.dialect == "sqlite":
        from .sqlite import SqliteDriver

        return SqliteDriver(url, readonly=readonly, busy_timeout=busy_timeout)
    from .postgres import PostgresDriver

    return PostgresDriver(url, readonly=readonly, direct=direct)
