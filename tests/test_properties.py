"""Property tests: the pure parts of the runner never fail with anything but their documented errors.

URL parsing and redaction, migration file names, directives, and the planner over random mixes of
applied / pending / edited / missing / renamed / out-of-order migrations. Example counts stay modest
so the file runs in a few seconds; raise them locally with HYPOTHESIS_PROFILE=thorough.
"""

from __future__ import annotations

import os
import string
import tempfile
from pathlib import Path
from urllib.parse import quote

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from agor_db.core.errors import MigrationFileError, UrlError
from agor_db.core.models import AppliedMigration, Migration, Problem
from agor_db.core.plan import make_plan
from agor_db.core.source import checksum, list_migrations, parse
from agor_db.core.urls import parse_url, redact, redact_url

settings.register_profile("default", max_examples=120, deadline=None)
settings.register_profile("thorough", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

URL_CHARS = string.ascii_letters + string.digits + ":/@?#[]%=&;+.-_~ '\"\\\t\n" + "é€\u0663"
WORD = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=10)
SCHEMES = st.sampled_from(
    ["postgresql", "postgres", "POSTGRES", "sqlite", "file", "mysql", "http", "c", "", "postgresql+psycopg"]
)


@st.composite
def url_like(draw: st.DrawFn) -> str:
    scheme = draw(SCHEMES)
    sep = draw(st.sampled_from(["://", ":", ":///", "//", ""]))
    rest = draw(st.text(alphabet=URL_CHARS, max_size=40))
    return f"{scheme}{sep}{rest}"


# -- URLs ----------------------------------------------------------------------------------------


@example("postgresql://agor:pw@[::1/agor?sslmode=disable")  # an unclosed IPv6 bracket once crashed display
@given(st.one_of(st.text(max_size=60), url_like()))
def test_parse_url_raises_only_url_errors(raw: str) -> None:
    try:
        url = parse_url(raw)
    except UrlError as exc:
        assert str(exc)
        return
    # whatever was accepted can be shown and redacted without blowing up
    assert isinstance(url.display, str)
    assert isinstance(url.secrets, tuple)
    assert url.dialect in ("sqlite", "postgres")


@example("postgresql://[?password=x")
@given(st.one_of(st.text(max_size=60), url_like()))
def test_redaction_never_raises(raw: str) -> None:
    assert isinstance(redact_url(raw), str)
    assert isinstance(redact(f"could not connect to {raw}", (raw[:5],)), str)


PASSWORDS = st.text(min_size=1, max_size=24).filter(lambda p: "\x00" not in p)


# "a" is in the message's own word "failed": the assumption must cover the message, not just the URL
@example(scheme="postgresql", user="0", host="", db="0", password="a", where="userinfo", extra="")
@given(
    scheme=st.sampled_from(["postgresql", "postgres"]),
    user=WORD,
    host=st.one_of(WORD, st.just("")),
    db=WORD,
    password=PASSWORDS,
    where=st.sampled_from(["userinfo", "query", "both"]),
    extra=st.sampled_from(["", "sslmode=require", "host=/tmp/sock&port=5433", "application_name=x"]),
)
def test_a_password_never_survives_redaction(
    scheme: str, user: str, host: str, db: str, password: str, where: str, extra: str
) -> None:
    encoded = quote(password, safe="")

    def build(secret: str) -> str:
        userinfo = f"{user}:{secret}@" if where in ("userinfo", "both") else f"{user}@"
        query = [extra] if extra else []
        if where in ("query", "both"):
            query.append(f"password={secret}")
        return f"{scheme}://{userinfo}{host}/{db}" + ("?" + "&".join(query) if query else "")

    message = "connection to {0} failed: {0}"
    raw, skeleton = build(encoded), message.format(build("***"))
    # a password that is also the user name, the host, part of "***" or of the message's own words
    # ("failed") cannot be told apart
    assume(password not in skeleton and encoded not in skeleton)

    url = parse_url(raw)
    for shown in (url.display, redact_url(raw), redact(message.format(raw), url.secrets)):
        assert password not in shown, shown
        assert encoded not in shown, shown


