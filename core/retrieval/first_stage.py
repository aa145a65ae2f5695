"""The first stage: the dense list (always, as the baseline), BM25 where asked, and their fusion.

A ``Retriever`` computes one query's lists once (``FirstStageLists``); every first stage a caller asks
for is read from them, so the Search page's columns, each pipeline of an evaluation and the CLI share
one dense search and one BM25 search per query. Hybrid is reciprocal rank fusion or a weighted sum of
min-max normalised scores.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from core.embedding.bi_encoder import BiEncoder
from core.index.bm25 import LexicalSearch
from core.index.store import VectorStore
from core.retrieval.fusion import ranked, reciprocal_rank_fusion, weighted_fusion
from core.retrieval.pipeline import FirstStage, Pipeline
from core.retrieval.results import BM25, DENSE, RetrievedChunk, SearchResult


@dataclass
class FirstStageLists:
    """One query's dense and BM25 lists, and the fusions made of them so far."""

    query: str
    k: int
    dense: list[RetrievedChunk]
    bm25: list[RetrievedChunk] | None  # None when no stage asked for it
    timings_ms: dict[str, float]
    lexical_engine: str | None = None
    _fused: dict[FirstStage, list[RetrievedChunk]] = field(default_factory=dict, repr=False)

    def for_stage(self, stage: FirstStage) -> list[RetrievedChunk]:
        if stage.mode == "dense":
            return self.dense
        if self.bm25 is None:
            raise ValueError(f"the {stage.key} stage needs the BM25 list, which was not computed")
        if stage.mode == "bm25":
            return self.bm25
        if stage not in self._fused:
            started = time.perf_counter()
            self._fused[stage] = fuse(self.dense, self.bm25, stage, self.k)
            self.timings_ms["fusion"] = self.timings_ms.get("fusion", 0.0) + (time.perf_counter() - started) * 1000
        return self._fused[stage]


class Retriever:
    """The first stage over one index: the bi-encoder and the vector store, and BM25 beside them."""

    def __init__(self, encoder: BiEncoder, store: VectorStore, lexical: LexicalSearch | None = None):
        self.encoder = encoder
        self.store = store
        self.lexical = lexical or LexicalSearch(store)

    def lists(
        self, query: str, k: int, stages: Iterable[FirstStage] = (), vector: np.ndarray | None = None
    ) -> FirstStageLists:
        """The dense list, and BM25 when one of ``stages`` uses it; ``vector`` is the query's, if known."""
        timings: dict[str, float] = {}
        started = time.perf_counter()
        if vector is None:
            vector = self.encoder.encode_query(query)
            timings["embed_query"] = (time.perf_counter() - started) * 1000
        searched = time.perf_counter()
        hits = self.store.search(vector, k)
        timings["search"] = (time.perf_counter() - searched) * 1000
        dense = [RetrievedChunk(rank, hit.chunk, hit.score, {DENSE: rank}) for rank, hit in enumerate(hits, start=1)]
        lists = FirstStageLists(query, k, dense, None, timings)
        if any(stage.mode != "dense" for stage in stages):
            started = time.perf_counter()
            hits = self.lexical.search(query, k)
            timings["bm25"] = (time.perf_counter() - started) * 1000
            lists.bm25 = [RetrievedChunk(rank, hit.chunk, hit.score, {BM25: rank}) for rank, hit in enumerate(hits, 1)]
            lists.lexical_engine = self.lexical.engine
        return lists

    def first_stage(self, query: str, pipeline: Pipeline, k: int) -> SearchResult:
        """A result holding the first stage alone; ``core.retrieval.search.add_reranking`` completes it."""
        started = time.perf_counter()
        stage = pipeline.first_stage
        lists = self.lists(query, k, [stage])
        candidates = lists.for_stage(stage)
        result = SearchResult(query, k, pipeline, lists.dense, lexical_engine=lists.lexical_engine)
        result.bm25 = lists.bm25 or []
        result.fused = candidates if stage.mode == "hybrid" else []
        result.timings_ms = {**lists.timings_ms, "rerank": 0.0, "total": (time.perf_counter() - started) * 1000}
        return result


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
