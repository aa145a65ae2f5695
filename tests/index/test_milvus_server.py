"""The Milvus server path: the same MilvusVectorStore against a real Milvus standalone server.

The server is the one bundled by the `milvus` 2.3.5 wheel (tests/milvus_server.py starts it on
127.0.0.1 with free ports and a temporary data folder, and kills its process group when the session
ends). Everything here is compared with Milvus Lite and with numpy brute force:

- rows are searchable and counted right after they are written (read your own writes);
- HNSW on the server, once its index is built and loaded, finds >= 99% of the exact top-k and the
  same top-1 as Milvus Lite's exact FLAT search;
- a 2.3 server has no BM25 (Milvus >= 2.5): the store says so and the lexical search falls back to bm25s;
- a Workspace with MILVUS_URI pointing at the server ingests and searches the demo corpus, and ranks
  it as a Milvus Lite workspace does; so does the CLI, in separate processes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from core.chunks import Chunk
from core.index.milvus import MilvusVectorStore
from core.index.store import VectorStoreError
from tests.index.test_vector_store import DIM, _chunks
from tests.milvus_server import ServerUnavailable, start_server

pytestmark = pytest.mark.milvus_server

ROOT = Path(__file__).resolve().parents[2]
DEMO_CORPUS = ROOT / "data" / "demo"
SMALL_SEGMENT_ROWS = 1024  # Milvus indexes no segment smaller than this (minSegmentNumRowsToEnableIndex)


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory):
    """One server for the session; stopped (its whole process group) even when tests fail."""
    folder = tmp_path_factory.mktemp("milvus-server")
    try:
        server = start_server(folder)
    except ServerUnavailable as exc:
        pytest.skip(f"the Milvus server cannot run on this machine: {exc}")
    try:
        yield server
    finally:
        server.stop()
        for heavy in ("bin", "data"):  # ~390 MB of unpacked binaries and ~270 MB of etcd and rocksmq files
            shutil.rmtree(folder / heavy, ignore_errors=True)  # the configs and logs stay, for a post-mortem


def _collection() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


def test_server_is_the_bundled_2_3_5(milvus_server):
    assert milvus_server.version.startswith("v2.3.5")
    assert milvus_server.process.poll() is None


def test_round_trip_reads_its_own_writes(milvus_server):
    """Rows are counted and found right after upsert and gone right after delete: no 5 s Bounded lag."""
    rng = np.random.default_rng(0)
    chunks, vectors = _chunks(50, rng)
    collection = _collection()
    store = MilvusVectorStore(milvus_server.uri, DIM, collection=collection)
    assert store.index_type == "HNSW" and not store.is_lite
    store.upsert(chunks, vectors)
    assert store.count() == 50
    hit = store.search(vectors[17], 1)[0]
    assert hit.chunk == chunks[17] and hit.score == pytest.approx(1.0, abs=1e-5)
    assert all(store.search(vectors[i], 1)[0].chunk.chunk_id == chunks[i].chunk_id for i in range(0, 50, 7))
    store.delete([c.chunk_id for c in chunks[:10]])
    assert store.count() == 40
    assert chunks[3].chunk_id not in {h.chunk.chunk_id for h in store.search(vectors[3], 50)}
    store.close()

    reopened = MilvusVectorStore(milvus_server.uri, DIM, collection=collection)
    assert reopened.count() == 40
    assert reopened.search(vectors[17], 1)[0].chunk == chunks[17]
    reopened.close()
    with pytest.raises(VectorStoreError, match="32-dimensional"):
        MilvusVectorStore(milvus_server.uri, 16, collection=collection)


def test_hnsw_on_the_server_matches_exact_search(milvus_server, tmp_path, record_property):
    """2,000 random vectors: HNSW recall >= 0.99 against brute force, and the same top-1 as Milvus Lite."""
    rng = np.random.default_rng(1)
    chunks, vectors = _chunks(2000, rng)
    server = MilvusVectorStore(milvus_server.uri, DIM, collection=_collection())
    lite = MilvusVectorStore(str(tmp_path / "index.db"), DIM)
    assert (server.index_type, lite.index_type) == ("HNSW", "FLAT")

    started = time.perf_counter()
    server.upsert(chunks, vectors)
    upserted = time.perf_counter()
    server.wait_until_indexed(timeout=120)
    indexed = time.perf_counter()
    lite.upsert(chunks, vectors)
    described = server._client.describe_index(server.collection, "vector")
    assert described["index_type"] == "HNSW" and described["indexed_rows"] == 2000
    assert server.count() == lite.count() == 2000

    queries = rng.standard_normal((50, DIM)).astype(np.float32)
    by_id = {chunk.chunk_id: i for i, chunk in enumerate(chunks)}
    recalls = {10: [], 50: []}
    search_seconds = []
    for query in queries:
        cosine = vectors @ (query / np.linalg.norm(query))
        exact = [chunks[i].chunk_id for i in np.argsort(-cosine, kind="stable")]
        for k, found in recalls.items():
            t0 = time.perf_counter()
            hits = server.search(query, k)
            search_seconds.append(time.perf_counter() - t0)
            lite_hits = lite.search(query, k)
            assert [h.chunk.chunk_id for h in lite_hits] == exact[:k]  # Lite's FLAT is exact
            assert hits[0].chunk.chunk_id == lite_hits[0].chunk.chunk_id
            found.append(len({h.chunk.chunk_id for h in hits} & set(exact[:k])) / k)
            np.testing.assert_allclose(
                [h.score for h in hits], cosine[[by_id[h.chunk.chunk_id] for h in hits]], atol=1e-5
            )
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for k, values in recalls.items():
        assert np.mean(values) >= 0.99, f"recall@{k} {np.mean(values):.4f}"
    # A stored vector finds itself first, with its metadata intact.
    for i in range(0, 2000, 97):
        hit = server.search(vectors[i], 1)[0]
        assert hit.chunk == chunks[i] and hit.score == pytest.approx(1.0, abs=1e-5)

    record_property("upsert_s", round(upserted - started, 3))
    record_property("flush_and_index_s", round(indexed - upserted, 3))
    record_property("search_ms_median", round(1000 * float(np.median(search_seconds)), 2))
    record_property("recall_at_10", float(np.mean(recalls[10])))
    server.close()
    lite.close()


def test_bm25_is_reported_unavailable_on_a_2_3_server(milvus_server):
    """BM25 needs Milvus >= 2.5: on 2.3 the store still opens, says so, and the lexical search uses bm25s.

    Aligned with the lead's BM25 change: the attribute is ``MilvusVectorStore.supports_bm25``.
    """
    from core.index.bm25 import LexicalSearch

    collection = _collection()
    store = MilvusVectorStore(milvus_server.uri, DIM, collection=collection)
    assert store.supports_bm25 is False
    rng = np.random.default_rng(2)
    chunks, vectors = _chunks(30, rng)
    chunks[12] = Chunk(
        "lexical.txt:0", "lexical.txt", "lexical.txt", "", None, 0, 40, "The lock-up period expires after 180 days"
    )
    store.upsert(chunks, vectors)
    assert store.search(vectors[12], 1)[0].chunk == chunks[12]
    with pytest.raises(VectorStoreError, match="BM25"):
        store.search_text("lock-up period", 5)
    assert sorted(c.chunk_id for batch in store.iter_chunks(batch_size=7) for c in batch) == sorted(
        c.chunk_id for c in chunks
    )
    lexical = LexicalSearch(store)
    assert lexical.engine == "bm25s"
    assert lexical.search("when does the lock-up period expire", 5)[0].chunk == chunks[12]
    store.close()

    reopened = MilvusVectorStore(milvus_server.uri, DIM, collection=collection)
    assert reopened.supports_bm25 is False and reopened.count() == 30
    reopened.close()
    # No half-made collection is left behind by a BM25 attempt the server rejected.
    from pymilvus import MilvusClient

    client = MilvusClient(uri=milvus_server.uri)
    fields = {f["name"]: f for f in client.describe_collection(collection)["fields"]}
    client.close()
    assert "text_sparse" not in fields


def _workspace_results(workspace, queries: list[str]):
    from core.index.bm25 import LexicalSearch
    from core.retrieval.first_stage import Retriever
    from core.retrieval.pipeline import FirstStage, Pipeline
    from core.retrieval.search import search

    retriever = Retriever(workspace.encoder, workspace.store, LexicalSearch(workspace.store))
    return [search(query, Pipeline(FirstStage("hybrid")), retriever, None, k=10) for query in queries]


def test_workspace_with_milvus_uri_on_the_server(milvus_server, encoder, tmp_path, monkeypatch, record_property):
    """MILVUS_URI at the server: ingest the demo corpus, search it, and rank it as a Milvus Lite workspace does."""
    from core.config import Settings
    from core.ingest.workspace import Workspace

    queries = [item["query"] for item in json.loads((ROOT / "data" / "suggested_queries.json").read_text())]
    monkeypatch.setenv("MILVUS_URI", milvus_server.uri)
    settings = Settings.from_env(workspace=tmp_path / "server", collection=_collection())
    assert settings.resolved_milvus_uri == milvus_server.uri
    server_ws = Workspace(settings, encoder)
    lite_ws = Workspace(Settings(workspace=tmp_path / "lite"), encoder)
    assert server_ws.store.index_type == "HNSW" and not server_ws.store.is_lite
    try:
        started = time.perf_counter()
        summary = server_ws.ingest_paths([DEMO_CORPUS])
        ingest_s = time.perf_counter() - started
        assert all(r.status == "indexed" for r in summary.reports), [r.message for r in summary.reports]
        lite_ws.ingest_paths([DEMO_CORPUS])
        total = sum(f.chunks for f in server_ws.files())
        assert server_ws.store.count() == lite_ws.store.count() == total > 0

        # Right after the ingest, before any flush: the unsealed rows answer exactly as Lite does.
        server_results = _workspace_results(server_ws, queries)
        lite_results = _workspace_results(lite_ws, queries)
        server_ws.store.wait_until_indexed(timeout=120)  # the ingest waited already: this returns at once
        indexed_results = _workspace_results(server_ws, queries)
        for server, indexed, lite in zip(server_results, indexed_results, lite_results, strict=True):
            lite_ids = [r.chunk.chunk_id for r in lite.dense]
            assert [r.chunk.chunk_id for r in server.dense] == lite_ids, server.query
            assert [r.chunk.chunk_id for r in indexed.dense] == lite_ids, server.query
            np.testing.assert_allclose([r.score for r in indexed.dense], [r.score for r in lite.dense], atol=1e-4)
            assert server.lexical_engine == "bm25s" and lite.lexical_engine == "Milvus BM25"
            assert server.bm25 and server.fused
        record_property("workspace_ingest_s", round(ingest_s, 2))
        record_property("workspace_search_ms", [round(r.timings_ms["total"], 1) for r in indexed_results])

        # Deleting a file takes its chunks out of the server's index at once.
        source = server_ws.files()[0].source
        removed = server_ws.delete(source)
        assert server_ws.store.count() == total - removed
        assert all(r.chunk.source != source for r in _workspace_results(server_ws, queries[:2])[0].dense)

        # Hostile names on a real server: they index, unchanged is checked against its rows, and a
        # delete takes exactly that file's chunks (the filters carry hashed ids, never the names).
        from core.ingest.workspace import FileInput

        hostile = ["z') OR 1=1 --.txt", 'o\'brien "q".txt', "back\\slash\n#1.txt"]
        reports = server_ws.ingest([FileInput(n, f"Notes on {n}: herons wade.".encode()) for n in hostile]).reports
        assert [r.status for r in reports] == ["indexed"] * 3, [r.message for r in reports]
        assert (
            server_ws.ingest([FileInput(hostile[1], f"Notes on {hostile[1]}: herons wade.".encode())]).reports[0].status
            == "unchanged"
        )
        before = server_ws.store.count()
        assert server_ws.delete(hostile[0]) == 1 and server_ws.store.count() == before - 1
        stored = {cid for batch in server_ws.store.iter_ids() for cid in batch}
        assert stored == server_ws.catalog.all_chunk_ids()
    finally:
        server_ws.close()
        lite_ws.close()


def test_cli_index_then_search_on_the_server(milvus_server, tmp_path):
    """Two separate processes, as a user runs them: what `index` wrote, `search` finds at once."""
    env = {
        **os.environ,
        "MILVUS_URI": milvus_server.uri,
        "RERANK_WORKSPACE": str(tmp_path / "workspace"),
        "RERANK_COLLECTION": _collection(),
    }

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "core", *args],
            check=False,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    indexed = cli("index", str(DEMO_CORPUS / "finance"))
    assert indexed.returncode == 0, indexed.stderr[-2000:]
    found = cli("search", "When does an IPO lock-up period end?", "-k", "5", "--reranker", "none", "--json")
    assert found.returncode == 0, found.stderr[-2000:]
    result = json.loads(found.stdout)
    assert len(result["dense"]) == 5
    assert result["dense"][0]["source"] == "ipo-lock-up-period.md"
