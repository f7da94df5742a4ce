from conftest import run_cli, write_migrations


def test_pg_migrate_and_status(pg_db, sql_root):
    write_migrations(sql_root, "postgres", {"0001_a.sql": "CREATE TABLE a (id SERIAL PRIMARY KEY);\n"})
    r = run_cli("migrate", "-d", pg_db, "--sql-dir", str(sql_root))
    assert r.code == 0, r.output
    assert "applied 0001_a.sql" in r.stdout
    r = run_cli("status", "-d", pg_db, "--sql-dir", str(sql_root), "--json")
    assert r.code == 0, r.output
    assert '"version": 1' in r.stdout


def test_pg_wrong_password(pg_server, pg_db, sql_root):
    from conftest import WRONG_PASSWORD

    url = pg_db.replace(pg_server.password.replace("!", "%21"), WRONG_PASSWORD)
    assert url != pg_db
    r = run_cli("migrate", "-d", url, "--sql-dir", str(sql_root))
    assert r.code == 5, r.output
    assert "password authentication failed" in r.stderr
