-- 0010_baseline: Agor's schema for PostgreSQL 16, written fresh (not translated statement by statement).
--
-- It is the schema that sql/sqlite/0000..0010 leave in a SQLite database, in native types:
--   36-char ids -> VARCHAR(36), epoch-millisecond timestamps -> BIGINT, 0/1 flags -> BOOLEAN,
--   JSON held as text -> JSONB, other text -> TEXT, counters -> INTEGER.
-- Same tables, column order, NOT NULLs, defaults, index names and columns, foreign keys and actions.
-- It starts at version 0010 on purpose: from here on, version V means the same schema in both
-- folders, and every later migration is a pair (sql/sqlite/NNNN_x.sql + sql/postgres/NNNN_x.sql).
--
-- Where the SQLite result is an upstream accident and Agor's schema.ts states the intent, this file
-- follows the intent; each such choice is listed with its reason in sql/differences.toml:
--   * session_mcp_servers has PRIMARY KEY (session_id, mcp_server_id), named session_mcp_servers_pk
--     (in SQLite that name is a plain, non-unique index and the table has no primary key);
--   * worktrees_repo_name_unique is UNIQUE (in SQLite it is a plain index);
--   * sessions_agentic_tool_idx and sessions_scheduled_flag_idx exist (0009 dropped them by accident).
-- "index" and "timestamp" are quoted: they are column names of messages.

CREATE TABLE users (
    user_id VARCHAR(36) PRIMARY KEY,
    created_at BIGINT NOT NULL,
    updated_at BIGINT,
    email TEXT NOT NULL,
    password TEXT NOT NULL,
    name TEXT,
    emoji TEXT,
    role TEXT NOT NULL DEFAULT 'member',
    onboarding_completed BOOLEAN NOT NULL DEFAULT false,
    data JSONB NOT NULL
);

CREATE INDEX users_email_idx ON users (email);
CREATE UNIQUE INDEX users_email_unique ON users (email);

CREATE TABLE boards (
    board_id VARCHAR(36) PRIMARY KEY,
    created_at BIGINT NOT NULL,
    updated_at BIGINT,
    created_by VARCHAR(36) NOT NULL DEFAULT 'anonymous',
    name TEXT NOT NULL,
    slug TEXT,
    data JSONB NOT NULL
);

CREATE INDEX boards_name_idx ON boards (name);
CREATE INDEX boards_slug_idx ON boards (slug);
CREATE UNIQUE INDEX boards_slug_unique ON boards (slug);

CREATE TABLE repos (
    repo_id VARCHAR(36) PRIMARY KEY,
    created_at BIGINT NOT NULL,
    updated_at BIGINT,
    slug TEXT NOT NULL,
    data JSONB NOT NULL
);

CREATE INDEX repos_slug_idx ON repos (slug);
CREATE UNIQUE INDEX repos_slug_unique ON repos (slug);

CREATE TABLE worktrees (
    worktree_id VARCHAR(36) PRIMARY KEY,
    repo_id VARCHAR(36) NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT,
    created_by VARCHAR(36) NOT NULL DEFAULT 'anonymous',
    name TEXT NOT NULL,
    ref TEXT NOT NULL,
    worktree_unique_id INTEGER NOT NULL,
    board_id VARCHAR(36),
    data JSONB NOT NULL,
    schedule_enabled BOOLEAN NOT NULL DEFAULT false,
    schedule_cron TEXT,
    schedule_last_triggered_at BIGINT,
    schedule_next_run_at BIGINT,
    start_command TEXT,
    stop_command TEXT,
    health_check_url TEXT,
    app_url TEXT,
    logs_command TEXT,
    needs_attention BOOLEAN NOT NULL DEFAULT false,
    archived BOOLEAN NOT NULL DEFAULT false,
    archived_at BIGINT,
    archived_by VARCHAR(36),
    filesystem_status TEXT,
    FOREIGN KEY (board_id) REFERENCES boards (board_id) ON DELETE SET NULL,
    FOREIGN KEY (repo_id) REFERENCES repos (repo_id) ON DELETE CASCADE
);

CREATE INDEX worktrees_board_idx ON worktrees (board_id);
CREATE INDEX worktrees_board_schedule_idx ON worktrees (board_id, schedule_enabled);
CREATE INDEX worktrees_created_idx ON worktrees (created_at);
CREATE INDEX worktrees_name_idx ON worktrees (name);
CREATE INDEX worktrees_ref_idx ON worktrees (ref);
CREATE INDEX worktrees_repo_idx ON worktrees (repo_id);
-- Unique here, as its name and schema.ts say; in SQLite it never was (see sql/differences.toml).
CREATE UNIQUE INDEX worktrees_repo_name_unique ON worktrees (repo_id, name);
CREATE INDEX worktrees_schedule_enabled_idx ON worktrees (schedule_enabled);
CREATE INDEX worktrees_updated_idx ON worktrees (updated_at);

