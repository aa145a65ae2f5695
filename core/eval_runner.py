"""Running an evaluation end to end: index the dataset's corpus in its own collection, then evaluate."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from core.config import Settings
from core.datasets import JudgedDataset
from core.embedding import BiEncoder, Progress
from core.evaluation import EvalProgress, Evaluation, EvaluationStore, evaluate
from core.reranker import Reranker
from core.workspace import IngestSummary, Workspace


def dataset_workspace(settings: Settings, encoder: BiEncoder, dataset: JudgedDataset) -> Workspace:
    """A workspace of the dataset's own, beside the explorer's, so judged corpora never mix with uploads.

    Its folder and collection are named after the dataset and a hash of the corpus path; the embedding
    cache is its own too, so a second evaluation of the same dataset embeds nothing.
    """
    digest = hashlib.sha256(str(Path(dataset.corpus).resolve()).encode()).hexdigest()[:8]
    slug = re.sub(r"[^A-Za-z0-9_]+", "_", dataset.name)[:40] + f"_{digest}"
    return Workspace(
        settings.with_(workspace=settings.workspace / "datasets" / slug, collection=f"eval_{slug}"), encoder
    )


def index_corpus(workspace: Workspace, dataset: JudgedDataset, progress: Progress | None = None) -> IngestSummary:
    return workspace.ingest_paths([Path(dataset.corpus)], progress)


def evaluations(settings: Settings) -> EvaluationStore:
    return EvaluationStore(settings.workspace / "evaluations")


def run_dataset_evaluation(
    settings: Settings,
    encoder: BiEncoder,
    dataset: JudgedDataset,
    reranker: Reranker | None,
    *,
    k: int,
    rerank_depth: int | None,
    reranker_error: str | None = None,
    embed_progress: Progress | None = None,
    progress: EvalProgress | None = None,
    should_stop=lambda: False,
) -> tuple[Evaluation, IngestSummary]:
    workspace = dataset_workspace(settings, encoder, dataset)
    try:
        ingest = index_corpus(workspace, dataset, embed_progress)
        evaluation = evaluate(
            dataset,
            encoder,
            workspace.store,
            reranker,
            k=k,
            rerank_depth=rerank_depth,
            progress=progress,
            should_stop=should_stop,
            reranker_error=reranker_error,
            settings=describe(settings, encoder, reranker, workspace),
        )
    finally:
        workspace.close()
    evaluation.problems = [r.message for r in ingest.reports if r.status == "error"] + evaluation.problems
    return evaluation, ingest


def describe(settings: Settings, encoder: BiEncoder, reranker: Reranker | None, workspace: Workspace) -> dict:
    return {
        "bi_encoder": encoder.model_id,
        "reranker": reranker.model_id if reranker else None,
        "probability": reranker.probability_label if reranker else None,
        "device": reranker.device if reranker else encoder.device,
        "chunk_tokens": workspace.chunker.max_tokens,
        "chunk_overlap": workspace.chunker.overlap,
    }
