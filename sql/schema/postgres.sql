-- The schema sql/postgres/ builds up to 0010_baseline, written by `agor-db check --write`; do not edit.
-- It changes with every migration pair, so a review shows the schema diff beside the SQL.

CREATE TABLE board_comments (
    comment_id character varying(36) NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint,
    board_id character varying(36) NOT NULL,
    created_by character varying(36) DEFAULT 'anonymous'::character varying NOT NULL,
    session_id character varying(36),
    task_id character varying(36),
    message_id character varying(36),
    worktree_id character varying(36),
    content text NOT NULL,
    content_preview text NOT NULL,
    parent_comment_id character varying(36),
    resolved boolean DEFAULT false NOT NULL,
    edited boolean DEFAULT false NOT NULL,
    reactions jsonb DEFAULT '[]'::jsonb NOT NULL,
    data jsonb NOT NULL,
    CONSTRAINT board_comments_pkey PRIMARY KEY (comment_id)
);
CREATE INDEX board_comments_board_idx ON board_comments USING btree (board_id);
CREATE INDEX board_comments_created_by_idx ON board_comments USING btree (created_by);
CREATE INDEX board_comments_created_idx ON board_comments USING btree (created_at);
CREATE INDEX board_comments_message_idx ON board_comments USING btree (message_id);
CREATE INDEX board_comments_parent_idx ON board_comments USING btree (parent_comment_id);
CREATE INDEX board_comments_resolved_idx ON board_comments USING btree (resolved);
CREATE INDEX board_comments_session_idx ON board_comments USING btree (session_id);
CREATE INDEX board_comments_task_idx ON board_comments USING btree (task_id);
CREATE INDEX board_comments_worktree_idx ON board_comments USING btree (worktree_id);

CREATE TABLE board_objects (
    object_id character varying(36) NOT NULL,
    board_id character varying(36) NOT NULL,
    created_at bigint NOT NULL,
    worktree_id character varying(36) NOT NULL,
    data jsonb NOT NULL,
    CONSTRAINT board_objects_pkey PRIMARY KEY (object_id)
);
CREATE INDEX board_objects_board_idx ON board_objects USING btree (board_id);
CREATE INDEX board_objects_worktree_idx ON board_objects USING btree (worktree_id);

CREATE TABLE boards (
    board_id character varying(36) NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint,
    created_by character varying(36) DEFAULT 'anonymous'::character varying NOT NULL,
    name text NOT NULL,
    slug text,
    data jsonb NOT NULL,
    CONSTRAINT boards_pkey PRIMARY KEY (board_id)
);
CREATE INDEX boards_name_idx ON boards USING btree (name);
CREATE INDEX boards_slug_idx ON boards USING btree (slug);
CREATE UNIQUE INDEX boards_slug_unique ON boards USING btree (slug);

CREATE TABLE mcp_servers (
    mcp_server_id character varying(36) NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint,
    name text NOT NULL,
    transport text NOT NULL,
    scope text NOT NULL,
    enabled boolean DEFAULT true NOT NULL,
    owner_user_id character varying(36),
    team_id character varying(36),
    repo_id character varying(36),
    session_id character varying(36),
    source text NOT NULL,
    data jsonb NOT NULL,
    CONSTRAINT mcp_servers_pkey PRIMARY KEY (mcp_server_id)
);
CREATE INDEX mcp_servers_enabled_idx ON mcp_servers USING btree (enabled);
CREATE INDEX mcp_servers_name_idx ON mcp_servers USING btree (name);
CREATE INDEX mcp_servers_owner_idx ON mcp_servers USING btree (owner_user_id);
CREATE INDEX mcp_servers_repo_idx ON mcp_servers USING btree (repo_id);
CREATE INDEX mcp_servers_scope_idx ON mcp_servers USING btree (scope);
CREATE INDEX mcp_servers_session_idx ON mcp_servers USING btree (session_id);
CREATE INDEX mcp_servers_team_idx ON mcp_servers USING btree (team_id);

CREATE TABLE messages (
    message_id character varying(36) NOT NULL,
    created_at bigint NOT NULL,
    session_id character varying(36) NOT NULL,
    task_id character varying(36),
    type text NOT NULL,
    role text NOT NULL,
    index integer NOT NULL,
    "timestamp" bigint NOT NULL,
    content_preview text,
    data jsonb NOT NULL,
    parent_tool_use_id text,
    status text,
    queue_position integer,
    CONSTRAINT messages_pkey PRIMARY KEY (message_id)
);
CREATE INDEX messages_queue_idx ON messages USING btree (session_id, status, queue_position);
CREATE INDEX messages_session_id_idx ON messages USING btree (session_id);
CREATE INDEX messages_session_index_idx ON messages USING btree (session_id, index);
CREATE INDEX messages_task_id_idx ON messages USING btree (task_id);

