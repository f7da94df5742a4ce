"""The safety lint of migration pairs after the baseline: every rule fires on a minimal bad pair and
stays quiet on its safe rewrite; suppressions need a reason and a known rule; unreadable SQL is bad
input. Runs the real squawk (skips, saying so, where squawk-cli is not installed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agor_db.schema.lint import INVALID, WARNING, Finding, find_squawk, lint_pairs
from conftest import REPO

SQL = REPO / "sql"
BASELINE = 10
NAME = "0011_change.sql"

needs_squawk = pytest.mark.skipif(find_squawk() is None, reason="squawk (PyPI squawk-cli) is not installed")

# boards in SQLite after 0010, rebuilt with one more column
NEW_BOARDS = (
    "CREATE TABLE __new_boards (board_id text(36) PRIMARY KEY NOT NULL, created_at integer NOT NULL, "
    "updated_at integer, created_by text(36) DEFAULT 'anonymous' NOT NULL, name text NOT NULL, slug text, "
    "data text NOT NULL, color text);\n"
)
ALL_COLUMNS = "board_id, created_at, updated_at, created_by, name, slug, data"
DROP_RENAME = "DROP TABLE boards;\nALTER TABLE __new_boards RENAME TO boards;\n"
BOARD_INDEXES = (
    "CREATE INDEX boards_name_idx ON boards (name);\n"
    "CREATE INDEX boards_slug_idx ON boards (slug);\n"
    "CREATE UNIQUE INDEX boards_slug_unique ON boards (slug);\n"
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A copy of the shipped folders (the archived SQLite history, the baseline, squawk.toml)."""
    dst = tmp_path / "sql"
    shutil.copytree(SQL, dst)
    return dst


def lint(root: Path, *, postgres: str = "SELECT 1;\n", sqlite: str = "SELECT 1;\n") -> list[Finding]:
    (root / "postgres" / NAME).write_text(postgres)
    (root / "sqlite" / NAME).write_text(sqlite)
    lite = sorted((root / "sqlite").glob("*.sql"))
    report = lint_pairs(
        root,
        [(f"postgres/{NAME}", root / "postgres" / NAME)],
        [(int(p.name[:4]), f"sqlite/{p.name}", p) for p in lite],
        BASELINE,
    )
    assert report.skipped is None or find_squawk() is None, report.skipped
    return list(report.findings)


def rules(found: list[Finding]) -> list[tuple[str, int, str]]:
    return [(f.rule, f.line, f.severity) for f in found]


# (rule, bad PostgreSQL half, its line, the safe rewrite)
SQUAWK_CASES = [
    (
        "adding-required-field",
        "ALTER TABLE boards ADD COLUMN color TEXT NOT NULL;\n",
        1,
        "ALTER TABLE boards ADD COLUMN color TEXT NOT NULL DEFAULT 'blue';\n",
    ),
    (
        "require-concurrent-index-creation",
        "-- makes lookups fast\nCREATE INDEX boards_created_idx ON boards (created_at);\n",
        2,
        "-- transactional: false\nCREATE INDEX CONCURRENTLY IF NOT EXISTS boards_created_idx ON boards (created_at);\n",
    ),
    (
        "adding-foreign-key-constraint",
        "ALTER TABLE boards ADD CONSTRAINT boards_creator_fk FOREIGN KEY (created_by) REFERENCES users (user_id);\n",
        1,
        "ALTER TABLE boards ADD CONSTRAINT boards_creator_fk FOREIGN KEY (created_by) REFERENCES users (user_id) "
        "NOT VALID;\n",
    ),
    (
        "adding-not-nullable-field",
        "ALTER TABLE boards ALTER COLUMN slug SET NOT NULL;\n",
        1,
        "ALTER TABLE boards ADD CONSTRAINT boards_slug_nn CHECK (slug IS NOT NULL) NOT VALID;\n",
    ),
    (
        "changing-column-type",
        "ALTER TABLE boards ALTER COLUMN name TYPE VARCHAR(200);\n",
        1,
        "ALTER TABLE boards ADD COLUMN title TEXT;\n",
    ),
    (
        "require-concurrent-index-deletion",
        "DROP INDEX boards_name_idx;\n",
        1,
        "-- transactional: false\nDROP INDEX CONCURRENTLY IF EXISTS boards_name_idx;\n",
    ),
]


@needs_squawk
@pytest.mark.parametrize(("rule", "bad", "line", "safe"), SQUAWK_CASES, ids=[c[0] for c in SQUAWK_CASES])
def test_squawk_rule_fires_on_the_bad_pair_and_not_on_its_rewrite(
    root: Path, rule: str, bad: str, line: int, safe: str
) -> None:
    found = lint(root, postgres=bad)
    assert (rule, line, "error") in rules(found), found
    assert lint(root, postgres=safe) == []


