"""The Milvus store: round trip, persistence, and exact top-k against numpy brute force."""

from __future__ import annotations

import numpy as np
import pytest

from core.chunks import Chunk
from core.index.milvus import MilvusVectorStore
from core.index.store import VectorStoreError

DIM = 32


def _chunks(n: int, rng: np.random.Generator) -> tuple[list[Chunk], np.ndarray]:
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunks = [
        Chunk(
            f"file{i % 7}.txt:{i}",
            f"file{i % 7}.txt",
            f"file{i % 7}.txt",
            f"T{i}",
            (i % 3) or None,
            i,
            i + 5,
            f"text {i} é",
        )
        for i in range(n)
    ]
    return chunks, vectors


def test_round_trip_and_persistence(tmp_path):
    rng = np.random.default_rng(0)
    chunks, vectors = _chunks(50, rng)
    uri = str(tmp_path / "index.db")
    store = MilvusVectorStore(uri, DIM)
    store.upsert(chunks, vectors)
    assert store.count() == 50
    hit = store.search(vectors[17], 1)[0]
    assert hit.chunk == chunks[17] and hit.score == pytest.approx(1.0, abs=1e-5)
    store.delete([c.chunk_id for c in chunks[:10]])
    assert store.count() == 40
    store.close()

    reopened = MilvusVectorStore(uri, DIM)
    assert reopened.count() == 40
    assert reopened.search(vectors[17], 1)[0].chunk == chunks[17]
    assert all(h.chunk.chunk_id not in {c.chunk_id for c in chunks[:10]} for h in reopened.search(vectors[3], 40))
    reopened.close()


def test_top_k_equals_numpy_brute_force(tmp_path):
    rng = np.random.default_rng(1)
    chunks, vectors = _chunks(2000, rng)
    store = MilvusVectorStore(str(tmp_path / "index.db"), DIM)
    store.upsert(chunks, vectors)
    for _ in range(5):
        query = rng.standard_normal(DIM).astype(np.float32)
        hits = store.search(query, 50)
        cosine = vectors @ (query / np.linalg.norm(query))
        expected = np.argsort(-cosine, kind="stable")[:50]
        assert [h.chunk.chunk_id for h in hits] == [chunks[i].chunk_id for i in expected]
        np.testing.assert_allclose([h.score for h in hits], cosine[expected], atol=1e-5)
    store.close()


def test_dimension_mismatch_is_reported(tmp_path):
    uri = str(tmp_path / "index.db")
    MilvusVectorStore(uri, DIM).close()
    with pytest.raises(VectorStoreError, match="32-dimensional"):
        MilvusVectorStore(uri, 16)


def test_bm25_on_an_empty_collection_finds_nothing_instead_of_failing(tmp_path):
    store = MilvusVectorStore(str(tmp_path / "index.db"), DIM)
    try:
        assert store.supports_bm25
        assert store.search_text("storks migrate", 10) == []
    finally:
        store.close()
