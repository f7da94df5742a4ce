-- 0003_tough_iron_lad: rebuilds board_comments so that its worktree_id foreign key
-- cascades on delete (it was ON DELETE SET NULL).
-- upstream-when: 1762126122238
--
-- ARCHIVED. This file reproduces the schema of upstream Agor's drizzle migration
-- 0003_tough_iron_lad (preset-io/agor @ 8c59ed5, packages/core/drizzle); real databases were built by it.
-- Never edit it: `agor-db check` compares it with the checksum pinned in sql/sqlite-archive.json.
-- Schema changes go into a new migration pair (agor-db new NAME).
--
-- Table rebuild, SQLite's documented procedure: create the new table, copy every row with
-- INSERT ... SELECT, drop the old table, rename the new one, recreate the indexes. agor-db switches
-- foreign keys off outside the transaction (so the DROP cascades nothing) and runs
-- a foreign-key check before COMMIT; upstream's foreign_keys pragma lines are left out because
-- SQLite ignores them inside a transaction.

CREATE TABLE "__new_board_comments" (
    "comment_id" text(36) PRIMARY KEY NOT NULL,
    "created_at" integer NOT NULL,
    "updated_at" integer,
    "board_id" text(36) NOT NULL,
    "created_by" text(36) DEFAULT 'anonymous' NOT NULL,
    "session_id" text(36),
    "task_id" text(36),
    "message_id" text(36),
    "worktree_id" text(36),
    "content" text NOT NULL,
    "content_preview" text NOT NULL,
    "parent_comment_id" text(36),
    "resolved" integer DEFAULT false NOT NULL,
    "edited" integer DEFAULT false NOT NULL,
    "reactions" text DEFAULT '[]' NOT NULL,
    "data" text NOT NULL,
    FOREIGN KEY ("board_id") REFERENCES "boards" ("board_id") ON UPDATE no action ON DELETE cascade,
    FOREIGN KEY ("message_id") REFERENCES "messages" ("message_id") ON UPDATE no action ON DELETE set null,
    FOREIGN KEY ("session_id") REFERENCES "sessions" ("session_id") ON UPDATE no action ON DELETE set null,
    FOREIGN KEY ("task_id") REFERENCES "tasks" ("task_id") ON UPDATE no action ON DELETE set null,
    FOREIGN KEY ("worktree_id") REFERENCES "worktrees" ("worktree_id") ON UPDATE no action ON DELETE cascade
);
INSERT INTO "__new_board_comments" ("comment_id", "created_at", "updated_at", "board_id", "created_by", "session_id", "task_id", "message_id", "worktree_id", "content", "content_preview", "parent_comment_id", "resolved", "edited", "reactions", "data")
SELECT "comment_id", "created_at", "updated_at", "board_id", "created_by", "session_id", "task_id", "message_id", "worktree_id", "content", "content_preview", "parent_comment_id", "resolved", "edited", "reactions", "data" FROM "board_comments";
DROP TABLE "board_comments";
ALTER TABLE "__new_board_comments" RENAME TO "board_comments";
CREATE INDEX "board_comments_board_idx" ON "board_comments" ("board_id");
CREATE INDEX "board_comments_created_by_idx" ON "board_comments" ("created_by");
CREATE INDEX "board_comments_created_idx" ON "board_comments" ("created_at");
CREATE INDEX "board_comments_message_idx" ON "board_comments" ("message_id");
CREATE INDEX "board_comments_parent_idx" ON "board_comments" ("parent_comment_id");
CREATE INDEX "board_comments_resolved_idx" ON "board_comments" ("resolved");
CREATE INDEX "board_comments_session_idx" ON "board_comments" ("session_id");
CREATE INDEX "board_comments_task_idx" ON "board_comments" ("task_id");
CREATE INDEX "board_comments_worktree_idx" ON "board_comments" ("worktree_id");
