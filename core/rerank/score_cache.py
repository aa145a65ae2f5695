"""Reranker scores kept on disk, so a pair is scored once: re-running an experiment, or a pipeline that
differs only in depth, scores only the pairs it has not seen.

The key is (the reranker's identity, its calibration, the exact query text it reads, the sha256 of the
text): a different model, server, dtype, instruction or chunk text is a different pair. ``CachedReranker``
is a ``Reranker`` like any other, so the search and evaluation code does not know a cache is there.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path

import numpy as np

from core.rerank.base import Reranker


class ScoreCache:
    """``(key, logit)`` rows in SQLite (WAL: readers in other processes never wait on a writer)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, logit REAL NOT NULL)")
        self._db.commit()
        self._lock = threading.Lock()

    def get(self, keys: list[str]) -> dict[str, float]:
        found: dict[str, float] = {}
        with self._lock:
            for start in range(0, len(keys), 500):  # SQLite caps the parameters of one statement
                part = keys[start : start + 500]
                marks = ",".join("?" * len(part))
                found.update(self._db.execute(f"SELECT key, logit FROM scores WHERE key IN ({marks})", part))
        return found

    def put(self, scores: dict[str, float]) -> None:
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?)", list(scores.items()))
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class CachedReranker(Reranker):
    """``inner`` behind a ``ScoreCache``; ``pairs_from_cache`` and ``pairs_sent`` count what each call did."""

    def __init__(self, inner: Reranker, cache: ScoreCache):
        super().__init__()
        self.inner = inner
        self.cache = cache
        self.model_id = inner.model_id
        self.params = inner.params
        self.license = inner.license
        self.calibration = inner.calibration
        self.window = inner.window
        self.pairs_from_cache = 0
        self.pairs_sent = 0
        self._prefix = json.dumps([inner.identity, inner.calibration.to_json()], sort_keys=True)

    def key(self, query: str, text: str) -> str:
        text_hash = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        pair = json.dumps([self._prefix, query, text_hash])
        return hashlib.sha256(pair.encode("utf-8", "surrogatepass")).hexdigest()

    def score(self, query: str, texts: list[str], batch_size: int = 8) -> np.ndarray:
        keys = [self.key(query, text) for text in texts]
        known = self.cache.get(list(set(keys)))
        missing = list(dict.fromkeys(k for k in keys if k not in known))  # a repeated text is scored once
        if missing:
            first_text = {k: t for k, t in zip(reversed(keys), reversed(texts))}
            logits = self.inner.score(query, [first_text[k] for k in missing], batch_size)
            fresh = {k: float(x) for k, x in zip(missing, logits)}
            self.cache.put(fresh)
            known.update(fresh)
        with self._stats_lock:
            self.pairs_sent += len(missing)
            self.pairs_from_cache += len(keys) - len(missing)
        return np.array([known[k] for k in keys], dtype=np.float64)

    def pair_counts(self) -> tuple[int, int]:
        return self.pairs_sent, self.pairs_from_cache

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def can_count_window(self) -> bool:
        return self.inner.can_count_window()

    def describe(self) -> str:
        return self.inner.describe()

    @property
    def identity(self) -> str:
        return self.inner.identity

    @property
    def runs_on_local_cpu(self) -> bool:
        return self.inner.runs_on_local_cpu

    @property
    def measured_pairs_per_second(self) -> float | None:
        return self.inner.measured_pairs_per_second

    @property
    def probability_label(self) -> str:
        return self.inner.probability_label
