"""The list of indexed files: what each one is, how it was chunked, and which chunk ids it owns.

The catalog and the vector store cannot share a transaction, so the catalog also keeps a journal of
*unowned* ids: ids the store may hold that no file owns (written ahead of a file's catalog entry, or
released by it). A write that dies between the two leaves them there, and ``core.index_repair`` deletes
them from the store on the next open or write, so catalog and store always end up listing the same rows.
"""

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
            CREATE TABLE IF NOT EXISTS unowned (chunk_id TEXT PRIMARY KEY);
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
    def all_chunk_ids(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT chunk_id FROM chunks")}

    @locked
    def owners(self, chunk_ids: list[str]) -> set[str]:
        """The files that own any of ``chunk_ids``."""
        found: set[str] = set()
        for start in range(0, len(chunk_ids), 500):  # SQLite limits bound parameters per statement
            batch = chunk_ids[start : start + 500]
            marks = ",".join("?" * len(batch))
            found.update(
                row[0] for row in self._db.execute(f"SELECT source FROM chunks WHERE chunk_id IN ({marks})", batch)
            )
        return found

    @locked
    def record(self, entry: IndexedFile, chunk_ids: list[str]) -> list[str]:
        """Make ``entry`` own exactly ``chunk_ids``; returns the ids it owned before and no longer does.

        One transaction: the new ids stop being unowned and the released ones become unowned (the store
        still holds them until the caller deletes them), so a crash on either side of it leaves the
        journal saying what the store may hold in excess.
        """
        with self._db:
            old = {row[0] for row in self._db.execute("SELECT chunk_id FROM chunks WHERE source = ?", (entry.source,))}
            released = sorted(old - set(chunk_ids))
            self._db.execute("DELETE FROM chunks WHERE source = ?", (entry.source,))
            self._db.execute(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)", tuple(entry.__dict__.values())
            )
            self._db.executemany("INSERT INTO chunks VALUES (?, ?)", [(entry.source, cid) for cid in chunk_ids])
            self._db.executemany("DELETE FROM unowned WHERE chunk_id = ?", [(cid,) for cid in chunk_ids])
            self._db.executemany("INSERT OR IGNORE INTO unowned VALUES (?)", [(cid,) for cid in released])
        return released

    @locked
    def forget(self, source: str) -> None:
        """Remove a file once the store has deleted its rows."""
        with self._db:
            ids = [(row[0],) for row in self._db.execute("SELECT chunk_id FROM chunks WHERE source = ?", (source,))]
            self._db.executemany("DELETE FROM unowned WHERE chunk_id = ?", ids)
            self._db.execute("DELETE FROM chunks WHERE source = ?", (source,))
            self._db.execute("DELETE FROM files WHERE source = ?", (source,))

    @locked
    def mark_unowned(self, chunk_ids: list[str]) -> None:
        """Journal ids the store is about to hold, or lose, ahead of the catalog entry that says so."""
        with self._db:
            self._db.executemany("INSERT OR IGNORE INTO unowned VALUES (?)", [(cid,) for cid in chunk_ids])

    @locked
    def unowned(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT chunk_id FROM unowned ORDER BY chunk_id")]

    @locked
    def clear_unowned(self, chunk_ids: list[str]) -> None:
        with self._db:
            self._db.executemany("DELETE FROM unowned WHERE chunk_id = ?", [(cid,) for cid in chunk_ids])

    @locked
    def rekey(self, mapping: dict[str, str], incomplete: set[str], meta: dict[str, str]) -> None:
        """Rename chunk ids after a rebuild of the store, in one transaction with ``meta``.

        Ids without a new name are dropped; files in ``incomplete`` lose their content hash, so the next
        upload of them is indexed again instead of being called unchanged, and list the chunks they kept.
        """
        with self._db:
            rows = self._db.execute("SELECT source, chunk_id FROM chunks").fetchall()
            self._db.execute("DELETE FROM chunks")
            self._db.executemany(
                "INSERT INTO chunks VALUES (?, ?)", [(src, mapping[cid]) for src, cid in rows if cid in mapping]
            )
            self._db.executemany(
                "UPDATE files SET content_hash = '', chunks = (SELECT COUNT(*) FROM chunks WHERE chunks.source = ?) "
                "WHERE source = ?",
                [(s, s) for s in incomplete],
            )
            self._db.execute("DELETE FROM unowned")
            self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(meta.items()))

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
