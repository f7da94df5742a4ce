"""`agor-db check`: the two migration folders build the same schema (issue 4).

Lints the folders (names, pairing after the baseline, the pinned archive, SQL of the wrong dialect,
the safety lint of every pair), applies each folder to a scratch database with the real runner, and
compares the results under the type map minus the reviewed differences (model.py). Also reads a live
database's model for `agor-db schema`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import AgorDbError, DatabaseError, DatabaseUnavailable, ExitCode, UsageError
from ..core.source import FILE_NAME, checksum
from ..core.sqltext import blank_comments_and_strings
from ..core.urls import DatabaseUrl
from .scratch import postgres_schema, sqlite_schema

if TYPE_CHECKING:
    from .model import Schema

ARCHIVE_FILE = "sqlite-archive.json"
BASELINE = 10  # sql/postgres starts here; from here on version V is the same schema in both folders
DIALECTS = ("sqlite", "postgres")

# (pattern, message) per dialect; matched against the SQL with comments and string literals blanked.
DIALECT_RULES: dict[str, list[tuple[re.Pattern[str], str]]] = {
    "postgres": [
        (re.compile(r"`"), 'backtick quoting is SQLite/MySQL syntax; PostgreSQL quotes identifiers with "'),
        (re.compile(r"\bPRAGMA\b", re.I), "PRAGMA is SQLite-only"),
        (re.compile(r"\bAUTOINCREMENT\b", re.I), "AUTOINCREMENT is SQLite-only; use GENERATED ... AS IDENTITY"),
    ],
    "sqlite": [
        (
            re.compile(r"\b(SMALL|BIG)?SERIAL\b", re.I),
            "SERIAL is PostgreSQL-only; in SQLite it is no rowid alias and stays NULL",
        ),
        (re.compile(r"\bJSONB\b", re.I), "JSONB is PostgreSQL-only; SQLite keeps JSON as text"),
        (re.compile(r"::"), "'::' casts are PostgreSQL-only; use CAST(x AS type)"),
    ],
}


@dataclass(frozen=True)
class FolderFile:
    dialect: str
    path: Path
    version: int | None  # None: the name is malformed
    name: str

    @property
    def label(self) -> str:
        return f"{self.dialect}/{self.path.name}"


# -- linting -------------------------------------------------------------------------------------


def scan_folder(root: Path, dialect: str) -> tuple[list[FolderFile], list[str]]:
    """The folder's migration files and the problems that stop it from being applied at all."""
    folder = root / dialect
    if not folder.is_dir():
        return [], [f"{dialect}/: the folder is missing from {root}"]
    files: list[FolderFile] = []
    problems: list[str] = []
    by_version: dict[int, list[str]] = {}
    for path in sorted(folder.iterdir()):
        name = path.name
        if not name.endswith(".sql") or name.endswith(".rollback.sql") or name.startswith("."):
            continue
        m = FILE_NAME.match(name)
        if not m:
            problems.append(f"{dialect}/{name}: malformed file name; migrations are named NNNN_name.sql")
            files.append(FolderFile(dialect, path, None, name))
            continue
        digits = m.group("version")
        if len(digits) != 4:
            problems.append(f"{dialect}/{name}: malformed version {digits!r}; versions have four digits (e.g. 0011)")
        version = int(digits)
        by_version.setdefault(version, []).append(name)
        files.append(FolderFile(dialect, path, version, m.group("name")))
    for version, names in sorted(by_version.items()):
        if len(names) > 1:
            problems.append(f"{dialect}/: version {version:04d} is used by {len(names)} files: {', '.join(names)}")
    return files, problems


def lint_pairing(sqlite: list[FolderFile], postgres: list[FolderFile]) -> list[str]:
    out: list[str] = []
    lite = {f.version: f for f in sqlite if f.version is not None and f.version > BASELINE}
    pg = {f.version: f for f in postgres if f.version is not None and f.version > BASELINE}
    for version in sorted(set(lite) | set(pg)):
        a, b = lite.get(version), pg.get(version)
        if a is None or b is None:
            have, lack = (a, "postgres") if a else (b, "sqlite")
            assert have is not None
            out.append(
                f"{have.label}: unpaired; {lack}/{have.path.name} is missing "
                f"(every migration after {BASELINE:04d} is a pair; agor-db new NAME makes both)"
            )
        elif a.path.name != b.path.name:
            out.append(f"{a.label}: paired with {b.label}; a pair has one name in both folders")
    baseline = [f for f in postgres if f.version == BASELINE]
    if not baseline:
        out.append(f"postgres/: the baseline {BASELINE:04d} is missing (the PostgreSQL history starts with it)")
    for f in postgres:
        if f.version is not None and f.version < BASELINE:
            out.append(f"{f.label}: comes before the baseline {BASELINE:04d}; the PostgreSQL history starts there")
    return out


