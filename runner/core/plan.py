"""The planner: files + journal rows -> what to apply, or why not. Pure: no I/O, no clock.

``migrate``, ``migrate --dry-run`` and ``status`` all call ``make_plan``, so what a dry run shows
is what a real run does.
"""

from __future__ import annotations

from collections.abc import Sequence

from .models import AppliedMigration, Migration, Plan, Problem


def make_plan(
    dialect: str,
    migrations: Sequence[Migration],
    applied: Sequence[AppliedMigration],
    *,
    target: int | None = None,
    allow_out_of_order: bool = False,
) -> Plan:
    files = {m.version: m for m in migrations}
    done = {a.version: a for a in applied}
    problems = [p for row in sorted(applied, key=lambda a: a.version) if (p := _drift(row, files.get(row.version)))]
    pending = tuple(m for m in migrations if m.version not in done)
    newest_applied = max(done, default=None)
    if newest_applied is not None and not allow_out_of_order:
        problems += [_out_of_order(m, newest_applied) for m in pending if m.version < newest_applied]
    if target is not None and target not in files:
        problems.append(Problem("unknown_target", target, _unknown_target(dialect, target, sorted(files))))
    to_apply = tuple(m for m in pending if target is None or m.version <= target)
    return Plan(dialect, tuple(sorted(applied, key=lambda a: a.version)), pending, to_apply, tuple(problems))


def _unknown_target(dialect: str, target: int, versions: list[int]) -> str:
    """Name the version as the user wrote it and say what the folder has: sql/postgres starts at 0010."""
    if not versions:
        have = "none"
    elif len(versions) <= 6:
        have = ", ".join(f"{v:04d}" for v in versions)
    else:
        have = f"{len(versions)} migrations, {versions[0]:04d} to {versions[-1]:04d}"
    return f"--to {target:04d}: the {dialect} folder has no migration with that version (it has {have})"


def _drift(row: AppliedMigration, current: Migration | None) -> Problem | None:
    """What is wrong with an applied migration's file, if anything: gone, renamed or edited."""
    label = f"{row.version:04d}_{row.name}.sql"
    if current is None:
        return Problem("missing", row.version, f"{label} is recorded as {row.how} in the journal but the file is gone")
    if current.name != row.name:
        return Problem(
            "renamed",
            row.version,
            f"version {row.version} was {row.how} as {label!r} but the file is now {current.label!r}",
        )
    if current.checksum != row.checksum:
        return Problem(
            "edited",
            row.version,
            f"{current.label} was changed after it was {row.how}: "
            f"journal checksum {row.checksum[:16]}..., file checksum {current.checksum[:16]}...",
        )
    return None


def _out_of_order(m: Migration, newest_applied: int) -> Problem:
    return Problem(
        "out_of_order",
        m.version,
        f"{m.label} is pending but is older than the newest applied migration "
        f"({newest_applied:04d}); renumber it above {newest_applied:04d}, or run with "
        "--allow-out-of-order if applying it late is safe",
    )
