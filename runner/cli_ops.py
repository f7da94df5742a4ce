"""Commands: agor-db wait and other operational commands (issue 7). Registered on the shared typer app; heavy imports stay inside the command bodies."""

from __future__ import annotations

from .cli import app  # noqa: F401
