"""BM25: Milvus' own (Milvus Lite), the bm25s fallback, and a hand computation of the formula.

The hand computation is BM25 with Lucene's idf, k1 1.2, b 0.75 and avgdl the mean document length:

    score(q, d) = sum over query terms t in d of  idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))
    idf(t) = ln(1 + (N - n + 0.5) / (n + 0.5))

on a corpus of words that are neither stop words nor changed differently by stemming, so counting
whole words is what the analyzers count. Milvus scores in float32, hence the relative tolerance.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from core.chunks import Chunk
from core.index.bm25 import Bm25sIndex, LexicalSearch
from core.index.milvus import MilvusVectorStore
from core.index.store import BM25_B, BM25_K1, VectorStoreError

DIM = 8
WORDS = ["apple", "banana", "cherry", "grape", "melon", "kiwi", "lemon", "mango", "peach", "plum", "pear", "fig"]
QUERIES = ["apple", "kiwi", "fig", "apple melon", "banana grape plum", "cherry lemon mango peach", "pear walnut"]


def _chunks(texts: list[str], prefix: str = "c") -> list[Chunk]:
    return [
        Chunk(f"{prefix}{i}", f"{prefix}.txt", f"{prefix}.txt", "T", None, 0, len(t), t) for i, t in enumerate(texts)
    ]


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def _store(path, chunks: list[Chunk], collection: str = "chunks") -> MilvusVectorStore:
    store = MilvusVectorStore(str(path), DIM, collection=collection)
    store.upsert(chunks, _vectors(len(chunks)))
    return store


def _random_corpus(seed: int, n: int = 30) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 16)))) for _ in range(n)]


def hand_bm25(texts: list[str], query: str, k1: float = BM25_K1, b: float = BM25_B) -> dict[int, float]:
    docs = [Counter(t.split()) for t in texts]
    lengths = [sum(d.values()) for d in docs]
    avgdl = sum(lengths) / len(docs)
    scores: dict[int, float] = {}
    for term in set(query.split()):
        n = sum(term in d for d in docs)
        idf = math.log(1 + (len(docs) - n + 0.5) / (n + 0.5))
        for i, d in enumerate(docs):
            tf = d[term]
            if tf:
                norm = k1 * (1 - b + b * lengths[i] / avgdl)
                scores[i] = scores.get(i, 0.0) + idf * tf * (k1 + 1) / (tf + norm)
    return scores


def _by_id(hits) -> dict[str, float]:
    return {h.chunk.chunk_id: h.score for h in hits}


@pytest.fixture(scope="module")
def random_corpus(tmp_path_factory):
    texts = _random_corpus(seed=3)
    chunks = _chunks(texts)
    store = _store(tmp_path_factory.mktemp("bm25") / "index.db", chunks)
    yield texts, chunks, store
    store.close()


def test_milvus_bm25_equals_the_hand_computation(random_corpus):
    texts, chunks, store = random_corpus
    assert store.supports_bm25
    for query in QUERIES:
        expected = {chunks[i].chunk_id: s for i, s in hand_bm25(texts, query).items()}
        hits = store.search_text(query, len(chunks))
        got = _by_id(hits)
        assert set(got) == set(expected), query  # every document with a query word, and only those
        for cid, score in expected.items():
            assert got[cid] == pytest.approx(score, rel=1e-4), (query, cid)
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
        assert all(h.chunk == chunks[int(h.chunk.chunk_id[1:])] for h in hits)  # the stored chunk comes back whole
    # k cuts the list to the best k.
    full = store.search_text("apple melon", len(chunks))
    assert [h.chunk.chunk_id for h in store.search_text("apple melon", 3)] == [h.chunk.chunk_id for h in full[:3]]
    assert store.search_text("apple", 0) == []


def test_bm25s_ranks_and_scores_as_milvus_does(random_corpus):
    """Same documents, same order, same scores (bm25s' scores are scaled by k1 + 1 to Milvus' formula)."""
    _, chunks, store = random_corpus
    index = Bm25sIndex(chunks)
    ratios = []
    for query in QUERIES:
        milvus = _by_id(store.search_text(query, len(chunks)))
        hits = index.search(query, len(chunks))
        ours = _by_id(hits)
        assert set(ours) == set(milvus), query
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        ratios += [milvus[cid] / ours[cid] for cid in ours]
    assert ratios and np.allclose(ratios, 1.0, rtol=1e-4)


NOTES = [
    "The server runs nightly backups of the customer database.",
    "Section 230 of the Communications Decency Act shields platforms from liability for user posts.",
    "Section 12 of the lease says the tenant pays for minor repairs.",
    "The 2023 annual report has a section on platform revenue.",
    "The client failed with ERR_CONN_RESET when the proxy dropped the idle connection.",
    "A connection error is usually retried by the client library.",
    "She was running late for the meeting about database backups.",
    "Bond prices fall when interest rates rise.",
]


@pytest.fixture(scope="module")
def notes(tmp_path_factory):
    chunks = _chunks(NOTES, prefix="n")
    store = _store(tmp_path_factory.mktemp("notes") / "index.db", chunks)
    yield chunks, store
    store.close()


@pytest.mark.parametrize("engine", ["milvus", "bm25s"])
def test_english_analyzer_as_users_meet_it(notes, engine):
    chunks, store = notes
    search = store.search_text if engine == "milvus" else Bm25sIndex(chunks).search

    def ids(query: str) -> list[str]:
        return [h.chunk.chunk_id for h in search(query, 10)]

    # Stemming: "running" finds the note that says "runs" as well as the one that says "running".
    assert set(ids("running")) == {"n0", "n6"}
    assert set(ids("runs")) == {"n0", "n6"}
    # Case does not matter, scores included.
    assert _by_id(search("RUNNING Backups", 10)) == _by_id(search("running backups", 10))
    # Only stop words, or nothing at all: no results, and no error.
    for query in ("the of and", "The", "", "   ", "?!"):
        assert search(query, 10) == [], query
    # An exact identifier comes first.
    assert ids("Section 230")[0] == "n1"
    assert ids("ERR_CONN_RESET")[0] == "n4"
    assert ids("err_conn_reset")[0] == "n4"


def test_lexical_search_uses_milvus_bm25_when_the_collection_has_it(notes):
    _, store = notes
    lexical = LexicalSearch(store)
    assert lexical.engine == "Milvus BM25"
    assert lexical.search("interest rates", 5) == store.search_text("interest rates", 5)
    assert lexical._fallback is None  # no second index was built


def test_deleting_and_replacing_chunks_changes_milvus_bm25_results(tmp_path):
    chunks = _chunks(NOTES, prefix="n")
    store = _store(tmp_path / "index.db", chunks)
    lexical = LexicalSearch(store)
    assert [h.chunk.chunk_id for h in lexical.search("bond prices", 5)] == ["n7"]
    store.delete(["n7"])
    assert lexical.search("bond prices", 5) == []
    assert "n1" in _by_id(lexical.search("liability", 5))
    # An upsert with new text under the same id: the old words go, the new ones are found.
    store.upsert([Chunk("n1", "n.txt", "n.txt", "T", None, 0, 20, "Zebras graze on the savanna.")], _vectors(1))
    assert "n1" not in _by_id(lexical.search("liability", 5))
    assert [h.chunk.chunk_id for h in lexical.search("zebra", 5)] == ["n1"]
    store.close()


OLD_FIELDS = ("chunk_id", "vector", "source", "doc_id", "title", "page", "start", "end", "text")


def _old_collection(uri: str, name: str) -> None:
    """The schema before BM25 was added: no analyzer on the text, no sparse field, no BM25 function."""
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(uri=uri)
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("chunk_id", DataType.VARCHAR, is_primary=True, max_length=1024)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    for field in ("source", "doc_id", "title"):
        schema.add_field(field, DataType.VARCHAR, max_length=1024)
    for field in ("page", "start", "end"):
        schema.add_field(field, DataType.INT64)
    schema.add_field("text", DataType.VARCHAR, max_length=65535)
    index = client.prepare_index_params()
    index.add_index("vector", index_type="FLAT", metric_type="COSINE")
    client.create_collection(name, schema=schema, index_params=index)
    fields = [f["name"] for f in client.describe_collection(name)["fields"]]
    assert tuple(fields) == OLD_FIELDS


@pytest.fixture
def old_store(tmp_path):
    uri = str(tmp_path / "index.db")
    current = MilvusVectorStore(uri, DIM)  # today's collection, with BM25, beside the old one
    assert current.supports_bm25
    _old_collection(uri, "old_chunks")
    store = MilvusVectorStore(uri, DIM, collection="old_chunks")
    yield store
    store.close()
    current.close()


def test_collection_without_bm25_falls_back_to_bm25s(old_store):
    chunks = _chunks(NOTES, prefix="n")
    old_store.upsert(chunks, _vectors(len(chunks)))
    assert not old_store.supports_bm25
    with pytest.raises(VectorStoreError, match="no BM25 field"):
        old_store.search_text("bond", 5)
    lexical = LexicalSearch(old_store)
    assert lexical.engine == "bm25s"
    for query in ("bond prices", "Section 230", "running", "the of"):
        assert lexical.search(query, 5) == Bm25sIndex(chunks).search(query, 5), query
    top = lexical.search("Section 230", 5)[0]
    assert top.chunk == chunks[1]  # the whole chunk, read back from Milvus
    # The vector search still works on the old collection.
    assert old_store.search(_vectors(len(chunks))[3], 1)[0].chunk == chunks[3]


def test_fallback_index_is_rebuilt_when_the_chunk_count_changes(old_store):
    chunks = _chunks(NOTES, prefix="n")
    old_store.upsert(chunks, _vectors(len(chunks)))
    lexical = LexicalSearch(old_store)
    assert lexical.search("zebra", 5) == []
    built = lexical._fallback

    zebra = Chunk("z0", "z.txt", "z.txt", "Z", None, 0, 28, "Zebras graze on the savanna.")
    old_store.upsert([zebra], _vectors(1, seed=5))
    assert [h.chunk for h in lexical.search("zebra", 5)] == [zebra]
    assert lexical._fallback is not built
    rebuilt = lexical._fallback
    lexical.search("savanna", 5)
    assert lexical._fallback is rebuilt  # unchanged count: the index is reused

    old_store.delete(["z0", "n7"])
    assert lexical.search("zebra", 5) == []
    assert lexical.search("bond prices", 5) == []
    assert lexical.search("Section 230", 5)[0].chunk.chunk_id == "n1"


def test_fallback_index_sees_a_rewritten_chunk(old_store):
    chunks = _chunks(NOTES, prefix="n")
    old_store.upsert(chunks, _vectors(len(chunks)))
    lexical = LexicalSearch(old_store)
    assert [h.chunk.chunk_id for h in lexical.search("bond prices", 5)] == ["n7"]
    edited = Chunk("n7", "n.txt", "n.txt", "T", None, 0, 28, "Zebras graze on the savanna.")
    old_store.upsert([edited], _vectors(1, seed=5))  # same id, so the count stays the same
    assert old_store.count() == len(chunks)
    assert [h.chunk for h in lexical.search("zebra", 5)] == [edited]
    assert lexical.search("bond prices", 5) == []


def test_bm25s_on_a_corpus_without_a_single_word_finds_nothing():
    chunks = _chunks(["the of and", "a", "", "is the"], prefix="s")
    index = Bm25sIndex(chunks)
    assert index.search("the", 5) == [] and index.search("anything", 5) == []
