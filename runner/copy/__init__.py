"""The SQLite -> PostgreSQL copy (`agor-db copy`): scan, convert, write, verify."""