@needs_squawk
def test_a_finding_is_one_line_with_file_line_rule_why_and_rewrite(root: Path) -> None:
    found = lint(root, postgres="ALTER TABLE boards ADD COLUMN color TEXT NOT NULL;\n")
    assert [f.text for f in found] == [
        f"postgres/{NAME}:1: error adding-required-field: a NOT NULL column without a default fails on a table "
        "that has rows; instead: add it nullable or with a constant DEFAULT, backfill, then SET NOT NULL in a "
        "later migration"
    ]


@needs_squawk
def test_warnings_are_reported_but_are_not_errors(root: Path) -> None:
    found = lint(root, postgres="ALTER TABLE boards DROP COLUMN slug;\n")
    assert rules(found) == [("ban-drop-column", 1, WARNING)]


@needs_squawk
def test_a_table_created_earlier_in_the_same_file_is_not_existing(root: Path) -> None:
    statements = (
        "ALTER TABLE {t} ADD COLUMN n BIGINT NOT NULL;\n"
        "ALTER TABLE {t} ALTER COLUMN name TYPE VARCHAR(100);\n"
        "CREATE INDEX {t}_name_idx ON {t} (name);\n"
        "ALTER TABLE {t} ADD CONSTRAINT {t}_fk FOREIGN KEY (n) REFERENCES {t} (n);\n"
    )
    create = "CREATE TABLE tags (id VARCHAR(36) PRIMARY KEY, name TEXT);\n"
    assert lint(root, postgres=create + statements.format(t="tags")) == []
    # the same statements on a table the earlier migrations built are flagged
    found = rules(lint(root, postgres=create + statements.format(t="boards")))
    assert [r[:2] for r in found if r[2] == "error"][:3] == [
        ("adding-required-field", 2),
        ("changing-column-type", 3),
        ("require-concurrent-index-creation", 4),
    ]


def test_concurrently_in_a_transactional_file(root: Path) -> None:
    bad = "CREATE INDEX CONCURRENTLY IF NOT EXISTS boards_created_idx ON boards (created_at);\n"
    assert ("concurrently-in-transaction", 1, "error") in rules(lint(root, postgres=bad))
    assert lint(root, postgres="-- transactional: false\n" + bad) == []


def test_non_transactional_file_holds_only_what_needs_it(root: Path) -> None:
    head = "-- transactional: false\nSET lock_timeout = '5s';\n"
    index = "CREATE INDEX CONCURRENTLY IF NOT EXISTS boards_created_idx ON boards (created_at);\n"
    found = lint(root, postgres=head + index + "ALTER TABLE boards ADD COLUMN color TEXT;\n")
    assert ("non-transactional-mixed", 4, "error") in rules(found)
    assert [r for r in rules(found) if r[0] == "non-transactional-mixed"] == [("non-transactional-mixed", 4, "error")]
    assert [r for r in rules(lint(root, postgres=head + index)) if r[2] != WARNING] == []


# -- SQLite half -----------------------------------------------------------------------------------


def test_rebuild_that_does_not_copy_every_column(root: Path) -> None:
    partial = "board_id, created_at, updated_at, created_by, name, data"
    bad = NEW_BOARDS + f"INSERT INTO __new_boards ({partial}) SELECT {partial} FROM boards;\n" + DROP_RENAME
    found = lint(root, sqlite=bad + BOARD_INDEXES)
    assert [f.text for f in found] == [
        f"sqlite/{NAME}:2: error sqlite-rebuild-drops-columns: the rebuild of boards does not copy slug; their "
        "values are lost; instead: list every kept column in INSERT INTO new_table (...) SELECT ... FROM old_table"
    ]
    no_copy = NEW_BOARDS + DROP_RENAME + BOARD_INDEXES
    assert rules(lint(root, sqlite=no_copy)) == [("sqlite-rebuild-drops-columns", 2, "error")]
    good = NEW_BOARDS + f"INSERT INTO __new_boards ({ALL_COLUMNS}) SELECT {ALL_COLUMNS} FROM boards;\n" + DROP_RENAME
    assert lint(root, sqlite=good + BOARD_INDEXES) == []
    # a column the new table leaves out on purpose is not "lost"
    without_slug = NEW_BOARDS.replace(" slug text,", "")
    cols = ALL_COLUMNS.replace(" slug,", "")
    dropped = without_slug + f"INSERT INTO __new_boards ({cols}) SELECT {cols} FROM boards;\n" + DROP_RENAME
    found = lint(
        root,
        sqlite=dropped + "CREATE INDEX boards_name_idx ON boards (name);\n",
        postgres="ALTER TABLE boards DROP COLUMN slug;  -- drops its two indexes too\n",
    )
    assert [f for f in found if f.label.startswith("sqlite/")] == []