CREATE TABLE repos (
    repo_id character varying(36) NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint,
    slug text NOT NULL,
    data jsonb NOT NULL,
    CONSTRAINT repos_pkey PRIMARY KEY (repo_id)
);
CREATE INDEX repos_slug_idx ON repos USING btree (slug);
CREATE UNIQUE INDEX repos_slug_unique ON repos USING btree (slug);

CREATE TABLE session_mcp_servers (
    session_id character varying(36) NOT NULL,
    mcp_server_id character varying(36) NOT NULL,
    enabled boolean DEFAULT true NOT NULL,
    added_at bigint NOT NULL,
    CONSTRAINT session_mcp_servers_pk PRIMARY KEY (session_id, mcp_server_id)
);
CREATE INDEX session_mcp_servers_enabled_idx ON session_mcp_servers USING btree (session_id, enabled);
CREATE INDEX session_mcp_servers_server_idx ON session_mcp_servers USING btree (mcp_server_id);
CREATE INDEX session_mcp_servers_session_idx ON session_mcp_servers USING btree (session_id);

CREATE TABLE sessions (
    session_id character varying(36) NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint,
    created_by character varying(36) DEFAULT 'anonymous'::character varying NOT NULL,
    status text NOT NULL,
    agentic_tool text NOT NULL,
    board_id character varying(36),
    parent_session_id character varying(36),
    forked_from_session_id character varying(36),
    worktree_id character varying(36) NOT NULL,
    scheduled_run_at bigint,
    scheduled_from_worktree boolean DEFAULT false NOT NULL,
    ready_for_prompt boolean DEFAULT false NOT NULL,
    data jsonb NOT NULL,
    archived boolean DEFAULT false NOT NULL,
    archived_reason text,
    CONSTRAINT sessions_pkey PRIMARY KEY (session_id)
);
CREATE INDEX sessions_agentic_tool_idx ON sessions USING btree (agentic_tool);
CREATE INDEX sessions_board_idx ON sessions USING btree (board_id);
CREATE INDEX sessions_created_idx ON sessions USING btree (created_at);
CREATE INDEX sessions_forked_from_idx ON sessions USING btree (forked_from_session_id);
CREATE INDEX sessions_parent_idx ON sessions USING btree (parent_session_id);
CREATE INDEX sessions_scheduled_flag_idx ON sessions USING btree (scheduled_from_worktree);
CREATE INDEX sessions_status_idx ON sessions USING btree (status);
CREATE INDEX sessions_worktree_idx ON sessions USING btree (worktree_id);

CREATE TABLE tasks (
    task_id character varying(36) NOT NULL,
    session_id character varying(36) NOT NULL,
    created_at bigint NOT NULL,
    completed_at bigint,
    status text NOT NULL,
    created_by character varying(36) DEFAULT 'anonymous'::character varying NOT NULL,
    data jsonb NOT NULL,
    started_at bigint,
    CONSTRAINT tasks_pkey PRIMARY KEY (task_id)
);
CREATE INDEX tasks_created_idx ON tasks USING btree (created_at);
CREATE INDEX tasks_session_idx ON tasks USING btree (session_id);
CREATE INDEX tasks_status_idx ON tasks USING btree (status);

CREATE TABLE users (
    user_id character varying(36) NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint,
    email text NOT NULL,
    password text NOT NULL,
    name text,
    emoji text,
    role text DEFAULT 'member'::text NOT NULL,
    onboarding_completed boolean DEFAULT false NOT NULL,
    data jsonb NOT NULL,
    CONSTRAINT users_pkey PRIMARY KEY (user_id)
);
CREATE INDEX users_email_idx ON users USING btree (email);
CREATE UNIQUE INDEX users_email_unique ON users USING btree (email);

CREATE TABLE worktrees (
    worktree_id character varying(36) NOT NULL,
    repo_id character varying(36) NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint,
    created_by character varying(36) DEFAULT 'anonymous'::character varying NOT NULL,
    name text NOT NULL,
    ref text NOT NULL,
    worktree_unique_id integer NOT NULL,
    board_id character varying(36),
    data jsonb NOT NULL,
    schedule_enabled boolean DEFAULT false NOT NULL,
    schedule_cron text,
    schedule_last_triggered_at bigint,
    schedule_next_run_at bigint,
    start_command text,
    stop_command text,
    health_check_url text,
    app_url text,
    logs_command text,
    needs_attention boolean DEFAULT false NOT NULL,
    archived boolean DEFAULT false NOT NULL,
    archived_at bigint,
    archived_by character varying(36),
    filesystem_status text,
    CONSTRAINT worktrees_pkey PRIMARY KEY (worktree_id)
);
CREATE INDEX worktrees_board_idx ON worktrees USING btree (board_id);
CREATE INDEX worktrees_board_schedule_idx ON worktrees USING btree (board_id, schedule_enabled);
CREATE INDEX worktrees_created_idx ON worktrees USING btree (created_at);
CREATE INDEX worktrees_name_idx ON worktrees USING btree (name);
CREATE INDEX worktrees_ref_idx ON worktrees USING btree (ref);
CREATE INDEX worktrees_repo_idx ON worktrees USING btree (repo_id);
CREATE UNIQUE INDEX worktrees_repo_name_unique ON worktrees USING btree (repo_id, name);
CREATE INDEX worktrees_schedule_enabled_idx ON worktrees USING btree (schedule_enabled);
CREATE INDEX worktrees_updated_idx ON worktrees USING btree (updated_at);

