# agor-db image: the migration runner plus the container entrypoint (docker/entrypoint.sh).
#
#   docker build -t agor-db .
#   docker run --rm -e DATABASE_URL=postgresql://agor:secret@db:5432/agor agor-db          # wait, migrate, exit
#   docker run --rm -e DATABASE_URL=... agor-db agor-db migrate --dry-run    # an agor-db command runs as given
#   docker run --rm -e AGOR_DB_PATH=~/.agor/agor.db -v agor-data:/home/agor/.agor agor-db  # SQLite on a volume
#
# An app image reuses the entrypoint by installing agor-db and copying docker/entrypoint.sh:
#   ENTRYPOINT ["agor-db-entrypoint"]   CMD ["your-app", "--flags"]
#
# Layers are ordered by how often they change: the pinned dependencies (constraints.txt) first, the
# code and SQL last, so a new migration rebuilds in seconds without downloading anything again.

# -- stage 1: build the wheel (setuptools and the build environment stay in this stage) -----------
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# The build backend once, in its own layer (no isolated build environment downloaded per build).
RUN pip install --only-binary=:all: "setuptools==80.9.0" "wheel==0.45.1"
COPY pyproject.toml README.md ./
COPY runner ./runner
COPY sql ./sql
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /wheels .

# -- stage 2: runtime: pinned binary-wheel dependencies, then the wheel; no compiler, not root ------
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    AGOR_DB_REQUIRE_URL=1
# Plain COPY/RUN only (no BuildKit-only flags), so the classic builder, BuildKit, kaniko and podman
# all build it. Dependencies come as binary wheels (psycopg-binary, apsw): no compiler is needed.
# This layer depends on constraints.txt only: SQL and code changes reuse it.
COPY constraints.txt /tmp/constraints.txt
RUN pip install --only-binary=:all: -r /tmp/constraints.txt \
    && rm /tmp/constraints.txt
# A dedicated group with a fixed gid (not whatever system gid is free), and ~/.agor owned by agor, so
# a named volume mounted there for the SQLite database is writable (Docker copies the ownership of
# the image's directory into a new volume).
RUN groupadd --system --gid 10001 agor \
    && useradd --system --uid 10001 --gid agor --create-home --home-dir /home/agor \
       --shell /usr/sbin/nologin agor \
    && install -d -o agor -g agor -m 0750 /home/agor/.agor
COPY docker/entrypoint.sh /usr/local/bin/agor-db-entrypoint
RUN chmod 0755 /usr/local/bin/agor-db-entrypoint
COPY --from=build /wheels /tmp/wheels
# --no-deps: everything it needs is already installed from constraints.txt; pip check proves it.
RUN pip install --no-deps /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels \
    && pip check \
    && agor-db --version
USER agor
WORKDIR /home/agor
ENTRYPOINT ["/usr/local/bin/agor-db-entrypoint"]
# No command: the entrypoint waits, migrates and exits 0 (a one-shot migration job). An empty CMD,
# not none: the base image's ["python3"] would otherwise be taken for an app to start.
CMD []