CREATE TABLE sessions (
    session_id VARCHAR(36) PRIMARY KEY,
    created_at BIGINT NOT NULL,
    updated_at BIGINT,
    created_by VARCHAR(36) NOT NULL DEFAULT 'anonymous',
    status TEXT NOT NULL,
    agentic_tool TEXT NOT NULL,
    board_id VARCHAR(36),
    parent_session_id VARCHAR(36),
    forked_from_session_id VARCHAR(36),
    worktree_id VARCHAR(36) NOT NULL,
    scheduled_run_at BIGINT,
    scheduled_from_worktree BOOLEAN NOT NULL DEFAULT false,
    ready_for_prompt BOOLEAN NOT NULL DEFAULT false,
    data JSONB NOT NULL,
    archived BOOLEAN NOT NULL DEFAULT false,
    archived_reason TEXT,
    FOREIGN KEY (board_id) REFERENCES boards (board_id) ON DELETE SET NULL,
    FOREIGN KEY (forked_from_session_id) REFERENCES sessions (session_id) ON DELETE SET NULL,
    FOREIGN KEY (parent_session_id) REFERENCES sessions (session_id) ON DELETE SET NULL,
    FOREIGN KEY (worktree_id) REFERENCES worktrees (worktree_id) ON DELETE CASCADE
);

CREATE INDEX sessions_board_idx ON sessions (board_id);
CREATE INDEX sessions_created_idx ON sessions (created_at);
CREATE INDEX sessions_forked_from_idx ON sessions (forked_from_session_id);
CREATE INDEX sessions_parent_idx ON sessions (parent_session_id);
CREATE INDEX sessions_status_idx ON sessions (status);
CREATE INDEX sessions_worktree_idx ON sessions (worktree_id);
-- Declared in schema.ts and present in SQLite up to 0008; 0009 lost them by accident.
CREATE INDEX sessions_agentic_tool_idx ON sessions (agentic_tool);
CREATE INDEX sessions_scheduled_flag_idx ON sessions (scheduled_from_worktree);

CREATE TABLE tasks (
    task_id VARCHAR(36) PRIMARY KEY,
    session_id VARCHAR(36) NOT NULL,
    created_at BIGINT NOT NULL,
    completed_at BIGINT,
    status TEXT NOT NULL,
    created_by VARCHAR(36) NOT NULL DEFAULT 'anonymous',
    data JSONB NOT NULL,
    started_at BIGINT,
    FOREIGN KEY (session_id) REFERENCES sessions (session_id) ON DELETE CASCADE
);

CREATE INDEX tasks_created_idx ON tasks (created_at);
CREATE INDEX tasks_session_idx ON tasks (session_id);
CREATE INDEX tasks_status_idx ON tasks (status);

CREATE TABLE messages (
    message_id VARCHAR(36) PRIMARY KEY,
    created_at BIGINT NOT NULL,
    session_id VARCHAR(36) NOT NULL,
    task_id VARCHAR(36),
    type TEXT NOT NULL,
    role TEXT NOT NULL,
    "index" INTEGER NOT NULL,
    "timestamp" BIGINT NOT NULL,
    content_preview TEXT,
    data JSONB NOT NULL,
    parent_tool_use_id TEXT,
    status TEXT,
    queue_position INTEGER,
    FOREIGN KEY (session_id) REFERENCES sessions (session_id) ON DELETE CASCADE,
    FOREIGN KEY (task_id) REFERENCES tasks (task_id) ON DELETE SET NULL
);

CREATE INDEX messages_queue_idx ON messages (session_id, status, queue_position);
CREATE INDEX messages_session_id_idx ON messages (session_id);
CREATE INDEX messages_session_index_idx ON messages (session_id, "index");
CREATE INDEX messages_task_id_idx ON messages (task_id);

CREATE TABLE board_objects (
    object_id VARCHAR(36) PRIMARY KEY,
    board_id VARCHAR(36) NOT NULL,
    created_at BIGINT NOT NULL,
    worktree_id VARCHAR(36) NOT NULL,
    data JSONB NOT NULL,
    FOREIGN KEY (board_id) REFERENCES boards (board_id) ON DELETE CASCADE,
    FOREIGN KEY (worktree_id) REFERENCES worktrees (worktree_id) ON DELETE CASCADE
);

