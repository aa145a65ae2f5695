"""The list of indexed files: what each one is, how it was chunked, and which chunk ids it owns."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from core.locking import locked


@dataclass(frozen=True)
class IndexedFile:
    source: str
    content_hash: str
    size_bytes: int
    documents: int
    chunks: int
    indexed_at: str  # ISO 8601, UTC
    chunking: str  # model, size and overlap the chunks were made with

    @property
    def embedded_with(self) -> str:
        """The runtime and precision of its vectors: BiEncoder.cache_key's suffix, float32 where it has none."""
        cache_key = self.chunking.split("|", 1)[0]
        return cache_key.rpartition("@")[2] if "@" in cache_key else "float32"


class Catalog:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._lock = threading.Lock()
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS files (
                source TEXT PRIMARY KEY, content_hash TEXT, size_bytes INTEGER, documents INTEGER,
                chunks INTEGER, indexed_at TEXT, chunking TEXT);
            CREATE TABLE IF NOT EXISTS chunks (source TEXT, chunk_id TEXT PRIMARY KEY);
            CREATE INDEX IF NOT EXISTS chunks_by_source ON chunks (source);
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
            """
        )
        self._db.commit()

    @locked
    def get(self, source: str) -> IndexedFile | None:
        row = self._db.execute("SELECT * FROM files WHERE source = ?", (source,)).fetchone()
        return IndexedFile(*row) if row else None

    @locked
    def files(self) -> list[IndexedFile]:
        return [IndexedFile(*row) for row in self._db.execute("SELECT * FROM files ORDER BY indexed_at DESC, source")]

    @locked
    def chunk_ids(self, source: str) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT chunk_id FROM chunks WHERE source = ?", (source,))]

    @locked
    def record(self, entry: IndexedFile, chunk_ids: list[str]) -> None:
        with self._db:
            self._db.execute("DELETE FROM chunks WHERE source = ?", (entry.source,))
            self._db.execute(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)", tuple(entry.__dict__.values())
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO chunks VALUES (?, ?)", [(entry.source, cid) for cid in chunk_ids]
            )

    @locked
    def forget(self, source: str) -> None:
        with self._db:
            self._db.execute("DELETE FROM chunks WHERE source = ?", (source,))
            self._db.execute("DELETE FROM files WHERE source = ?", (source,))

    @locked
    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    @locked
    def set_meta(self, key: str, value: str) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @locked
    def close(self) -> None:
        self._db.close()


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