ALTER TABLE board_comments ADD CONSTRAINT board_comments_board_id_fkey FOREIGN KEY (board_id) REFERENCES boards(board_id) ON DELETE CASCADE;
ALTER TABLE board_comments ADD CONSTRAINT board_comments_message_id_fkey FOREIGN KEY (message_id) REFERENCES messages(message_id) ON DELETE SET NULL;
ALTER TABLE board_comments ADD CONSTRAINT board_comments_session_id_fkey FOREIGN KEY (session_id) REFERENCES sessions(session_id) ON DELETE SET NULL;
ALTER TABLE board_comments ADD CONSTRAINT board_comments_task_id_fkey FOREIGN KEY (task_id) REFERENCES tasks(task_id) ON DELETE SET NULL;
ALTER TABLE board_comments ADD CONSTRAINT board_comments_worktree_id_fkey FOREIGN KEY (worktree_id) REFERENCES worktrees(worktree_id) ON DELETE CASCADE;
ALTER TABLE board_objects ADD CONSTRAINT board_objects_board_id_fkey FOREIGN KEY (board_id) REFERENCES boards(board_id) ON DELETE CASCADE;
ALTER TABLE board_objects ADD CONSTRAINT board_objects_worktree_id_fkey FOREIGN KEY (worktree_id) REFERENCES worktrees(worktree_id) ON DELETE CASCADE;
ALTER TABLE mcp_servers ADD CONSTRAINT mcp_servers_repo_id_fkey FOREIGN KEY (repo_id) REFERENCES repos(repo_id) ON DELETE CASCADE;
ALTER TABLE mcp_servers ADD CONSTRAINT mcp_servers_session_id_fkey FOREIGN KEY (session_id) REFERENCES sessions(session_id) ON DELETE CASCADE;
ALTER TABLE messages ADD CONSTRAINT messages_session_id_fkey FOREIGN KEY (session_id) REFERENCES sessions(session_id) ON DELETE CASCADE;
ALTER TABLE messages ADD CONSTRAINT messages_task_id_fkey FOREIGN KEY (task_id) REFERENCES tasks(task_id) ON DELETE SET NULL;
ALTER TABLE session_mcp_servers ADD CONSTRAINT session_mcp_servers_mcp_server_id_fkey FOREIGN KEY (mcp_server_id) REFERENCES mcp_servers(mcp_server_id) ON DELETE CASCADE;
ALTER TABLE session_mcp_servers ADD CONSTRAINT session_mcp_servers_session_id_fkey FOREIGN KEY (session_id) REFERENCES sessions(session_id) ON DELETE CASCADE;
ALTER TABLE sessions ADD CONSTRAINT sessions_board_id_fkey FOREIGN KEY (board_id) REFERENCES boards(board_id) ON DELETE SET NULL;
ALTER TABLE sessions ADD CONSTRAINT sessions_forked_from_session_id_fkey FOREIGN KEY (forked_from_session_id) REFERENCES sessions(session_id) ON DELETE SET NULL;
ALTER TABLE sessions ADD CONSTRAINT sessions_parent_session_id_fkey FOREIGN KEY (parent_session_id) REFERENCES sessions(session_id) ON DELETE SET NULL;
ALTER TABLE sessions ADD CONSTRAINT sessions_worktree_id_fkey FOREIGN KEY (worktree_id) REFERENCES worktrees(worktree_id) ON DELETE CASCADE;
ALTER TABLE tasks ADD CONSTRAINT tasks_session_id_fkey FOREIGN KEY (session_id) REFERENCES sessions(session_id) ON DELETE CASCADE;
ALTER TABLE worktrees ADD CONSTRAINT worktrees_board_id_fkey FOREIGN KEY (board_id) REFERENCES boards(board_id) ON DELETE SET NULL;
ALTER TABLE worktrees ADD CONSTRAINT worktrees_repo_id_fkey FOREIGN KEY (repo_id) REFERENCES repos(repo_id) ON DELETE CASCADE;
