"""The node's durable state: one SQLite database in WAL mode.

Tables: ``nonces`` (the envelope replay cache, so a replay is refused after a restart too)
and ``meta``.  Every write commits before the call returns (``synchronous=FULL``), so a
node killed with SIGKILL loses nothing it acknowledged.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS nonces (
    sender TEXT NOT NULL,
    nonce BLOB NOT NULL,
    timestamp INTEGER NOT NULL,
    PRIMARY KEY (sender, nonce)
);
CREATE INDEX IF NOT EXISTS nonces_by_time ON nonces (timestamp);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class NodeState:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )


class SqliteReplayCache:
    """Nonces seen, per sender, kept while their timestamp could still pass the freshness
    check (``horizon`` seconds); older ones are pruned, since a replay of them is stale."""

    def __init__(self, state: NodeState, horizon: int) -> None:
        self.state = state
        self.horizon = horizon

    def remember(self, sender: str, nonce: bytes, timestamp: int) -> bool:
        db = self.state._db
        with self.state._lock:
            db.execute("DELETE FROM nonces WHERE timestamp < ?", (timestamp - 2 * self.horizon,))
            cursor = db.execute(
                "INSERT OR IGNORE INTO nonces (sender, nonce, timestamp) VALUES (?, ?, ?)",
                (sender, nonce, timestamp),
            )
            return cursor.rowcount == 1

    def __len__(self) -> int:
        with self.state._lock:
            return int(self.state._db.execute("SELECT COUNT(*) FROM nonces").fetchone()[0])
