"""The core's Adopter for Agor's drizzle-era SQLite databases, handed to core.migrate by the CLI.

A module of its own so that passing it costs nothing: schema/adopt.py (introspection, the archived
steps' schemas) is imported only when a database actually has tables and no journal."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..core.migrate import Reporter, RunOptions
    from ..core.models import AppliedMigration, Migration
    from ..core.urls import DatabaseUrl
    from ..drivers.base import Driver
    from .adopt import Assessment


class DrizzleAdopter:
    def assess(self, driver: Driver, migrations: list[Migration], root: Path, options: RunOptions) -> Assessment:
        from .adopt import assess

        return assess(driver.connection(), migrations, root, adopt_as=options.adopt_as)

    def adopt(
        self, url: DatabaseUrl, driver: Driver, assessment: Any, options: RunOptions, report: Reporter
    ) -> list[AppliedMigration]:
        from .adopt import Assessment, backup, perform

        assert isinstance(assessment, Assessment)  # the one this adopter's assess() returned
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


ADOPTER = DrizzleAdopter()
