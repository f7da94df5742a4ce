"""Records that flow through the runner: files on disk, journal rows, parsed scripts, plans."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

from .sqltext import Statement, split_statements

How = Literal["applied", "adopted"]


# The journal table agor-db keeps in every database it migrates (one row per applied migration).
JOURNAL_TABLE = "agor_migrations"


@dataclass(frozen=True)
class Migration:
    """One ``NNNN_name.sql`` file in a dialect folder, known by name and checksum only.

    Reading the directives and statements is deferred (see ``source.parse``) so that a run with
    nothing to do never parses SQL.
    """

    version: int
    name: str
    path: Path
    checksum: str

    @property
    def id(self) -> str:
        """The file stem, e.g. ``0003_tough_iron_lad``: what ``-- depends:`` refers to."""
        return self.path.stem

    @property
    def label(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class Script:
    """A migration parsed with yoyo's SQL format: its directives and its SQL text.

    ``statements`` (the text split into statements with their lines, by sqlparse as yoyo does) is
    computed on first use: SQLite runs a whole file in one call and only splits it to explain a failure.
    """

    migration: Migration
    text: str  # the file without BOM, with LF line ends
    transactional: bool = True
    depends: tuple[str, ...] = ()

    @cached_property
    def statements(self) -> tuple[Statement, ...]:
        return split_statements(self.text)


@dataclass(frozen=True)
class AppliedMigration:
    """A row of the ``agor_migrations`` journal."""

    id: int
    version: int
    name: str
    checksum: str
    applied_at: int  # epoch ms
    duration_ms: int
    how: How = "applied"


@dataclass(frozen=True)
class Problem:
    """A reason the plan cannot be carried out (drift found by the planner)."""

    kind: Literal["edited", "missing", "renamed", "out_of_order", "unknown_target"]
    version: int
    message: str


@dataclass(frozen=True)
class Plan:
    """What a run would do: the ordered migrations to apply, or the problems that forbid it."""

    dialect: str
    applied: tuple[AppliedMigration, ...]
    pending: tuple[Migration, ...]  # every file not in the journal, in version order
    to_apply: tuple[Migration, ...]  # the pending files this run applies (respects --to)
    problems: tuple[Problem, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems
