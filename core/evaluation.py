"""Evaluating both stages on judged queries: NDCG@10 and friends, and the lift reranking adds.

Each judged query runs the explorer's pipeline: every first stage (dense, BM25, and the two hybrid
fusions) retrieves chunks, chunks are grouped into documents with a document scored by its best chunk
(MaxP), and the reranker rescores the chunks of the top ``rerank_depth`` documents of the chosen first
stage, again MaxP. Documents below the rerank depth keep the first stage's order after the reranked
ones. Metrics are computed on document ids, as qrels are. Every first stage is reported, so Recall@100
(the ceiling for reranking) can be compared across them.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from core.chunking import Chunk
from core.datasets import JudgedDataset, Qrels
from core.lexical import LexicalSearch
from core.metrics import METRICS, Lift, lift, mean_metrics, per_query_metrics, strictly_decreasing
from core.prompts import reranker_query
from core.reranker import Reranker
from core.search import BM25, DENSE, LIST_LABELS, FirstStage, RetrievedChunk, fuse
from core.vector_store import MAX_SEARCH_LIMIT

# Every first stage the evaluation reports, by metrics key; "bi_encoder" is the dense one.
FIRST_STAGES = {
    "bi_encoder": FirstStage("dense"),
    "bm25": FirstStage("bm25"),
    "hybrid_rrf": FirstStage("hybrid", "rrf"),
    "hybrid_weighted": FirstStage("hybrid", "weighted"),
}


# How pages and tables name each stage.
STAGE_LABELS = {
    "bi_encoder": LIST_LABELS[DENSE],
    "bm25": LIST_LABELS[BM25],
    "hybrid_rrf": "hybrid RRF",
    "hybrid_weighted": "hybrid weighted",
    "reranked": "reranked",
}


def stage_key(stage: FirstStage) -> str:
    """The metrics key of a first stage: 'bi_encoder' for dense (as before hybrid existed), else its key."""
    return "bi_encoder" if stage.mode == "dense" else stage.key


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
class QueryRecord:
    qid: str
    query: str
    relevant: int  # judged relevant documents (grade > 0)
    bi_encoder: dict[str, float]
    reranked: dict[str, float] | None
    first_stages: dict[str, dict[str, float]] = field(default_factory=dict)  # bm25 and hybrid runs

    def run(self, stage: str) -> dict[str, float] | None:
        if stage == "bi_encoder":
            return self.bi_encoder
        if stage == "reranked":
            return self.reranked
        return self.first_stages.get(stage)


@dataclass
class Candidate:
    """A reranked document: for the probability histogram and the reliability diagram."""

    qid: str
    doc_id: str
    probability: float
    grade: int | None  # None: not judged


@dataclass
class Evaluation:
    dataset: str
    settings: dict
    queries: list[QueryRecord]
    metrics: dict[str, dict[str, dict[str, float]]]  # stage -> qid -> metric -> value
    candidates: list[Candidate]
    timings_s: dict[str, float]
    problems: list[str]
    skipped: dict[str, int]
    cancelled: bool = False
    reranker_error: str | None = None
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def has_reranking(self) -> bool:
        return "reranked" in self.metrics

    @property
    def baseline(self) -> str:
        """The first stage that was reranked, which the lift is measured against."""
        return self.settings.get("first_stage", "bi_encoder")

    @property
    def stages(self) -> list[str]:
        """First stages, then reranked, in a fixed order."""
        return [s for s in (*FIRST_STAGES, "reranked") if s in self.metrics]

    def means(self, stage: str) -> dict[str, float]:
        return mean_metrics(self.metrics.get(stage, {}))

    def lift(self, metric: str = "ndcg@10") -> Lift | None:
        """What reranking adds to the first stage it reranked."""
        return self.compare(self.baseline, "reranked", metric) if self.has_reranking else None

    def compare(self, before: str, after: str, metric: str = "ndcg@10") -> Lift:
        """Per-query ``after`` − ``before`` on ``metric``, with CI and p-value (e.g. hybrid against dense)."""
        return lift(
            {q: m[metric] for q, m in self.metrics[before].items()},
            {q: m[metric] for q, m in self.metrics[after].items()},
        )

    def first_stages_against_dense(self) -> dict[str, dict[str, dict]]:
        """BM25 and the hybrids against dense on NDCG@10 and Recall@100 (the ceiling for reranking)."""
        others = [s for s in self.stages if s not in ("bi_encoder", "reranked")]
        return {
            stage: {m: self.compare("bi_encoder", stage, m).to_json() for m in ("ndcg@10", "recall@100")}
            for stage in others
        }

    def summary(self) -> dict:
        """The CLI's JSON: dataset, query count, mean metrics per stage, lift with CI and p-value."""
        lifts = {m: self.lift(m) for m in METRICS} if self.has_reranking else None
        return {
            "dataset": self.dataset,
            "queries": len(self.queries),
            "metrics": {
                **{stage: self.means(stage) for stage in self.stages},
                "reranked": self.means("reranked") if self.has_reranking else None,
            },
            "lift_against": self.baseline,
            "first_stages_against_dense": self.first_stages_against_dense() if self.queries else {},
            "lift": {m: value.to_json() for m, value in lifts.items()} if lifts else None,
            "settings": self.settings,
            "timings_s": self.timings_s,
            "skipped": self.skipped,
            "problems": self.problems[:50],
            "cancelled": self.cancelled,
            "reranker_error": self.reranker_error,
            "created_at": self.created_at,
        }

    def trec_run(self, stage: str, tag: str | None = None) -> str:
        """``qid Q0 docid rank score tag`` lines; scores never tie, so trec_eval keeps our order."""
        tag = tag or stage
        lines = []
        for record in self.queries:
            run = record.run(stage) or {}
            for rank, (doc, score) in enumerate(sorted(run.items(), key=lambda kv: -kv[1]), start=1):
                # repr: the shortest text that reads back as the same float, so no two scores print alike.
                lines.append(f"{record.qid} Q0 {doc} {rank} {score!r} {tag}\n")
        return "".join(lines)

    def per_query_csv(self) -> str:
        out = io.StringIO()
        stages = self.stages
        columns = ["qid", "query", "relevant"] + [f"{s}:{m}" for s in stages for m in METRICS]
        if self.has_reranking:
            columns += [f"lift:{m}" for m in METRICS]
        writer = csv.writer(out)
        writer.writerow(columns)
        for record in self.queries:
            row = [record.qid, record.query, record.relevant]
            row += [round(self.metrics[s][record.qid][m], 6) for s in stages for m in METRICS]
            if self.has_reranking:
                row += [
                    round(self.metrics["reranked"][record.qid][m] - self.metrics[self.baseline][record.qid][m], 6)
                    for m in METRICS
                ]
            writer.writerow(row)
        return out.getvalue()

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Evaluation:
        data = dict(data)
        data["queries"] = [QueryRecord(**q) for q in data["queries"]]
        data["candidates"] = [Candidate(**c) for c in data["candidates"]]
        return cls(**data)