@example(password="://", db="agor")  # a "://" inside a keyword string once disabled keyword redaction
@given(
    password=PASSWORDS.filter(lambda p: all(c.isprintable() and not c.isspace() and c not in "'\\" for c in p)),
    db=WORD,
)
def test_keyword_password_is_redacted(password: str, db: str) -> None:
    raw = f"host=/tmp dbname={db} password={password} user=agor"
    assume(password not in raw.replace(f"password={password}", "password=***"))
    assert password not in redact_url(raw)
    # a keyword string is not a URL: it is taken as a file path, but the password field is still masked
    # (by structure: a one-character password such as ':' must not mangle "sqlite:" around it)
    url = parse_url(raw)
    shown = redact(f"cannot open {url.display}", url.secrets)
    assert f"password={password}" not in shown


# -- migration file names ------------------------------------------------------------------------

NAME_CHARS = string.ascii_letters + string.digits + "_-. é\u0663\u00b2"


@st.composite
def file_names(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["good", "good", "rollback", "random", "random_sql", "hidden"]))
    if kind in ("good", "rollback"):
        version = draw(st.integers(min_value=0, max_value=10**6))
        width = draw(st.integers(min_value=1, max_value=6))
        name = draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,12}", fullmatch=True))
        suffix = ".rollback.sql" if kind == "rollback" else ".sql"
        return f"{version:0{width}d}_{name}{suffix}"
    body = draw(st.text(alphabet=NAME_CHARS, min_size=1, max_size=20))
    if kind == "random_sql":
        return body + ".sql"
    if kind == "hidden":
        return "." + body + ".sql"
    return body


def _is_well_formed(name: str) -> bool:
    """The documented format: ASCII digits, underscore, ASCII letters/digits/_/-, '.sql'."""
    stem, dot, ext = name.rpartition(".")
    if not dot or ext != "sql":
        return False
    version, sep, rest = stem.partition("_")
    ascii_word = set(string.ascii_letters + string.digits + "_-")
    return (
        bool(sep)
        and version.isascii()
        and version.isdigit()
        and bool(rest)
        and rest[0] in string.ascii_letters + string.digits
        and set(rest) <= ascii_word
    )


@settings(suppress_health_check=[HealthCheck.too_slow])
@example(["\u0663_arabic_indic_three.sql"], "file")  # \d also matches non-ASCII digits: int() takes them
@example(["0001_a.sql", "1_b.sql"], "file")
@example(["0001_a.sql"], "dir")
@given(st.lists(file_names(), max_size=8, unique=True), st.sampled_from(["file", "dir"]))
def test_list_migrations_accepts_good_folders_and_rejects_bad_ones(names: list[str], odd_kind: str) -> None:
    names = [n for n in names if n not in (".", "..") and len(n.encode()) < 200]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i, n in enumerate(names):
            if odd_kind == "dir" and i == 0:
                (folder / n).mkdir()
            else:
                (folder / n).write_text(f"SELECT {i};\n")
        considered = [n for n in names if n.endswith(".sql") and not n.endswith(".rollback.sql") and n[0] != "."]
        try:
            found = list_migrations(folder)
        except MigrationFileError as exc:
            text = str(exc)
            bad = [n for n in considered if not _is_well_formed(n) or (folder / n).is_dir()]
            versions = [int(n.split("_", 1)[0]) for n in considered if n not in bad]
            assert bad or len(versions) != len(set(versions)), text
            return
        labels = [m.label for m in found]
        assert sorted(labels) == sorted(considered)
        assert all(_is_well_formed(n) for n in labels), f"accepted a malformed name: {labels}"
        versions = [m.version for m in found]
        assert versions == sorted(set(versions))


# -- directives ----------------------------------------------------------------------------------

STATEMENTS = st.sampled_from(
    [
        "CREATE TABLE t (id INTEGER);",
        "INSERT INTO t VALUES ('a;b');",
        "SELECT 1;",
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET id = id; END;",
        "-- just a comment",
        "/* block; comment */",
        "",
        "select $$ not ; split $$;",
        "  UPDATE t SET id = 2\n  WHERE id = 1;",
    ]
)
DIRECTIVES = st.sampled_from(
    [
        "-- transactional: false",
        "-- transactional: true",
        "-- transactional: TRUE",
        "-- transactional: maybe",
        "-- transactional:",
        "-- depends: 0001_first",
        "-- depends: 0001_first 0002_second",
        "-- depends: 9999_nowhere",
        "-- depends:",
        "--depends:0001_first",
        "-- some: other",
        "-- a comment: with a colon",
    ]
)


