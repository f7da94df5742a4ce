"""Command: agor-db copy (issue 6), registered on the shared typer app; heavy imports stay in the body."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from ..core.urls import redact
from .app import EXIT_CODES, LockTimeoutOpt, Session, SqlDirOpt, app, run


@app.command(epilog=EXIT_CODES)
def copy(
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="The SQLite database to read. Default: $AGOR_DB_PATH, else ~/.agor/agor.db.",
            show_default=False,
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="The PostgreSQL database to fill. Default: $AGOR_DATABASE_URL, $DATABASE_URL.",
            show_default=False,
        ),
    ] = None,
    check: Annotated[bool, typer.Option("--check", help="Only scan the source and report; write nothing.")] = False,
    truncate: Annotated[
        bool, typer.Option("--truncate", help="Empty the target's tables first (inside the copy's transaction).")
    ] = False,
    orphans: Annotated[
        str, typer.Option("--orphans", help="Foreign keys without a parent row: fail, null (set NULL) or drop the row.")
    ] = "fail",
    nul: Annotated[str, typer.Option("--nul", help="NUL characters in text and JSON: fail or strip.")] = "fail",
    invalid_json: Annotated[
        str, typer.Option("--invalid-json", help="JSON that does not parse: fail, null or drop the row.")
    ] = "fail",
    invalid_utf8: Annotated[
        str, typer.Option("--invalid-utf8", help="Text that is not UTF-8: fail or replace (with U+FFFD).")
    ] = "fail",
    duplicates: Annotated[
        str,
        typer.Option("--duplicates", help="Rows repeating a key PostgreSQL enforces: fail or drop (keep the newest)."),
    ] = "fail",
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Processes that read, test and hash large tables beside the main one (1: none). "
            "Default: $AGOR_DB_COPY_WORKERS, else the number of cores.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a machine-readable summary on stdout.")] = False,
    sql_dir: SqlDirOpt = None,
    lock_timeout: LockTimeoutOpt = 60.0,
) -> None:
    """Copy an Agor SQLite database into PostgreSQL: type-exact, verified, all or nothing.

    The target is first migrated to the newest version; the copy then runs in ONE transaction and
    checks row counts and checksums before it commits. Bad data is reported in full before anything
    is kept; the policy options change it instead, and every changed row is listed.

    \b
    Examples:
      agor-db copy --to postgresql://agor:pw@localhost:5432/agor       # ~/.agor/agor.db -> PostgreSQL
      agor-db copy --from ./agor.db --to $DATABASE_URL --check          # scan only
      agor-db copy --to $DATABASE_URL --orphans=null --nul=strip        # repair while copying
    """

    def body(s: Session) -> int:
        from ..copy.options import policies_from_flags, source_url, target_url
        from ..copy.run import CopyOptions, copy_outcome
        from ..core.source import sql_root
        from .progress import CopyProgress

        policies = policies_from_flags(orphans, nul, invalid_json, invalid_utf8, duplicates)
        src = source_url(source)
        dst = target_url(target)
        s.out.add_secrets(src.secrets + dst.secrets)
        progress = CopyProgress(s, quiet=as_json)
        options = CopyOptions(
            check=check, truncate=truncate, policies=policies, lock_timeout=lock_timeout, workers=workers
        )
        try:
            result, error = copy_outcome(src, dst, sql_root(sql_dir), options, progress)
        finally:
            progress.stop()
        if as_json:
            _print_json(s, result, error)
        if error is not None:
            raise error
        return _render(s, result, as_json)

    run(body)


def _print_json(s: Session, result: Any, error: Any) -> None:
    report = result.report
    doc = {
        "source": result.source,
        "target": result.target,
        "check": result.check_only,
        "ok": report.ok and error is None,
        "error": None
        if error is None
        else {"message": error.message, "hint": error.hint, "exit_code": int(error.exit_code)},
        "already_copied": result.already,
        "seconds": round(result.seconds, 3),
        "phases": {k: round(v, 3) for k, v in result.phases.items()},
        "passes_redone": result.passes_redone,  # after PostgreSQL refused a JSON text the workers sent unchecked
        "source_checksum": result.source_checksum or None,  # none yet when it stopped before reading the source
        "tables": [
            {
                "name": t.name,
                "source_rows": t.source_rows,
                "copied_rows": t.copied_rows,
                "dropped_rows": t.dropped_rows,
                "worker_rows": t.worker_rows,
                "seconds": round(t.seconds, 3),
                "checksum": t.source_digest.as_dict() if t.source_digest else None,
                "verified": t.target_digest is not None and t.target_digest == t.source_digest,
            }
            for t in result.tables
        ],
        **report.as_dict(),
    }
    print(redact(json.dumps(doc, indent=2, default=str), s.out.secrets))


def _render(s: Session, result: Any, as_json: bool) -> int:
    report = result.report
    if as_json:
        return 0 if report.ok else 1
    if result.already is not None:
        a = result.already
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(a["finished_at"] / 1000))
        total = sum(a["rows"].values())
        s.out.line(
            f"nothing to do: {result.target} already holds the copy of {a['source']} made at {when} "
            f"({total} rows, checksum {a['source_checksum'][:16]}); use --truncate to copy again"
        )
        return 0
    for line in report.change_lines():
        s.out.line(line)
    if result.check_only:
        if report.ok:
            rows = sum(t.source_rows for t in result.tables)
            s.out.line(
                f"check passed: {rows} rows in {len(result.tables)} tables can be copied"
                + (f"; the policies would change {report.change_count} row(s)" if report.change_count else "")
            )
            return 0
        err = report.error()
        s.out.error(str(err))
        return int(err.exit_code)
    rows = [
        [
            t.name,
            str(t.source_rows),
            str(t.copied_rows),
            str(t.dropped_rows),
            f"{t.seconds:.2f}",
            f"{t.copied_rows / t.seconds:,.0f}" if t.seconds > 0 else "-",
            "ok" if t.target_digest == t.source_digest else "-",
        ]
        for t in result.tables
    ]
    s.out.table("copied", ["table", "source rows", "copied", "dropped", "seconds", "rows/s", "verified"], rows)
    s.out.line(
        f"copied {result.rows} rows from {result.source} to {result.target} in {result.seconds:.1f} s; "
        f"row counts and checksums verified; source checksum {result.source_checksum[:16]}"
    )
    return 0
