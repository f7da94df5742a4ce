-- 0009_reconcile-missing-columns: rebuilds sessions (adds ready_for_prompt, placed before data,
-- and foreign keys board_id -> boards, parent_session_id and forked_from_session_id -> sessions, all
-- ON DELETE SET NULL) and rebuilds worktrees (adds needs_attention as the last column).
-- upstream-when: 1762752013031
--
-- ARCHIVED. This file reproduces the schema of upstream Agor's drizzle migration
-- 0009_reconcile-missing-columns (preset-io/agor @ 8c59ed5, packages/core/drizzle); real databases were built by it.
-- Never edit it: `agor-db check` compares it with the checksum pinned in sql/sqlite-archive.json.
-- Schema changes go into a new migration pair (agor-db new NAME).
--
-- Table rebuild, SQLite's documented procedure: create the new table, copy every row with
-- INSERT ... SELECT, drop the old table, rename the new one, recreate the indexes. agor-db switches
-- foreign keys off outside the transaction (so the DROP cascades nothing) and runs
-- a foreign-key check before COMMIT; upstream's foreign_keys pragma lines are left out because
-- SQLite ignores them inside a transaction.
--
-- Upstream accidents kept on purpose: the rebuilt sessions table does not get back
-- sessions_agentic_tool_idx or sessions_scheduled_flag_idx, and sessions_forked_idx comes back as
-- sessions_forked_from_idx. The new flags default to 0 (not false), as upstream wrote them.

CREATE TABLE "__new_sessions" (
    "session_id" text(36) PRIMARY KEY NOT NULL,
    "created_at" integer NOT NULL,
    "updated_at" integer,
    "created_by" text(36) DEFAULT 'anonymous' NOT NULL,
    "status" text NOT NULL,
    "agentic_tool" text NOT NULL,
    "board_id" text(36),
    "parent_session_id" text(36),
    "forked_from_session_id" text(36),
    "worktree_id" text(36) NOT NULL,
    "scheduled_run_at" integer,
    "scheduled_from_worktree" integer DEFAULT false NOT NULL,
    "ready_for_prompt" integer DEFAULT 0 NOT NULL,
    "data" text NOT NULL,
    FOREIGN KEY ("board_id") REFERENCES "boards" ("board_id") ON UPDATE no action ON DELETE set null,
    FOREIGN KEY ("forked_from_session_id") REFERENCES "sessions" ("session_id") ON UPDATE no action ON DELETE set null,
    FOREIGN KEY ("parent_session_id") REFERENCES "sessions" ("session_id") ON UPDATE no action ON DELETE set null,
    FOREIGN KEY ("worktree_id") REFERENCES "worktrees" ("worktree_id") ON UPDATE no action ON DELETE cascade
);
INSERT INTO "__new_sessions" ("session_id", "created_at", "updated_at", "created_by", "status", "agentic_tool", "board_id", "parent_session_id", "forked_from_session_id", "worktree_id", "data", "scheduled_run_at", "scheduled_from_worktree")
SELECT "session_id", "created_at", "updated_at", "created_by", "status", "agentic_tool", "board_id", "parent_session_id", "forked_from_session_id", "worktree_id", "data", "scheduled_run_at", "scheduled_from_worktree" FROM "sessions";
DROP TABLE "sessions";
ALTER TABLE "__new_sessions" RENAME TO "sessions";
CREATE INDEX "sessions_board_idx" ON "sessions" ("board_id");
CREATE INDEX "sessions_created_idx" ON "sessions" ("created_at");
CREATE INDEX "sessions_forked_from_idx" ON "sessions" ("forked_from_session_id");
CREATE INDEX "sessions_parent_idx" ON "sessions" ("parent_session_id");
CREATE INDEX "sessions_status_idx" ON "sessions" ("status");
CREATE INDEX "sessions_worktree_idx" ON "sessions" ("worktree_id");

CREATE TABLE "__new_worktrees" (
    "worktree_id" text(36) PRIMARY KEY NOT NULL,
    "repo_id" text(36) NOT NULL,
    "created_at" integer NOT NULL,
    "updated_at" integer,
    "created_by" text(36) DEFAULT 'anonymous' NOT NULL,
    "name" text NOT NULL,
    "ref" text NOT NULL,
    "worktree_unique_id" integer NOT NULL,
    "board_id" text(36),
    "data" text NOT NULL,
    "schedule_enabled" integer DEFAULT false NOT NULL,
    "schedule_cron" text,
    "schedule_last_triggered_at" integer,
    "schedule_next_run_at" integer,
    "start_command" text,
    "stop_command" text,
    "health_check_url" text,
    "app_url" text,
    "logs_command" text,
    "needs_attention" integer DEFAULT 0 NOT NULL,
    FOREIGN KEY ("board_id") REFERENCES "boards" ("board_id") ON UPDATE no action ON DELETE set null,
    FOREIGN KEY ("repo_id") REFERENCES "repos" ("repo_id") ON UPDATE no action ON DELETE cascade
);
INSERT INTO "__new_worktrees" ("worktree_id", "repo_id", "created_at", "updated_at", "created_by", "name", "ref", "worktree_unique_id", "board_id", "data", "schedule_enabled", "schedule_cron", "schedule_last_triggered_at", "schedule_next_run_at", "start_command", "stop_command", "health_check_url", "app_url", "logs_command")
SELECT "worktree_id", "repo_id", "created_at", "updated_at", "created_by", "name", "ref", "worktree_unique_id", "board_id", "data", "schedule_enabled", "schedule_cron", "schedule_last_triggered_at", "schedule_next_run_at", "start_command", "stop_command", "health_check_url", "app_url", "logs_command" FROM "worktrees";
DROP TABLE "worktrees";
ALTER TABLE "__new_worktrees" RENAME TO "worktrees";
CREATE INDEX "worktrees_board_idx" ON "worktrees" ("board_id");
CREATE INDEX "worktrees_board_schedule_idx" ON "worktrees" ("board_id", "schedule_enabled");
CREATE INDEX "worktrees_created_idx" ON "worktrees" ("created_at");
CREATE INDEX "worktrees_name_idx" ON "worktrees" ("name");
CREATE INDEX "worktrees_ref_idx" ON "worktrees" ("ref");
CREATE INDEX "worktrees_repo_idx" ON "worktrees" ("repo_id");
CREATE INDEX "worktrees_repo_name_unique" ON "worktrees" ("repo_id", "name");
CREATE INDEX "worktrees_schedule_enabled_idx" ON "worktrees" ("schedule_enabled");
CREATE INDEX "worktrees_updated_idx" ON "worktrees" ("updated_at");
