-- 0008_stale_marauders: adds tasks.started_at.
-- Versions 0006 and 0007 do not exist: upstream withdrew them (their changes are folded into 0009).
-- upstream-when: 1762747715738
--
-- ARCHIVED. This file reproduces the schema of upstream Agor's drizzle migration
-- 0008_stale_marauders (preset-io/agor @ 8c59ed5, packages/core/drizzle); real databases were built by it.
-- Never edit it: `agor-db check` compares it with the checksum pinned in sql/sqlite-archive.json.
-- Schema changes go into a new migration pair (agor-db new NAME).

ALTER TABLE "tasks" ADD "started_at" integer;
