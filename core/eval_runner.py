"""Running an evaluation end to end: index the dataset's corpus in its own collection, then evaluate."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from core.config import Settings
from core.datasets import JudgedDataset
from core.embedding import BiEncoder, Progress
from core.evaluation import EvalProgress, Evaluation, EvaluationStore, evaluate
from core.reranker import Reranker
from core.search import FirstStage
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
    first_stage: FirstStage | None = None,
    instruction: str = "",
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
            first_stage=first_stage,
            lexical=workspace.lexical,
            instruction=instruction,
        )
    finally:
        workspace.close()
    evaluation.problems = [r.message for r in ingest.reports if r.status == "error"] + evaluation.problems
    return evaluation, ingest


def estimate_evaluation_seconds(n_queries: int, rerank_depth: int, reranker: Reranker) -> float:
    """A rough time for the reranking part: about 1.5 chunks per document and 300 tokens per pair."""
    from core.reranker import estimate_seconds

    pairs = int(n_queries * rerank_depth * 1.5)
    return estimate_seconds(pairs, 300, reranker.params, reranker.measured_pairs_per_second)


def describe(settings: Settings, encoder: BiEncoder, reranker: Reranker | None, workspace: Workspace) -> dict:
    return {
        "bi_encoder": encoder.model_id,
        "reranker": reranker.model_id if reranker else None,
        "probability": reranker.probability_label if reranker else None,
        "device": reranker.device if reranker else encoder.device,
        "chunk_tokens": workspace.chunker.max_tokens,
        "chunk_overlap": workspace.chunker.overlap,
    }


UPLOADED = "uploaded-datasets"


def dataset_folders(settings: Settings) -> list[Path]:
    """Judged datasets on offer: the demo judgments, ../shared/datasets, RERANK_DATASETS, uploads."""
    from core.demo import DEMO_JUDGMENTS, SHARED_DATASETS

    roots = [SHARED_DATASETS, settings.workspace / UPLOADED]
    roots += [Path(p) for p in os.environ.get("RERANK_DATASETS", "").split(os.pathsep) if p]
    folders = [DEMO_JUDGMENTS]
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
    reranker: Reranker | None,
    *,
    k: int,
    rerank_depth: int | None,
    reranker_error: str | None = None,
    progress: EvalProgress | None = None,
    first_stage: FirstStage | None = None,
    instruction: str = "",
) -> Evaluation:
    """The user's labelled queries, evaluated on the explorer's own index."""
    from core.datasets import dataset_from_labels
    from core.labels import LabelStore, document_key

    labels = LabelStore(workspace.folder)
    dataset = dataset_from_labels("my labels", workspace.folder, labels.queries(), labels.qrels())
    return evaluate(
        dataset,
        workspace.encoder,
        workspace.store,
        reranker,
        k=k,
        rerank_depth=rerank_depth,
        doc_key=document_key,
        progress=progress,
        reranker_error=reranker_error,
        settings=describe(workspace.settings, workspace.encoder, reranker, workspace),
        first_stage=first_stage,
        lexical=workspace.lexical,
        instruction=instruction,
    )
