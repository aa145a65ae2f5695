"""The values every layer shares: a chunk of a document, its id, the store's byte limits, a search hit.

This is the ground floor: ingest makes chunks, the index stores them, retrieval and evaluation read them,
and none of those import one another for it. A chunk id is a hash (``make_chunk_id``), never a name: hex
cannot carry store filter syntax, whatever a file or document is called.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

# What the vector store keeps per field (Milvus VARCHAR limits, in bytes).
MAX_CHUNK_BYTES = 65_535

MAX_ID_BYTES = 1_024


@dataclass(frozen=True)
class Chunk:
    """One indexed unit. ``text == section_text[start:end]`` of its document's section (page for PDFs)."""

    chunk_id: str
    source: str
    doc_id: str
    title: str
    page: int | None
    start: int
    end: int
    text: str

    def to_dict(self) -> dict:
        return asdict(self)

    def location(self, name: Callable[[str], str]) -> str:
        """ "file › document · page 3 · chars 0–120", each name passed through ``name`` (quoting, escaping)."""
        where = name(self.source)
        if self.doc_id != self.source:
            where += f" › {name(self.doc_id)}"
        if self.page is not None:
            where += f" · page {self.page}"
        return where + f" · chars {self.start}–{self.end}"


def make_chunk_id(source: str, doc_id: str, page: int | None, start: int, text: str) -> str:
    """32 hex digits that name one chunk: its file, document, page, offset and text, hashed.

    Hex cannot carry filter syntax, so a file or document name never reaches a store expression; the
    JSON list keeps the fields apart, so ("c.jsonl", "x.txt") and ("c.jsonl#x.txt", ...) differ; and the
    text is part of it, so a changed file's new chunks never overwrite its old rows before the catalog
    says so (an interrupted write can always be rolled back).
    """
    key = json.dumps([source, doc_id, page, start, text])
    return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float  # cosine similarity for a vector search, the BM25 score for a text search
