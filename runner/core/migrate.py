"""The dialect-agnostic core: load migrations -> read journal -> plan -> apply.

Data flows one way: URL -> driver -> plan -> apply -> report. The CLI renders; this module
decides. Nothing here imports a database driver directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..drivers import open_driver
from ..drivers.base import Driver
from .errors import DriftError, UsageError
from .models import AppliedMigration, Migration, Plan, Script
from .plan import make_plan
from .source import dialect_dir, list_migrations, parse
from .urls import DatabaseUrl

DEFAULT_LOCK_TIMEOUT = 60.0
DEFAULT_STATEMENT_LOCK_TIMEOUT = 3.0  # PostgreSQL: how long one statement may wait for a table lock


@dataclass(frozen=True)
class RunOptions:
    target: int | None = None
    allow_out_of_order: bool = False
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    adopt_as: int | None = None  # operator's decision for a legacy database matching no step
    repair: bool = True  # rebuild cosmetically different legacy tables into canonical form
    backup: bool = True  # copy a legacy SQLite file before the first write to it
    statement_lock_timeout: float = DEFAULT_STATEMENT_LOCK_TIMEOUT


class Assessment(Protocol):
    """What an adopter found in a database with tables but no journal (schema/adopt.py's Assessment)."""

    @property
    def adopt(self) -> Sequence[Migration]: ...  # the steps to record as applied

    def describe(self) -> list[str]: ...

    def to_json(self) -> dict[str, Any]: ...


class Adopter(Protocol):
    """Takes over a SQLite database another migrator made (drizzle: schema/adopt.py). The caller passes
    one in, so that the core never imports a feature; without one such a database is refused."""

    def assess(self, driver: Driver, migrations: list[Migration], root: Path, options: RunOptions) -> Assessment: ...

    def adopt(
        self, url: DatabaseUrl, driver: Driver, assessment: Assessment, options: RunOptions, report: Reporter
    ) -> list[AppliedMigration]: ...


class Reporter:
    """What the core tells the outside world while it works; the CLI overrides these."""

    def planned(self, plan: Plan) -> None:
        pass

    def applying(self, script: Script) -> None:
        pass

    def applied(self, script: Script, row: AppliedMigration) -> None:
        pass

    def assessed(self, assessment: Assessment) -> None:
        pass

    def backed_up(self, path: Path) -> None:
        pass

    def adopted(self, rows: list[AppliedMigration], repairs: list[str]) -> None:
        pass

    def warn(self, message: str) -> None:
        pass

    def waiting(self, message: str) -> None:
        """A migration is waiting (for locks other sessions hold); said while it waits."""


@dataclass(frozen=True)
class RunResult:
    plan: Plan
    applied: tuple[AppliedMigration, ...]
    adopted: tuple[AppliedMigration, ...] = ()
    by_others: tuple[int, ...] = ()  # versions another runner applied while this one waited


def load(url: DatabaseUrl, root: Path) -> list[Migration]:
    return list_migrations(dialect_dir(root, url.dialect))


def raise_for_problems(plan: Plan) -> None:
    if plan.ok:
        return
    unknown = [p for p in plan.problems if p.kind == "unknown_target"]
    if unknown:
        raise UsageError(unknown[0].message)
    lines = "\n".join(f"  - {p.message}" for p in plan.problems)
    raise DriftError(
        f"the journal and the {plan.dialect} migration files disagree; nothing was applied:\n{lines}",
        hint="never edit, rename or delete an applied migration; restore it (git checkout) "
        "and put the change in a new migration (agor-db new NAME)",
    )


def parse_pending(migrations: list[Migration], plan: Plan) -> list[Script]:
    """Read and validate every file this run will apply before the first one runs."""
    known = {m.id for m in migrations}
    order = {m.id: m.version for m in migrations}
    scripts = [parse(m, known) for m in plan.to_apply]
    for s in scripts:
        for dep in s.depends:
            if order[dep] >= s.migration.version:
                raise UsageError(
                    f"{s.migration.label} depends on {dep}, which does not come before it",
                    hint="'-- depends:' may only name earlier migrations",
                )
    return scripts


def migrate(
    url: DatabaseUrl,
    root: Path,
    options: RunOptions,
    reporter: Reporter | None = None,
    *,
    direct: bool = False,
    adopter: Adopter | None = None,
) -> RunResult:
    """``direct``: the operator says ``url`` reaches the server without a pooler in between.
    ``adopter``: what takes over a journal-less SQLite database with tables (refused without one)."""
    report = reporter or Reporter()
    migrations = load(url, root)
    driver = open_driver(url, busy_timeout=options.lock_timeout, direct=direct)
    try:
        # before the journal is created or read
        driver.begin_run(options.lock_timeout, options.statement_lock_timeout, report.waiting)
        adopted: list[AppliedMigration] = []
        if is_legacy(driver):
            if adopter is None:
                raise _not_adoptable(url)
            assessment = adopter.assess(driver, migrations, root, options)
            report.assessed(assessment)
            adopted = adopter.adopt(url, driver, assessment, options, report)
        plan = _plan(driver, migrations, options)
        raise_for_problems(plan)
        scripts = parse_pending(migrations, plan)
        driver.preflight(scripts)  # may refuse: before the journal is created
        driver.ensure_journal()
        report.planned(plan)
        done: list[AppliedMigration] = []
        others: list[int] = []
        for script in scripts:
            report.applying(script)
            row = driver.apply(script)
            for warning in driver.warnings:
                report.warn(warning)
            driver.warnings.clear()
            if row is None:
                others.append(script.migration.version)
                continue
            done.append(row)
            report.applied(script, row)
        return RunResult(plan, tuple(done), tuple(adopted), tuple(others))
    finally:
        driver.close()


def is_legacy(driver: Driver) -> bool:
    """A SQLite database with tables but no journal: someone else made it (Agor's drizzle migrator)."""
    return driver.dialect == "sqlite" and not driver.journal_exists() and bool(driver.table_names())


def _not_adoptable(url: DatabaseUrl) -> DriftError:
    return DriftError(
        f"{url.display} has tables but no agor-db journal, and this command does not adopt databases",
        hint="run `agor-db migrate` on it: it adopts a drizzle-era Agor database (after a backup copy)",
    )


def _plan(driver: Driver, migrations: list[Migration], options: RunOptions) -> Plan:
    return make_plan(
        driver.dialect,
        migrations,
        driver.read_journal(),
        target=options.target,
        allow_out_of_order=options.allow_out_of_order,
    )


@dataclass(frozen=True)
class Inspection:
    plan: Plan
    migrations: list[Migration]
    assessment: Assessment | None = None
    notes: tuple[str, ...] = ()  # what the driver noticed about the database (e.g. a hot standby)
    legacy: bool = False  # tables but no journal (assessed only when an adopter was given)


def inspect(url: DatabaseUrl, root: Path, options: RunOptions, adopter: Adopter | None = None) -> Inspection:
    """The plan as it stands, read without taking the lock or writing anything (status, dry run).

    For a legacy database the plan shows the steps adoption would record as already applied (with an
    adopter; without one, ``legacy`` says so and the plan is the empty journal's)."""
    migrations = load(url, root)
    driver = open_driver(url, readonly=True, busy_timeout=options.lock_timeout)
    try:
        legacy = is_legacy(driver)
        if not legacy or adopter is None:
            plan = _plan(driver, migrations, options)
            return Inspection(plan, migrations, notes=tuple(driver.warnings), legacy=legacy)
        assessment = adopter.assess(driver, migrations, root, options)
        adopted = [AppliedMigration(0, m.version, m.name, m.checksum, 0, 0, "adopted") for m in assessment.adopt]
        plan = make_plan(
            driver.dialect,
            migrations,
            adopted,
            target=options.target,
            allow_out_of_order=options.allow_out_of_order,
        )
        return Inspection(plan, migrations, assessment, legacy=True)
    finally:
        driver.close()