@st.composite
def migration_files(draw: st.DrawFn) -> bytes:
    head = draw(st.lists(DIRECTIVES, max_size=3))
    body = draw(st.lists(STATEMENTS, max_size=5))
    text = "\n".join([*head, *body]) + draw(st.sampled_from(["", "\n"]))
    if draw(st.booleans()):
        text = text.replace("\n", "\r\n")
    raw = text.encode()
    if draw(st.booleans()):
        raw = b"\xef\xbb\xbf" + raw
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        raw += draw(st.binary(min_size=1, max_size=4))  # maybe not UTF-8 any more
    return raw


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(migration_files())
def test_parse_raises_only_migration_file_errors(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "0003_third.sql"
        path.write_bytes(raw)
        m = Migration(3, "third", path, checksum(raw))
        try:
            script = parse(m, {"0001_first", "0002_second", "0003_third"})
        except MigrationFileError as exc:
            assert str(exc)
            return
    assert script.statements
    assert all(s.sql.strip() for s in script.statements)
    lines = raw.removeprefix(b"\xef\xbb\xbf").decode().replace("\r\n", "\n").split("\n")
    for st_ in script.statements:
        first = st_.sql.strip().splitlines()[0].strip()
        assert 1 <= st_.line <= len(lines)
        assert first in lines[st_.line - 1], (st_.line, first, lines)
    assert set(script.depends) <= {"0001_first", "0002_second", "0003_third"}


# -- the planner ---------------------------------------------------------------------------------

STATES = ["applied", "pending", "edited", "missing", "renamed"]
KINDS = {"edited", "missing", "renamed", "out_of_order", "unknown_target"}


@st.composite
def histories(draw: st.DrawFn) -> tuple[dict[int, str], int | None, bool]:
    versions = draw(st.lists(st.integers(min_value=1, max_value=60), unique=True, max_size=12))
    states = {v: draw(st.sampled_from(STATES)) for v in versions}
    target = draw(st.one_of(st.none(), st.sampled_from(versions) if versions else st.none(), st.integers(0, 70)))
    return states, target, draw(st.booleans())


@given(histories())
def test_planner_never_reapplies_never_skips(history: tuple[dict[int, str], int | None, bool]) -> None:
    states, target, allow_out_of_order = history
    here = Path("/nonexistent")
    files: list[Migration] = []
    applied: list[AppliedMigration] = []
    for i, (v, state) in enumerate(sorted(states.items())):
        name = f"m{v}"
        file_sum = f"{v:064x}"
        if state != "missing":
            file_name = f"other{v}" if state == "renamed" else name
            files.append(Migration(v, file_name, here / f"{v:04d}_{file_name}.sql", file_sum))
        if state != "pending":
            row_sum = f"{v + 1:064x}" if state == "edited" else file_sum
            applied.append(AppliedMigration(i + 1, v, name, row_sum, 1_700_000_000_000 + v, 1, "applied"))

    plan = make_plan("sqlite", files, list(reversed(applied)), target=target, allow_out_of_order=allow_out_of_order)

    assert {p.kind for p in plan.problems} <= KINDS
    assert all(isinstance(p, Problem) and p.message for p in plan.problems)

    def flagged(kind: str) -> set[int]:
        return {p.version for p in plan.problems if p.kind == kind}

    for kind in ("edited", "missing", "renamed"):
        assert flagged(kind) == {v for v, s in states.items() if s == kind}
    pending = sorted(v for v, s in states.items() if s == "pending")
    newest = max((v for v, s in states.items() if s != "pending"), default=None)
    expected_ooo = set() if allow_out_of_order or newest is None else {v for v in pending if v < newest}
    assert flagged("out_of_order") == expected_ooo
    file_versions = {m.version for m in files}
    assert bool(flagged("unknown_target")) == (target is not None and target not in file_versions)

    applied_versions = {a.version for a in applied}
    to_apply = [m.version for m in plan.to_apply]
    assert not set(to_apply) & applied_versions, "the plan re-applies an applied migration"
    assert to_apply == [v for v in pending if target is None or v <= target], "the plan skips a pending one"
    assert [m.version for m in plan.pending] == pending
    assert [a.version for a in plan.applied] == sorted(applied_versions)
    assert plan.ok == (not plan.problems)
