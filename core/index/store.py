"""What the rest of the explorer asks of a vector store; ``core.index.milvus`` is the one implementation."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from core.chunks import Chunk, Hit
from core.errors import ExplorerError

BM25_K1, BM25_B = 1.2, 0.75  # Milvus' defaults, and Lucene's
MAX_SEARCH_LIMIT = 16_384  # Milvus's top-k ceiling


class VectorStore(Protocol):
    dim: int
    writes: int  # upserts and deletes so far, so caches built on the contents can tell they are stale
    max_name_bytes: int  # the longest file name or document id it can hold

    def upsert(self, chunks: list[Chunk], vectors: np.ndarray) -> None: ...

    def delete(self, chunk_ids: list[str]) -> None: ...

    def present(self, chunk_ids: list[str]) -> set[str]: ...

    def wait_until_indexed(self) -> None: ...

    def search(self, vector: np.ndarray, k: int) -> list[Hit]: ...

    supports_bm25: bool

    def search_text(self, query: str, k: int) -> list[Hit]: ...

    def iter_chunks(self, batch_size: int = 1000): ...

    def count(self) -> int: ...

    def close(self) -> None: ...


class VectorStoreError(ExplorerError):
    pass
