-- 0010_add_archive_columns: archiving: sessions.archived and archived_reason; worktrees.archived,
-- archived_at, archived_by and filesystem_status.
-- upstream-when: 1762817237696
--
-- ARCHIVED. This file reproduces the schema of upstream Agor's drizzle migration
-- 0010_add_archive_columns (preset-io/agor @ 8c59ed5, packages/core/drizzle); real databases were built by it.
-- Never edit it: `agor-db check` compares it with the checksum pinned in sql/sqlite-archive.json.
-- Schema changes go into a new migration pair (agor-db new NAME).

ALTER TABLE "sessions" ADD "archived" integer DEFAULT false NOT NULL;
ALTER TABLE "sessions" ADD "archived_reason" text;
ALTER TABLE "worktrees" ADD "archived" integer DEFAULT false NOT NULL;
ALTER TABLE "worktrees" ADD "archived_at" integer;
ALTER TABLE "worktrees" ADD "archived_by" text(36);
ALTER TABLE "worktrees" ADD "filesystem_status" text;
