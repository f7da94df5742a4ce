"""Commands registered on the shared typer app (see the module name); heavy imports stay in the command bodies."""

from __future__ import annotations

from .cli import app  # noqa: F401
