"""A query's results: the first stage's lists, the reranked list, timings and the JSON form.

Every candidate remembers which lists it came from and at which rank, so rank movement and "new in
top 10" are facts of the result, not of a page.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from core.chunks import Chunk
from core.rerank.calibration import Calibration
from core.retrieval.pipeline import FirstStage, Pipeline

DENSE, BM25 = "dense", "bm25"  # the names of the two lists a candidate can come from


@dataclass(frozen=True)
class RetrievedChunk:
    rank: int  # 1-based
    chunk: Chunk
    score: float  # cosine similarity (dense), BM25 score (bm25), or the fused score (hybrid)
    sources: dict[str, int] = field(default_factory=dict, compare=False)  # list name -> 1-based rank there


@dataclass(frozen=True)
class RerankedChunk:
    rank: int  # 1-based, after reranking
    chunk: Chunk
    first_stage_rank: int
    logit: float
    probability: float
    first_stage_score: float = 0.0  # min-max normalised over the reranked candidates: for blending only
    sources: dict[str, int] = field(default_factory=dict, compare=False)
    rank_without_instruction: int | None = None  # set when an instruction's effect was measured

    @property
    def movement(self) -> int:
        """Places gained (positive) or lost (negative) against the first stage's ranking."""
        return self.first_stage_rank - self.rank

    def movement_label(self, top: int = 10) -> str:
        """↑3 / ↓5 / = ; a candidate that enters the top ``top`` from below it is "new in top 10"."""
        return movement_label(self.movement, self.rank, self.first_stage_rank, top)


@dataclass
class SearchResult:
    query: str
    k: int
    pipeline: Pipeline
    dense: list[RetrievedChunk]  # always computed: the baseline column
    bm25: list[RetrievedChunk] = field(default_factory=list)  # empty unless the first stage uses BM25
    fused: list[RetrievedChunk] = field(default_factory=list)  # empty unless the first stage is hybrid
    lexical_engine: str | None = None
    reranked: list[RerankedChunk] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    reranker_error: str | None = None
    reranker: str | None = None  # the model that reranked, as it describes itself
    reranker_truncated: int = 0  # pairs longer than the reranker's window, scored on a truncated text
    calibration: Calibration | None = None

    @property
    def first_stage(self) -> FirstStage:
        return self.pipeline.first_stage

    @property
    def rerank_depth(self) -> int:
        return self.pipeline.rerank_depth

    @property
    def instruction(self) -> str:
        return self.pipeline.instruction

    @property
    def probability_label(self) -> str | None:
        return self.calibration.formula if self.calibration else None

    @property
    def candidates(self) -> list[RetrievedChunk]:
        """The first stage's list: what the reranker rescores."""
        return {"dense": self.dense, "bm25": self.bm25, "hybrid": self.fused}[self.first_stage.mode]

    @property
    def pairs_per_second(self) -> float | None:
        ms = self.timings_ms.get("rerank", 0.0)
        return len(self.reranked) / (ms / 1000) if self.reranked and ms > 0 else None

    def to_json(self) -> dict:
        return {
            "query": self.query,
            "k": self.k,
            "pipeline": self.pipeline.to_json(),
            "rerank_depth": self.rerank_depth,
            "first_stage": {
                **self.first_stage.to_json(),
                "label": self.first_stage.label,
                "lexical_engine": self.lexical_engine,
            },
            "reranker": self.reranker,
            "instruction": self.instruction,
            "reranker_query": self.pipeline.reranker_query(self.query),
            "calibration": self.calibration.to_json() if self.calibration else None,
            "dense": _listed(self.dense),
            "bm25": _listed(self.bm25),
            "hybrid": _listed(self.fused),
            "reranked": [
                {
                    "rank": r.rank,
                    "chunk_id": r.chunk.chunk_id,
                    **_chunk_fields(r.chunk),
                    "first_stage_rank": r.first_stage_rank,
                    "sources": r.sources,
                    "logit": r.logit,
                    "probability": r.probability,
                    "probability_formula": self.probability_label,
                    "rank_without_instruction": r.rank_without_instruction,
                }
                for r in self.reranked
            ],
            "timings_ms": self.timings_ms,
            "reranker_pairs_per_s": self.pairs_per_second,
            "reranker_truncated": self.reranker_truncated,
            "reranker_error": self.reranker_error,
        }


def _chunk_fields(chunk: Chunk) -> dict:
    data = asdict(chunk)
    data.pop("chunk_id")
    return data


def _listed(items: list[RetrievedChunk]) -> list[dict]:
    return [
        {"rank": r.rank, "chunk_id": r.chunk.chunk_id, **_chunk_fields(r.chunk), "score": r.score, "sources": r.sources}
        for r in items
    ]


def movement_label(movement: int, rank: int, first_stage_rank: int, top: int = 10) -> str:
    """↑3 / ↓5 / = ; a candidate that enters the top ``top`` from below it is "new in top 10"."""
    if rank <= top < first_stage_rank:
        return f"new in top {top} (↑{movement})"
    if movement > 0:
        return f"↑{movement}"
    if movement < 0:
        return f"↓{-movement}"
    return "="
