"""One query through both stages: bi-encoder retrieval, then cross-encoder reranking of its candidates."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field

from core.chunking import Chunk
from core.embedding import BiEncoder
from core.reranker import Reranker, estimate_seconds
from core.vector_store import VectorStore

DEFAULT_K = 50
DEFAULT_RERANK_DEPTH = 20


@dataclass(frozen=True)
class RetrievedChunk:
    rank: int  # 1-based
    chunk: Chunk
    score: float  # cosine similarity


@dataclass(frozen=True)
class RerankedChunk:
    rank: int  # 1-based, after reranking
    chunk: Chunk
    bi_encoder_rank: int
    logit: float
    probability: float

    @property
    def movement(self) -> int:
        """Places gained (positive) or lost (negative) against the bi-encoder's ranking."""
        return self.bi_encoder_rank - self.rank


@dataclass
class SearchResult:
    query: str
    k: int
    rerank_depth: int
    bi_encoder: list[RetrievedChunk]
    reranked: list[RerankedChunk] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    reranker_error: str | None = None
    reranker: str | None = None
    reranker_truncated: int = 0  # pairs longer than the reranker's window, scored on a truncated text
    probability_label: str | None = None

    @property
    def pairs_per_second(self) -> float | None:
        ms = self.timings_ms.get("rerank", 0.0)
        return len(self.reranked) / (ms / 1000) if self.reranked and ms > 0 else None

    def to_json(self) -> dict:
        def chunk_fields(chunk: Chunk) -> dict:
            data = asdict(chunk)
            data.pop("chunk_id")
            return data

        return {
            "query": self.query,
            "k": self.k,
            "rerank_depth": self.rerank_depth,
            "reranker": self.reranker,
            "bi_encoder": [
                {"rank": r.rank, "chunk_id": r.chunk.chunk_id, **chunk_fields(r.chunk), "score": r.score}
                for r in self.bi_encoder
            ],
            "reranked": [
                {
                    "rank": r.rank,
                    "chunk_id": r.chunk.chunk_id,
                    **chunk_fields(r.chunk),
                    "bi_encoder_rank": r.bi_encoder_rank,
                    "logit": r.logit,
                    "probability": r.probability,
                    "probability_formula": self.probability_label,
                }
                for r in self.reranked
            ],
            "timings_ms": self.timings_ms,
            "reranker_pairs_per_s": self.pairs_per_second,
            "reranker_truncated": self.reranker_truncated,
            "reranker_error": self.reranker_error,
        }


def retrieve(
    query: str, encoder: BiEncoder, store: VectorStore, k: int = DEFAULT_K
) -> tuple[list[RetrievedChunk], dict]:
    started = time.perf_counter()
    vector = encoder.encode_query(query)
    embedded = time.perf_counter()
    hits = store.search(vector, k)
    searched = time.perf_counter()
    results = [RetrievedChunk(rank, hit.chunk, hit.score) for rank, hit in enumerate(hits, start=1)]
    return results, {"embed_query": (embedded - started) * 1000, "search": (searched - embedded) * 1000}


def rerank(
    query: str, candidates: list[RetrievedChunk], reranker: Reranker, batch_size: int = 8
) -> list[RerankedChunk]:
    """Score each candidate's exact chunk text against the query and sort by score.

    Ties in score keep the bi-encoder's order (Python's sort is stable), so a tie never reorders.
    """
    logits = reranker.score(query, [c.chunk.text for c in candidates], batch_size=batch_size)
    probabilities = reranker.probability(logits)
    order = sorted(range(len(candidates)), key=lambda i: -float(logits[i]))
    return [
        RerankedChunk(
            rank=new_rank,
            chunk=candidates[i].chunk,
            bi_encoder_rank=candidates[i].rank,
            logit=float(logits[i]),
            probability=float(probabilities[i]),
        )
        for new_rank, i in enumerate(order, start=1)
    ]


def first_stage(
    query: str, encoder: BiEncoder, store: VectorStore, k: int = DEFAULT_K, rerank_depth: int = DEFAULT_RERANK_DEPTH
) -> SearchResult:
    """The bi-encoder's ranking alone; ``add_reranking`` or ``skip_reranking`` completes the result."""
    started = time.perf_counter()
    candidates, timings = retrieve(query, encoder, store, k)
    timings["rerank"] = 0.0
    timings["total"] = (time.perf_counter() - started) * 1000
    return SearchResult(query, k, rerank_depth, candidates, timings_ms=timings)


def add_reranking(result: SearchResult, reranker: Reranker) -> SearchResult:
    """Rerank the first ``rerank_depth`` candidates in place; a failure keeps the first stage's results."""
    candidates = result.bi_encoder[: max(0, result.rerank_depth)]
    if not candidates:
        why = "the rerank depth is 0" if result.bi_encoder else "the bi-encoder found no candidates"
        return skip_reranking(result, f"Nothing to rerank: {why}.")
    result.reranker = reranker.model_id
    result.probability_label = reranker.probability_label
    result.reranker_error = None
    try:
        result.reranker_truncated = reranker.count_over_window(result.query, [c.chunk.text for c in candidates])
        started = time.perf_counter()
        result.reranked = rerank(result.query, candidates, reranker)
        elapsed = (time.perf_counter() - started) * 1000
    except Exception as exc:  # e.g. out of memory on a long batch
        result.reranked = []
        result.reranker_error = f"reranking with {reranker.model_id} failed: {type(exc).__name__}: {exc}"
        return result
    result.timings_ms["total"] = result.timings_ms.get("total", 0.0) - result.timings_ms.get("rerank", 0.0) + elapsed
    result.timings_ms["rerank"] = elapsed
    return result


def skip_reranking(result: SearchResult, why: str) -> SearchResult:
    result.reranked = []
    result.reranker_error = why
    return result


def run_search(
    query: str,
    encoder: BiEncoder,
    store: VectorStore,
    reranker: Reranker | None,
    k: int = DEFAULT_K,
    rerank_depth: int = DEFAULT_RERANK_DEPTH,
    reranker_error: str | None = None,
) -> SearchResult:
    """Both stages; with ``reranker`` None, ``reranker_error`` says why there is no second stage."""
    result = first_stage(query, encoder, store, k, rerank_depth)
    if reranker is None:
        return skip_reranking(result, reranker_error or "no reranker selected")
    return add_reranking(result, reranker)


def confirm_above_seconds() -> float:
    """Reranking expected to take longer than this on a CPU waits for the user's go-ahead."""
    return float(os.environ.get("RERANK_CONFIRM_SECONDS", "15"))


def estimate_rerank_seconds(result: SearchResult, reranker: Reranker) -> tuple[int, float]:
    """How many pairs the second stage will score, and about how long it will take."""
    n_pairs = max(0, min(result.rerank_depth, len(result.bi_encoder)))
    counted = [reranker.count_tokens(item.chunk.text) for item in result.bi_encoder[:n_pairs]]
    tokens = (sum(counted) / len(counted) if counted else 0) + reranker.count_tokens(result.query) + 16
    return n_pairs, estimate_seconds(n_pairs, tokens, reranker.params, reranker.measured_pairs_per_second)


def movement_label(movement: int, rank: int, bi_encoder_rank: int, top: int = 10) -> str:
    """↑3 / ↓5 / = ; a candidate that enters the top ``top`` from below it is "new in top 10"."""
    if rank <= top < bi_encoder_rank:
        return f"new in top {top} (↑{movement})"
    if movement > 0:
        return f"↑{movement}"
    if movement < 0:
        return f"↓{-movement}"
    return "="
