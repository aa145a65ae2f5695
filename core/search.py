"""One query through both stages: a first stage (dense, BM25 or both fused), then cross-encoder reranking.

The first stage is the bi-encoder alone, BM25 alone, or a hybrid of the two by reciprocal rank fusion
or by a weighted sum of min-max normalised scores. Whichever it is, its list is what the reranker
rescores, and every candidate remembers which lists it came from and at which rank.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field, replace

from core.chunking import Chunk
from core.embedding import BiEncoder
from core.fusion import RRF_K, blend, min_max, ranked, reciprocal_rank_fusion, weighted_fusion
from core.http_reranker import RerankServerError
from core.lexical import LexicalSearch
from core.prompts import reranker_query
from core.reranker import Reranker, estimate_seconds
from core.vector_store import VectorStore

DEFAULT_K = 50
DEFAULT_RERANK_DEPTH = 20
MODES = ("dense", "bm25", "hybrid")
FUSIONS = ("rrf", "weighted")
DENSE, BM25 = "dense", "bm25"  # the names of the two lists a candidate can come from
LIST_LABELS = {DENSE: "dense", BM25: "BM25"}
MODE_LABELS = {"dense": "Dense", "bm25": "BM25", "hybrid": "Hybrid"}
FUSION_LABELS = {"rrf": "Reciprocal rank fusion", "weighted": "Weighted scores"}


@dataclass(frozen=True)
class FirstStage:
    """Which first stage feeds the reranker; ``dense_weight`` is the dense share of a weighted fusion."""

    mode: str = "dense"
    fusion: str = "rrf"
    dense_weight: float = 0.5

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"first stage must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, got {self.fusion!r}")
        if not 0.0 <= self.dense_weight <= 1.0:
            raise ValueError(f"the dense weight must be in [0, 1], got {self.dense_weight}")

    @property
    def label(self) -> str:
        if self.mode == "dense":
            return "dense (bi-encoder)"
        if self.mode == "bm25":
            return "BM25"
        if self.fusion == "rrf":
            return f"hybrid (RRF, k={RRF_K})"
        return f"hybrid (weighted: {self.dense_weight:.2f} dense + {1 - self.dense_weight:.2f} BM25, min-max)"

    @property
    def key(self) -> str:
        """A short name for runs and metrics: dense, bm25, hybrid_rrf, hybrid_weighted."""
        return self.mode if self.mode != "hybrid" else f"hybrid_{self.fusion}"


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


@dataclass(frozen=True)
class ShownRow:
    """A reranked candidate as the score controls present it."""

    rank: int  # 1-based, by the blended score
    item: RerankedChunk
    score: float  # blended score; equals the probability when the blend weight is 1
    below_threshold: bool


def apply_score_controls(reranked: list[RerankedChunk], threshold: float = 0.0, weight: float = 1.0) -> list[ShownRow]:
    """Order by ``weight`` × probability + (1 − ``weight``) × first-stage score; flag rows under ``threshold``.

    The threshold applies to the calibrated probability, never to the blended or min-max scaled score:
    a min-max scaled top hit is always 1.0 whatever its relevance. Ties keep the reranker's order
    (the first stage's at weight 0).
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"the probability threshold must be in [0, 1], got {threshold}")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"blend weight must be in [0, 1], got {weight}")
    scored = [(blend(item.probability, item.first_stage_score, weight), item) for item in reranked]
    # Weight 0 is the first stage alone: its ties (frequent under RRF) keep its order, not the reranker's.
    tiebreak = (lambda item: item.first_stage_rank) if weight == 0 else (lambda item: item.rank)
    order = sorted(range(len(scored)), key=lambda i: (-scored[i][0], tiebreak(scored[i][1])))
    return [
        ShownRow(rank, scored[i][1], scored[i][0], scored[i][1].probability < threshold)
        for rank, i in enumerate(order, start=1)
    ]


