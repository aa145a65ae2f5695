"""Milvus as the vector store: an embedded Milvus Lite file, or a Milvus server or cluster.

Only the URI and the index type differ: Lite gets FLAT (exact), a server HNSW. BM25 is Milvus' own
function (Lite 2.5 and servers from 2.5) over an analysed copy of the text; older servers and older
collections say ``supports_bm25`` False and ``core.index.bm25`` falls back to bm25s. No user text ever
reaches a filter expression: filters are built from chunk ids only (``core.index.milvus_filters``).
"""

from __future__ import annotations

import copy
import re
import threading
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from core.chunks import MAX_CHUNK_BYTES, MAX_ID_BYTES, Chunk, Hit
from core.index.milvus_filters import ID_BATCH, after_key, check_ids, id_filter
from core.index.store import BM25_B, BM25_K1, MAX_SEARCH_LIMIT, VectorStoreError

# File names, document ids and titles: a file name may be long (a path in a folder upload). Collections
# made before this limit was raised hold 1,024 bytes; ``max_name_bytes`` reads the collection's own.
MAX_NAME_BYTES = 4_096
CHUNK_FIELDS = ("chunk_id", "source", "doc_id", "title", "page", "start", "end", "text")
SPARSE_FIELD = "text_sparse"
BM25_ANALYZER = "english"
NO_PAGE = 0  # Milvus has no NULL for INT64 here; pages are 1-based, so 0 means "not paged"


# Read your own writes: a server's default (Bounded) hides rows written in the last ~5 s, so a search
# right after an ingest would miss them; Strong waits for the next time tick (~200 ms per search).
CONSISTENCY = "Session"
SMALL_SEGMENT_ROWS = 1024  # a server's default minSegmentNumRowsToEnableIndex


