# agor-db developer tasks. `just --list` shows them; `just --dry-run RECIPE` prints what would run.
# Needs: docker compose (db-* recipes only) and the project installed: python -m pip install -e '.[test,dev]'

set positional-arguments
set shell := ["bash", "-euo", "pipefail", "-c"]

pg_user := env("AGOR_PG_USER", "agor")
pg_password := env("AGOR_PG_PASSWORD", "agor")
pg_db := env("AGOR_PG_DB", "agor")
pg_port := env("AGOR_PG_PORT", "5432")

# The same database docker-compose.dev.yml starts, unless DATABASE_URL is already set. User, password
# and database name are percent-encoded, so `p@ss:w/rd` reaches the server as it was written.
export DATABASE_URL := env("DATABASE_URL", "postgresql://" + encode_uri_component(pg_user) + ":" + encode_uri_component(pg_password) + "@127.0.0.1:" + pg_port + "/" + encode_uri_component(pg_db))

python := env("PYTHON", "python")
compose := "docker compose -f docker-compose.dev.yml"

# List the recipes
default:
    @{{just_executable()}} --justfile {{justfile()}} --list

# Start PostgreSQL 16 (docker compose), wait until it accepts logins, apply pending migrations
db-up:
    {{compose}} up -d db
    agor-db wait --timeout 90
    agor-db migrate

# Stop the dev PostgreSQL; its data volume is kept
db-down:
    {{compose}} down

# Delete the dev PostgreSQL and its data volume (asks first; `just --yes db-reset` skips the question)
[confirm("This deletes the dev PostgreSQL data volume (agor-db-dev_agor-pg-data). Continue? [y/N]")]
db-reset:
    {{compose}} down --volumes --remove-orphans

# Open psql on the dev database (inside the container: no local psql needed)
db-psql:
    {{compose}} exec db psql -U {{pg_user}} -d {{pg_db}}

# Apply pending migrations to $DATABASE_URL (extra flags pass through, e.g. just migrate --dry-run)
migrate *ARGS:
    agor-db migrate "$@"

# Show applied and pending migrations of $DATABASE_URL (extra flags pass through, e.g. --json)
status *ARGS:
    agor-db status "$@"

# Create the next migration pair, sql/sqlite/NNNN_NAME.sql and sql/postgres/NNNN_NAME.sql
new NAME:
    agor-db new "$1"

# Check that the SQLite and PostgreSQL migrations produce the same schema
check *ARGS:
    agor-db check "$@"

# Copy Agor's data between databases (all arguments pass through to agor-db copy)
copy *ARGS:
    agor-db copy "$@"

# Run the test suite (real SQLite and PostgreSQL 16; no Docker needed)
test *ARGS:
    {{python}} -m pytest -q "$@"

# Lint and type-check: ruff, then mypy --strict
lint:
    ruff check runner tests bench
    mypy

# Run the benchmarks (migrate beside yoyo and dbmate, then the copy beside pgloader); results go to bench/out/
bench:
    mkdir -p bench/out
    {{python}} bench/bench_migrate.py --out bench/out/migrate.md
    {{python}} bench/bench_copy.py

# Re-pin the runtime dependencies in constraints.txt to the newest versions pip resolves today
lock:
    #!/usr/bin/env bash
    set -euo pipefail
    venv=$(mktemp -d)
    trap 'rm -rf "$venv"' EXIT
    {{python}} -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q .
    { sed -n '1,/^$/p' constraints.txt; "$venv/bin/python" -m pip freeze --exclude agor-db; } > constraints.txt.new
    mv constraints.txt.new constraints.txt
    git diff --stat -- constraints.txt || true
