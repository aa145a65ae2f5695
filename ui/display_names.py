"""How pages name first stages, fusions and evaluation stages."""

from __future__ import annotations

from core.retrieval.results import BM25, DENSE

LIST_LABELS = {DENSE: "dense", BM25: "BM25"}
MODE_LABELS = {"dense": "Dense", "bm25": "BM25", "hybrid": "Hybrid"}
FUSION_LABELS = {"rrf": "Reciprocal rank fusion", "weighted": "Weighted scores"}

# How pages and tables name each stage of an evaluation.
STAGE_LABELS = {
    "dense": LIST_LABELS[DENSE],
    "bm25": LIST_LABELS[BM25],
    "hybrid_rrf": "hybrid RRF",
    "hybrid_weighted": "hybrid weighted",
    "reranked": "reranked",
}
