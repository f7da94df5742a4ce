"""The dialect-agnostic core: load migrations -> read journal -> plan -> apply.

Data flows one way: URL -> driver -> plan -> apply -> report. The CLI renders; this module
decides. Nothing here imports a database driver directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .drivers import open_driver
from .drivers.base import Driver
from .errors import DriftError, UsageError
from .models import AppliedMigration, Migration, Plan, Script
from .plan import make_plan
from .source import dialect_dir, list_migrations, parse
from .urls import DatabaseUrl

DEFAULT_LOCK_TIMEOUT = 60.0


@dataclass(frozen=True)
class RunOptions:
    target: int | None = None
    allow_out_of_order: bool = False
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT


class Reporter:
    """What the core tells the outside world while it works; the CLI overrides these."""

    def planned(self, plan: Plan) -> None:
        pass

    def applying(self, script: Script) -> None:
        pass

    def applied(self, script: Script, row: AppliedMigration) -> None:
        pass


@dataclass(frozen=True)
class RunResult:
    plan: Plan
    applied: tuple[AppliedMigration, ...]


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


def migrate(url: DatabaseUrl, root: Path, options: RunOptions, reporter: Reporter | None = None) -> RunResult:
    report = reporter or Reporter()
    migrations = load(url, root)
    driver = open_driver(url, busy_timeout=options.lock_timeout)
    try:
        driver.lock(options.lock_timeout)  # before the journal is created or read
        driver.ensure_journal()
        plan = _plan(driver, migrations, options)
        raise_for_problems(plan)
        scripts = parse_pending(migrations, plan)
        report.planned(plan)
        done: list[AppliedMigration] = []
        for script in scripts:
            report.applying(script)
            row = driver.apply(script)
            done.append(row)
            report.applied(script, row)
        return RunResult(plan, tuple(done))
    finally:
        driver.close()


def _plan(driver: Driver, migrations: list[Migration], options: RunOptions) -> Plan:
    return make_plan(
        driver.dialect,
        migrations,
        driver.read_journal(),
        target=options.target,
        allow_out_of_order=options.allow_out_of_order,
    )


def inspect(url: DatabaseUrl, root: Path, options: RunOptions) -> tuple[Plan, list[Migration]]:
    """The plan as it stands, read without taking the lock or writing anything (status, dry run)."""
    migrations = load(url, root)
    driver = open_driver(url, readonly=True, busy_timeout=options.lock_timeout)
    try:
        return _plan(driver, migrations, options), migrations
    finally:
        driver.close()
