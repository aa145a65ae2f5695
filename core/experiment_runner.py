"""Running an experiment end to end: open the query set and the index it runs on, load each reranker
behind the score cache, run, keep the snapshot.

Top floor beside ``core.eval_runner`` (it composes ingest's workspaces with experiments). A judged
dataset folder runs on its own dataset workspace, as ``eval`` does; a query list, a Quepid ratings file or
the user's labels run on the explorer's own index.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from core.chunks import Chunk
from core.config import Settings
from core.embedding.bi_encoder import BiEncoder, Progress
from core.eval_runner import dataset_workspace, index_corpus
from core.evaluation.datasets import load_dataset, parse_qrels
from core.evaluation.labels import LabelStore, document_key
from core.experiments.interop import read_quepid_ratings
from core.experiments.query_sets import QuerySet, QuerySetError, read_query_file
from core.experiments.runner import ExperimentProgress, run_experiment
from core.experiments.snapshot import Experiment, SnapshotStore
from core.ingest.workspace import Workspace
from core.rerank.base import Reranker
from core.rerank.factory import open_reranker
from core.rerank.score_cache import CachedReranker, ScoreCache
from core.retrieval.first_stage import Retriever
from core.retrieval.pipeline import Pipeline

LABELS = "labels"  # the query set made of the user's own labels


@dataclass
class QuerySource:
    """A query set and where it runs: a dataset's own folder (``dataset`` set) or the explorer's index."""

    query_set: QuerySet
    dataset: object | None = None  # a JudgedDataset, indexed into its own workspace

    @property
    def doc_key(self) -> Callable[[Chunk], str]:
        return (lambda chunk: chunk.doc_id) if self.dataset is not None else document_key


def open_query_source(settings: Settings, source: str | Path, qrels: Path | None = None) -> QuerySource:
    """A dataset folder, a query file (.txt/.csv/.jsonl), a Quepid ratings CSV, or "labels"."""
    if str(source) == LABELS:
        labels = LabelStore(settings.workspace)
        return QuerySource(QuerySet("my labels", labels.queries(), labels.qrels()))
    path = Path(source)
    if path.is_dir():
        dataset = load_dataset(path, qrels_path=qrels)
        return QuerySource(QuerySet.from_dataset(dataset), dataset)
    try:
        data = path.read_bytes()
        judgments = (qrels.name, qrels.read_bytes()) if qrels is not None else None
    except OSError as exc:
        raise QuerySetError(f"{exc.filename}: cannot be read ({exc.strerror or exc})") from None
    return query_source_from_upload(path.name, data, judgments)


def query_source_from_upload(name: str, data: bytes, judgments: tuple[str, bytes] | None = None) -> QuerySource:
    """A query list or a Quepid ratings CSV, with optional judgments (qrels or Quepid), from their bytes."""
    if name.lower().endswith(".csv") and _is_quepid(data):
        return QuerySource(read_quepid_ratings(name, data.decode("utf-8-sig", "replace")))
    query_set = read_query_file(name, data)
    if judgments is not None:
        attach_judgments(query_set, *judgments)
    return QuerySource(query_set)


def _is_quepid(data: bytes) -> bool:
    header = data.decode("utf-8-sig", "replace").split("\n", 1)[0].lower()
    return all(column in header for column in ("docid", "rating"))


def attach_judgments(query_set: QuerySet, name: str, data: bytes) -> None:
    """Judgments for a plain list: TREC/BEIR qrels, or a Quepid ratings CSV matched by query text."""
    text = data.decode("utf-8-sig", "replace")
    if name.lower().endswith(".csv"):
        quepid = read_quepid_ratings(name, text)
        by_text = {t: q for q, t in query_set.queries.items()}
        qrels = {by_text[t]: quepid.qrels[q] for q, t in quepid.queries.items() if t in by_text}
        query_set.problems += quepid.problems
    else:
        qrels, problems, _ = parse_qrels(text, name)
        query_set.problems += problems
    query_set.qrels = {q: j for q, j in qrels.items() if q in query_set.queries}


def score_cache(settings: Settings) -> ScoreCache:
    return ScoreCache(settings.workspace / "rerank-scores.sqlite")


def cached_rerankers(
    settings: Settings,
    pipelines: Mapping[str, Pipeline],
    cache: ScoreCache,
    load: Callable[[str], Reranker] | None = None,
) -> dict[str, Reranker]:
    """Each reranker the pipelines name, loaded once (``load``, else from the settings) behind the cache."""
    load = load or (lambda model_id: open_reranker(settings.with_(reranker=model_id)))
    ids = dict.fromkeys(p.reranker for p in pipelines.values() if p.reranks)
    return {model_id: CachedReranker(load(model_id), cache) for model_id in ids}


def corpus_fingerprint(workspace: Workspace) -> dict:
    """Changes when the indexed text, the bi-encoder or the chunking changes."""
    chunk_ids = sorted(workspace.catalog.all_chunk_ids())
    described = [workspace.encoder.model_id, workspace.chunker.max_tokens, workspace.chunker.overlap, chunk_ids]
    digest = hashlib.sha256(repr(described).encode()).hexdigest()[:16]
    return {"fingerprint": digest, "chunks": len(chunk_ids), "bi_encoder": workspace.encoder.model_id}


def run_experiment_in(
    settings: Settings,
    encoder: BiEncoder,
    source: QuerySource,
    pipelines: Mapping[str, Pipeline],
    rerankers: Mapping[str, Reranker],
    *,
    baseline: str,
    k: int = 100,
    workspace: Workspace | None = None,
    embed_progress: Progress | None = None,
    progress: ExperimentProgress | None = None,
    should_stop=lambda: False,
) -> tuple[Experiment | None, Path | None]:
    """Run and save; (None, None) when cancelled. ``workspace``: the explorer's, when already open."""
    own = source.dataset is not None or workspace is None
    if source.dataset is not None:
        workspace = dataset_workspace(settings, encoder, source.dataset)
    elif workspace is None:
        workspace = Workspace(settings, encoder)
    try:
        if source.dataset is not None:
            index_corpus(workspace, source.dataset, embed_progress)
        retriever = Retriever(workspace.encoder, workspace.store, workspace.lexical)
        experiment = run_experiment(
            source.query_set, pipelines, retriever, rerankers, baseline=baseline, k=k, doc_key=source.doc_key,
            corpus=corpus_fingerprint(workspace), progress=progress, should_stop=should_stop,
        )  # fmt: skip
    finally:
        if own:
            workspace.close()
    if experiment is None:
        return None, None
    experiment.settings = {
        "bi_encoder": encoder.model_id,
        "lexical_engine": retriever.lexical.engine,
        # Where the document ids point: the explorer's own index (labels apply) or a dataset's corpus.
        "index": "workspace" if source.dataset is None else f"dataset:{source.query_set.name}",
    }
    return experiment, snapshots(settings).save(experiment)


def snapshots(settings: Settings) -> SnapshotStore:
    return SnapshotStore(settings.workspace / "experiments")
