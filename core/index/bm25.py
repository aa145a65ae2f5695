"""BM25 over the indexed chunks: Milvus' own BM25 where the collection has it, bm25s otherwise.

bm25s is configured like Milvus' English analyzer and BM25 (Lucene's idf, k1 1.2, b 0.75, English
stop words, Snowball stemming), and its scores are multiplied by (k1 + 1), the factor bm25s' "lucene"
method leaves out and Milvus keeps, so both engines give the same scores on the same tokens. Their
tokenisers differ at the edges (punctuation inside words), so on real text the two are close, not equal.
"""

from __future__ import annotations

import threading

import numpy as np
import Stemmer

from core.chunks import Chunk, Hit
from core.index.store import BM25_B, BM25_K1, VectorStore


class Bm25sIndex:
    """An in-memory BM25 index of chunks, built with bm25s."""

    def __init__(self, chunks: list[Chunk]):
        # Imported here: bm25s pulls in scipy (~0.5 s), and the pages import this module before they draw.
        import bm25s

        self._tokenize = bm25s.tokenize
        self.chunks = chunks
        self._stemmer = Stemmer.Stemmer("english")
        self._index = bm25s.BM25(k1=BM25_K1, b=BM25_B, method="lucene")
        self._empty = True
        if chunks:
            tokens = self._tokenize(
                [c.text for c in chunks], stopwords="en", stemmer=self._stemmer, show_progress=False
            )
            if tokens.vocab:  # bm25s cannot index a corpus without a single word (only stop words, say)
                self._index.index(tokens, show_progress=False)
                self._empty = False

    def search(self, query: str, k: int) -> list[Hit]:
        if k <= 0 or self._empty:
            return []
        tokens = self._tokenize([query], stopwords="en", stemmer=self._stemmer, show_progress=False)
        if not tokens.ids[0]:  # only stop words or punctuation
            return []
        scores = self._index.get_scores(_query_tokens(tokens))
        order = np.argsort(-scores, kind="stable")[: min(k, len(self.chunks))]
        return [Hit(self.chunks[i], float(scores[i]) * (BM25_K1 + 1)) for i in order if scores[i] > 0]


def _query_tokens(tokens) -> list[str]:
    vocabulary = {index: word for word, index in tokens.vocab.items()}
    return [vocabulary[i] for i in tokens.ids[0]]


class LexicalSearch:
    """BM25 for one store: Milvus' BM25 when the collection has it, else a bm25s index of its chunks.

    The bm25s index is rebuilt after any write through the store (``store.writes`` counts them) and
    when the chunk count changes, which also catches writes by another client of a server.
    """

    def __init__(self, store: VectorStore):
        self.store = store
        self._lock = threading.Lock()
        self._fallback: Bm25sIndex | None = None
        self._built_for: tuple[int, int] | None = None

    @property
    def engine(self) -> str:
        return "Milvus BM25" if self.store.supports_bm25 else "bm25s"

    def search(self, query: str, k: int) -> list[Hit]:
        if self.store.supports_bm25:
            return self.store.search_text(query, k)
        with self._lock:
            state = (self.store.writes, self.store.count())
            if self._fallback is None or state != self._built_for:
                chunks = [chunk for batch in self.store.iter_chunks() for chunk in batch]
                self._fallback, self._built_for = Bm25sIndex(chunks), state
            return self._fallback.search(query, k)