def lint_archive(root: Path, sqlite: list[FolderFile]) -> list[str]:
    path = root / ARCHIVE_FILE
    if not path.is_file():
        return [f"{ARCHIVE_FILE} is missing from {root}: the archived SQLite files cannot be verified"]
    try:
        pins: dict[str, str] = json.loads(path.read_text())["files"]
    except (ValueError, KeyError, TypeError) as exc:
        return [f"{ARCHIVE_FILE}: unreadable ({exc})"]
    out: list[str] = []
    present = {f.path.name: f for f in sqlite}
    for name, pinned in sorted(pins.items()):
        f = present.get(name)
        if f is None:
            out.append(f"sqlite/{name}: archived file is missing")
            continue
        actual = checksum(f.path.read_bytes())
        if actual != pinned:
            out.append(
                f"sqlite/{name}: archived file was edited (sha256 {actual[:12]}..., pinned {pinned[:12]}...); "
                "restore it and put the change in a new migration pair"
            )
    for f in sqlite:
        if f.version is not None and f.version <= BASELINE and f.path.name not in pins:
            out.append(
                f"{f.label}: version {f.version:04d} lies in the archived history (up to {BASELINE:04d}) "
                f"but is not pinned in {ARCHIVE_FILE}"
            )
    return out


def lint_dialect(files: list[FolderFile]) -> list[str]:
    out: list[str] = []
    for f in files:
        try:
            text = f.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            out.append(f"{f.label}: unreadable ({exc})")
            continue
        code = blank_comments_and_strings(text)
        for lineno, line in enumerate(code.splitlines(), 1):
            for pattern, message in DIALECT_RULES[f.dialect]:
                if pattern.search(line):
                    out.append(f"{f.label}:{lineno}: {message}")
    return out


# -- building and comparing ----------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    problems: list[str]
    summary: str
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    invalid: bool = False  # a file the parser cannot read, or a bad suppression: exit 2

    @property
    def exit_code(self) -> int:
        if self.invalid:
            return int(ExitCode.USAGE)
        return int(ExitCode.FAILURE) if self.problems else 0


def top_name(files: list[FolderFile]) -> str:
    named = [f for f in files if f.version is not None]
    return max(named, key=lambda f: f.version or 0).path.stem if named else ""


@dataclass(frozen=True)
class LintLines:
    problems: list[str]
    warnings: list[str]
    notes: list[str]  # the squawk part skipped: said, never "clean"
    invalid: bool


def _lint(root: Path, folders: dict[str, list[FolderFile]], blocked: set[str]) -> LintLines:
    """The safety lint of every pair after the baseline (runner/schema/lint.py), as check's lines."""
    from .lint import INVALID, WARNING, lint_pairs

    report = lint_pairs(
        root,
        [(f.label, f.path) for f in folders["postgres"] if "postgres" not in blocked and (f.version or 0) > BASELINE],
        [] if "sqlite" in blocked else [(f.version or 0, f.label, f.path) for f in folders["sqlite"]],
        BASELINE,
    )
    skipped = [f"lint: SKIPPED the squawk lint of postgres/ ({report.skipped}); its rules were not checked"]
    return LintLines(
        [f.text for f in report.findings if f.severity != WARNING],
        [f.text for f in report.findings if f.severity == WARNING],
        skipped if report.skipped and report.files else [],
        any(f.severity == INVALID for f in report.findings),
    )


