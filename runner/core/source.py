"""Migration files: find the dialect folder, list it, checksum it, and parse files in yoyo's SQL format.

Listing and checksumming are cheap and happen on every run. Parsing (the directives as yoyo reads them,
sqlparse's splitter) happens only for files that are about to be applied, shown or checked.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from .errors import MigrationFileError, UsageError
from .models import Migration, Script
from .sqltext import concurrently_line, directives, only_comments

SQL_DIR_ENV = "AGOR_SQL_DIR"
FILE_NAME = re.compile(r"^(?P<version>[0-9]+)_(?P<name>[A-Za-z0-9][A-Za-z0-9_\-]*)\.sql$")
_BOM = b"\xef\xbb\xbf"


def bundled_sql_root() -> Path:
    """The ``sql/`` folder shipped in the wheel, or the checkout's ``sql/`` when run from source."""
    here = Path(__file__).resolve().parents[1]  # the package folder: this module is in agor_db/core/
    for candidate in (here / "sql", here.parent / "sql"):
        if (candidate / "sqlite").is_dir() or (candidate / "postgres").is_dir():
            return candidate
    from importlib.resources import files

    return Path(str(files("agor_db.sql")))


def sql_root(flag: str | None = None) -> Path:
    """--sql-dir, then AGOR_SQL_DIR, then the bundled folders."""
    chosen = flag or os.environ.get(SQL_DIR_ENV)
    if not chosen:
        return bundled_sql_root()
    root = Path(os.path.expanduser(chosen)).resolve()
    if not root.is_dir():
        origin = "--sql-dir" if flag else SQL_DIR_ENV
        raise UsageError(f"{origin} {chosen!r} is not a directory", hint="it must hold sqlite/ and postgres/")
    return root


def dialect_dir(root: Path, dialect: str) -> Path:
    folder = root / dialect
    if not folder.is_dir():
        raise UsageError(
            f"no migration folder for {dialect} at {folder}",
            hint=f"the SQL root must contain a {dialect}/ folder",
        )
    return folder


def normalised_bytes(raw: bytes) -> bytes:
    """What the checksum covers: the file without a UTF-8 BOM and with CRLF turned into LF."""
    if raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    return raw.replace(b"\r\n", b"\n")


def checksum(raw: bytes) -> str:
    return hashlib.sha256(normalised_bytes(raw)).hexdigest()


def list_migrations(folder: Path) -> list[Migration]:
    """Every ``NNNN_name.sql`` in ``folder`` ordered by version; ``.rollback.sql`` files are not migrations.

    A ``.sql`` file whose name does not fit, or two files with one version, stop the run here,
    before any database work.
    """
    try:
        return _list_migrations(folder)
    except OSError as exc:
        raise MigrationFileError(
            f"cannot read the migration folder {folder}: {exc.strerror or exc}",
            hint="check that the folder and its files are readable by this user",
        ) from None


def _list_migrations(folder: Path) -> list[Migration]:
    found: dict[int, Migration] = {}
    bad: list[str] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            name = entry.name
            if not name.endswith(".sql") or name.endswith(".rollback.sql") or name.startswith("."):
                continue
            m = FILE_NAME.match(name)
            if not m:
                bad.append(name)
                continue
            if not entry.is_file():
                kind = "a directory" if entry.is_dir() else "not a regular file (a dangling symlink?)"
                raise MigrationFileError(f"{entry.path} is {kind}", hint="a migration must be a regular .sql file")
            version = int(m.group("version"))
            path = Path(entry.path)
            with open(path, "rb") as fh:
                digest = checksum(fh.read())
            other = found.get(version)
            if other is not None:
                raise MigrationFileError(
                    f"two migrations share version {version} in {folder}: {other.label} and {name}",
                    hint="give one of them the next free number (agor-db new NAME does that)",
                )
            found[version] = Migration(version, m.group("name"), path, digest)
    if bad:
        raise MigrationFileError(
            f"malformed migration file name(s) in {folder}: {', '.join(sorted(bad))}",
            hint="migration files are named NNNN_name.sql (digits, underscore, letters/digits/_/-)",
        )
    return [found[v] for v in sorted(found)]


def read_text(migration: Migration) -> str:
    try:
        raw = migration.path.read_bytes()
    except OSError as exc:
        raise MigrationFileError(f"cannot read {migration.path}: {exc.strerror or exc}") from None
    try:
        text = normalised_bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise MigrationFileError(
            f"{migration.path} is not valid UTF-8 (byte {exc.start}, line {line})",
            hint="save the file as UTF-8",
        ) from None
    return text


def parse(migration: Migration, known_ids: set[str] | None = None) -> Script:
    """Read one file in yoyo's SQL format: ``-- transactional:``/``-- depends:`` directives in the
    leading comments (read as yoyo reads them), then SQL."""
    text = read_text(migration)
    if migration.checksum != checksum(migration.path.read_bytes()):
        raise MigrationFileError(f"{migration.path} changed while agor-db was reading it; run again")
    found = directives(text)
    if only_comments(text):
        raise MigrationFileError(
            f"{migration.path} contains no SQL statements",
            hint="an empty migration is almost always a mistake; write the SQL or delete the file",
        )
    transactional_raw = found.get("transactional", "true").strip().lower()
    if transactional_raw not in ("true", "false"):
        raise MigrationFileError(f"{migration.path}: '-- transactional: {transactional_raw}' must be true or false")
    if transactional_raw == "true":
        line = concurrently_line(text)
        if line is not None:
            raise MigrationFileError(
                f"{migration.path}:{line}: CONCURRENTLY cannot run inside a transaction, and this file runs in one",
                hint="put '-- transactional: false' at the top and keep the file to the CONCURRENTLY statement",
            )
    depends = tuple(d for d in found.get("depends", "").split() if d)
    if known_ids is not None:
        unknown = [d for d in depends if d not in known_ids]
        if unknown:
            raise MigrationFileError(
                f"{migration.path}: '-- depends:' names unknown migration(s): {', '.join(unknown)}",
                hint="depend on an earlier file of the same folder by its name without .sql",
            )
    return Script(migration, text, transactional_raw == "true", depends)