class MilvusVectorStore:
    def __init__(
        self,
        uri: str,
        dim: int,
        collection: str = "chunks",
        index_type: str = "",
        token: str = "",
    ):
        with warnings.catch_warnings():
            # milvus-lite 2.5 imports pkg_resources, which warns on every start.
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
            from pymilvus import MilvusClient

        self.uri = uri
        self.is_lite = uri.endswith(".db")
        if self.is_lite:
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
        self.index_type = (index_type or ("FLAT" if self.is_lite else "HNSW")).upper()
        self.collection = collection
        self.dim = dim
        try:
            self._client = MilvusClient(uri=uri, token=token) if token else MilvusClient(uri=uri)
            if self.is_lite:
                with _LITE_LOCK:
                    _LITE_CLIENTS[str(Path(uri).resolve())] += 1
        except Exception as exc:  # pymilvus raises several unrelated types for an unreachable server
            hint = " (Milvus Lite lets one process open a .db file: is the app or another CLI run using it?)"
            raise VectorStoreError(f"cannot open Milvus at {uri}: {exc}" + (hint if self.is_lite else "")) from exc
        self._open_collection()

    def sibling(self, collection: str) -> MilvusVectorStore:
        """A store for another collection of the same Milvus, over this store's connection.

        pymilvus shares one connection between clients of the same URI, so a second client would be
        closed with the first; a sibling is closed only through its origin or itself, never both.
        """
        other = copy.copy(self)
        other.collection = collection
        other._open_collection()
        return other

    def _open_collection(self) -> None:
        if self._client.has_collection(self.collection):
            self._check_dim()
        else:
            self._create()
        self.writes = 0  # upserts and deletes through this store, so caches built on its contents can tell
        # The sparse field counts only as the BM25 function's output: a 2.3 server keeps the field of a
        # failed BM25 create but drops the function (and Milvus Lite lists no functions at all).
        fields = self._client.describe_collection(self.collection).get("fields", [])
        self.supports_bm25 = any(f.get("name") == SPARSE_FIELD and f.get("is_function_output") for f in fields)
        lengths = {f.get("name"): int(f.get("params", {}).get("max_length", MAX_ID_BYTES)) for f in fields}
        self.max_name_bytes = min(lengths.get("source", MAX_ID_BYTES), lengths.get("doc_id", MAX_ID_BYTES))
        self._title_bytes = lengths.get("title", MAX_ID_BYTES)

    def _server_version(self) -> tuple[int, int] | None:
        """(major, minor) of a server; None for Milvus Lite (which has no such call) or an unreadable answer."""
        if self.is_lite:
            return None
        try:
            match = re.search(r"(\d+)\.(\d+)", self._client.get_server_version())
        except Exception:  # noqa: BLE001 (an odd server: _create tries BM25 and falls back on the error)
            return None
        return (int(match[1]), int(match[2])) if match else None

    def _create(self) -> None:
        version = self._server_version()
        if version is not None and version < (2, 5):  # BM25 functions and analyzers came in Milvus 2.5
            self._create_collection(with_bm25=False)
            return
        try:
            self._create_collection(with_bm25=True)
        except Exception as exc:  # a server older than 2.5 rejects the analyzer and the BM25 function
            if not _bm25_unsupported(exc):
                raise
            # create_collection makes the collection before its indexes: drop what the failed attempt left
            if self._client.has_collection(self.collection):
                self._client.drop_collection(self.collection)
            self._create_collection(with_bm25=False)

    def _create_collection(self, with_bm25: bool) -> None:
        from pymilvus import DataType, Function, FunctionType

        schema = self._client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("chunk_id", DataType.VARCHAR, is_primary=True, max_length=MAX_ID_BYTES)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("source", DataType.VARCHAR, max_length=MAX_NAME_BYTES)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=MAX_NAME_BYTES)
        schema.add_field("title", DataType.VARCHAR, max_length=MAX_NAME_BYTES)
        schema.add_field("page", DataType.INT64)
        schema.add_field("start", DataType.INT64)
        schema.add_field("end", DataType.INT64)
        index = self._client.prepare_index_params()
        params = {"M": 16, "efConstruction": 200} if self.index_type == "HNSW" else {}
        index.add_index("vector", index_type=self.index_type, metric_type="COSINE", params=params)
        if with_bm25:
            schema.add_field(
                "text",
                DataType.VARCHAR,
                max_length=MAX_CHUNK_BYTES,
                enable_analyzer=True,
                analyzer_params={"type": BM25_ANALYZER},
            )
            schema.add_field(SPARSE_FIELD, DataType.SPARSE_FLOAT_VECTOR)
            schema.add_function(
                Function(
                    name="text_bm25",
                    function_type=FunctionType.BM25,
                    input_field_names=["text"],
                    output_field_names=[SPARSE_FIELD],
                )
            )
            index.add_index(
                SPARSE_FIELD,
                index_type="SPARSE_INVERTED_INDEX",
                metric_type="BM25",
                params={"bm25_k1": BM25_K1, "bm25_b": BM25_B},
            )
        else:
            schema.add_field("text", DataType.VARCHAR, max_length=MAX_CHUNK_BYTES)
        self._client.create_collection(
            self.collection, schema=schema, index_params=index, consistency_level=CONSISTENCY
        )

    def _check_dim(self) -> None:
        described = self._client.describe_collection(self.collection)
        for field in described.get("fields", []):
            if field.get("name") == "vector":
                existing = int(field.get("params", {}).get("dim", self.dim))
                if existing != self.dim:
                    raise VectorStoreError(
                        f"the index at {self.uri} holds {existing}-dimensional vectors but the bi-encoder makes "
                        f"{self.dim}-dimensional ones; use another workspace (RERANK_WORKSPACE) or the model it was built with"
                    )

    def upsert(self, chunks: list[Chunk], vectors: np.ndarray) -> None:
        check_ids([chunk.chunk_id for chunk in chunks])
        rows = []
        for chunk, vector in zip(chunks, vectors, strict=True):
            row = chunk.to_dict()
            row["page"] = chunk.page if chunk.page is not None else NO_PAGE
            # A title is only shown, so a long one is clipped; a name the workspace let through always fits.
            row["title"] = _clip(row["title"], self._title_bytes)
            row["vector"] = np.asarray(vector, dtype=np.float32).tolist()
            rows.append(row)
        for start in range(0, len(rows), 1000):
            self._client.upsert(self.collection, rows[start : start + 1000])
        self.writes += 1  # after the write: a cache built from half-written data must not look current

    def delete(self, chunk_ids: list[str]) -> None:
        for start in range(0, len(chunk_ids), ID_BATCH):
            self._client.delete(self.collection, filter=id_filter(chunk_ids[start : start + ID_BATCH]))
        if chunk_ids and not self.is_lite:
            # Milvus 2.3 answers a delete with no timestamp, so Session consistency cannot cover it: one
            # Strong read (~200 ms) waits until the server has applied it, and every later read sees it.
            self._client.query(self.collection, filter="", output_fields=["count(*)"], consistency_level="Strong")
        self.writes += 1

    def present(self, chunk_ids: list[str]) -> set[str]:
        """Which of ``chunk_ids`` the collection really holds."""
        found: set[str] = set()
        for start in range(0, len(chunk_ids), ID_BATCH):
            batch = chunk_ids[start : start + ID_BATCH]
            rows = self._client.query(
                self.collection, filter=id_filter(batch), output_fields=["chunk_id"], consistency_level=CONSISTENCY
            )
            found.update(row["chunk_id"] for row in rows)
        return found

    def search(self, vector: np.ndarray, k: int) -> list[Hit]:
        if k <= 0:
            return []
        params = {"metric_type": "COSINE", "params": {"ef": _hnsw_ef(k)} if self.index_type == "HNSW" else {}}
        return self._search([np.asarray(vector, dtype=np.float32).tolist()], "vector", k, params)

    def search_text(self, query: str, k: int) -> list[Hit]:
        """BM25 over the chunk texts, with the collection's English analyzer applied to ``query`` too."""
        if not self.supports_bm25:
            raise VectorStoreError(f"the collection {self.collection} at {self.uri} has no BM25 field")
        if k <= 0 or not query.strip():
            return []
        from pymilvus import MilvusException

        try:
            return self._search([query], SPARSE_FIELD, k, {"metric_type": "BM25"})
        except MilvusException:
            # Milvus Lite's BM25 on an empty collection divides by an average length of 0 ("NaN or Inf value");
            # checked only on failure, so a search pays no count. An empty collection has no hits.
            if self.count() == 0:
                return []
            raise

    def _search(self, data: list, field: str, k: int, params: dict) -> list[Hit]:
        result = self._client.search(
            self.collection,
            data=data,
            anns_field=field,
            limit=min(k, MAX_SEARCH_LIMIT),
            output_fields=[name for name in CHUNK_FIELDS if name != "chunk_id"],
            search_params=params,
            consistency_level=CONSISTENCY,
        )
        return [Hit(_chunk(hit["id"], hit["entity"]), float(hit["distance"])) for hit in result[0]]

    def iter_chunks(self, batch_size: int = 1000):
        """Every stored chunk, in batches: what a lexical index outside Milvus is built from."""
        for rows in self._scan_rows(list(CHUNK_FIELDS), batch_size):
            yield [_chunk(row["chunk_id"], row) for row in rows]

    def scan_vectors(self, batch_size: int = 1000):
        """Every row with its vector, in batches of (chunks, vectors): what a rebuild copies."""
        for rows in self._scan_rows([*CHUNK_FIELDS, "vector"], batch_size):
            chunks = [_chunk(row["chunk_id"], row) for row in rows]
            yield chunks, np.asarray([row["vector"] for row in rows], dtype=np.float32)

    def iter_ids(self, batch_size: int = 5000):
        for rows in self._scan_rows(["chunk_id"], batch_size):
            yield [row["chunk_id"] for row in rows]

    def _scan_rows(self, fields: list[str], batch_size: int):
        """Every row, in batches, paged by primary key with literals this module writes.

        Not pymilvus' query iterator: it splices the last id of a page into its next filter unescaped,
        which fails on ids made before they were hashed ("say \"hi\".txt:0"), and on a Milvus 2.3 server
        it reads at a client-side timestamp that can miss a delete made just before (deleted rows came
        back). An id with a line break cannot be written as a literal at all; paging then restarts below
        it and skips what it has seen. Rows it could not reach are ``count() - rows yielded``.
        """
        seen: set[str] = set()
        bound = ""
        while True:
            limit, fresh = min(batch_size, MAX_SEARCH_LIMIT), []
            while True:
                rows = self._client.query(
                    self.collection, filter=bound, output_fields=fields, limit=limit, consistency_level=CONSISTENCY
                )
                fresh = [row for row in rows if row["chunk_id"] not in seen]
                if fresh or len(rows) < limit or limit >= MAX_SEARCH_LIMIT:
                    break
                limit = min(limit * 4, MAX_SEARCH_LIMIT)  # a stretch of ids seen already: look further
            if not rows:
                return
            last = max(row["chunk_id"] for row in rows)
            if fresh:
                seen.update(row["chunk_id"] for row in fresh)
                yield fresh
                bound = after_key(last, inclusive=False)
            elif len(rows) < limit:
                return
            else:  # more than MAX_SEARCH_LIMIT seen ids below an unwritable one: step over them
                bound = after_key(last, inclusive=True)

    def drop(self) -> None:
        """Delete this whole collection (a half-made copy from an interrupted rebuild)."""
        self._client.drop_collection(self.collection)

    def drop_collection(self, name: str) -> None:
        """Delete another collection of the same Milvus (the copy a rebuild replaced), if it is there."""
        if name != self.collection and self._client.has_collection(name):
            self._client.drop_collection(name)

    def count(self) -> int:
        rows = self._client.query(self.collection, filter="", output_fields=["count(*)"], consistency_level=CONSISTENCY)
        return int(rows[0]["count(*)"]) if rows else 0

    def wait_until_indexed(self, timeout: float = 300.0) -> None:
        """On a server, seal what was written and wait until the vector index is built *and* loaded.

        Rows a server has not sealed sit in growing segments, which it searches with a temporary
        IVF index (nprobe 16 of 128 lists), not HNSW. After ``flush`` the index builds asynchronously
        (``indexed_rows`` reaches ``total_rows``), and the query node swaps it in ~10 s later still.
        Milvus Lite searches what it holds exactly: nothing to wait for. Call it once per ingest, not
        per upsert: servers from 2.4 rate-limit flush.
        """
        if self.is_lite:
            return
        self._client.flush(self.collection)
        deadline = time.monotonic() + timeout
        while True:
            info = self._client.describe_index(self.collection, "vector")
            total = int(info.get("total_rows", 0))
            if int(info.get("indexed_rows", 0)) >= total and not int(info.get("pending_index_rows", 0)):
                segments = self._client._get_connection().get_query_segment_info(self.collection)
                # Milvus builds no index for a segment under 1,024 rows (minSegmentNumRowsToEnableIndex)
                # and searches it exactly, yet counts its rows as indexed.
                loaded = sum(s.num_rows for s in segments) >= total
                if loaded and all(s.indexID or s.num_rows < SMALL_SEGMENT_ROWS for s in segments):
                    return
            if time.monotonic() > deadline:
                raise VectorStoreError(f"the index of {self.collection} at {self.uri} was not ready in {timeout:.0f}s")
            time.sleep(0.2)

    def close(self) -> None:
        self._client.close()
        if self.is_lite:
            _release_lite(self.uri)


