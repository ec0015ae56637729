"""The node's durable state: one SQLite database in WAL mode.

Tables: ``nonces`` (the envelope replay cache, so a replay is refused after a restart
too), ``receipts`` (an inference provider's signed receipts and the batch that billed
each), ``actions`` (the workers' on-chain actions, see ``chainml.node.workers``) and
``meta``.  Every write commits before the call returns (``synchronous=FULL``), so a node
killed with SIGKILL loses nothing it acknowledged.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS nonces (
    sender TEXT NOT NULL,
    nonce BLOB NOT NULL,
    timestamp INTEGER NOT NULL,
    PRIMARY KEY (sender, nonce)
);
CREATE INDEX IF NOT EXISTS nonces_by_time ON nonces (timestamp);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS receipts (
    client TEXT NOT NULL,
    counter INTEGER NOT NULL,
    body TEXT NOT NULL,
    price TEXT NOT NULL,
    issued REAL NOT NULL,
    root BLOB,
    batch INTEGER,
    PRIMARY KEY (client, counter)
);
CREATE TABLE IF NOT EXISTS actions (
    key TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    tx_hash TEXT,
    detail TEXT,
    updated REAL NOT NULL
);
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

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """Run one statement (committed on return); the number of rows it changed."""
        with self._lock:
            return self._db.execute(sql, params).rowcount

    def get(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def put(self, key: str, value: str) -> None:
        self.execute(
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
        self._pruned_at: int | None = None

    def remember(self, sender: str, nonce: bytes, timestamp: int) -> bool:
        # prune at most once per horizon, not on every envelope
        if self._pruned_at is None or timestamp - self._pruned_at >= self.horizon:
            self.state.execute(
                "DELETE FROM nonces WHERE timestamp < ?", (timestamp - 2 * self.horizon,)
            )
            self._pruned_at = timestamp
        added = self.state.execute(
            "INSERT OR IGNORE INTO nonces (sender, nonce, timestamp) VALUES (?, ?, ?)",
            (sender, nonce, timestamp),
        )
        return added == 1

    def __len__(self) -> int:
        return int(self.state.query("SELECT COUNT(*) FROM nonces")[0][0])
