"""Running an experiment: N pipelines × Q queries on one index.

Each query's dense and BM25 lists are computed once and every pipeline's first stage is read from them
(``Retriever.lists``); documents are ranked exactly as the evaluation ranks them (MaxP over chunks,
the reranked top ``depth`` documents then the rest), so a pipeline's metrics here equal ``eval``'s.
A cancelled run returns None: nothing half-done is kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import numpy as np

from core.chunks import Chunk
from core.errors import ExplorerError
from core.evaluation.evaluate import CHUNKS_PER_DOCUMENT, maxp, rerank_documents
from core.evaluation.metrics import strictly_decreasing
from core.experiments.agreement import TOP
from core.experiments.query_sets import QuerySet
from core.experiments.snapshot import Experiment
from core.index.store import MAX_SEARCH_LIMIT
from core.rerank.base import Reranker
from core.retrieval.first_stage import FirstStageLists, Retriever
from core.retrieval.pipeline import Pipeline
from core.retrieval.pipeline_spec import spec_of

ExperimentProgress = Callable[[int, int], None]  # (queries done, total)
PASSAGE_CHARS = 1500  # enough for a judge to read, small enough to keep snapshots light


class ExperimentError(ExplorerError):
    """An experiment that cannot run (or stopped): the message says which pipeline and why."""


def check_pipelines(pipelines: Mapping[str, Pipeline], baseline: str, rerankers: Mapping[str, Reranker]) -> None:
    if not pipelines:
        raise ExperimentError("an experiment needs at least one pipeline")
    if baseline not in pipelines:
        raise ExperimentError(f"the baseline {baseline!r} is not one of the pipelines")
    for name, pipeline in pipelines.items():
        if pipeline.reranks and pipeline.reranker not in rerankers:
            raise ExperimentError(f"pipeline {name!r}: its reranker {pipeline.reranker} is not loaded")


def run_experiment(
    query_set: QuerySet,
    pipelines: Mapping[str, Pipeline],
    retriever: Retriever,
    rerankers: Mapping[str, Reranker],
    *,
    baseline: str,
    k: int = 100,
    doc_key: Callable[[Chunk], str] = lambda chunk: chunk.doc_id,
    corpus: dict | None = None,
    progress: ExperimentProgress | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> Experiment | None:
    """``rerankers`` maps each pipeline's reranker id to a loaded reranker; ``k`` counts documents."""
    check_pipelines(pipelines, baseline, rerankers)
    started = time.perf_counter()
    qids = list(query_set.queries)
    texts = [query_set.queries[q] for q in qids]
    vectors = retriever.encoder.encode_queries(texts) if texts else np.zeros((0, 1))
    experiment = Experiment(
        query_set={
            "name": query_set.name,
            "fingerprint": query_set.fingerprint,
            "judged": query_set.judged,
            "labels": query_set.labels if query_set.judged else None,
            "queries": len(qids),
        },  # fmt: skip
        corpus=corpus or {},
        k=k,
        baseline=baseline,
        pipelines={name: spec_of(p) for name, p in pipelines.items()},
        queries=dict(zip(qids, texts)),
        qrels={q: query_set.qrels[q] for q in qids if q in query_set.qrels} if query_set.qrels else None,
        runs={name: {} for name in pipelines},
        timings_s={"embed_queries": time.perf_counter() - started, "first_stage": 0.0, "rerank": 0.0},
    )
    sent_before = {id(r): r.pair_counts() for r in rerankers.values()}
    stages = {p.first_stage for p in pipelines.values()}
    for done, (qid, vector) in enumerate(zip(qids, vectors)):
        if should_stop():
            return None
        searched = time.perf_counter()
        try:
            lists = retriever.lists(
                query_set.queries[qid], min(k * CHUNKS_PER_DOCUMENT, MAX_SEARCH_LIMIT), stages, vector
            )
        except Exception as exc:  # the index went away, a server stopped answering: stop, keep nothing
            raise ExperimentError(f"the first stage failed at query {qid!r}: {type(exc).__name__}: {exc}") from exc
        experiment.timings_s["first_stage"] += time.perf_counter() - searched
        for name, pipeline in pipelines.items():
            _run_pipeline(experiment, name, pipeline, qid, lists, rerankers, k, doc_key)
        _keep_passages(experiment, qid, lists, doc_key)
        if progress:
            progress(done + 1, len(qids))
    experiment.reranking = _reranking_counts(pipelines, rerankers, sent_before)
    experiment.timings_s["total"] = time.perf_counter() - started
    return experiment


def _run_pipeline(experiment, name, pipeline, qid, lists: FirstStageLists, rerankers, k, doc_key) -> None:
    query = experiment.queries[qid]
    chunks = lists.for_stage(pipeline.first_stage)
    documents = maxp((doc_key(c.chunk), c.score) for c in chunks)[:k]
    if not pipeline.reranks:
        experiment.runs[name][qid] = [[d, s] for d, s in strictly_decreasing(documents).items()]
        return
    started = time.perf_counter()
    try:
        run, scored = rerank_documents(
            pipeline, query, [c.chunk for c in chunks], documents, min(pipeline.rerank_depth, k),
            rerankers[pipeline.reranker], doc_key,
        )  # fmt: skip
    except Exception as exc:  # a server gone, out of memory: the run stops, nothing half-done is kept
        raise ExperimentError(f"pipeline {name!r} failed at query {qid!r}: {type(exc).__name__}: {exc}") from exc
    experiment.timings_s["rerank"] += time.perf_counter() - started
    experiment.runs[name][qid] = [[d, s] for d, s in run.items()]
    experiment.probabilities.setdefault(name, {})[qid] = dict(scored)
    depth = min(pipeline.rerank_depth, k)
    experiment.first_stage_ranks.setdefault(name, {})[qid] = {d: r for r, (d, _) in enumerate(documents[:depth], 1)}


def _keep_passages(experiment: Experiment, qid: str, lists: FirstStageLists, doc_key) -> None:
    """The text of each document some pipeline put in its top 10 (its first chunk retrieved), for display."""
    shown = {doc for run in experiment.runs.values() for doc, _ in run.get(qid, [])[:TOP]}
    for found in (lists.dense, lists.bm25 or []):
        for item in found:
            doc = doc_key(item.chunk)
            if doc in shown and doc not in experiment.passages:
                experiment.passages[doc] = {"source": item.chunk.source, "text": item.chunk.text[:PASSAGE_CHARS]}


def _reranking_counts(pipelines, rerankers, before) -> dict[str, dict]:
    """Pairs per reranker this run: scored by the model, and answered from the score cache."""
    counts = {}
    for model_id, reranker in rerankers.items():
        if any(p.reranker == model_id and p.reranks for p in pipelines.values()):
            sent, cached = reranker.pair_counts()
            sent0, cached0 = before[id(reranker)]
            counts[model_id] = {"pairs_scored": sent - sent0, "pairs_from_cache": cached - cached0,
                                "reranker": reranker.describe()}  # fmt: skip
    return counts