def _build_both(
    root: Path,
    server: DatabaseUrl,
    kinds: dict[str, dict[str, str]],
    folders: dict[str, list[FolderFile]],
    blocked: set[str],
) -> tuple[dict[str, Schema], dict[str, str], list[str]]:
    """Each folder applied to a scratch database: its schema, its snapshot text, what failed."""
    problems: list[str] = []
    schemas: dict[str, Schema] = {}
    built: dict[str, str] = {}
    tops = {d: top_name(folders[d]) for d in DIALECTS}
    builders: dict[str, Callable[[], tuple[Schema, str]]] = {
        "sqlite": lambda: sqlite_schema(root, kinds, tops["sqlite"]),
        "postgres": lambda: postgres_schema(server, root, kinds, tops["postgres"]),
    }
    for dialect in DIALECTS:
        if dialect in blocked:
            problems.append(f"{dialect}/: not applied because of the problems above")
            continue
        try:
            schemas[dialect], built[dialect] = builders[dialect]()
        except (DatabaseUnavailable, DatabaseError):
            raise  # the server, not the migrations: report it as such (exit 5 / 1 with its hint)
        except AgorDbError as exc:
            # one line: where it failed and what the database said (the rollback note adds nothing here)
            said = "; ".join(exc.message.strip().splitlines()[:2])
            problems.append(f"{dialect}/: applying the migrations failed: {said}")
    return schemas, built, problems


def run_check(root: Path, server: DatabaseUrl, *, write: bool = False) -> CheckResult:
    from .model import TYPE_MAP, diff, load_differences, load_kinds
    from .snapshot import reconcile

    problems: list[str] = []
    folders: dict[str, list[FolderFile]] = {}
    blocked: set[str] = set()
    for dialect in DIALECTS:
        files, structural = scan_folder(root, dialect)
        folders[dialect] = files
        problems += structural
        if structural:
            blocked.add(dialect)
    problems += lint_pairing(folders["sqlite"], folders["postgres"])
    problems += lint_archive(root, folders["sqlite"])
    problems += lint_dialect(folders["sqlite"] + folders["postgres"])
    lint = _lint(root, folders, blocked)
    problems += lint.problems
    notes = list(lint.notes)

    kinds = load_kinds(root)
    differences = load_differences(root)
    schemas, built, failures = _build_both(root, server, kinds, folders, blocked)
    problems += failures
    if len(schemas) == 2:
        problems += diff(schemas["sqlite"], schemas["postgres"], TYPE_MAP, differences)
    stale, written = reconcile(root, built, write_files=write)
    problems += stale
    notes += written

    def describe(dialect: str) -> str:
        versions = [f.version for f in folders[dialect] if f.version is not None]
        top = f"up to {max(versions):04d}" if versions else "empty"
        return f"{dialect}/ ({len(versions)} file{'' if len(versions) == 1 else 's'}, {top})"

    if problems:
        summary = f"check: {len(problems)} problem(s) in {root}"
    else:
        verdict = "no problems, but NOT clean: the squawk lint was skipped" if lint.notes else "clean"
        summary = (
            f"check: {verdict}; {describe('sqlite')} and {describe('postgres')} build the same schema "
            f"under the type map ({len(differences)} reviewed differences in {root / 'differences.toml'})"
        )
    return CheckResult(problems, summary, lint.warnings, notes, lint.invalid)


def check(server: DatabaseUrl, sql_dir: str | None, *, write: bool = False) -> CheckResult:
    """`agor-db check`: the server must be PostgreSQL (the scratch database is built there)."""
    from ..core.source import sql_root

    if server.dialect != "postgres":
        raise UsageError(
            f"check needs a PostgreSQL server to build the scratch database on, got {server.display}",
            hint="pass --database-url postgresql://USER:PASSWORD@HOST:5432/postgres (or set AGOR_DATABASE_URL)",
        )
    return run_check(sql_root(sql_dir), server, write=write)


def read_live(url: DatabaseUrl, kinds: Any) -> Schema:
    from .model import introspect_postgres, introspect_sqlite

    if url.dialect == "postgres":
        from ..drivers.postgres import connect

        conn = connect(url)
        try:
            return introspect_postgres(conn, kinds)
        finally:
            conn.close()
    import apsw

    assert url.path is not None
    if not url.is_memory and not url.path.is_file():
        raise DatabaseUnavailable(f"{url.path} does not exist", hint="check the path, or migrate it first")
    try:
        lite = apsw.Connection(str(url.path), flags=apsw.SQLITE_OPEN_READONLY)
        try:
            return introspect_sqlite(lite, kinds)
        finally:
            lite.close()
    except apsw.Error as exc:
        raise DatabaseUnavailable(f"cannot read {url.path}: {exc}") from None
