"""Migration SQL as text: statements with their lines, comments and string literals told apart.

Pure functions on strings; the records (models.py) and the file reader (source.py) build on them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Statement:
    sql: str
    line: int  # 1-based line of the statement's first character in the file


# Comments and blank space: a file made only of these has nothing to run. (A "--" inside a string
# literal can only make a real statement look shorter, never make an empty file look full.)
_COMMENT_OR_SPACE = re.compile(r"--[^\n]*|/\*.*?\*/|\s+", re.DOTALL)


def split_statements(text: str) -> tuple[Statement, ...]:
    """The statements of a migration with the line each starts on, split by sqlparse as yoyo does."""
    import sqlparse

    statements: list[Statement] = []
    cursor = 0
    for chunk in sqlparse.split(text):
        sql = chunk.strip()
        if not sql or only_comments(sql):
            continue
        at = text.find(sql, cursor)
        if at < 0:  # sqlparse normalised something; fall back to the running position
            at = cursor
        else:
            cursor = at + len(sql)
        # the leading comments belong to the file, not to its first statement
        lead = len(sql) - len(LEADING_COMMENTS.sub("", sql, count=1))
        statements.append(Statement(sql[lead:], text.count("\n", 0, at + lead) + 1))
    return tuple(statements)


# yoyo's file format: ``-- transactional: false`` / ``-- depends: a b`` among the lines of comments and
# blank space that open the file, read up to its first line of SQL. Read here rather than with yoyo's parser:
# importing yoyo loads all of its backends (~40 ms on every run that applies a migration);
# tests/test_source.py checks this reader against yoyo's own on generated files.
_LINE_END = re.compile(r"\r\n|\r|\n")
_DIRECTIVE = re.compile(r"\s*--\s*(transactional|depends)\s*:\s*(.*)$")
_LEADING_LINE = re.compile(r"\s*(?:--.*)?$")


def directives(text: str) -> dict[str, str]:
    """The yoyo directives of a migration: name -> value, a name given twice has its values joined by a space."""
    # the first line end decides how the file is cut into lines; a file without one is one line (the end
    # searched for is that of ``text + "\n"``, so a lone trailing CR counts as CRLF, as in yoyo)
    end = _LINE_END.search(text + "\n")
    assert end is not None
    found: dict[str, str] = {}
    for line in text.split(end.group()):
        directive = _DIRECTIVE.match(line)
        if directive is None:
            if _LEADING_LINE.match(line) is None:
                break  # the first line of SQL ends the header
            continue
        name, value = directive.groups()
        found[name] = f"{found[name]} {value}" if name in found else value
    return found


LEADING_COMMENTS = re.compile(r"\A(?:\s*(?:--[^\n]*(?:\n|\Z)|/\*.*?\*/))*\s*", re.DOTALL)


def only_comments(sql: str) -> bool:
    """Nothing but comments, blank space and semicolons: nothing to run."""
    return not _COMMENT_OR_SPACE.sub("", sql).strip(" \t\n;")


_CONCURRENTLY = re.compile(r"\bCONCURRENTLY\b", re.I)


def concurrently_line(text: str) -> int | None:
    """The line of the first statement using CONCURRENTLY (outside comments and strings), if any."""
    if "concurrently" not in text.lower():  # the common case costs one scan
        return None
    code = blank_comments_and_strings(text)
    m = _CONCURRENTLY.search(code)
    if m is None:
        return None
    for s in split_statements(text):
        if _CONCURRENTLY.search(blank_comments_and_strings(s.sql)):
            return s.line
    return code.count("\n", 0, m.start()) + 1


def blank_comments_and_strings(sql: str) -> str:
    """The SQL with comments and '...' literals replaced by spaces (newlines kept, so lines still count)."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j < 0 else j
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            j = n if j < 0 else j + 2
        elif ch == "'":
            j = i + 1
            while j < n:
                if sql[j] == "'":
                    if sql.startswith("''", j):
                        j += 2
                        continue
                    j += 1
                    break
                j += 1
        else:
            out.append(ch)
            i += 1
            continue
        out.append(re.sub(r"[^\n]", " ", sql[i:j]))
        i = j
    return "".join(out)
