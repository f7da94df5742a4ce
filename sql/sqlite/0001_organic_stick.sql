-- 0001_organic_stick: adds messages.parent_tool_use_id.
-- upstream-when: 1762119844225
--
-- ARCHIVED. This file reproduces the schema of upstream Agor's drizzle migration
-- 0001_organic_stick (preset-io/agor @ 8c59ed5, packages/core/drizzle); real databases were built by it.
-- Never edit it: `agor-db check` compares it with the checksum pinned in sql/sqlite-archive.json.
-- Schema changes go into a new migration pair (agor-db new NAME).

ALTER TABLE "messages" ADD "parent_tool_use_id" text;