CREATE INDEX board_objects_board_idx ON board_objects (board_id);
CREATE INDEX board_objects_worktree_idx ON board_objects (worktree_id);

CREATE TABLE board_comments (
    comment_id VARCHAR(36) PRIMARY KEY,
    created_at BIGINT NOT NULL,
    updated_at BIGINT,
    board_id VARCHAR(36) NOT NULL,
    created_by VARCHAR(36) NOT NULL DEFAULT 'anonymous',
    session_id VARCHAR(36),
    task_id VARCHAR(36),
    message_id VARCHAR(36),
    worktree_id VARCHAR(36),
    content TEXT NOT NULL,
    content_preview TEXT NOT NULL,
    parent_comment_id VARCHAR(36),
    resolved BOOLEAN NOT NULL DEFAULT false,
    edited BOOLEAN NOT NULL DEFAULT false,
    reactions JSONB NOT NULL DEFAULT '[]'::jsonb,
    data JSONB NOT NULL,
    FOREIGN KEY (board_id) REFERENCES boards (board_id) ON DELETE CASCADE,
    FOREIGN KEY (message_id) REFERENCES messages (message_id) ON DELETE SET NULL,
    FOREIGN KEY (session_id) REFERENCES sessions (session_id) ON DELETE SET NULL,
    FOREIGN KEY (task_id) REFERENCES tasks (task_id) ON DELETE SET NULL,
    FOREIGN KEY (worktree_id) REFERENCES worktrees (worktree_id) ON DELETE CASCADE
);

CREATE INDEX board_comments_board_idx ON board_comments (board_id);
CREATE INDEX board_comments_created_by_idx ON board_comments (created_by);
CREATE INDEX board_comments_created_idx ON board_comments (created_at);
CREATE INDEX board_comments_message_idx ON board_comments (message_id);
CREATE INDEX board_comments_parent_idx ON board_comments (parent_comment_id);
CREATE INDEX board_comments_resolved_idx ON board_comments (resolved);
CREATE INDEX board_comments_session_idx ON board_comments (session_id);
CREATE INDEX board_comments_task_idx ON board_comments (task_id);
CREATE INDEX board_comments_worktree_idx ON board_comments (worktree_id);

CREATE TABLE mcp_servers (
    mcp_server_id VARCHAR(36) PRIMARY KEY,
    created_at BIGINT NOT NULL,
    updated_at BIGINT,
    name TEXT NOT NULL,
    transport TEXT NOT NULL,
    scope TEXT NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT true,
    owner_user_id VARCHAR(36),
    team_id VARCHAR(36),
    repo_id VARCHAR(36),
    session_id VARCHAR(36),
    source TEXT NOT NULL,
    data JSONB NOT NULL,
    FOREIGN KEY (repo_id) REFERENCES repos (repo_id) ON DELETE CASCADE,
    FOREIGN KEY (session_id) REFERENCES sessions (session_id) ON DELETE CASCADE
);

CREATE INDEX mcp_servers_enabled_idx ON mcp_servers (enabled);
CREATE INDEX mcp_servers_name_idx ON mcp_servers (name);
CREATE INDEX mcp_servers_owner_idx ON mcp_servers (owner_user_id);
CREATE INDEX mcp_servers_repo_idx ON mcp_servers (repo_id);
CREATE INDEX mcp_servers_scope_idx ON mcp_servers (scope);
CREATE INDEX mcp_servers_session_idx ON mcp_servers (session_id);
CREATE INDEX mcp_servers_team_idx ON mcp_servers (team_id);

CREATE TABLE session_mcp_servers (
    session_id VARCHAR(36) NOT NULL,
    mcp_server_id VARCHAR(36) NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT true,
    added_at BIGINT NOT NULL,
    -- The composite key schema.ts describes; SQLite only ever had a plain index of this name.
    CONSTRAINT session_mcp_servers_pk PRIMARY KEY (session_id, mcp_server_id),
    FOREIGN KEY (mcp_server_id) REFERENCES mcp_servers (mcp_server_id) ON DELETE CASCADE,
    FOREIGN KEY (session_id) REFERENCES sessions (session_id) ON DELETE CASCADE
);

CREATE INDEX session_mcp_servers_enabled_idx ON session_mcp_servers (session_id, enabled);
CREATE INDEX session_mcp_servers_server_idx ON session_mcp_servers (mcp_server_id);
CREATE INDEX session_mcp_servers_session_idx ON session_mcp_servers (session_id);
