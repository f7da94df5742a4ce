-- 0002_clammy_captain_flint: scheduling: sessions.scheduled_run_at and scheduled_from_worktree,
-- the four worktrees.schedule_* columns, and three indexes.
-- upstream-when: 1762123603619
--
-- ARCHIVED. This file reproduces the schema of upstream Agor's drizzle migration
-- 0002_clammy_captain_flint (preset-io/agor @ 8c59ed5, packages/core/drizzle); real databases were built by it.
-- Never edit it: `agor-db check` compares it with the checksum pinned in sql/sqlite-archive.json.
-- Schema changes go into a new migration pair (agor-db new NAME).

ALTER TABLE "sessions" ADD "scheduled_run_at" integer;
ALTER TABLE "sessions" ADD "scheduled_from_worktree" integer DEFAULT false NOT NULL;
ALTER TABLE "worktrees" ADD "schedule_enabled" integer DEFAULT false NOT NULL;
ALTER TABLE "worktrees" ADD "schedule_cron" text;
ALTER TABLE "worktrees" ADD "schedule_last_triggered_at" integer;
ALTER TABLE "worktrees" ADD "schedule_next_run_at" integer;
CREATE INDEX "sessions_scheduled_flag_idx" ON "sessions" ("scheduled_from_worktree");
CREATE INDEX "worktrees_schedule_enabled_idx" ON "worktrees" ("schedule_enabled");
CREATE INDEX "worktrees_board_schedule_idx" ON "worktrees" ("board_id", "schedule_enabled");
