"""The PostgreSQL migration lock's key: the driver takes it per session, the applier per transaction."""

from __future__ import annotations

import hashlib

# One key for every agor-db run on a database (advisory locks are per database).
LOCK_KEY = int.from_bytes(hashlib.sha256(b"agor-db migration lock").digest()[:8], "big") >> 1
