"""The table rebuilds (0003, 0004, 0009) keep every row and every value.

Each test migrates a fresh file to the version before the rebuild, fills every table (parents and
every table that references them, NULLs and values, unicode and quotes), then lets the runner apply
the rebuild on a connection with foreign keys ON, as Agor's own connections have them. The same file
run naively (foreign keys ON, BEGIN, statements, COMMIT) is shown to cascade, so the data really
would be at risk.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import apsw
import pytest
from agor_db.core import migrate as core
from agor_db.drivers.sqlite import SqliteDriver
from agor_db.core.errors import MigrationFailed
from agor_db.schema.model import introspect_sqlite, load_kinds
from agor_db.core.source import list_migrations, parse
from agor_db.core.urls import parse_url
from conftest import AGOR_TABLES, REPO

SQL = REPO / "sql"
ORDER = list(AGOR_TABLES)
ROWS = 6
IMPLIED = {"sessions": {"board_id": "boards", "parent_session_id": "sessions", "forked_from_session_id": "sessions"}}


def value(kind: str, table: str, column: str, i: int) -> Any:
    if kind == "id36":
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{table}/{column}/{i}"))
    if kind == "json":
        return f'{{"n":{i},"text":"é ✓ \\"q\\""}}'
    if kind == "boolean":
        return i % 2
    if kind == "epoch_ms":
        return 1762030000000 + i * 1000 + len(column)
    if kind == "integer":
        return i * 7
    return f"{table}.{column} #{i} — 'quoted' ✓\ttab"


def fill(path: Path) -> None:
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA foreign_keys = ON")
    model = introspect_sqlite(conn, load_kinds(SQL))
    ids: dict[str, list[Any]] = {}
    with conn:
        for name in ORDER:
            table = model.table(name)
            assert table is not None
            refs = {fk.columns[0]: fk for fk in table.foreign_keys}
            pk = table.primary_key
            for i in range(ROWS):
                row: dict[str, Any] = {}
                for c in table.columns:
                    fk = refs.get(c.name)
                    if fk is not None:
                        parents = ids.get(fk.ref_table, [])
                        if fk.ref_table == name:  # a self-reference points at an earlier row
                            parents = parents[:i]
                        row[c.name] = parents[(i + 1) % len(parents)] if parents else None
                        if row[c.name] is None and c.notnull:
                            raise AssertionError(f"no parent for {name}.{c.name}")
                    elif not c.notnull and i % 3 == 2:
                        row[c.name] = None
                    elif name == "session_mcp_servers" and c.name == "mcp_server_id":
                        row[c.name] = ids["mcp_servers"][i % ROWS]
                    else:
                        row[c.name] = value(c.kind, name, c.name, i)
                # before 0009 these sessions columns have no FK; Agor still fills them with real ids
                for col, parent in IMPLIED.get(name, {}).items():
                    if col not in refs and row[col] is not None:
                        candidates = ids.get(parent, [])[: i if parent == name else None]
                        row[col] = candidates[i % len(candidates)] if candidates else None
                cols = ", ".join(f'"{k}"' for k in row)
                conn.execute(
                    f'INSERT INTO "{name}" ({cols}) VALUES ({", ".join("?" for _ in row)})', tuple(row.values())
                )
                if pk:
                    ids.setdefault(name, []).append(row[pk[0]])
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()


def contents(path: Path) -> dict[str, list[dict[str, Any]]]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    out: dict[str, list[dict[str, Any]]] = {}
    for name in ORDER:
        cols = [r[1] for r in conn.execute(f'PRAGMA table_info("{name}")')]
        rows = conn.execute(f'SELECT * FROM "{name}"').fetchall()
        out[name] = sorted((dict(zip(cols, r, strict=True)) for r in rows), key=repr)
    conn.close()
    return out


def migrate_to(path: Path, version: int) -> None:
    core.migrate(parse_url(f"sqlite://{path}"), SQL, core.RunOptions(target=version))


def script_for(version: int) -> Any:
    migrations = list_migrations(SQL / "sqlite")
    return parse(next(m for m in migrations if m.version == version))


@pytest.mark.parametrize(("before", "rebuild"), [(2, 3), (3, 4), (8, 9)])
def test_rebuild_keeps_every_row_and_value(tmp_path: Path, before: int, rebuild: int) -> None:
    db = tmp_path / "agor.db"
    migrate_to(db, before)
    fill(db)
    naive = tmp_path / "naive.db"
    shutil.copyfile(db, naive)
    old = contents(db)
    assert all(len(rows) == ROWS for rows in old.values())

    driver = SqliteDriver(parse_url(f"sqlite://{db}"))
    try:
        assert driver.conn is not None
        driver.conn.execute("PRAGMA foreign_keys = ON")  # as Agor's connections run
        driver.lock(5)
        row = driver.apply(script_for(rebuild))
        assert row.version == rebuild
        assert driver.conn.execute("PRAGMA foreign_keys").fetchone() == (1,)  # restored afterwards
        assert driver.conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        driver.close()

    new = contents(db)
    for table, rows in old.items():
        kept = [{k: r[k] for k in rows[0]} for r in new[table]] if rows else []
        assert sorted(kept, key=repr) == rows, f"{table} changed in {rebuild:04d}"

    # The control: the same statements run naively with foreign keys ON lose rows through cascades
    # (0003 is harmless: nothing references board_comments).
    script = script_for(rebuild)
    conn = apsw.Connection(str(naive))
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("BEGIN")
    for st in script.statements:
        conn.execute(st.sql)
    conn.execute("COMMIT")
    conn.close()
    lost = {t: ROWS - len(rows) for t, rows in contents(naive).items() if len(rows) != ROWS}
    if rebuild == 3:
        assert lost == {}
    else:
        assert lost.get("sessions") == ROWS and lost.get("messages") == ROWS, lost


def test_the_whole_history_keeps_data_added_at_every_step(tmp_path: Path) -> None:
    """Rows written at 0002 survive all three rebuilds up to 0010."""
    db = tmp_path / "agor.db"
    migrate_to(db, 2)
    fill(db)
    old = contents(db)
    migrate_to(db, 10)
    new = contents(db)
    for table, rows in old.items():
        kept = [{k: r[k] for k in rows[0]} for r in new[table]]
        assert sorted(kept, key=repr) == rows, table
    # columns added by the rebuilds start at their defaults
    flags = apsw.Connection(str(db)).execute("SELECT DISTINCT needs_attention, archived FROM worktrees").fetchall()
    assert flags == [(0, 0)]


def test_dangling_reference_before_0009_stops_the_rebuild(tmp_path: Path) -> None:
    """Before 0009 nothing enforced sessions.board_id; a session pointing at a deleted board makes the
    rebuilt table violate its new foreign key. The runner refuses and keeps the database at 0008."""
    db = tmp_path / "agor.db"
    migrate_to(db, 8)
    fill(db)
    conn = apsw.Connection(str(db))
    conn.execute("UPDATE sessions SET board_id = 'gone-gone-gone' WHERE rowid = 2")
    conn.close()
    old = contents(db)
    with pytest.raises(MigrationFailed) as caught:
        migrate_to(db, 9)
    assert str(caught.value).startswith(
        "migration 0009_reconcile-missing-columns.sql leaves 1 foreign-key violation(s); rolled back:\n"
        "  sessions rowid 2 -> boards (foreign key #"
    )
    assert contents(db) == old
    versions = apsw.Connection(str(db)).execute("SELECT max(version) FROM agor_migrations").fetchall()
    assert versions == [(8,)]
