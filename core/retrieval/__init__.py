"""One query through a pipeline: the first stage, fusion, reranking, score controls, results."""

from core.lazy_exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    "core.retrieval",
    {
        "DEFAULT_K": "pipeline",
        "DEFAULT_RERANK_DEPTH": "pipeline",
        "FUSIONS": "pipeline",
        "MODES": "pipeline",
        "FirstStage": "pipeline",
        "Pipeline": "pipeline",
        "FirstStageLists": "first_stage",
        "Retriever": "first_stage",
        "fuse": "first_stage",
        "add_reranking": "search",
        "estimate_rerank_seconds": "search",
        "rerank": "search",
        "score_candidates": "search",
        "search": "search",
        "skip_reranking": "search",
        "RerankedChunk": "results",
        "RetrievedChunk": "results",
        "SearchResult": "results",
        "movement_label": "results",
        "ShownRow": "score_controls",
        "apply_score_controls": "score_controls",
        "reciprocal_rank_fusion": "fusion",
        "weighted_fusion": "fusion",
    },
)
