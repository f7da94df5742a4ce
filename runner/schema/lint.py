"""The safety lint `agor-db check` runs on every migration pair after the baseline.

PostgreSQL half: squawk (the PostgreSQL migration linter, PyPI ``squawk-cli``) with the checked-in
``sql/squawk.toml``, plus what squawk cannot know from one file alone: a table created earlier in the
same file is new (nothing can be locked or rewritten there), a non-transactional file may hold only
the statements that need it, and ``CONCURRENTLY`` cannot run inside a transaction.

SQLite half: the three ways a migration loses something silently there: a table rebuild that does not
copy every column, a rebuild that loses an index the PostgreSQL half keeps, ``PRAGMA foreign_keys``
(ignored inside the migration's transaction).

A file may allow a rule with a reviewed comment: ``-- agor-db: allow RULE: reason``. The reason is
mandatory; a rule agor-db does not know is an error.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..core.sqltext import Statement, blank_comments_and_strings, directives, split_statements

SQUAWK_ENV = "AGOR_SQUAWK"
SQUAWK_CONFIG = "squawk.toml"
ERROR, WARNING, INVALID = "error", "warning", "invalid"  # INVALID: the file itself is bad input (exit 2)


@dataclass(frozen=True)
class Finding:
    label: str  # postgres/0012_add_tags.sql
    line: int
    rule: str
    severity: str  # error | warning | invalid
    why: str
    rewrite: str = ""

    @property
    def text(self) -> str:
        tail = f"; instead: {self.rewrite}" if self.rewrite else ""
        return f"{self.label}:{self.line}: {self.severity} {self.rule}: {self.why}{tail}"


@dataclass(frozen=True)
class LintReport:
    findings: tuple[Finding, ...] = ()
    skipped: str | None = None  # why squawk did not run (never "clean")
    files: int = 0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity != WARNING]


# -- rules ---------------------------------------------------------------------------------------

# agor-db's own rules: (severity, why, the safe rewrite)
OWN_RULES: dict[str, tuple[str, str, str]] = {
    "concurrently-in-transaction": (
        ERROR,
        "CONCURRENTLY cannot run inside a transaction, and this file runs in one (agor-db migrate refuses it too)",
        "put '-- transactional: false' at the top and keep the file to the CONCURRENTLY statement",
    ),
    "non-transactional-mixed": (
        ERROR,
        "a '-- transactional: false' file is not rolled back: a failure halfway leaves the statements before it "
        "applied and the whole file runs again next time",
        "keep only the statements that need no transaction (… CONCURRENTLY, VACUUM, SET) here and move this one "
        "to a transactional migration of its own",
    ),
    "sqlite-rebuild-drops-columns": (
        ERROR,
        "the table rebuild does not copy every column the old and the new table share; their values are lost",
        "list every kept column in INSERT INTO new_table (...) SELECT ... FROM old_table",
    ),
    "sqlite-rebuild-drops-index": (
        ERROR,
        "DROP TABLE in the rebuild took this index with it and the PostgreSQL half keeps it (upstream lost two "
        "indexes this way in 0009)",
        "re-create the index after the rename, or drop it in the PostgreSQL half too",
    ),
    "sqlite-pragma-foreign-keys": (
        ERROR,
        "SQLite ignores PRAGMA foreign_keys inside a transaction, and every migration runs in one",
        "leave it out: agor-db switches foreign keys off around each SQLite migration and checks them before commit",
    ),
}

# squawk's rules as agor-db reports them. Rules left out of sql/squawk.toml's excluded_rules and not
# listed here are errors with squawk's own words.
SQUAWK_RULES: dict[str, tuple[str, str, str]] = {
    "adding-required-field": (
        ERROR,
        "a NOT NULL column without a default fails on a table that has rows",
        "add it nullable or with a constant DEFAULT, backfill, then SET NOT NULL in a later migration",
    ),
    "adding-not-nullable-field": (
        ERROR,
        "SET NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock",
        "ADD CONSTRAINT c CHECK (col IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT c in a later migration; then "
        "SET NOT NULL (PostgreSQL uses the valid check and skips the scan)",
    ),
    "adding-field-with-default": (
        ERROR,
        "a volatile default or a generated column rewrites the whole table under an ACCESS EXCLUSIVE lock",
        "add the column nullable, backfill in batches, then set the default",
    ),
    "adding-foreign-key-constraint": (
        ERROR,
        "a new foreign key scans the table while blocking writes to it and to the referenced table",
        "ADD CONSTRAINT ... NOT VALID here, VALIDATE CONSTRAINT in a later migration",
    ),
    "constraint-missing-not-valid": (
        ERROR,
        "a new constraint scans the whole table while it blocks writes",
        "ADD CONSTRAINT ... NOT VALID here, VALIDATE CONSTRAINT in a later migration",
    ),
    "disallowed-unique-constraint": (
        ERROR,
        "ADD ... UNIQUE builds its index under an ACCESS EXCLUSIVE lock",
        "CREATE UNIQUE INDEX CONCURRENTLY in a non-transactional migration, then ADD CONSTRAINT ... UNIQUE USING INDEX",
    ),
    "adding-serial-primary-key-field": (
        ERROR,
        "adding a primary key builds its index under an ACCESS EXCLUSIVE lock",
        "CREATE UNIQUE INDEX CONCURRENTLY first, then ADD CONSTRAINT ... PRIMARY KEY USING INDEX",
    ),
    "changing-column-type": (
        ERROR,
        "ALTER COLUMN ... TYPE usually rewrites the table under an ACCESS EXCLUSIVE lock",
        "add a new column, backfill it, switch the application, drop the old one",
    ),
    "require-concurrent-index-creation": (
        ERROR,
        "CREATE INDEX blocks writes to the table while the index builds",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS in a migration of its own with '-- transactional: false'",
    ),
    "require-concurrent-index-deletion": (
        ERROR,
        "DROP INDEX takes an ACCESS EXCLUSIVE lock on the table",
        "DROP INDEX CONCURRENTLY IF EXISTS in a migration of its own with '-- transactional: false'",
    ),
    "prefer-robust-stmts": (
        ERROR,
        "this file runs outside a transaction; if it fails halfway, the next run repeats it and this fails",
        "write it idempotently: CREATE INDEX CONCURRENTLY IF NOT EXISTS, DROP INDEX CONCURRENTLY IF EXISTS",
    ),
    "ban-drop-database": (ERROR, "a migration must never drop a database", "do it by hand, outside the migrations"),
    "ban-truncate-cascade": (
        ERROR,
        "TRUNCATE ... CASCADE empties every table that references this one",
        "name exactly the tables to empty",
    ),
    "transaction-nesting": (
        ERROR,
        "agor-db already runs the file in a transaction; BEGIN/COMMIT inside it break that",
        "leave BEGIN/COMMIT out",
    ),
    "ban-char-field": (ERROR, "char(n) pads with blanks", "use TEXT, or VARCHAR(36) for ids"),
    "ban-drop-column": (
        WARNING,
        "the running Agor may still read this column during a rolling deploy",
        "stop using it in a release first, drop it in a later one",
    ),
    "ban-drop-table": (
        WARNING,
        "the running Agor may still use this table during a rolling deploy",
        "stop using it in a release first, drop it in a later one",
    ),
    "ban-drop-not-null": (
        WARNING,
        "clients may rely on the column never being NULL",
        "make sure every reader handles NULL first",
    ),
    "renaming-column": (
        WARNING,
        "the running Agor still uses the old name during a rolling deploy",
        "add the new column, write both, switch readers, drop the old one",
    ),
    "renaming-table": (
        WARNING,
        "the running Agor still uses the old name during a rolling deploy",
        "create the new table (or a view with the old name) and switch readers first",
    ),
    "ban-drop-constraint": (
        WARNING,
        "clients may rely on the guarantee this constraint gave",
        "make sure nothing relies on it first",
    ),
}

# Every rule squawk 2.70 knows: a suppression naming one of these is valid even when the rule is excluded.
SQUAWK_KNOWN = frozenset(SQUAWK_RULES) | frozenset(
    [
        "ban-concurrent-index-creation-in-transaction",
        "prefer-bigint-over-int",
        "prefer-bigint-over-smallint",
        "prefer-identity",
        "prefer-text-field",
        "prefer-timestamp-tz",
        "require-lock-timeout",
        "require-statement-timeout",
        "require-timeout-settings",
        "require-table-schema",
        "require-enum-value-ordering",
        "identifier-too-long",
        "require-concurrent-partition-detach",
        "require-concurrent-reindex",
        "prefer-repack",
        "ban-alter-domain-with-add-constraint",
        "ban-create-domain-with-constraint",
        "ban-uncommitted-transaction",
        "unused-ignore",
        "ban-drop-view",
        "ban-drop-function",
        "ban-drop-type",
        "ban-drop-schema",
        "ban-drop-sequence",
        "ban-drop-domain",
        "ban-drop-generated-expression",
        "renaming-object",
        "ban-set-schema",
        "ban-alter-identity",
        "ban-drop-extension",
        "ban-alter-generated-expression",
        "ban-drop-index",
        "ban-set-default",
        "ban-disable-trigger",
        "ban-replica-identity",
        "ban-drop-policy",
        "ban-revoke",
        "ban-replace-view-function",
        "ban-alter-policy-condition",
        "ban-alter-policy-roles",
        "ban-create-policy",
        "ban-alter-function-options",
        "ban-alter-view-options",
        "ban-alter-role-options",
        "ban-alter-database-options",
        "ban-alter-row-level-security",
        "ban-new-write-restriction",
        "ban-add-enum-value",
        "ban-add-composite-attribute",
        "ban-add-column",
        "ban-detach-inheritance",
        "ban-alter-sequence-values",
        "ban-alter-system-options",
        "ban-alter-extension",
    ]
)
KNOWN_RULES = SQUAWK_KNOWN | frozenset(OWN_RULES)

# -- suppressions --------------------------------------------------------------------------------

_MARK = re.compile(r"--\s*agor-db:\s*(?P<body>.*)$")
_ALLOW = re.compile(r"allow\s+(?P<rule>[A-Za-z0-9_-]+)\s*(?::\s*(?P<reason>.*))?$")
_SQUAWK_IGNORE = re.compile(r"--\s*squawk-ignore", re.I)


@dataclass
class Suppressions:
    rules: dict[str, int] = field(default_factory=dict)  # rule -> line of its comment
    used: set[str] = field(default_factory=set)
    problems: list[Finding] = field(default_factory=list)

    def allows(self, rule: str) -> bool:
        if rule in self.rules:
            self.used.add(rule)
            return True
        return False


def read_suppressions(label: str, text: str) -> Suppressions:
    out = Suppressions()
    for n, line in enumerate(text.splitlines(), 1):
        if _SQUAWK_IGNORE.search(line):
            out.problems.append(
                Finding(
                    label,
                    n,
                    "suppression",
                    INVALID,
                    "squawk's own ignore comments carry no reason",
                    "-- agor-db: allow RULE: why it is safe here",
                )
            )
        m = _MARK.search(line)
        if not m:
            continue
        allow = _ALLOW.match(m.group("body").strip())
        if allow is None:
            out.problems.append(
                Finding(
                    label,
                    n,
                    "suppression",
                    INVALID,
                    f"cannot read {m.group(0).strip()!r}",
                    "-- agor-db: allow RULE: why it is safe here",
                )
            )
            continue
        rule, reason = allow.group("rule"), (allow.group("reason") or "").strip()
        if rule not in KNOWN_RULES:
            out.problems.append(
                Finding(
                    label,
                    n,
                    "suppression",
                    INVALID,
                    f"unknown rule {rule!r}",
                    "name a rule check reports (see README, 'Writing a migration')",
                )
            )
        elif not reason:
            out.problems.append(
                Finding(
                    label,
                    n,
                    "suppression",
                    INVALID,
                    f"allowing {rule} needs a reason",
                    f"-- agor-db: allow {rule}: why it is safe here",
                )
            )
        else:
            out.rules[rule] = n
    return out


def _own(label: str, line: int, rule: str) -> Finding:
    severity, why, rewrite = OWN_RULES[rule]
    return Finding(label, line, rule, severity, why, rewrite)


def _filter(findings: Iterable[Finding], allowed: Suppressions) -> list[Finding]:
    return [f for f in findings if not allowed.allows(f.rule)]


def _unused(label: str, allowed: Suppressions, checked: set[str]) -> list[Finding]:
    return [
        Finding(label, line, "suppression", WARNING, f"allows {rule}, which found nothing here", "remove it")
        for rule, line in sorted(allowed.rules.items(), key=lambda kv: kv[1])
        if rule in checked and rule not in allowed.used
    ]


# -- PostgreSQL: agor-db's own checks --------------------------------------------------------------

_NAME = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_QNAME = rf"(?:{_NAME}\s*\.\s*)?(?P<name>{_NAME})"
_CREATE_TABLE = re.compile(
    rf"^\s*CREATE\s+(?:(?:GLOBAL|LOCAL)\s+)?(?:TEMP|TEMPORARY|UNLOGGED\s+)?\s*TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?{_QNAME}",
    re.I,
)
_TARGETS = (
    re.compile(rf"^\s*ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?{_QNAME}", re.I),
    re.compile(
        rf"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?(?:{_NAME}\s+)?ON\s+"
        rf"(?:ONLY\s+)?{_QNAME}",
        re.I,
    ),
)
# Statements that need to run outside a transaction, and harmless session settings.
_NEEDS_NO_TRANSACTION = re.compile(
    r"^\s*(?:(?:CREATE\s+(?:UNIQUE\s+)?INDEX|DROP\s+INDEX|REINDEX\b[^;]*?)\s+CONCURRENTLY\b"
    r"|ALTER\s+TABLE\b[^;]*\bDETACH\s+PARTITION\b[^;]*\bCONCURRENTLY\b|VACUUM\b|SET\b|RESET\b)",
    re.I,
)
_CONCURRENTLY = re.compile(r"\bCONCURRENTLY\b", re.I)


def table_name(raw: str) -> str:
    return raw[1:-1].replace('""', '"') if raw.startswith('"') else raw.lower()


def created_before(statements: tuple[Statement, ...], line: int) -> set[str]:
    """Tables the file creates in statements before the one at ``line``."""
    out: set[str] = set()
    for s in statements:
        if s.line >= line:
            break
        m = _CREATE_TABLE.match(blank_comments_and_strings(s.sql))
        if m:
            out.add(table_name(m.group("name")))
    return out


def target_of(sql: str) -> str | None:
    code = blank_comments_and_strings(sql)
    for pattern in _TARGETS:
        m = pattern.match(code)
        if m:
            return table_name(m.group("name"))
    return None


def statement_at(statements: tuple[Statement, ...], line: int) -> Statement | None:
    found = None
    for s in statements:
        if s.line <= line:
            found = s
    return found


def on_new_table(statements: tuple[Statement, ...], line: int) -> bool:
    s = statement_at(statements, line)
    if s is None:
        return False
    target = target_of(s.sql)
    return target is not None and target in created_before(statements, s.line)


def transaction_rules(label: str, statements: tuple[Statement, ...], transactional: bool) -> list[Finding]:
    out: list[Finding] = []
    for s in statements:
        code = blank_comments_and_strings(s.sql)
        if transactional and _CONCURRENTLY.search(code):
            out.append(_own(label, s.line, "concurrently-in-transaction"))
        elif not transactional and not _NEEDS_NO_TRANSACTION.match(code):
            out.append(_own(label, s.line, "non-transactional-mixed"))
    return out


# -- PostgreSQL: squawk ----------------------------------------------------------------------------


def find_squawk() -> str | None:
    """$AGOR_SQUAWK, else the squawk beside this Python (the virtualenv's), else the PATH's."""
    chosen = os.environ.get(SQUAWK_ENV)
    if chosen:
        return chosen if os.access(chosen, os.X_OK) and Path(chosen).is_file() else None
    beside = Path(sys.executable).parent / "squawk"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("squawk")


def squawk_config(root: Path) -> Path:
    own = root / SQUAWK_CONFIG
    if own.is_file():
        return own
    from ..core.source import bundled_sql_root

    return bundled_sql_root() / SQUAWK_CONFIG


@dataclass(frozen=True)
class SquawkHit:
    path: str
    line: int  # 1-based
    rule: str
    message: str
    help: str


class SquawkFailed(Exception):
    pass


def run_squawk(binary: str, config: Path, paths: list[Path], *, in_transaction: bool) -> list[SquawkHit]:
    if not paths:
        return []
    args = [binary, "--reporter", "json", "-c", str(config)]
    args.append("--assume-in-transaction" if in_transaction else "--no-assume-in-transaction")
    try:
        proc = subprocess.run([*args, *map(str, paths)], capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SquawkFailed(f"{binary} could not run: {exc}") from None
    try:
        raw = json.loads(proc.stdout or "[]")
    except ValueError:
        said = " ".join((proc.stderr or proc.stdout).split())[:300]
        raise SquawkFailed(f"squawk exited {proc.returncode} without a report: {said}") from None
    return [
        SquawkHit(str(d["file"]), int(d["line"]) + 1, str(d["rule_name"]), str(d["message"]), str(d.get("help") or ""))
        for d in raw
    ]


def _squawk_finding(label: str, hit: SquawkHit) -> Finding:
    if hit.rule == "syntax-error":
        return Finding(label, hit.line, "syntax-error", INVALID, f"the parser says: {hit.message}")
    if hit.rule in SQUAWK_RULES:
        severity, why, rewrite = SQUAWK_RULES[hit.rule]
        return Finding(label, hit.line, hit.rule, severity, why, rewrite)
    return Finding(label, hit.line, hit.rule, ERROR, hit.message.rstrip("."), hit.help.rstrip("."))


@dataclass(frozen=True)
class PgFile:
    label: str
    path: Path
    text: str
    statements: tuple[Statement, ...]
    transactional: bool


def _read_pg(label: str, path: Path) -> PgFile | None:
    try:
        text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
    except (OSError, UnicodeDecodeError):
        return None  # the folder lint and the apply step report an unreadable file
    transactional = directives(text).get("transactional", "true").strip().lower() != "false"
    return PgFile(label, path, text, split_statements(text), transactional)


def lint_postgres(root: Path, files: list[tuple[str, Path]]) -> LintReport:
    """squawk and agor-db's own rules on each (label, path); ``files`` are the post-baseline ones."""
    parsed = [f for f in (_read_pg(label, path) for label, path in files) if f is not None]
    if not parsed:
        return LintReport()
    own: dict[str, list[Finding]] = {f.label: transaction_rules(f.label, f.statements, f.transactional) for f in parsed}
    hits: dict[str, list[SquawkHit]] = {f.label: [] for f in parsed}
    skipped = None
    binary = find_squawk()
    if binary is None:
        where = os.environ.get(SQUAWK_ENV) or "PATH"
        skipped = f"squawk not found ({SQUAWK_ENV} or {where}); install squawk-cli"
    else:
        by_path = {str(f.path.resolve()): f.label for f in parsed}
        try:
            for mode in (True, False):
                group = [f.path for f in parsed if f.transactional is mode]
                for hit in run_squawk(binary, squawk_config(root), group, in_transaction=mode):
                    label = by_path.get(str(Path(hit.path).resolve()))
                    if label is not None:
                        hits[label].append(hit)
        except SquawkFailed as exc:
            skipped = str(exc)
    findings: list[Finding] = []
    for f in parsed:
        allowed = read_suppressions(f.label, f.text)
        syntax = [h for h in hits[f.label] if h.rule == "syntax-error"][:1]  # the rest follow from the first
        from_squawk = [_squawk_finding(f.label, h) for h in syntax] + [
            _squawk_finding(f.label, h)
            for h in hits[f.label]
            if h.rule != "syntax-error" and not on_new_table(f.statements, h.line)
        ]
        from_squawk = [h for h in from_squawk if h.severity == INVALID] + _filter(
            (h for h in from_squawk if h.severity != INVALID), allowed
        )
        checked = set(OWN_RULES) | (set(SQUAWK_KNOWN) if skipped is None else set())
        findings += allowed.problems + _filter(own[f.label], allowed) + from_squawk
        findings += _unused(f.label, allowed, checked)
    findings.sort(key=lambda x: (x.label, x.line, x.rule))
    return LintReport(tuple(findings), skipped, len(parsed))


# -- SQLite ----------------------------------------------------------------------------------------

_PRAGMA_FK = re.compile(r"\bPRAGMA\s+(?:\w+\s*\.\s*)?foreign_keys\b", re.I)
_DROP_TABLE = re.compile(rf"^\s*DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?{_QNAME}", re.I)
_RENAME = re.compile(rf"^\s*ALTER\s+TABLE\s+{_QNAME}\s+RENAME\s+TO\s+(?P<to>{_NAME})", re.I)
_INSERT = re.compile(
    rf"^\s*(?:INSERT|REPLACE)(?:\s+OR\s+\w+)?\s+INTO\s+{_QNAME}\s*(?:\((?P<cols>[^)]*)\))?\s*SELECT\b(?P<rest>.*)$",
    re.I | re.S,
)


@dataclass(frozen=True)
class TableShape:
    columns: tuple[str, ...]
    indexes: dict[str, tuple[str, ...]]  # explicit index name -> its columns


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _shapes(conn: object) -> dict[str, TableShape]:
    """Each table's columns and its explicit (CREATE INDEX) indexes with their columns."""
    cur = conn.execute  # type: ignore[attr-defined]
    tables = [r[0] for r in cur("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()]
    out = {}
    for t in tables:
        cols = tuple(r[1] for r in cur(f"PRAGMA table_info({_quoted(t)})").fetchall())
        names = cur(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", (t,)
        ).fetchall()
        idx = {n: tuple(str(r[2]) for r in cur(f"PRAGMA index_info({_quoted(n)})").fetchall()) for (n,) in names}
        out[t.lower()] = TableShape(cols, idx)
    return out


def _drops_index(pg_text: str, index: str) -> bool:
    code = blank_comments_and_strings(pg_text)
    pattern = (
        rf'\bDROP\s+INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+EXISTS\s+)?(?:{_NAME}\s*\.\s*)?"?{re.escape(index)}"?(?!\w)'
    )
    return re.search(pattern, code, re.I) is not None


@dataclass(frozen=True)
class Rebuild:
    table: str
    new: str  # the table renamed onto ``table``
    drop: Statement
    copy: tuple[Statement, re.Match[str]] | None  # INSERT INTO new ... SELECT


def find_rebuilds(statements: tuple[Statement, ...]) -> list[Rebuild]:
    """create-copy-drop-rename sequences: DROP TABLE t, ALTER TABLE n RENAME TO t, INSERT INTO n ... SELECT."""
    dropped: dict[str, Statement] = {}
    renamed: dict[str, str] = {}
    inserts: dict[str, tuple[Statement, re.Match[str]]] = {}
    for s in statements:
        code = blank_comments_and_strings(s.sql)
        if m := _DROP_TABLE.match(code):
            dropped.setdefault(table_name(m.group("name")), s)
        elif m := _RENAME.match(code):
            renamed[table_name(m.group("to"))] = table_name(m.group("name"))
        elif m := _INSERT.match(code):
            inserts.setdefault(table_name(m.group("name")), (s, m))
    return [Rebuild(t, renamed[t], drop, inserts.get(renamed[t])) for t, drop in dropped.items() if t in renamed]


def rebuild_rules(
    label: str,
    statements: tuple[Statement, ...],
    before: dict[str, TableShape],
    after: dict[str, TableShape],
    pg_text: str | None,
) -> list[Finding]:
    """Check each rebuild of a table that existed before the file: every kept column copied, no index lost."""
    out: list[Finding] = []
    for r in find_rebuilds(statements):
        if r.table not in before or r.table not in after:
            continue
        old, new = before[r.table], after[r.table]
        _sev, why, rewrite = OWN_RULES["sqlite-rebuild-drops-columns"]
        if r.copy is None:
            why = f"the rebuild of {r.table} copies no rows into {r.new}"
            out.append(Finding(label, r.drop.line, "sqlite-rebuild-drops-columns", ERROR, why, rewrite))
        elif r.copy[1].group("cols") is not None:
            listed = {table_name(c.strip()).lower() for c in r.copy[1].group("cols").split(",")}
            missing = [c for c in old.columns if c in new.columns and c.lower() not in listed]
            if missing:
                why = f"the rebuild of {r.table} does not copy {', '.join(missing)}; their values are lost"
                out.append(Finding(label, r.copy[0].line, "sqlite-rebuild-drops-columns", ERROR, why, rewrite))
        _sev, why, rewrite = OWN_RULES["sqlite-rebuild-drops-index"]
        for index in sorted(set(old.indexes) - set(new.indexes)):
            if not set(old.indexes[index]) <= set(new.columns):
                continue  # its column went away with the rebuild: the pair's column drop decides, not the index
            if pg_text is None or not _drops_index(pg_text, index):
                text = f"index {index} of {r.table} is lost: {why}"
                out.append(Finding(label, r.drop.line, "sqlite-rebuild-drops-index", ERROR, text, rewrite))
    return out


def _is_parse_error(message: str) -> bool:
    return "syntax error" in message or "incomplete input" in message or "unrecognized token" in message


def lint_sqlite(files: list[tuple[int, str, Path]], baseline: int, pg_folder: Path) -> LintReport:
    """Build the SQLite history step by step in memory; lint each (version, label, path) after ``baseline``
    against the schema before it. Stops quietly where a file fails for any reason but its syntax (the
    apply step of check reports that)."""
    import apsw

    conn = apsw.Connection(":memory:")
    findings: list[Finding] = []
    linted = 0
    try:
        for version, label, path in files:
            try:
                text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
            except (OSError, UnicodeDecodeError):
                break
            statements = split_statements(text)
            before = _shapes(conn) if version > baseline else {}
            failed = _execute(conn, statements)
            if version <= baseline:
                if failed:
                    break
                continue
            linted += 1
            if failed is not None:
                line, message = failed
                if _is_parse_error(message):
                    findings.append(Finding(label, line, "syntax-error", INVALID, f"the parser says: {message}"))
                break
            pg = pg_folder / path.name
            pg_text = pg.read_text(encoding="utf-8", errors="replace") if pg.is_file() else None
            allowed = read_suppressions(label, text)
            own = [
                _own(label, s.line, "sqlite-pragma-foreign-keys")
                for s in statements
                if _PRAGMA_FK.search(blank_comments_and_strings(s.sql))
            ]
            own += rebuild_rules(label, statements, before, _shapes(conn), pg_text)
            findings += allowed.problems + _filter(own, allowed) + _unused(label, allowed, set(OWN_RULES))
    finally:
        conn.close()
    findings.sort(key=lambda x: (x.label, x.line, x.rule))
    return LintReport(tuple(findings), None, linted)


def _execute(conn: object, statements: tuple[Statement, ...]) -> tuple[int, str] | None:
    import apsw

    for s in statements:
        try:
            conn.execute(s.sql).fetchall()  # type: ignore[attr-defined]
        except apsw.Error as exc:
            return s.line, str(exc)
    return None


def lint_pairs(
    root: Path, postgres: list[tuple[str, Path]], sqlite: list[tuple[int, str, Path]], baseline: int
) -> LintReport:
    """Both halves: ``postgres`` holds the post-baseline files, ``sqlite`` the whole history in order
    (the SQLite rules need the schema each file starts from)."""
    pg = lint_postgres(root, postgres)
    lite = lint_sqlite(sqlite, baseline, root / "postgres") if sqlite else LintReport()
    findings = sorted(pg.findings + lite.findings, key=lambda x: (x.label, x.line, x.rule))
    return LintReport(tuple(findings), pg.skipped, pg.files + lite.files)