def test_rebuild_that_loses_an_index_the_postgres_half_keeps(root: Path) -> None:
    copy = NEW_BOARDS + f"INSERT INTO __new_boards ({ALL_COLUMNS}) SELECT {ALL_COLUMNS} FROM boards;\n" + DROP_RENAME
    partial_indexes = BOARD_INDEXES.replace("CREATE INDEX boards_slug_idx ON boards (slug);\n", "")
    found = lint(root, sqlite=copy + partial_indexes)
    assert [f.text for f in found] == [
        f"sqlite/{NAME}:3: error sqlite-rebuild-drops-index: index boards_slug_idx of boards is lost: DROP TABLE in "
        "the rebuild took this index with it and the PostgreSQL half keeps it (upstream lost two indexes this way "
        "in 0009); instead: re-create the index after the rename, or drop it in the PostgreSQL half too"
    ]
    # the pair drops it on purpose on both sides: quiet (the PostgreSQL drop gets squawk's own say)
    both = lint(root, sqlite=copy + partial_indexes, postgres="DROP INDEX IF EXISTS boards_slug_idx;\n")
    assert [f for f in both if f.label.startswith("sqlite/")] == []


def test_pragma_foreign_keys_inside_the_file(root: Path) -> None:
    found = lint(root, sqlite="-- rebuild\nPRAGMA foreign_keys = OFF;\nALTER TABLE boards ADD color text;\n")
    assert rules(found) == [("sqlite-pragma-foreign-keys", 2, "error")]
    assert lint(root, sqlite="-- rebuild\nALTER TABLE boards ADD color text;\n") == []


def test_archived_history_is_not_linted(root: Path) -> None:
    """0003, 0004 and 0009 rebuild tables the upstream way (0009 loses two indexes): that is history."""
    assert lint(root) == []


# -- suppressions ----------------------------------------------------------------------------------


def test_a_suppression_with_a_reason_allows_the_rule(root: Path) -> None:
    pragma = "PRAGMA foreign_keys = OFF;\nALTER TABLE boards ADD color text;\n"
    allowed = "-- agor-db: allow sqlite-pragma-foreign-keys: documents the intent for readers\n"
    assert lint(root, sqlite=allowed + pragma) == []


def test_a_suppression_without_a_reason_is_refused_and_allows_nothing(root: Path) -> None:
    pragma = "PRAGMA foreign_keys = OFF;\n"
    for comment in (
        "-- agor-db: allow sqlite-pragma-foreign-keys\n",
        "-- agor-db: allow sqlite-pragma-foreign-keys:  \n",
    ):
        found = lint(root, sqlite=comment + pragma)
        assert rules(found) == [("suppression", 1, INVALID), ("sqlite-pragma-foreign-keys", 2, "error")]
        assert "allowing sqlite-pragma-foreign-keys needs a reason" in found[0].text


def test_a_suppression_naming_an_unknown_rule_is_an_error(root: Path) -> None:
    found = lint(root, sqlite="-- agor-db: allow no-such-rule: because\nSELECT 1;\n")
    assert rules(found) == [("suppression", 1, INVALID)]
    assert "unknown rule 'no-such-rule'" in found[0].text
    found = lint(root, postgres="-- agor-db: permit everything\nSELECT 1;\n")
    assert rules(found) == [("suppression", 1, INVALID)]


@needs_squawk
def test_squawk_suppressions_need_the_reviewed_form(root: Path) -> None:
    index = "CREATE INDEX boards_created_idx ON boards (created_at);\n"
    reason = "-- agor-db: allow require-concurrent-index-creation: boards holds a few rows per team\n"
    assert lint(root, postgres=reason + index) == []
    found = lint(root, postgres="-- squawk-ignore require-concurrent-index-creation\n" + index)
    assert ("suppression", 1, INVALID) in rules(found)
    unused = lint(root, postgres=reason + "ALTER TABLE boards ADD COLUMN color TEXT;\n")
    assert rules(unused) == [("suppression", 1, WARNING)]


# -- unreadable SQL --------------------------------------------------------------------------------


@needs_squawk
def test_postgres_file_the_parser_cannot_read(root: Path) -> None:
    found = lint(root, postgres="-- broken\nALTER TABLE boards ADD COLUMN (;\n")
    assert found and all(f.rule == "syntax-error" and f.severity == INVALID for f in found)
    assert found[0].line == 2 and "the parser says: " in found[0].text


def test_sqlite_file_the_parser_cannot_read(root: Path) -> None:
    found = lint(root, sqlite="-- broken\nALTER TABLE boards ADD;\n")
    assert rules(found) == [("syntax-error", 2, INVALID)]
    assert 'the parser says: near ";": syntax error' in found[0].text
