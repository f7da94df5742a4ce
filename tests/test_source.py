"""Reading migration files: yoyo's directives, statement splitting with line numbers, checksums."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agor_db.core.errors import MigrationFileError
from agor_db.core.source import checksum, list_migrations, parse
from agor_db.core.sqltext import directives


def _one(tmp_path: Path, body: str | bytes, name: str = "0001_x.sql") -> Path:
    folder = tmp_path / "sqlite"
    folder.mkdir(exist_ok=True)
    path = folder / name
    if isinstance(body, bytes):
        path.write_bytes(body)
    else:
        path.write_text(body)
    return folder


def test_statements_keep_their_first_line_and_bodies(tmp_path: Path) -> None:
    body = (
        "-- transactional: false\n-- depends: 0000_base\n-- what it does\n\n"
        "CREATE FUNCTION f() RETURNS trigger AS $$\nBEGIN\n  NEW.x := 1;\n  RETURN NEW;\nEND;\n$$ LANGUAGE plpgsql;\n"
        "CREATE TRIGGER tr AFTER INSERT ON a BEGIN UPDATE b SET x = 1; DELETE FROM c; END;\n"
        "SELECT ';'; SELECT 'it''s';\n"
    )
    folder = _one(tmp_path, body)
    _one(tmp_path, "SELECT 1;\n", "0000_base.sql")
    migrations = list_migrations(folder)
    script = parse(migrations[1], {m.id for m in migrations})
    assert not script.transactional
    assert script.depends == ("0000_base",)
    assert [(s.line, s.sql.split()[0]) for s in script.statements] == [
        (5, "CREATE"),
        (11, "CREATE"),
        (12, "SELECT"),
        (12, "SELECT"),
    ]
    assert script.statements[0].sql.endswith("$$ LANGUAGE plpgsql;")


def test_rollback_files_and_other_files_are_not_migrations(tmp_path: Path) -> None:
    folder = _one(tmp_path, "SELECT 1;\n")
    (folder / "0001_x.rollback.sql").write_text("SELECT 2;\n")
    (folder / "README.md").write_text("docs")
    assert [m.label for m in list_migrations(folder)] == ["0001_x.sql"]


def test_checksum_ignores_bom_and_crlf_only() -> None:
    base = checksum(b"SELECT 1;\nSELECT 2;\n")
    assert checksum(b"\xef\xbb\xbfSELECT 1;\r\nSELECT 2;\r\n") == base
    assert checksum(b"SELECT 1;\rSELECT 2;\r") != base  # a lone CR is content
    assert checksum(b"SELECT 1;\nSELECT 2;") != base


def test_bom_file_parses_without_the_bom(tmp_path: Path) -> None:
    folder = _one(tmp_path, b"\xef\xbb\xbfCREATE TABLE a (id INTEGER);\r\n")
    script = parse(list_migrations(folder)[0])
    assert script.statements[0].sql == "CREATE TABLE a (id INTEGER);"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "contains no SQL statements"),
        ("-- a\n/* b */\n", "contains no SQL statements"),
        (b"SELECT '\xff';\n", "is not valid UTF-8 (byte 8, line 1)"),
        ("-- transactional: sometimes\nSELECT 1;\n", "must be true or false"),
    ],
)
def test_malformed_files(tmp_path: Path, body: str | bytes, message: str) -> None:
    folder = _one(tmp_path, body)
    with pytest.raises(MigrationFileError) as err:
        parse(list_migrations(folder)[0], set())
    assert message in str(err.value)


# Lines a migration header is made of, and what follows it: directives (either name, odd spacing, empty or
# repeated), comments, blank lines (with whitespace yoyo's \s takes), SQL, and lines that only look like them.
HEADER_LINES = st.one_of(
    st.builds(
        lambda pad, name, gap, value: f"{pad}--{gap}{name}{gap}:{gap}{value}",
        st.sampled_from(["", " ", "\t", "\x0b", "\u3000"]),
        st.sampled_from(["transactional", "depends", "Transactional", "depend", "transactional2"]),
        st.sampled_from(["", " ", "  \t"]),
        st.sampled_from(["false", "true", " TRUE ", "0001_a 0002_b", "", "x: y", "maybe\t"]),
    ),
    st.sampled_from(["", " ", "\t\x0c", "--", "-- a comment", "  -- depends 0001_a", "-", "/* c */", "--depends:a"]),
    st.sampled_from(["SELECT 1;", "CREATE TABLE a (id INTEGER);", "-- transactional: false; SELECT 1", "x -- y"]),
    st.text(st.sampled_from(" -:\tadeflnprstu\x0b"), max_size=24),
)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(HEADER_LINES, max_size=8), ends=st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=1))
@example(lines=["-- transactional: false"], ends=["\r"])  # a file's only line end a trailing CR: yoyo sees CRLF
@example(lines=["-- depends: a", "-- depends: b", "SELECT 1;"], ends=["\r", "\r\n"])
def test_directives_are_read_as_yoyo_reads_them(lines: list[str], ends: list[str]) -> None:
    """agor-db reads the directives itself (importing yoyo costs every run ~40 ms): the same names and values
    as yoyo's own parser on any header, any mix of line endings included."""
    from yoyo.migrations import parse_metadata_from_sql_comments

    text = "".join(line + ends[i % len(ends)] for i, line in enumerate(lines))
    for candidate in (text, text.rstrip("\r\n")):
        assert directives(candidate) == parse_metadata_from_sql_comments(candidate)[0], repr(candidate)
