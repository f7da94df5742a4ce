"""agor-db: a raw-SQL migration runner with dialect folders for Agor (SQLite and PostgreSQL 16)."""

__version__ = "0.1.0"
