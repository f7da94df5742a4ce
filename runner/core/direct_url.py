"""The URL `migrate` uses when the application's URL goes through a pooler (like Prisma's directUrl)."""

from __future__ import annotations

import os

from .errors import UsageError
from .urls import DatabaseUrl, parse_url

DIRECT_URL_ENV = "AGOR_MIGRATION_DATABASE_URL"


def resolve_direct_url(flag: str | None, environ: dict[str, str] | None = None) -> DatabaseUrl | None:
    """--direct-url, else AGOR_MIGRATION_DATABASE_URL, else None (use the ordinary database URL)."""
    env = os.environ if environ is None else environ
    if flag is not None:
        url = parse_url(flag, "--direct-url")
    elif env.get(DIRECT_URL_ENV):
        url = parse_url(env[DIRECT_URL_ENV], DIRECT_URL_ENV)
    else:
        return None
    if url.dialect != "postgres":
        raise UsageError(
            f"{url.source} must be a PostgreSQL URL (a direct connection to the server, bypassing a pooler); "
            f"got {url.display}"
        )
    return url
