"""Operational commands: waiting for the database (`agor-db wait`), new migration pairs (`agor-db new`)."""
