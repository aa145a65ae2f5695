"""Evaluating both stages on judged queries: NDCG@10 and friends, and the lift reranking adds.

Each judged query runs every first stage (dense, BM25, the two hybrid fusions); chunks are grouped into
documents scored by their best chunk (MaxP); the reranker rescores the chunks of the top
``rerank_depth`` documents of the chosen first stage, again MaxP, and documents below that depth keep
the first stage's order after the reranked ones. Metrics are computed on document ids, as qrels are.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from core.chunks import Chunk
from core.evaluation.datasets import JudgedDataset, Qrels
from core.evaluation.metrics import per_query_metrics, strictly_decreasing
from core.evaluation.report import FIRST_STAGES, Evaluation, QueryRecord, RerankedDocument
from core.index.store import MAX_SEARCH_LIMIT
from core.rerank.base import Reranker
from core.retrieval.first_stage import Retriever
from core.retrieval.pipeline import Pipeline
from core.retrieval.search import score_candidates

# Chunks fetched per wanted document: documents span several chunks, and k counts documents.
CHUNKS_PER_DOCUMENT = 4
EvalProgress = Callable[[int, int], None]  # (queries done, total)


def maxp(scored: Iterable[tuple[str, float]]) -> list[tuple[str, float]]:
    """Documents scored by their best chunk, best first.

    ``scored`` is (document id, chunk score) in the order of the chunks' ranking; a tie between two
    documents keeps the order in which their best chunks first appeared.
    """
    best: dict[str, float] = {}
    first_seen: dict[str, int] = {}
    for position, (doc, score) in enumerate(scored):
        if doc not in best or score > best[doc]:
            best[doc] = float(score)
        first_seen.setdefault(doc, position)
    return sorted(best.items(), key=lambda item: (-item[1], first_seen[item[0]]))


@dataclass
class _Run:
    """What an evaluation gathers query by query."""

    records: list[QueryRecord] = field(default_factory=list)
    reranked_documents: list[RerankedDocument] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    reranker_error: str | None = None
    reranker_failed: bool = False
    cancelled: bool = False


def evaluate(
    dataset: JudgedDataset,
    retriever: Retriever,
    pipeline: Pipeline,
    reranker: Reranker | None,
    *,
    k: int = 100,
    doc_key: Callable[[Chunk], str] = lambda chunk: chunk.doc_id,
    progress: EvalProgress | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    reranker_error: str | None = None,
    settings: dict | None = None,
) -> Evaluation:
    """Every first stage for each judged query, and ``pipeline``'s reranking of its own first stage.

    ``k`` counts documents, and so does the pipeline's rerank depth (capped at ``k``). All stages read
    one dense and one BM25 search per query (``Retriever.lists``).
    """
    stages = {**FIRST_STAGES, pipeline.first_stage.key: pipeline.first_stage}  # the chosen weight, not the default
    qids = sorted(dataset.queries, key=_natural)
    started = time.perf_counter()
    texts = [dataset.queries[q] for q in qids]
    vectors = retriever.encoder.encode_queries(texts) if texts else np.zeros((0, 1))
    run = _Run(timings={"embed_queries": time.perf_counter() - started, "search": 0.0, "bm25": 0.0, "rerank": 0.0})
    run.reranker_error = reranker_error
    for done, (qid, vector) in enumerate(zip(qids, vectors)):
        if should_stop():
            run.cancelled = True
            break
        scorer = None if run.reranker_failed else reranker  # after a failure the first stages go on alone
        _evaluate_query(dataset, qid, vector, retriever, stages, pipeline, scorer, k, doc_key, run)
        if progress:
            progress(done + 1, len(qids))
    reranked = reranker is not None and not run.reranker_failed
    run.timings["total"] = time.perf_counter() - started
    return _evaluation(dataset, pipeline, k, retriever, run, reranked, settings)


def _evaluate_query(dataset, qid, vector, retriever, stages, pipeline, reranker, k, doc_key, run: _Run) -> None:
    query = dataset.queries[qid]
    lists = retriever.lists(query, min(k * CHUNKS_PER_DOCUMENT, MAX_SEARCH_LIMIT), stages.values(), vector)
    run.timings["search"] += lists.timings_ms["search"] / 1000
    run.timings["bm25"] += lists.timings_ms.get("bm25", 0.0) / 1000
    chunks = {key: lists.for_stage(stage) for key, stage in stages.items()}
    documents = {key: maxp((doc_key(c.chunk), c.score) for c in found)[:k] for key, found in chunks.items()}
    runs = {key: strictly_decreasing(docs) for key, docs in documents.items()}
    reranked_run = None
    if reranker is not None:
        started = time.perf_counter()
        key = pipeline.first_stage.key
        try:
            reranked_run, scored = rerank_documents(
                pipeline, query, [c.chunk for c in chunks[key]], documents[key], min(pipeline.rerank_depth, k),
                reranker, doc_key,
            )  # fmt: skip
            judged = dataset.qrels[qid]
            run.reranked_documents.extend(RerankedDocument(qid, doc, p, judged.get(doc)) for doc, p in scored)
        except Exception as exc:  # a rerank server that went down, out of memory…: the first stages stand
            run.reranker_error = f"reranking failed at query {qid}: {type(exc).__name__}: {exc}"
            run.reranker_failed = True
            run.reranked_documents = []
            for record in run.records:
                record.reranked = None
        run.timings["rerank"] += time.perf_counter() - started
    relevant = sum(rel > 0 for rel in dataset.qrels[qid].values())
    run.records.append(QueryRecord(qid, query, relevant, runs, reranked_run))


def _evaluation(dataset, pipeline, k, retriever, run: _Run, reranked: bool, settings: dict | None) -> Evaluation:
    evaluated: Qrels = {r.qid: dataset.qrels[r.qid] for r in run.records}
    metrics = {key: per_query_metrics(evaluated, {r.qid: r.run(key) for r in run.records}) for key in FIRST_STAGES}
    if reranked:
        metrics["reranked"] = per_query_metrics(evaluated, {r.qid: r.reranked for r in run.records})
    return Evaluation(
        dataset=dataset.name,
        settings={
            "k": k,
            "rerank_depth": min(pipeline.rerank_depth, k) if reranked else 0,
            "first_stage": pipeline.first_stage.key,
            "first_stage_label": pipeline.first_stage.label,
            "lexical_engine": retriever.lexical.engine,
            "instruction": pipeline.instruction,
            # As it ran: the depth capped at k, and no reranker when none scored.
            "pipeline": replace(
                pipeline, reranker=pipeline.reranker if reranked else None, rerank_depth=min(pipeline.rerank_depth, k)
            ).to_json(),
            **(settings or {}),
        },
        queries=run.records,
        metrics=metrics,
        reranked_documents=run.reranked_documents if reranked else [],
        timings_s=run.timings,
        problems=list(dataset.problems),
        skipped=dict(dataset.skipped),
        cancelled=run.cancelled,
        reranker_error=run.reranker_error,
    )


def rerank_documents(
    pipeline: Pipeline,
    query: str,
    retrieved: list[Chunk],
    documents: list[tuple[str, float]],
    depth: int,
    reranker: Reranker,
    doc_key: Callable[[Chunk], str],
) -> tuple[dict[str, float], list[tuple[str, float]]]:
    """Rescore every retrieved chunk of the top ``depth`` documents; documents below keep their order."""
    top = {doc for doc, _ in documents[:depth]}
    chunks = [chunk for chunk in retrieved if doc_key(chunk) in top]
    logits = score_candidates(pipeline, query, [c.text for c in chunks], reranker)
    reranked = maxp((doc_key(c), float(x)) for c, x in zip(chunks, logits))
    probability = dict(zip((d for d, _ in reranked), reranker.probability(np.array([s for _, s in reranked]))))
    return reranked_then_rest(reranked, documents), [(doc, float(probability[doc])) for doc, _ in reranked]


def reranked_then_rest(reranked: list[tuple[str, float]], first_stage: list[tuple[str, float]]) -> dict[str, float]:
    """The reranked documents, then the first stage's other documents in its order, scored below them."""
    seen = {doc for doc, _ in reranked}
    floor = min((score for _, score in reranked), default=0.0)
    rest = [doc for doc, _ in first_stage if doc not in seen]
    return strictly_decreasing(reranked + [(doc, floor - 1.0 - i) for i, doc in enumerate(rest)])


def _natural(qid: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", qid)]
