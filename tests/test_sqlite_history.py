"""sql/sqlite reproduces Agor's upstream SQLite history: after every step, the schema agor-db leaves in
a fresh file equals the schema drizzle's own migrator left (../shared/spec), and the final one equals
../shared/fixtures/legacy-empty-0010.db.

The schema is read here with raw PRAGMAs into the spec's own shape, independently of runner/schema/model.py,
so a bug in the model cannot hide a wrong migration file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import apsw
import pytest
from agor_db.core import migrate as core
from agor_db.schema.model import fingerprint, introspect_sqlite, load_kinds
from agor_db.core.urls import parse_url
from conftest import REPO, SPEC, needs_shared, run_cli

SQL = REPO / "sql"
SKIP_TABLES = {"agor_migrations", "__drizzle_migrations"}


def spec_shape(path: Path) -> dict[str, Any]:
    """table -> {columns, foreign_keys, indexes} in the spec's format (types upper-cased, lists sorted)."""
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        names = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        ]
        out: dict[str, Any] = {}
        for t in sorted(n for n in names if n not in SKIP_TABLES):
            columns = [
                {"name": name, "type": ctype.upper(), "notnull": bool(nn), "default": dflt, "pk": pk}
                for _cid, name, ctype, nn, dflt, pk in conn.execute(f'PRAGMA table_info("{t}")')
            ]
            fks: dict[int, dict[str, Any]] = {}
            for fid, _seq, ref, frm, to, upd, dele, _match in conn.execute(f'PRAGMA foreign_key_list("{t}")'):
                fk = fks.setdefault(
                    fid, {"columns": [], "ref_table": ref, "ref_columns": [], "on_update": upd, "on_delete": dele}
                )
                fk["columns"].append(frm)
                fk["ref_columns"].append(to)
            indexes = []
            for _seq, iname, unique, origin, _partial in conn.execute(f'PRAGMA index_list("{t}")'):
                cols = [r[2] for r in conn.execute(f'PRAGMA index_info("{iname}")')]
                indexes.append({"name": iname, "columns": cols, "unique": bool(unique), "origin": origin})
            out[t] = {
                "columns": columns,
                "foreign_keys": sorted(fks.values(), key=lambda f: (f["columns"], f["ref_table"])),
                "indexes": sorted(indexes, key=lambda i: i["name"]),
            }
        return out
    finally:
        conn.close()


def normalise_spec(tables: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for t, body in sorted(tables.items()):
        out[t] = {
            "columns": [{**c, "type": c["type"].upper()} for c in body["columns"]],
            "foreign_keys": sorted(body["foreign_keys"], key=lambda f: (f["columns"], f["ref_table"])),
            "indexes": sorted(body["indexes"], key=lambda i: i["name"]),
        }
    return out


def spec_steps() -> list[dict[str, Any]]:
    doc = json.loads(needs_shared(SPEC / "agor-sqlite-history.json").read_text())
    steps: list[dict[str, Any]] = doc["steps"]
    return steps


def test_files_match_upstream_steps() -> None:
    steps = spec_steps()
    files = sorted(p.name for p in (SQL / "sqlite").glob("*.sql"))
    assert files == [f"{s['tag']}.sql" for s in steps]
    for s in steps:
        text = (SQL / "sqlite" / f"{s['tag']}.sql").read_text()
        assert text.startswith(f"-- {s['tag']}: "), s["tag"]
        assert f"\n-- upstream-when: {s['when']}\n" in text, s["tag"]
        assert "ARCHIVED" in text and "Never edit it" in text, s["tag"]
        # the runner owns foreign-key handling; a pragma in the file would be silently ignored
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
        assert "pragma" not in code.lower(), s["tag"]


def test_every_step_equals_the_spec(tmp_path: Path) -> None:
    steps = spec_steps()
    db = tmp_path / "agor.db"
    url = parse_url(f"sqlite://{db}")
    for step in steps:
        version = int(step["tag"][:4])
        result = core.migrate(url, SQL, core.RunOptions(target=version))
        assert [a.version for a in result.applied] == [version]
        got = spec_shape(db)
        want = normalise_spec(step["tables"])
        assert sorted(got) == sorted(want), step["tag"]
        for table in want:
            assert got[table] == want[table], f"{step['tag']}: table {table} differs"


def test_final_schema_equals_drizzles_database(tmp_path: Path, fixture_copy: Any) -> None:
    legacy = fixture_copy("legacy-empty-0010.db")
    db = tmp_path / "fresh.db"
    result = run_cli("migrate", "--database-url", f"sqlite://{db}", "--sql-dir", str(SQL))
    assert result.code == 0, result.output
    assert "9 migration(s) applied" in result.stdout
    assert spec_shape(db) == spec_shape(legacy)
    # the model used for adoption agrees, cosmetic details included
    prints = []
    for path in (db, legacy):
        conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
        prints.append(fingerprint(introspect_sqlite(conn, load_kinds(SQL)), cosmetic=True))
        conn.close()
    assert prints[0] == prints[1]


@pytest.mark.parametrize("name", ["0003_tough_iron_lad", "0004_add_static_urls", "0009_reconcile-missing-columns"])
def test_rebuild_files_follow_the_safe_procedure(name: str) -> None:
    text = (SQL / "sqlite" / f"{name}.sql").read_text()
    for table in {"0003_tough_iron_lad": ["board_comments"], "0004_add_static_urls": ["worktrees"]}.get(
        name, ["sessions", "worktrees"]
    ):
        steps = [
            f'CREATE TABLE "__new_{table}"',
            f'INSERT INTO "__new_{table}"',
            f'DROP TABLE "{table}";',
            f'ALTER TABLE "__new_{table}" RENAME TO "{table}";',
        ]
        positions = [text.index(s) for s in steps]
        assert positions == sorted(positions), (name, table)
