"""What `agor-db copy`'s flags mean: the source and target URLs and the bad-data policies, validated."""

from __future__ import annotations

import os
from typing import Any

from ..core.errors import UsageError
from ..core.urls import DatabaseUrl, parse_url
from .convert import Policies


def _choice(flag: str, value: str, allowed: tuple[str, ...]) -> Any:  # one of the Literal values
    if value not in allowed:
        raise UsageError(f"{flag}={value!r}: expected one of {', '.join(allowed)}")
    return value


def policies_from_flags(orphans: str, nul: str, invalid_json: str, invalid_utf8: str, duplicates: str) -> Policies:
    """The policies for rows the target would refuse; an unknown value is a usage error naming the flag."""
    return Policies(
        orphans=_choice("--orphans", orphans, ("fail", "null", "drop")),
        nul=_choice("--nul", nul, ("fail", "strip")),
        invalid_json=_choice("--invalid-json", invalid_json, ("fail", "null", "drop")),
        invalid_utf8=_choice("--invalid-utf8", invalid_utf8, ("fail", "replace")),
        duplicates=_choice("--duplicates", duplicates, ("fail", "drop")),
    )


def source_url(flag: str | None) -> DatabaseUrl:
    """--from, else $AGOR_DB_PATH, else Agor's default file."""
    if flag:
        return parse_url(flag, "--from")
    path = os.environ.get("AGOR_DB_PATH")
    if path:
        return parse_url(path, "AGOR_DB_PATH")
    return parse_url("~/.agor/agor.db", "default")


def target_url(flag: str | None) -> DatabaseUrl:
    """--to, else $AGOR_DATABASE_URL, else $DATABASE_URL; one of them is required."""
    if flag:
        return parse_url(flag, "--to")
    for name in ("AGOR_DATABASE_URL", "DATABASE_URL"):
        value = os.environ.get(name)
        if value:
            return parse_url(value, name)
    raise UsageError("no target database: give --to postgresql://user:pass@host:5432/db (or set AGOR_DATABASE_URL)")
