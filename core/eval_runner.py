"""Running an evaluation end to end: index a dataset's corpus in a workspace of its own, then evaluate.

This is the top floor beside ``core.cli``: it composes ingest (a workspace) with evaluation, which is why
it is not inside ``core/evaluation/`` (evaluation never imports ingest).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from core.config import Settings
from core.demo import DEMO_HARD, DEMO_JUDGMENTS, SHARED_DATASETS
from core.embedding.bi_encoder import BiEncoder, Progress
from core.evaluation.datasets import JudgedDataset, dataset_from_labels
from core.evaluation.evaluate import EvalProgress, evaluate
from core.evaluation.labels import LabelStore, document_key
from core.evaluation.report import Evaluation
from core.evaluation.store import EvaluationStore
from core.ingest.workspace import IngestSummary, Workspace
from core.rerank.base import Reranker
from core.rerank.estimate import estimate_seconds
from core.retrieval.first_stage import Retriever
from core.retrieval.pipeline import Pipeline


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
    pipeline: Pipeline,
    reranker: Reranker | None,
    *,
    k: int,
    reranker_error: str | None = None,
    embed_progress: Progress | None = None,
    progress: EvalProgress | None = None,
    should_stop=lambda: False,
) -> tuple[Evaluation, IngestSummary]:
    workspace = dataset_workspace(settings, encoder, dataset)
    try:
        ingest = index_corpus(workspace, dataset, embed_progress)
        evaluation = evaluate_in(
            workspace, dataset, pipeline, reranker, k=k, progress=progress, should_stop=should_stop,
            reranker_error=reranker_error,
        )  # fmt: skip
    finally:
        workspace.close()
    evaluation.problems = [r.message for r in ingest.reports if r.status == "error"] + evaluation.problems
    return evaluation, ingest


def estimate_evaluation_seconds(n_queries: int, rerank_depth: int, reranker: Reranker) -> float:
    """A rough time for the reranking part: about 1.5 chunks per document and 300 tokens per pair."""
    pairs = int(n_queries * rerank_depth * 1.5)
    return estimate_seconds(pairs, 300, reranker.params, reranker.measured_pairs_per_second)


def describe(encoder: BiEncoder, reranker: Reranker | None, workspace: Workspace) -> dict:
    return {
        "bi_encoder": encoder.model_id,
        "reranker": reranker.model_id if reranker else None,
        "probability": reranker.probability_label if reranker else None,
        "calibration": reranker.calibration.to_json() if reranker else None,
        "reranker_runs": reranker.describe() if reranker else None,
        "device": encoder.device,
        "chunk_tokens": workspace.chunker.max_tokens,
        "chunk_overlap": workspace.chunker.overlap,
    }


UPLOADED = "uploaded-datasets"


def dataset_folders(settings: Settings) -> list[Path]:
    """Judged datasets on offer: the two demo sets, ../shared/datasets, RERANK_DATASETS, uploads."""
    roots = [SHARED_DATASETS, settings.workspace / UPLOADED, *settings.dataset_roots]
    folders = [DEMO_JUDGMENTS, DEMO_HARD]
    for root in roots:
        if root.is_dir():
            folders += sorted(p for p in root.iterdir() if (p / "queries.jsonl").is_file())
    return folders


def dataset_slug(name: str) -> str:
    """A folder name from a user's dataset name: letters, digits, "-" and "_", never "." or ".." or empty.

    A name that had to change gets a short hash of itself, so two names never share a folder ("a b"
    and "a.b", or two names in another script).
    """
    name = name.strip()
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:64]
    if slug == name and slug:
        return slug
    return f"{slug or 'dataset'}-{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def save_uploaded_dataset(settings: Settings, name: str, corpus: bytes, queries: bytes, qrels: bytes) -> Path:
    """Write an uploaded dataset in BEIR layout under the workspace, where ``dataset_folders`` finds it."""
    folder = settings.workspace / UPLOADED / dataset_slug(name)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_bytes(corpus)
    (folder / "queries.jsonl").write_bytes(queries)
    (folder / "qrels" / "test.tsv").write_bytes(qrels)
    return folder


def run_label_evaluation(
    workspace: Workspace,
    pipeline: Pipeline,
    reranker: Reranker | None,
    *,
    k: int,
    reranker_error: str | None = None,
    progress: EvalProgress | None = None,
) -> Evaluation:
    """The user's labelled queries, evaluated on the explorer's own index."""
    labels = LabelStore(workspace.folder)
    dataset = dataset_from_labels("my labels", workspace.folder, labels.queries(), labels.qrels())
    return evaluate_in(
        workspace, dataset, pipeline, reranker, k=k, doc_key=document_key, progress=progress,
        reranker_error=reranker_error,
    )  # fmt: skip


def evaluate_in(
    workspace: Workspace, dataset: JudgedDataset, pipeline: Pipeline, reranker: Reranker | None, **options
) -> Evaluation:
    """``evaluate`` on a workspace's index, its settings recorded with the evaluation."""
    retriever = Retriever(workspace.encoder, workspace.store, workspace.lexical)
    return evaluate(
        dataset, retriever, pipeline, reranker, settings=describe(workspace.encoder, reranker, workspace), **options
    )