def evaluate(
    dataset: JudgedDataset,
    encoder,
    store,
    reranker: Reranker | None,
    *,
    k: int = 100,
    rerank_depth: int | None = None,
    doc_key: Callable[[Chunk], str] = lambda chunk: chunk.doc_id,
    progress: EvalProgress | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    reranker_error: str | None = None,
    settings: dict | None = None,
    first_stage: FirstStage | None = None,
    lexical: LexicalSearch | None = None,
    instruction: str = "",
) -> Evaluation:
    """Run every first stage, and the reranker on ``first_stage``'s list, for each judged query."""
    first_stage = first_stage or FirstStage()
    reranked_stage = stage_key(first_stage)
    stages = {**FIRST_STAGES, reranked_stage: first_stage}  # the chosen fusion weight, not the default
    lexical = lexical or LexicalSearch(store)
    depth = k if rerank_depth is None else max(0, min(rerank_depth, k))
    qids = sorted(dataset.queries, key=_natural)
    started = time.perf_counter()
    texts = [dataset.queries[q] for q in qids]
    query_vectors = encoder.encode(texts) if texts else np.zeros((0, 1))
    timings = {"embed_queries": time.perf_counter() - started, "search": 0.0, "bm25": 0.0, "rerank": 0.0}

    records: list[QueryRecord] = []
    candidates: list[Candidate] = []
    cancelled = False
    chunk_limit = min(k * CHUNKS_PER_DOCUMENT, MAX_SEARCH_LIMIT)
    for done, (qid, vector) in enumerate(zip(qids, query_vectors)):
        if should_stop():
            cancelled = True
            break
        t0 = time.perf_counter()
        dense = [
            RetrievedChunk(r, h.chunk, h.score, {DENSE: r}) for r, h in enumerate(store.search(vector, chunk_limit), 1)
        ]
        timings["search"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        hits = lexical.search(dataset.queries[qid], chunk_limit)
        timings["bm25"] += time.perf_counter() - t0
        bm25 = [RetrievedChunk(r, h.chunk, h.score, {BM25: r}) for r, h in enumerate(hits, 1)]
        chunk_lists = {"bi_encoder": dense, "bm25": bm25}
        for key, stage in stages.items():
            if stage.mode == "hybrid":
                chunk_lists[key] = fuse(dense, bm25, stage, chunk_limit)
        documents = {key: maxp((doc_key(c.chunk), c.score) for c in chunks)[:k] for key, chunks in chunk_lists.items()}
        runs = {key: strictly_decreasing(docs) for key, docs in documents.items()}

        reranked_run = None
        if reranker is not None:
            t0 = time.perf_counter()
            try:
                reranked_run, scored = _rerank_documents(
                    reranker_query(dataset.queries[qid], instruction),
                    [c.chunk for c in chunk_lists[reranked_stage]],
                    documents[reranked_stage],
                    depth,
                    reranker,
                    doc_key,
                )
            except Exception as exc:  # a rerank server that went down, out of memory…: the first stages stand
                reranker_error = f"reranking failed at query {qid}: {type(exc).__name__}: {exc}"
                reranker, candidates = None, []
                for record in records:
                    record.reranked = None
            timings["rerank"] += time.perf_counter() - t0
        if reranker is not None:
            judged = dataset.qrels[qid]
            candidates.extend(Candidate(qid, doc, p, judged.get(doc)) for doc, p in scored)
        relevant = sum(rel > 0 for rel in dataset.qrels[qid].values())
        others = {key: run for key, run in runs.items() if key != "bi_encoder"}
        records.append(QueryRecord(qid, dataset.queries[qid], relevant, runs["bi_encoder"], reranked_run, others))
        if progress:
            progress(done + 1, len(qids))

    evaluated: Qrels = {r.qid: dataset.qrels[r.qid] for r in records}
    metrics = {key: per_query_metrics(evaluated, {r.qid: r.run(key) for r in records}) for key in FIRST_STAGES}
    if reranker is not None:
        metrics["reranked"] = per_query_metrics(evaluated, {r.qid: r.reranked for r in records})
    timings["total"] = time.perf_counter() - started
    return Evaluation(
        dataset=dataset.name,
        settings={
            "k": k,
            "rerank_depth": depth if reranker else 0,
            "first_stage": reranked_stage,
            "first_stage_label": first_stage.label,
            "lexical_engine": lexical.engine,
            "instruction": instruction.strip(),
            **(settings or {}),
        },
        queries=records,
        metrics=metrics,
        candidates=candidates,
        timings_s=timings,
        problems=list(dataset.problems),
        skipped=dict(dataset.skipped),
        cancelled=cancelled,
        reranker_error=reranker_error,
    )


def _rerank_documents(
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
    logits = reranker.score(query, [c.text for c in chunks])
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


class EvaluationStore:
    """Past evaluations saved as JSON in the workspace, for comparing runs on the same dataset."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def save(self, evaluation: Evaluation) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = evaluation.created_at.replace(":", "").replace("-", "").replace("+0000", "Z")
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", evaluation.dataset)
        path = self.folder / f"{stamp}-{name}-{uuid.uuid4().hex[:6]}.json"
        # Written aside then renamed: a run stopped mid-write never leaves half a file to list.
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(evaluation.to_json()), encoding="utf-8")
        os.replace(partial, path)
        return path

    def list(self) -> list[Path]:
        return sorted(self.folder.glob("*.json"), reverse=True) if self.folder.is_dir() else []

    def load(self, path: Path) -> Evaluation:
        """Raises ValueError for a file that is not a saved evaluation (damaged, or from another version)."""
        try:
            return Evaluation.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError, TypeError, KeyError) as exc:
            raise ValueError(f"{Path(path).name} is not a readable evaluation ({type(exc).__name__}: {exc})") from exc
