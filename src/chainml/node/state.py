"""The node's durable state: one SQLite database in WAL mode.

Tables: ``nonces`` (the envelope replay cache, so a replay is refused after a restart
too), ``receipts`` (an inference provider's signed receipts and the batch that billed
each), ``actions`` (the workers' on-chain actions, see ``chainml.node.workers``) and
``meta``.  Every write commits before the call returns (``synchronous=FULL``), so a node
killed with SIGKILL, or a machine that loses power, loses nothing it acknowledged.

The one exception is a write made with ``sync=False`` (the envelope receiver's nonces):
committed to the write-ahead log but not flushed to the disk, it survives the process being
killed (the log is in the operating system's hands) and is flushed with the next
synchronous write; only a crash of the machine itself can lose the last few.  A nonce lost
that way lets an envelope be replayed within its freshness window (two minutes) after the
machine comes back, which the round protocols refuse as a duplicate message anyway; one
flush per envelope was what a round across processes spent most of its time on.
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

    def execute(self, sql: str, params: tuple[Any, ...] = (), *, sync: bool = True) -> int:
        """Run one statement (committed on return); the number of rows it changed.  With
        ``sync=False`` the commit is not flushed to the disk: it survives the process's
        death, not the machine's (until the next synchronous write)."""
        with self._lock:
            if sync:
                return self._db.execute(sql, params).rowcount
            self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                return self._db.execute(sql, params).rowcount
            finally:
                self._db.execute("PRAGMA synchronous=FULL")

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
    check (``horizon`` seconds); older ones are pruned, since a replay of them is stale.
    With ``sync=False`` a nonce is recorded without a flush to the disk (see the module's
    docstring): kept across a killed process, not across a crash of the machine."""

    def __init__(self, state: NodeState, horizon: int, *, sync: bool = True) -> None:
        self.state = state
        self.horizon = horizon
        self.sync = sync
        self._pruned_at: int | None = None

    def remember(self, sender: str, nonce: bytes, timestamp: int) -> bool:
        # prune at most once per horizon, not on every envelope
        if self._pruned_at is None or timestamp - self._pruned_at >= self.horizon:
            self.state.execute(
                "DELETE FROM nonces WHERE timestamp < ?",
                (timestamp - 2 * self.horizon,),
                sync=self.sync,
            )
            self._pruned_at = timestamp
        added = self.state.execute(
            "INSERT OR IGNORE INTO nonces (sender, nonce, timestamp) VALUES (?, ?, ?)",
            (sender, nonce, timestamp),
            sync=self.sync,
        )
        return added == 1

    def __len__(self) -> int:
        return int(self.state.query("SELECT COUNT(*) FROM nonces")[0][0])
