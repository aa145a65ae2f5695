"""On-disk cache of chunk embeddings keyed by model id and the SHA-256 of the chunk's text.

Re-uploading an unchanged file, or a file that shares chunks with one already indexed, embeds nothing
new. SQLite keeps it a single file in the workspace with atomic writes.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path

import numpy as np

from core.embedding.bi_encoder import BiEncoder, Progress
from core.locking import locked


def text_key(model_id: str, text: str) -> str:
    return hashlib.sha256(f"{model_id}\x00{text}".encode()).hexdigest()


class EmbeddingCache:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, dim INTEGER, vector BLOB)")
        self._db.commit()

    @locked
    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 500):  # SQLite limits bound parameters per statement
            batch = keys[start : start + 500]
            marks = ",".join("?" * len(batch))
            for key, _dim, blob in self._db.execute(
                f"SELECT key, dim, vector FROM embeddings WHERE key IN ({marks})", batch
            ):
                found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    @locked
    def put_many(self, keys: list[str], vectors: np.ndarray) -> None:
        rows = [
            (key, int(vector.shape[0]), np.asarray(vector, dtype=np.float32).tobytes())
            for key, vector in zip(keys, vectors)
        ]
        self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)", rows)
        self._db.commit()

    @locked
    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]

    @locked
    def close(self) -> None:
        self._db.close()


def embed_with_cache(
    encoder: BiEncoder, cache: EmbeddingCache, texts: list[str], progress: Progress | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Vectors for ``texts``, and a mask of those the model computed (the rest came from the cache).

    A text that repeats inside ``texts`` is embedded once; its first occurrence is the one marked.
    """
    keys = [text_key(encoder.cache_key, text) for text in texts]
    found = cache.get_many(sorted(set(keys)))
    first_missing: dict[str, int] = {}
    for i, key in enumerate(keys):
        if key not in found:
            first_missing.setdefault(key, i)
    fresh_mask = np.zeros(len(texts), dtype=bool)
    if first_missing:
        missing_keys = list(first_missing)
        positions = list(first_missing.values())

        def save(batch: list[int], vectors: np.ndarray) -> None:
            cache.put_many([missing_keys[i] for i in batch], vectors)

        fresh = encoder.encode([texts[i] for i in positions], progress=progress, on_batch=save)
        found.update(zip(missing_keys, fresh))
        fresh_mask[positions] = True
    elif progress:
        progress(len(texts), len(texts), 0.0)
    vectors = np.stack([found[key] for key in keys]) if keys else np.zeros((0, encoder.dim), dtype=np.float32)
    return vectors, fresh_mask
