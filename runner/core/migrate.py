"""The dialect-agnostic core: load migrations -> read journal -> plan -> apply.

Data flows one way: URL -> driver -> plan -> apply -> report. The CLI renders; this module
decides. Nothing here imports a database driver directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..drivers import open_driver
from ..drivers.base import Driver
from .errors import DriftError, UsageError
from .models import AppliedMigration, Migration, Plan, Script
from .plan import make_plan
from .source import dialect_dir, list_migrations, parse
from .urls import DatabaseUrl

if TYPE_CHECKING:
    from ..schema.adopt import Assessment

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
    url: DatabaseUrl, root: Path, options: RunOptions, reporter: Reporter | None = None, *, direct: bool = False
) -> RunResult:
    """``direct``: the operator says ``url`` reaches the server without a pooler in between."""
    report = reporter or Reporter()
    migrations = load(url, root)
    driver = open_driver(url, busy_timeout=options.lock_timeout, direct=direct)
    try:
        # before the journal is created or read
        driver.begin_run(options.lock_timeout, options.statement_lock_timeout, report.waiting)
        adopted: list[AppliedMigration] = []
        assessment = _assess_legacy(driver, migrations, root, options)
        if assessment is not None:
            report.assessed(assessment)
            adopted = _adopt(url, driver, assessment, options, report)
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


def _assess_legacy(driver: Driver, migrations: list[Migration], root: Path, options: RunOptions) -> Assessment | None:
    """A SQLite database with tables but no journal was made by someone else: find out what it has."""
    if driver.dialect != "sqlite" or driver.journal_exists() or not driver.table_names():
        return None
    from ..schema.adopt import assess  # the one upward import left: see docs/architecture.md

    return assess(driver.connection(), migrations, root, adopt_as=options.adopt_as)


def _adopt(
    url: DatabaseUrl, driver: Driver, assessment: Assessment, options: RunOptions, report: Reporter
) -> list[AppliedMigration]:
    from ..schema.adopt import backup, perform

    if options.backup:
        assert url.path is not None  # only SQLite files are assessed for adoption
        report.backed_up(backup(url.path, driver.connection()))
    repair = options.repair and bool(assessment.repair)
    if assessment.repair and not options.repair:
        report.warn(
            f"--no-repair: {', '.join(assessment.repair)} keep their non-canonical form; later migrations "
            "that rebuild them will fix it, others may behave differently than on a canonical database"
        )
    rows, repairs = driver.adopt(assessment.adopt, lambda conn: perform(conn, assessment, repair=repair))
    report.adopted(rows, repairs)
    return rows


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


def inspect(url: DatabaseUrl, root: Path, options: RunOptions) -> Inspection:
    """The plan as it stands, read without taking the lock or writing anything (status, dry run).

    For a legacy database the plan shows the steps adoption would record as already applied."""
    migrations = load(url, root)
    driver = open_driver(url, readonly=True, busy_timeout=options.lock_timeout)
    try:
        assessment = _assess_legacy(driver, migrations, root, options)
        if assessment is None:
            return Inspection(_plan(driver, migrations, options), migrations, notes=tuple(driver.warnings))
        adopted = [AppliedMigration(0, m.version, m.name, m.checksum, 0, 0, "adopted") for m in assessment.adopt]
        plan = make_plan(
            driver.dialect,
            migrations,
            adopted,
            target=options.target,
            allow_out_of_order=options.allow_out_of_order,
        )
        return Inspection(plan, migrations, assessment)
    finally:
        driver.close()