@dataclass
class SearchResult:
    query: str
    k: int
    rerank_depth: int
    bi_encoder: list[RetrievedChunk]  # the dense list, always computed: the baseline column
    reranked: list[RerankedChunk] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    reranker_error: str | None = None
    reranker: str | None = None
    reranker_truncated: int = 0  # pairs longer than the reranker's window, scored on a truncated text
    probability_label: str | None = None
    first_stage: FirstStage = field(default_factory=FirstStage)
    bm25: list[RetrievedChunk] = field(default_factory=list)  # empty unless the first stage uses BM25
    fused: list[RetrievedChunk] = field(default_factory=list)  # empty unless the first stage is hybrid
    lexical_engine: str | None = None
    instruction: str = ""

    @property
    def candidates(self) -> list[RetrievedChunk]:
        """The first stage's list: what the reranker rescores."""
        return {"dense": self.bi_encoder, "bm25": self.bm25, "hybrid": self.fused}[self.first_stage.mode]

    @property
    def pairs_per_second(self) -> float | None:
        ms = self.timings_ms.get("rerank", 0.0)
        return len(self.reranked) / (ms / 1000) if self.reranked and ms > 0 else None

    def to_json(self) -> dict:
        def chunk_fields(chunk: Chunk) -> dict:
            data = asdict(chunk)
            data.pop("chunk_id")
            return data

        def listed(items: list[RetrievedChunk]) -> list[dict]:
            return [
                {
                    "rank": r.rank,
                    "chunk_id": r.chunk.chunk_id,
                    **chunk_fields(r.chunk),
                    "score": r.score,
                    "sources": r.sources,
                }
                for r in items
            ]

        return {
            "query": self.query,
            "k": self.k,
            "rerank_depth": self.rerank_depth,
            "first_stage": {
                **asdict(self.first_stage),
                "label": self.first_stage.label,
                "lexical_engine": self.lexical_engine,
            },
            "reranker": self.reranker,
            "instruction": self.instruction,
            "reranker_query": reranker_query(self.query, self.instruction),
            "bi_encoder": listed(self.bi_encoder),
            "bm25": listed(self.bm25),
            "hybrid": listed(self.fused),
            "reranked": [
                {
                    "rank": r.rank,
                    "chunk_id": r.chunk.chunk_id,
                    **chunk_fields(r.chunk),
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


def retrieve(
    query: str, encoder: BiEncoder, store: VectorStore, k: int = DEFAULT_K
) -> tuple[list[RetrievedChunk], dict]:
    started = time.perf_counter()
    vector = encoder.encode_query(query)
    embedded = time.perf_counter()
    hits = store.search(vector, k)
    searched = time.perf_counter()
    results = [RetrievedChunk(rank, hit.chunk, hit.score, {DENSE: rank}) for rank, hit in enumerate(hits, start=1)]
    return results, {"embed_query": (embedded - started) * 1000, "search": (searched - embedded) * 1000}


def fuse(dense: list[RetrievedChunk], lexical: list[RetrievedChunk], stage: FirstStage, k: int) -> list[RetrievedChunk]:
    """The hybrid list: RRF or weighted fusion of the two lists, cut to ``k``; ties favour the dense order."""
    by_id = {r.chunk.chunk_id: r.chunk for r in lexical} | {r.chunk.chunk_id: r.chunk for r in dense}
    ranks = {DENSE: {r.chunk.chunk_id: r.rank for r in dense}, BM25: {r.chunk.chunk_id: r.rank for r in lexical}}
    if stage.fusion == "rrf":
        scores = reciprocal_rank_fusion(
            {DENSE: [r.chunk.chunk_id for r in dense], BM25: [r.chunk.chunk_id for r in lexical]}
        )
    else:
        weights = {DENSE: stage.dense_weight, BM25: 1.0 - stage.dense_weight}
        lists = {DENSE: {r.chunk.chunk_id: r.score for r in dense}, BM25: {r.chunk.chunk_id: r.score for r in lexical}}
        # A list weighted 0 brings no candidates: at weight 1 the hybrid list is the dense list, nothing more.
        scores = weighted_fusion({name: s for name, s in lists.items() if weights[name] > 0}, weights)
    tiebreak = [r.chunk.chunk_id for r in dense] + [r.chunk.chunk_id for r in lexical]
    return [
        RetrievedChunk(
            rank, by_id[cid], scores[cid], {name: ranks[name][cid] for name in (DENSE, BM25) if cid in ranks[name]}
        )
        for rank, cid in enumerate(ranked(scores, tiebreak)[:k], start=1)
    ]


def rerank(
    query: str,
    candidates: list[RetrievedChunk],
    reranker: Reranker,
    batch_size: int = 8,
    instruction: str = "",
) -> list[RerankedChunk]:
    """Score each candidate's exact chunk text against the query (and instruction) and sort by score.

    Ties in score keep the first stage's order (Python's sort is stable), so a tie never reorders.
    """
    logits = reranker.score(
        reranker_query(query, instruction), [c.chunk.text for c in candidates], batch_size=batch_size
    )
    probabilities = reranker.probability(logits)
    first_scores = min_max({str(i): c.score for i, c in enumerate(candidates)})
    order = sorted(range(len(candidates)), key=lambda i: -float(logits[i]))
    return [
        RerankedChunk(
            rank=new_rank,
            chunk=candidates[i].chunk,
            first_stage_rank=candidates[i].rank,
            logit=float(logits[i]),
            probability=float(probabilities[i]),
            first_stage_score=first_scores[str(i)],
            sources=candidates[i].sources,
        )
        for new_rank, i in enumerate(order, start=1)
    ]


def first_stage(
    query: str,
    encoder: BiEncoder,
    store: VectorStore,
    k: int = DEFAULT_K,
    rerank_depth: int = DEFAULT_RERANK_DEPTH,
    stage: FirstStage | None = None,
    lexical: LexicalSearch | None = None,
) -> SearchResult:
    """The first stage alone; ``add_reranking`` or ``skip_reranking`` completes the result.

    The dense list is always computed (it is the baseline column); BM25 runs when the stage uses it.
    """
    stage = stage or FirstStage()
    started = time.perf_counter()
    dense, timings = retrieve(query, encoder, store, k)
    result = SearchResult(query, k, rerank_depth, dense, first_stage=stage)
    if stage.mode in ("bm25", "hybrid"):
        lexical = lexical or LexicalSearch(store)
        t0 = time.perf_counter()
        hits = lexical.search(query, k)
        timings["bm25"] = (time.perf_counter() - t0) * 1000
        result.lexical_engine = lexical.engine
        result.bm25 = [
            RetrievedChunk(rank, hit.chunk, hit.score, {BM25: rank}) for rank, hit in enumerate(hits, start=1)
        ]
        if stage.mode == "hybrid":
            t0 = time.perf_counter()
            result.fused = fuse(dense, result.bm25, stage, k)
            timings["fusion"] = (time.perf_counter() - t0) * 1000
    timings["rerank"] = 0.0
    timings["total"] = (time.perf_counter() - started) * 1000
    result.timings_ms = timings
    return result


def add_reranking(
    result: SearchResult, reranker: Reranker, instruction: str = "", compare_without_instruction: bool = False
) -> SearchResult:
    """Rerank the first ``rerank_depth`` candidates in place; a failure keeps the first stage's results.

    With an instruction and ``compare_without_instruction``, the candidates are scored a second time
    without it, and each row records the rank it would have had: the instruction's effect, measured.
    """
    candidates = result.candidates[: max(0, result.rerank_depth)]
    if not candidates:
        why = "the rerank depth is 0" if result.candidates else "the first stage found no candidates"
        return skip_reranking(result, f"Nothing to rerank: {why}.")
    result.reranker = reranker.model_id
    result.probability_label = reranker.probability_label
    result.reranker_error = None
    result.instruction = instruction.strip()
    try:
        prompt = reranker_query(result.query, result.instruction)
        result.reranker_truncated = reranker.count_over_window(prompt, [c.chunk.text for c in candidates])
        started = time.perf_counter()
        reranked = rerank(result.query, candidates, reranker, instruction=result.instruction)
        elapsed = (time.perf_counter() - started) * 1000
        if result.instruction and compare_without_instruction:
            plain = {r.chunk.chunk_id: r.rank for r in rerank(result.query, candidates, reranker)}
            reranked = [replace(r, rank_without_instruction=plain[r.chunk.chunk_id]) for r in reranked]
    except RerankServerError as exc:
        result.reranked = []
        result.reranker_error = (
            f"{exc} Showing the first stage's ranking only. Check the server (docs/serving.md), or unset "
            "RERANK_SERVER_URL to rerank in this process."
        )
        return result
    except Exception as exc:  # e.g. out of memory on a long batch
        result.reranked = []
        result.reranker_error = f"reranking with {reranker.model_id} failed: {type(exc).__name__}: {exc}"
        return result
    result.reranked = reranked
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
    stage: FirstStage | None = None,
    lexical: LexicalSearch | None = None,
    instruction: str = "",
) -> SearchResult:
    """Both stages; with ``reranker`` None, ``reranker_error`` says why there is no second stage."""
    result = first_stage(query, encoder, store, k, rerank_depth, stage, lexical)
    if reranker is None:
        return skip_reranking(result, reranker_error or "no reranker selected")
    return add_reranking(result, reranker, instruction)


def confirm_above_seconds() -> float:
    """Reranking expected to take longer than this on a CPU waits for the user's go-ahead."""
    return float(os.environ.get("RERANK_CONFIRM_SECONDS", "15"))


def estimate_rerank_seconds(result: SearchResult, reranker: Reranker) -> tuple[int, float]:
    """How many pairs the second stage will score, and about how long it will take."""
    n_pairs = max(0, min(result.rerank_depth, len(result.candidates)))
    counted = [reranker.count_tokens(item.chunk.text) for item in result.candidates[:n_pairs]]
    query = reranker_query(result.query, result.instruction)
    tokens = (sum(counted) / len(counted) if counted else 0) + reranker.count_tokens(query) + 16
    return n_pairs, estimate_seconds(n_pairs, tokens, reranker.params, reranker.measured_pairs_per_second)


def movement_label(movement: int, rank: int, first_stage_rank: int, top: int = 10) -> str:
    """↑3 / ↓5 / = ; a candidate that enters the top ``top`` from below it is "new in top 10"."""
    if rank <= top < first_stage_rank:
        return f"new in top {top} (↑{movement})"
    if movement > 0:
        return f"↑{movement}"
    if movement < 0:
        return f"↓{-movement}"
    return "="
