-- 0005_clammy_mole_man: message queueing: messages.status and queue_position, and messages_queue_idx.
-- upstream-when: 1762562246854
--
-- ARCHIVED. This file reproduces the schema of upstream Agor's drizzle migration
-- 0005_clammy_mole_man (preset-io/agor @ 8c59ed5, packages/core/drizzle); real databases were built by it.
-- Never edit it: `agor-db check` compares it with the checksum pinned in sql/sqlite-archive.json.
-- Schema changes go into a new migration pair (agor-db new NAME).

ALTER TABLE "messages" ADD "status" text;
ALTER TABLE "messages" ADD "queue_position" integer;
CREATE INDEX "messages_queue_idx" ON "messages" ("session_id", "status", "queue_position");
