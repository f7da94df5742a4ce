"""Both folders stay valid yoyo-migrations folders: yoyo itself applies each one and builds exactly the
schema agor-db builds (column order, declared types and default spellings included)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import psycopg
import pytest
from agor_db.core import migrate as core
from agor_db.schema.model import canonical, diff, introspect_postgres, introspect_sqlite, load_differences, load_kinds
from agor_db.core.urls import parse_url
from conftest import REPO

SQL = REPO / "sql"


def yoyo_apply(uri: str, folder: Path) -> list[str]:
    from yoyo import get_backend, read_migrations

    backend = get_backend(uri)
    migrations = read_migrations(str(folder))
    with backend.lock():
        backend.apply_migrations(backend.to_apply(migrations))
    applied = sorted(m.id for m in migrations if backend.is_applied(m))
    backend.connection.close()
    return applied


def sqlite_model(path: Path) -> Any:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return introspect_sqlite(conn, load_kinds(SQL))
    finally:
        conn.close()


def postgres_model(url: str) -> Any:
    with psycopg.connect(url) as conn:
        return introspect_postgres(conn, load_kinds(SQL))


@pytest.fixture
def second_pg_db(pg_db: str, pg_server: Any) -> Iterator[str]:
    """Another empty database on the same server, for the run the first one is compared with."""
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield str(pg_server.url(name))
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def yoyo_postgres_uri(url: str) -> str:
    assert url.startswith("postgresql://")
    return "postgresql+psycopg://" + url[len("postgresql://") :]


def test_yoyo_builds_the_same_sqlite_schema(tmp_path: Path) -> None:
    by_yoyo = tmp_path / "yoyo.db"
    applied = yoyo_apply(f"sqlite:///{by_yoyo}", SQL / "sqlite")
    assert applied == sorted(p.stem for p in (SQL / "sqlite").glob("*.sql"))
    by_agor = tmp_path / "agor.db"
    core.migrate(parse_url(f"sqlite://{by_agor}"), SQL, core.RunOptions())
    a, b = sqlite_model(by_yoyo), sqlite_model(by_agor)
    assert len(a.tables) == 11
    assert canonical(a, cosmetic=True) == canonical(b, cosmetic=True)


def test_yoyo_builds_the_same_postgres_schema(tmp_path: Path, pg_db: str, second_pg_db: str) -> None:
    applied = yoyo_apply(yoyo_postgres_uri(pg_db), SQL / "postgres")
    assert applied == ["0010_baseline"]
    core.migrate(parse_url(second_pg_db), SQL, core.RunOptions())
    a, b = postgres_model(pg_db), postgres_model(second_pg_db)
    assert len(a.tables) == 11
    assert canonical(a, cosmetic=True) == canonical(b, cosmetic=True)
    # and what yoyo built in PostgreSQL equals what it built in SQLite, under the type map
    lite = tmp_path / "yoyo.db"
    yoyo_apply(f"sqlite:///{lite}", SQL / "sqlite")
    assert diff(sqlite_model(lite), a, differences=load_differences(SQL)) == []
