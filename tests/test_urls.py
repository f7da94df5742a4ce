"""Which database: URL forms, resolution order, unknown schemes, redaction."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from agor_db.core.errors import UrlError
from agor_db.core.urls import env_parts, parse_url, public_names, redact, redact_url, resolve_url
from conftest import TEST_PASSWORD, run_cli


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("sqlite:///abs/path/agor.db", "/abs/path/agor.db"),
        ("sqlite:////abs/agor.db", "/abs/agor.db"),
        ("file:///abs/x.db", "/abs/x.db"),
        ("file://localhost/abs/x.db", "/abs/x.db"),
        ("/plain/abs.db", "/plain/abs.db"),
    ],
)
def test_absolute_sqlite_forms(raw: str, expected: str) -> None:
    url = parse_url(raw)
    assert url.dialect == "sqlite"
    assert url.path == Path(expected)


def test_relative_and_home_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert parse_url("sqlite:rel/x.db").path == tmp_path / "rel/x.db"
    assert parse_url("./x.db").path == tmp_path / "x.db"
    assert parse_url("x.db").path == tmp_path / "x.db"
    assert parse_url("file:~/.agor/agor.db").path == tmp_path / "home/.agor/agor.db"
    assert parse_url("~/.agor/agor.db").path == tmp_path / "home/.agor/agor.db"


@pytest.mark.parametrize(
    "raw",
    [
        "postgres://u:p@h:5432/db",
        "postgresql://u@/db?host=/var/run/postgresql",
        "postgresql:///db?host=/tmp&sslmode=disable",
        "postgresql://h1:5432,h2:5433/db?target_session_attrs=read-write",
        "POSTGRESQL://u@h/db",
    ],
)
def test_postgres_forms_pass_through_to_libpq(raw: str) -> None:
    url = parse_url(raw)
    assert url.dialect == "postgres"
    assert url.conninfo == raw


def test_unknown_scheme_lists_supported_ones() -> None:
    with pytest.raises(UrlError) as err:
        parse_url("mysql://u:hunter2@h/db")
    text = str(err.value)
    assert "unsupported database URL scheme 'mysql:'" in text
    assert "postgresql://" in text and "sqlite:///" in text and "file:" in text
    assert "hunter2" not in text


def test_resolution_order(tmp_path: Path) -> None:
    env = {
        "AGOR_DATABASE_URL": "postgresql://a@h/a",
        "DATABASE_URL": "postgresql://b@h/b",
        "AGOR_DB_PATH": "file:/c/agor.db",
    }
    assert resolve_url("sqlite:///flag.db", env).raw == "sqlite:///flag.db"
    assert resolve_url(None, env).source == "AGOR_DATABASE_URL"
    del env["AGOR_DATABASE_URL"]
    assert resolve_url(None, env).source == "DATABASE_URL"
    del env["DATABASE_URL"]
    url = resolve_url(None, env)
    assert (url.source, url.path) == ("AGOR_DB_PATH", Path("/c/agor.db"))
    default = resolve_url(None, {})
    assert default.source == "default"
    assert default.path == Path("~/.agor/agor.db").expanduser()


@pytest.mark.parametrize(
    ("raw", "secret"),
    [
        ("postgresql://agor:p%40ss@h:5432/db", "p%40ss"),
        ("postgresql://agor:topsecret@h/db?sslmode=require", "topsecret"),
        ("postgresql://agor@h/db?password=topsecret&sslmode=disable", "topsecret"),
    ],
)
def test_redaction(raw: str, secret: str) -> None:
    url = parse_url(raw)
    assert secret not in url.display
    assert "***" in url.display
    assert secret in url.secrets
    assert secret not in redact(f"failed for {raw}", url.secrets)


def test_redact_scrubs_urls_it_was_not_told_about() -> None:
    assert redact_url("host=h password=abc dbname=x") == "host=h password=*** dbname=x"
    assert "zzz" not in redact("connect postgres://u:zzz@h/db failed")


def test_empty_url_is_an_error() -> None:
    with pytest.raises(UrlError):
        parse_url("   ")
    with pytest.raises(UrlError):
        parse_url("sqlite:")


def test_keyword_strings_are_postgres_with_the_password_masked_by_structure() -> None:
    url = parse_url("host=db port=5432 dbname=agor user=agor password='a b\\'c=d'")
    assert url.dialect == "postgres" and url.conninfo == url.raw
    assert url.display == "host=db port=5432 dbname=agor user=agor password=***"
    assert "a b'c=d" in url.secrets
    assert parse_url("service=agor").dialect == "postgres"
    assert parse_url("dbname = 'my db'").display == "dbname='my db'"


def test_libpq_environment_passwords_are_secrets(tmp_path: Path) -> None:
    service = tmp_path / "pg_service.conf"
    service.write_text("[agor]\nhost=db\npassword=from-service-file\n")
    env = {"PGPASSWORD": "from-env", "PGSERVICEFILE": str(service)}
    assert parse_url("postgresql://", environ=env).secrets == ("from-env",)
    assert set(parse_url("service=agor", environ=env).secrets) == {"from-env", "from-service-file"}
    assert parse_url("postgresql://?service=agor", environ={"PGSERVICEFILE": str(service)}).secrets == (
        "from-service-file",
    )


@pytest.mark.parametrize("raw", ["agor", "mydb", "localhost", "db port"])
def test_a_bare_word_is_not_a_path(raw: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UrlError, match="neither a URL nor a SQLite file path"):
        parse_url(raw)


def test_what_makes_a_plain_string_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "existing").write_bytes(b"")
    for raw in ("existing", "./agor", "data/agor", "agor.sqlite3", "a b.db", "./a=b.db"):
        assert parse_url(raw).path == tmp_path / raw.removeprefix("./")


@pytest.mark.parametrize("typo", ["postgresql//", "postgres//", "PostgreSQL//", "//"])
def test_a_url_that_lost_its_scheme_colon_is_refused_without_its_password(typo: str, tmp_path: Path) -> None:
    """`postgresql//agor:pw@db/agor` has a "/" and no scheme: as a SQLite path its password was printed
    ("cannot create …/agor:pw@db:5432/agor") and could become a file name."""
    raw = f"{typo}agor:{quote(TEST_PASSWORD, safe='')}@db:5432/agor"
    result = run_cli("migrate", "--database-url", raw, cwd=tmp_path)  # run_cli fails on a leaked password
    assert result.code == 2, result.output
    assert "looks like a PostgreSQL URL without its scheme's ':'" in result.stderr
    assert "did you mean postgresql://agor:***@db:5432/agor?" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_path_merely_starting_like_that_stays_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "postgres").mkdir()
    assert parse_url("postgres/agor.db").path == tmp_path / "postgres" / "agor.db"
    assert parse_url("//var/lib/agor/agor.db").path == Path("//var/lib/agor/agor.db")


def test_malformed_keyword_string_does_not_echo_it() -> None:
    with pytest.raises(UrlError) as err:
        parse_url("host=db password='unterminated")
    assert "unterminated" not in str(err.value)


# -- redaction by structure ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        # the dev defaults: the password is also the user and database name; only the field is masked
        ("postgresql://agor:agor@db:5432/agor", "postgresql://agor:***@db:5432/agor"),
        ("postgresql://p:p@postgres-p:5432/p?sslmode=prefer", "postgresql://p:***@postgres-p:5432/p?sslmode=prefer"),
        ("postgresql://u@h/d?sslmode=disable&password=agor", "postgresql://u@h/d?sslmode=disable&password=***"),
        ("host=db user=agor password=agor dbname=agor", "host=db user=agor password=*** dbname=agor"),
        ("host=db password='two words' dbname=agor", "host=db password=*** dbname=agor"),
    ],
)
def test_password_field_is_masked_and_names_are_not(raw: str, shown: str) -> None:
    assert redact_url(raw) == shown
    assert redact(f"cannot connect to {raw} (refused)") == f"cannot connect to {shown} (refused)"


@pytest.mark.parametrize("password", ["agor", "p", "postgres", "db", "a"])
def test_short_or_common_passwords_never_mangle_words(password: str) -> None:
    url = parse_url(f"postgresql://agor_user:{password}@db.example:5432/agor_app")
    text = (
        f"attempt 3, 2.0s: cannot connect to {url.display}: connection refused\n"
        "hint: is the server running? agor-db wait waits for it; agor-db new NAME makes the next pair\n"
        'password authentication failed for user "agor_user"; database "agor_app" on postgresql port 5432'
    )
    assert redact(text, url.secrets) == text
    assert url.display == "postgresql://agor_user:***@db.example:5432/agor_app"


@pytest.mark.parametrize("password", ["agor", "p", "s3cr3t-Agor-pw!x"])
def test_password_echoed_by_a_driver_is_scrubbed(password: str) -> None:
    url = parse_url(f"postgresql://agor_user:{quote(password, safe='')}@db/agor_app")
    for template in (
        'invalid input syntax for type integer: "{pw}"',
        "syntax error at or near '{pw}'",
        'missing "=" after "{pw}" in connection info string',
        "invalid connection option password={pw} for this server",
        "could not translate host name 'db' to address: agor_user:{pw}",
    ):
        assert redact(template.format(pw=password), url.secrets) == template.format(pw="***")


def test_names_equal_to_the_password_are_never_secrets() -> None:
    # with agor/agor/agor the password cannot be told from the user and database names the server
    # quotes back ('password authentication failed for user "agor"'): the names stay readable
    url = parse_url("postgresql://agor:agor@db:5432/agor")
    assert url.secrets == ()
    assert redact('password authentication failed for user "agor"', url.secrets).endswith('user "agor"')
    assert public_names("host=db,db2 user=bob password=s3cret dbname='my db'") >= {"db,db2", "bob", "my db"}
    assert public_names("postgresql://bob:pw@h1:5432,h2/app?user=carol") == {"bob", "h1", "h2", "app", "carol"}


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql://", ["PGHOST=/run/pg", "PGPORT=5433", "PGDATABASE=agor", "PGUSER=app"]),
        ("postgresql://u:p@db.example:6432/x", []),
        ("postgresql:///x?host=/tmp", ["PGPORT=5433", "PGUSER=app"]),
        ("postgresql://[::1]/x", ["PGPORT=5433", "PGUSER=app"]),
        ("postgresql://h1,h2:5/x", ["PGUSER=app"]),
        ("dbname=x user=y", ["PGHOST=/run/pg", "PGPORT=5433"]),
        ("postgresql://?service=agor", []),  # the service file says the rest
    ],
)
def test_status_names_the_pg_variables_that_fill_in_the_url(text: str, shown: list[str]) -> None:
    env = {"PGHOST": "/run/pg", "PGPORT": "5433", "PGDATABASE": "agor", "PGUSER": "app", "PGPASSWORD": "pw"}
    url = parse_url(text, environ=env)
    assert env_parts(url, env) == shown


def test_masking_free_text_takes_linear_time_on_long_words() -> None:
    """A server message can quote a long token of the user's data (a JSON value's bad token): the
    password masking must not take quadratic time on a run of letters (200,000 letters took ~85 s)."""
    import time

    from agor_db.core.urls import mask_passwords

    for text in ('Token "' + "x" * 200_000 + '" is invalid.', "a:" * 100_000, "ab://" * 50_000):
        started = time.perf_counter()
        mask_passwords(text)
        assert time.perf_counter() - started < 2.0, text[:20]
    # still masks by structure, wherever the scheme starts
    assert mask_passwords("x postgresql://agor:s3cret@db/a, (postgres://u:p@h)") == (
        "x postgresql://agor:***@db/a, (postgres://u:***@h)"
    )