# Milvus Lite runs one server process per .db file and pymilvus keeps it until the Python process ends,
# holding the file's lock: another process (the CLI beside a closed workspace) could not open the file.
# Stores count their clients per file and stop the server when the last one closes.
_LITE_CLIENTS: Counter[str] = Counter()
_LITE_LOCK = threading.Lock()


def _release_lite(uri: str) -> None:
    path = str(Path(uri).resolve())
    with _LITE_LOCK:
        _LITE_CLIENTS[path] -= 1
        if _LITE_CLIENTS[path] > 0:
            return
        del _LITE_CLIENTS[path]
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(path)


def _chunk(chunk_id: str, entity: dict) -> Chunk:
    page = entity.get("page")
    return Chunk(
        chunk_id=chunk_id,
        source=entity["source"],
        doc_id=entity["doc_id"],
        title=entity["title"],
        page=None if page in (None, NO_PAGE) else int(page),
        start=int(entity["start"]),
        end=int(entity["end"]),
        text=entity["text"],
    )


def _bm25_unsupported(exc: Exception) -> bool:
    text = str(exc).lower()
    # Milvus 2.3 names the sparse type by its number: "create index on 104 field is not supported"
    return any(word in text for word in ("function", "analyzer", "sparse", "bm25", "104 field"))


def _hnsw_ef(k: int) -> int:
    """HNSW's search breadth: ef 64 finds ~98% of the exact top-50 (2,000 random vectors); 2k, at least 128, >99.8%."""
    return min(max(2 * k, 128), 32_768)  # knowhere's ceiling for ef


def _clip(text: str, max_bytes: int) -> str:
    encoded = text.encode()
    return text if len(encoded) <= max_bytes else encoded[:max_bytes].decode(errors="ignore")
