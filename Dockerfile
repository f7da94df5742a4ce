# agor-db image: the migration runner plus the container entrypoint (docker/entrypoint.sh).
#
#   docker build -t agor-db .
#   docker run --rm -e DATABASE_URL=postgresql://agor:agor@db:5432/agor agor-db          # wait, migrate, status
#   docker run --rm -e DATABASE_URL=... -e AGOR_MIGRATE_ON_START=0 agor-db agor-db status
#
# An app image reuses the entrypoint by installing agor-db and copying docker/entrypoint.sh:
#   ENTRYPOINT ["agor-db-entrypoint"]   CMD ["your-app", "--flags"]

# -- stage 1: build the wheel (setuptools and the build environment stay in this stage) -----------
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY runner ./runner
COPY sql ./sql
RUN pip wheel --no-deps --wheel-dir /wheels .

# -- stage 2: runtime: the wheel and its binary-wheel dependencies, no compiler, not root ----------
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# Plain COPY/RUN only (no BuildKit-only flags), so the classic builder, BuildKit, kaniko and podman
# all build it. Dependencies come as binary wheels (psycopg-binary, apsw): no compiler is needed.
COPY --from=build /wheels /tmp/wheels
RUN pip install /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels \
    && agor-db --version
COPY docker/entrypoint.sh /usr/local/bin/agor-db-entrypoint
# A home directory, because agor-db's default SQLite database is ~/.agor/agor.db.
RUN chmod 0755 /usr/local/bin/agor-db-entrypoint \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /home/agor \
       --shell /usr/sbin/nologin agor
USER agor
WORKDIR /home/agor
ENTRYPOINT ["/usr/local/bin/agor-db-entrypoint"]
# Without a command the entrypoint only waits and migrates; this one also shows the result.
CMD ["agor-db", "status"]
