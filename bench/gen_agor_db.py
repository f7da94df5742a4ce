"""Generate an Agor-like SQLite database at the newest sql/sqlite version, for benchmarking `agor-db copy`.

The schema comes from the real migration files (applied with agor-db's own runner), the data from a
seeded generator shaped like a busy Agor install: ~500,000 messages (~0.6 GB of JSON, most of it
message payloads of realistic size, a few of about 1 MB) and sessions, tasks, worktrees, boards,
comments and MCP servers in proportion. Deterministic for a given seed and size.

    python bench/gen_agor_db.py /tmp/agor-big.db                 # 500,000 messages
    python bench/gen_agor_db.py /tmp/agor-small.db --messages 20000
    python bench/gen_agor_db.py /tmp/agor-chat.db --shape small   # many small rows: ~460 B of JSON each

Two data shapes: ``large`` (the default: message JSON of 0.1-5 KB, mean ~1.15 KB, and ``--huge``
messages of ~1 MB) and ``small`` (every message ~460 bytes of JSON, no huge ones), where the fixed
per-row costs of a copier weigh more than its per-byte costs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BASE_MS = 1_762_030_000_000  # Nov 2025, like the shared fixtures
WORDS = [
    "the",
    "function",
    "returns",
    "a",
    "value",
    "when",
    "called",
    "with",
    "arguments",
    "and",
    "the",
    "test",
    "passes",
    "after",
    "refactoring",
    "database",
    "migration",
    "schema",
    "column",
    "index",
    "foreign",
    "key",
    "constraint",
    "transaction",
    "commit",
    "rollback",
    "agent",
    "session",
    "task",
    "worktree",
    "board",
    "comment",
    "message",
    "tool",
    "result",
    "error",
    "warning",
    "stack",
    "trace",
    "file",
    "path",
    "line",
    "numbers",
    "import",
    "module",
    "class",
    "method",
    "parameter",
    "variable",
    "loop",
    "branch",
    "condition",
    "naïve",
    "café",
    "résumé",
    "déjà",
    "vu",
    "—",
    "“quotes”",
    "‘single’",
    "emoji",
    "🚀",
    "✅",
    "🐛",
    "日本語",
    "テキスト",
    "中文",
    "한국어",
]
TOOLS = ("Read", "Edit", "Bash", "Grep", "Glob", "Write", "TodoWrite", "WebFetch")
MESSAGE_TYPES = ("user", "assistant", "assistant", "assistant", "system", "permission_request", "file-history-snapshot")


class Text:
    """Cheap pseudo-prose: random windows over one long pre-generated text."""

    def __init__(self, rng: random.Random) -> None:
        parts: list[str] = []
        for i in range(60_000):
            parts.append(rng.choice(WORDS))
            if i % 17 == 0:
                parts.append("\n")
            if i % 53 == 0:
                parts.append('\t"quoted" \\ back\\slash')
        self.blob = " ".join(parts)
        self.rng = rng

    def __call__(self, n: int) -> str:
        start = self.rng.randrange(0, len(self.blob) - n - 1)
        return self.blob[start : start + n]


def uid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def message_payload(rng: random.Random, text: Text, kind: str, size: int) -> str:
    """A message ``data`` document of about ``size`` characters, shaped like Agor's SDK messages."""
    blocks: list[dict[str, Any]] = []
    remaining = size
    while remaining > 0:
        r = rng.random()
        n = min(remaining, rng.randint(80, 3000))
        if r < 0.5:
            blocks.append({"type": "text", "text": text(n)})
        elif r < 0.8:
            blocks.append(
                {
                    "type": "tool_use",
                    "id": "toolu_" + uuid.UUID(int=rng.getrandbits(128)).hex[:24],
                    "name": rng.choice(TOOLS),
                    "input": {"file_path": "/src/" + text(30).replace(" ", "_"), "command": text(n)},
                }
            )
        else:
            blocks.append(
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_" + uuid.UUID(int=rng.getrandbits(128)).hex[:24],
                    "content": text(n),
                    "is_error": rng.random() < 0.05,
                }
            )
        remaining -= n + 60
    doc = {
        "content": blocks,
        "metadata": {
            "model": "claude-sonnet-4-5",
            "tokens": {"input": rng.randint(10, 90_000), "output": rng.randint(1, 8_000)},
            "cost_usd": round(rng.random() / 10, 6),
            "kind": kind,
        },
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


SHAPES = ("large", "small")


def message_size(rng: random.Random, shape: str = "large") -> int:
    """The payload size to ask message_payload for (the JSON adds ~240 bytes of structure)."""
    if shape == "small":
        return rng.randint(150, 290)  # JSON of 370-650 bytes, mean ~460
    r = rng.random()
    if r < 0.60:
        return rng.randint(100, 600)
    if r < 0.92:
        return rng.randint(600, 2000)
    return rng.randint(2000, 5000)


def create_schema(path: Path, sql_dir: str | None) -> None:
    from agor_db.core import migrate as core
    from agor_db.core.source import sql_root
    from agor_db.core.urls import parse_url

    core.migrate(parse_url(str(path)), sql_root(sql_dir), core.RunOptions())


def generate(
    path: Path,
    messages: int = 500_000,
    seed: int = 6,
    sql_dir: str | None = None,
    huge: int = 4,
    shape: str = "large",
) -> dict[str, int]:
    """Write a fresh database at ``path``; returns row counts per table."""
    import apsw

    if path.exists():
        path.unlink()
    create_schema(path, sql_dir)
    rng = random.Random(seed)
    text = Text(rng)
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    counts: dict[str, int] = {}

    def insert(table: str, rows: Iterator[tuple[Any, ...]] | list[tuple[Any, ...]]) -> None:
        rows = list(rows)
        if not rows:
            return
        marks = ",".join("?" * len(rows[0]))
        conn.executemany(f'INSERT INTO "{table}" VALUES ({marks})', rows)
        counts[table] = counts.get(table, 0) + len(rows)

    def cols(table: str) -> list[str]:
        return [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]

    def row(table: str, values: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(values.get(c) for c in cols_cache[table])

    cols_cache = {
        t: cols(t)
        for t in (
            "users",
            "boards",
            "repos",
            "worktrees",
            "sessions",
            "tasks",
            "messages",
            "board_objects",
            "board_comments",
            "mcp_servers",
            "session_mcp_servers",
        )
    }
    n_sessions = max(4, messages // 250)
    n_tasks = n_sessions * 10
    n_worktrees = max(2, n_sessions // 10)
    n_repos = max(1, n_worktrees // 10)
    n_boards = max(1, n_worktrees // 20)
    n_users = 5
    ts = BASE_MS

    conn.execute("BEGIN")
    users = [uid(rng) for _ in range(n_users)]
    insert(
        "users",
        [
            row(
                "users",
                {
                    "user_id": u,
                    "created_at": ts + i,
                    "updated_at": None if i % 2 else ts + 10 * i,
                    "email": f"user{i}@example.com",
                    "password": "$2b$10$" + text(40).replace(" ", "x"),
                    "name": f"Ünïcode User {i} 🚀",
                    "emoji": "🐛" if i % 2 else None,
                    "role": "member",
                    "onboarding_completed": i % 2,
                    "data": json.dumps({"preferences": {"theme": "dark"}}),
                },
            )
            for i, u in enumerate(users)
        ],
    )
    boards = [uid(rng) for _ in range(n_boards)]
    insert(
        "boards",
        [
            row(
                "boards",
                {
                    "board_id": b,
                    "created_at": ts + i,
                    "created_by": rng.choice([*users, "anonymous"]),
                    "name": f"Board {i} — “main”",
                    "slug": f"board-{i}",
                    "data": json.dumps({"layout": {"zoom": 1.25}}),
                },
            )
            for i, b in enumerate(boards)
        ],
    )
    repos = [uid(rng) for _ in range(n_repos)]
    insert(
        "repos",
        [
            row(
                "repos",
                {
                    "repo_id": r,
                    "created_at": ts + i,
                    "slug": f"org/repo-{i}",
                    "data": json.dumps(
                        {"remote_url": f"https://github.com/org/repo-{i}.git", "default_branch": "main"}
                    ),
                },
            )
            for i, r in enumerate(repos)
        ],
    )
    worktrees = [uid(rng) for _ in range(n_worktrees)]
    insert(
        "worktrees",
        [
            row(
                "worktrees",
                {
                    "worktree_id": w,
                    "repo_id": repos[i % n_repos],
                    "created_at": ts + i,
                    "updated_at": ts + 2 * i,
                    "created_by": rng.choice(users),
                    "name": f"wt-{i}",
                    "ref": f"feature/{i}",
                    "worktree_unique_id": i + 1,
                    "board_id": boards[i % n_boards] if i % 3 else None,
                    "schedule_enabled": 0,
                    "needs_attention": i % 2,
                    "archived": 1 if i % 25 == 0 else 0,
                    "archived_at": ts + 3 * i if i % 25 == 0 else None,
                    "data": json.dumps({"path": f"/home/agor/worktrees/wt-{i}", "env": {"PORT": 3000 + i}}),
                },
            )
            for i, w in enumerate(worktrees)
        ],
    )
    sessions = [uid(rng) for _ in range(n_sessions)]
    insert(
        "sessions",
        [
            row(
                "sessions",
                {
                    "session_id": s,
                    "created_at": ts + i * 1000,
                    "updated_at": ts + i * 1000 + 500,
                    "created_by": rng.choice(users),
                    "status": rng.choice(("idle", "running", "completed")),
                    "agentic_tool": rng.choice(("claude-code", "codex", "gemini")),
                    "board_id": boards[i % n_boards] if i % 2 else None,
                    "parent_session_id": sessions[i // 2] if i > 1 and i % 7 == 0 else None,
                    "forked_from_session_id": sessions[i - 1] if i > 0 and i % 11 == 0 else None,
                    "worktree_id": worktrees[i % n_worktrees],
                    "scheduled_from_worktree": 0,
                    "ready_for_prompt": 1,
                    "archived": 0,
                    "data": json.dumps({"title": text(40), "git_state": {"ref": "main", "sha": uuid.uuid4().hex}}),
                },
            )
            for i, s in enumerate(sessions)
        ],
    )
    tasks = [uid(rng) for _ in range(n_tasks)]
    insert(
        "tasks",
        [
            row(
                "tasks",
                {
                    "task_id": t,
                    "session_id": sessions[i % n_sessions],
                    "created_at": ts + i * 100,
                    "completed_at": ts + i * 100 + 50 if i % 3 else None,
                    "status": "completed",
                    "created_by": rng.choice(users),
                    "started_at": ts + i * 100 + 1,
                    "data": json.dumps({"description": text(120), "message_range": [i, i + 9]}),
                },
            )
            for i, t in enumerate(tasks)
        ],
    )
    servers = [uid(rng) for _ in range(30)]
    insert(
        "mcp_servers",
        [
            row(
                "mcp_servers",
                {
                    "mcp_server_id": m,
                    "created_at": ts + i,
                    "name": f"mcp-{i}",
                    "transport": "stdio",
                    "scope": "global",
                    "enabled": 1,
                    "owner_user_id": users[i % n_users],
                    "source": "user",
                    "data": json.dumps({"command": "npx", "args": ["-y", f"@mcp/server-{i}"]}),
                },
            )
            for i, m in enumerate(servers)
        ],
    )
    insert(
        "session_mcp_servers",
        [
            row(
                "session_mcp_servers",
                {
                    "session_id": s,
                    "mcp_server_id": servers[(i + k) % 30],
                    "enabled": 1,
                    "added_at": ts + i,
                },
            )
            for i, s in enumerate(sessions)
            for k in range(2)
        ],
    )
    conn.execute("COMMIT")

    huge_at = {int(messages * (k + 1) / (huge + 1)) for k in range(huge)} if messages > huge else set()
    started = time.perf_counter()
    batch: list[tuple[Any, ...]] = []
    message_ids: list[str] = []
    conn.execute("BEGIN")
    for i in range(messages):
        s_idx = i % n_sessions
        kind = rng.choice(MESSAGE_TYPES)
        size = 1_000_000 if i in huge_at else message_size(rng, shape)
        mid = uid(rng)
        if i % 5000 == 0:
            message_ids.append(mid)
        batch.append(
            row(
                "messages",
                {
                    "message_id": mid,
                    "created_at": ts + i * 10,
                    "session_id": sessions[s_idx],
                    "task_id": tasks[(s_idx + n_sessions * (i // n_sessions % 10)) % n_tasks] if i % 4 else None,
                    "type": kind,
                    "role": "assistant" if kind == "assistant" else "user",
                    "index": i // n_sessions,
                    "timestamp": ts + i * 10 + 3,
                    "content_preview": text(80) if i % 3 else None,
                    "data": message_payload(rng, text, kind, size),
                    "parent_tool_use_id": "toolu_" + uuid.UUID(int=rng.getrandbits(128)).hex[:24]
                    if i % 9 == 0
                    else None,
                    "status": "queued" if i % 1000 == 0 else None,
                    "queue_position": i % 7 if i % 1000 == 0 else None,
                },
            )
        )
        if len(batch) >= 5000:
            insert("messages", batch)
            batch = []
    insert("messages", batch)
    conn.execute("COMMIT")
    conn.execute("BEGIN")
    insert(
        "board_objects",
        [
            row(
                "board_objects",
                {
                    "object_id": uid(rng),
                    "board_id": boards[i % n_boards],
                    "created_at": ts + i,
                    "worktree_id": worktrees[i % n_worktrees],
                    "data": json.dumps({"x": i * 10, "y": i * 5, "width": 400}),
                },
            )
            for i in range(n_worktrees)
        ],
    )
    comments: list[str] = []
    comment_rows = []
    for i in range(max(2, n_sessions // 4)):
        c = uid(rng)
        comment_rows.append(
            row(
                "board_comments",
                {
                    "comment_id": c,
                    "created_at": ts + i,
                    "board_id": boards[i % n_boards],
                    "created_by": rng.choice(users),
                    "session_id": sessions[i % n_sessions] if i % 2 else None,
                    "message_id": message_ids[i % len(message_ids)] if message_ids and i % 3 == 0 else None,
                    "content": text(200),
                    "content_preview": text(50),
                    "parent_comment_id": comments[i // 2] if comments and i % 4 == 0 else None,
                    "resolved": i % 2,
                    "edited": 0,
                    "reactions": json.dumps([{"emoji": "👍", "user": users[0]}] if i % 2 else []),
                    "data": "{}",
                },
            )
        )
        comments.append(c)
    insert("board_comments", comment_rows)
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    counts["_seconds"] = int(time.perf_counter() - started)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path)
    parser.add_argument("--messages", type=int, default=500_000, help="number of messages (default 500,000)")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--shape", choices=SHAPES, default="large", help="message sizes (default large)")
    parser.add_argument("--huge", type=int, help="messages of about 1 MB (default 4 for large, 0 for small)")
    parser.add_argument("--sql-dir", default=os.environ.get("AGOR_SQL_DIR"), help="SQL root (default: bundled)")
    args = parser.parse_args(argv)
    huge = args.huge if args.huge is not None else (4 if args.shape == "large" else 0)
    counts = generate(args.path, args.messages, args.seed, args.sql_dir, huge, args.shape)
    size = args.path.stat().st_size
    print(json.dumps({"path": str(args.path), "bytes": size, "rows": counts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
