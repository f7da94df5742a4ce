"""Commands: agor-db schema / check (issue 4). Registered on the shared typer app; heavy imports stay inside the command bodies."""

from __future__ import annotations

from .cli import app  # noqa: F401
