"""The pre-flight findings of `agor-db copy`: bad values grouped by table and kind, and policy changes.

The scan shares the copier's one streaming pass (see run.py): rows that a SQLite-side test flags
are examined here in Python, problems are collected for every row, and at the end the copy either
commits or rolls back with this report. Key-level checks (orphans, duplicates) are plain SQL.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import AgorDbError
from .convert import KIND_TITLES, Issue
from .target import Pair, SourceTable, Table, UniqueKey, quote

SHOW_PER_GROUP = 10  # shown on screen per (table, kind)


class BadData(AgorDbError):
    """The source holds values the target cannot take; nothing was written."""


@dataclass(frozen=True)
class Finding:
    table: str
    key: str  # the row's primary key as "col=value, ..." (or rowid)
    issue: Issue


@dataclass(frozen=True)
class Change:
    table: str
    key: str
    column: str
    action: str


@dataclass
class Group:
    count: int = 0
    items: list[Any] = field(default_factory=list)

    def add(self, item: Any) -> None:
        self.count += 1
        self.items.append(item)  # every one: --json lists them all


class Report:
    def __init__(self) -> None:
        self.problems: dict[tuple[str, str], Group] = defaultdict(Group)
        self.changes: dict[tuple[str, str], Group] = defaultdict(Group)
        self.census: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def problem_count(self) -> int:
        return sum(g.count for g in self.problems.values())

    @property
    def change_count(self) -> int:
        return sum(g.count for g in self.changes.values())

    def problem(self, table: str, key: str, issue: Issue) -> None:
        self.problems[(table, issue.kind)].add(Finding(table, key, issue))
        if issue.kind == "storage_class":
            self.census[(table, issue.column)][issue.detail.split(" in ")[0]] += 1

    def change(self, table: str, key: str, column: str, action: str) -> None:
        self.changes[(table, action.split(" (")[0].split(":")[0])].add(Change(table, key, column, action))

    # -- rendering ----------------------------------------------------------------------------

    def problem_lines(self) -> list[str]:
        lines: list[str] = []
        for table in sorted({t for t, _ in self.problems}):
            total = sum(g.count for (t, _), g in self.problems.items() if t == table)
            lines.append(f"{table}: {total} problem(s)")
            for (t, kind), group in sorted(self.problems.items()):
                if t != table:
                    continue
                lines.append(f"  {KIND_TITLES.get(kind, kind)}: {group.count}")
                for f in group.items[:SHOW_PER_GROUP]:
                    detail = f" ({f.issue.detail})" if f.issue.detail else ""
                    lines.append(f"    - {f.key}: {f.issue.column} = {f.issue.value}{detail}")
                if group.count > SHOW_PER_GROUP:
                    lines.append(f"    ... and {group.count - SHOW_PER_GROUP} more (all of them: --json)")
            for (t, column), classes in sorted(self.census.items()):
                if t == table:
                    counts = ", ".join(f"{n} {cls}" for cls, n in sorted(classes.items()))
                    lines.append(f"  storage classes found in {column} besides the expected one: {counts}")
        return lines

    def change_lines(self) -> list[str]:
        lines: list[str] = []
        for (table, action), group in sorted(self.changes.items()):
            lines.append(f"{table}: {action}: {group.count} row(s)")
            for c in group.items[:SHOW_PER_GROUP]:
                lines.append(f"    - {c.key}: {c.column}: {c.action}")
            if group.count > SHOW_PER_GROUP:
                lines.append(f"    ... and {group.count - SHOW_PER_GROUP} more (all of them: --json)")
        return lines

    def as_dict(self) -> dict[str, Any]:
        problems: dict[str, dict[str, Any]] = defaultdict(dict)
        for (table, kind), g in sorted(self.problems.items()):
            problems[table][kind] = {
                "count": g.count,
                "rows": [
                    {"key": f.key, "column": f.issue.column, "value": f.issue.value, "detail": f.issue.detail}
                    for f in g.items
                ],
            }
        changes: dict[str, dict[str, Any]] = defaultdict(dict)
        for (table, action), g in sorted(self.changes.items()):
            changes[table][action] = {
                "count": g.count,
                "rows": [{"key": c.key, "column": c.column, "action": c.action} for c in g.items],
            }
        return {"problems": dict(problems), "changes": dict(changes)}

    def error(self, hint_policies: bool = True) -> BadData:
        kinds = {k for _, k in self.problems}
        flags = []
        for kind, flag in (
            ("orphan", "--orphans=null|drop"),
            ("nul", "--nul=strip"),
            ("invalid_json", "--invalid-json=null|drop"),
            ("invalid_utf8", "--invalid-utf8=replace"),
            ("duplicate", "--duplicates=drop"),
        ):
            if kind in kinds:
                fixes = {f.issue.fix for (_, k), g in self.problems.items() if k == kind for f in g.items}
                flags.append(fixes.pop() if len(fixes) == 1 and "" not in fixes else flag)
        hint = "fix the rows in the source (it is a SQLite file; take a copy first)"
        if flags and hint_policies:
            hint += ", or let agor-db change them and report each change: " + " ".join(flags)
        others = kinds - {"orphan", "nul", "invalid_json", "invalid_utf8", "duplicate"}
        if others:
            hint += "; " + ", ".join(sorted(KIND_TITLES[k] for k in others)) + " have no policy: fix them in the source"
        return BadData(
            f"the source has {self.problem_count} value(s) PostgreSQL cannot take; nothing was written:\n"
            + "\n".join(self.problem_lines()),
            hint=hint,
        )


# -- key-level checks, as SQL on the source ---------------------------------------------------


def key_text(columns: tuple[str, ...], values: tuple[Any, ...] | list[Any]) -> str:
    return ", ".join(f"{c}={v!r}" for c, v in zip(columns, values, strict=True))


def row_ident_sql(table: SourceTable, pk: tuple[str, ...], alias: str = "") -> str:
    """A SQLite expression naming one row: its rowid, or (WITHOUT ROWID) its primary key as text that
    is always valid UTF-8, so even a row whose key is not can be told apart and stepped past."""
    a = f"{alias}." if alias else ""
    if table.has_rowid or not pk:
        return f"{a}rowid"
    return " || ',' || ".join(f"typeof({a}{quote(c)}) || hex({a}{quote(c)})" for c in pk)


def duplicate_sql(table: SourceTable, key: UniqueKey, pk: tuple[str, ...]) -> str | None:
    """Rows that repeat a target key SQLite did not enforce; all but the newest of each set (the highest
    rowid; in a WITHOUT ROWID table the highest primary key). Selects the row's identity, the key's
    values, then the primary key's values (to name the row)."""
    if tuple(sorted(key.columns)) in table.unique_sets or not (table.has_rowid or pk):
        return None
    cols = ", ".join(f"o.{quote(c)}" for c in (*key.columns, *pk))
    not_null = " AND ".join(f"o.{quote(c)} IS NOT NULL" for c in key.columns)
    if table.has_rowid:
        newer = "n.rowid > o.rowid"
    else:
        newer = f"({', '.join(f'n.{quote(c)}' for c in pk)}) > ({', '.join(f'o.{quote(c)}' for c in pk)})"
    ident = row_ident_sql(table, pk, "o")
    return (
        f"SELECT {ident}, {cols} FROM {quote(table.name)} AS o WHERE {not_null} AND EXISTS ("
        f"SELECT 1 FROM {quote(table.name)} AS n WHERE "
        + " AND ".join(f"n.{quote(c)} = o.{quote(c)}" for c in key.columns)
        + f" AND {newer}) ORDER BY 1"
    )


def unique_keys_to_check(pair: Pair) -> list[UniqueKey]:
    if pair.source is None:
        return []
    copied = {c.name for c in pair.columns}
    return [k for k in pair.target.uniques if set(k.columns) <= copied]


def orphan_sql(child: Table, fk_cols: tuple[str, ...], parent: str, ref_cols: tuple[str, ...]) -> str:
    """A SQLite test that is true when the row's FK value has no parent row in the source."""
    present = " AND ".join(f"{quote(c)} IS NOT NULL" for c in fk_cols)
    match = " AND ".join(
        f"p.{quote(r)} = {quote(child.name)}.{quote(c)}" for c, r in zip(fk_cols, ref_cols, strict=True)
    )
    return f"({present} AND NOT EXISTS (SELECT 1 FROM {quote(parent)} AS p WHERE {match}))"
