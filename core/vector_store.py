"""Vector stores behind one small interface; Milvus (Lite file or server) is the one we ship.

The same ``MilvusVectorStore`` serves an embedded Milvus Lite file and a Milvus server or cluster:
only the URI and the index type differ. Milvus Lite gets a FLAT index (exact search, ~25 ms for
top-100 over 100k x 384 on a laptop); a server gets HNSW, which scales past what a scan can do.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from core.chunking import MAX_CHUNK_BYTES, MAX_ID_BYTES, Chunk

CHUNK_FIELDS = ("chunk_id", "source", "doc_id", "title", "page", "start", "end", "text")
NO_PAGE = 0
MAX_SEARCH_LIMIT = (
    16_384  # Milvus's top-k ceiling  # Milvus has no NULL for INT64 here; pages are 1-based, so 0 means "not paged"
)


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float  # cosine similarity


class VectorStore(Protocol):
    dim: int

    def upsert(self, chunks: list[Chunk], vectors: np.ndarray) -> None: ...

    def delete(self, chunk_ids: list[str]) -> None: ...

    def search(self, vector: np.ndarray, k: int) -> list[Hit]: ...

    def count(self) -> int: ...

    def close(self) -> None: ...


class VectorStoreError(Exception):
    pass


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
        except Exception as exc:  # pymilvus raises several unrelated types for an unreachable server
            hint = " (Milvus Lite lets one process open a .db file: is the app or another CLI run using it?)"
            raise VectorStoreError(f"cannot open Milvus at {uri}: {exc}" + (hint if self.is_lite else "")) from exc
        if self._client.has_collection(collection):
            self._check_dim()
        else:
            self._create()

    def _create(self) -> None:
        from pymilvus import DataType

        schema = self._client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("chunk_id", DataType.VARCHAR, is_primary=True, max_length=MAX_ID_BYTES)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("source", DataType.VARCHAR, max_length=MAX_ID_BYTES)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=MAX_ID_BYTES)
        schema.add_field("title", DataType.VARCHAR, max_length=MAX_ID_BYTES)
        schema.add_field("page", DataType.INT64)
        schema.add_field("start", DataType.INT64)
        schema.add_field("end", DataType.INT64)
        schema.add_field("text", DataType.VARCHAR, max_length=MAX_CHUNK_BYTES)
        index = self._client.prepare_index_params()
        params = {"M": 16, "efConstruction": 200} if self.index_type == "HNSW" else {}
        index.add_index("vector", index_type=self.index_type, metric_type="COSINE", params=params)
        self._client.create_collection(self.collection, schema=schema, index_params=index)

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
        rows = []
        for chunk, vector in zip(chunks, vectors, strict=True):
            row = chunk.to_dict()
            row["page"] = chunk.page if chunk.page is not None else NO_PAGE
            for name in ("title", "source", "doc_id"):
                row[name] = _clip(row[name], MAX_ID_BYTES)
            row["vector"] = np.asarray(vector, dtype=np.float32).tolist()
            rows.append(row)
        for start in range(0, len(rows), 1000):
            self._client.upsert(self.collection, rows[start : start + 1000])

    def delete(self, chunk_ids: list[str]) -> None:
        for start in range(0, len(chunk_ids), 1000):
            self._client.delete(self.collection, ids=chunk_ids[start : start + 1000])

    def search(self, vector: np.ndarray, k: int) -> list[Hit]:
        if k <= 0:
            return []
        k = min(k, MAX_SEARCH_LIMIT)
        params = {"metric_type": "COSINE", "params": {"ef": max(k, 64)} if self.index_type == "HNSW" else {}}
        result = self._client.search(
            self.collection,
            data=[np.asarray(vector, dtype=np.float32).tolist()],
            anns_field="vector",
            limit=k,
            output_fields=[name for name in CHUNK_FIELDS if name != "chunk_id"],
            search_params=params,
        )
        hits = []
        for hit in result[0]:
            entity = hit["entity"]
            page = entity.get("page")
            chunk = Chunk(
                chunk_id=hit["id"],
                source=entity["source"],
                doc_id=entity["doc_id"],
                title=entity["title"],
                page=None if page in (None, NO_PAGE) else int(page),
                start=int(entity["start"]),
                end=int(entity["end"]),
                text=entity["text"],
            )
            hits.append(Hit(chunk, float(hit["distance"])))
        return hits

    def count(self) -> int:
        rows = self._client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    def close(self) -> None:
        self._client.close()


def _clip(text: str, max_bytes: int) -> str:
    encoded = text.encode()
    return text if len(encoded) <= max_bytes else encoded[:max_bytes].decode(errors="ignore")
