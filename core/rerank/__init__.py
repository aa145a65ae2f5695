"""Rerankers behind one interface: the local CrossEncoder, its scoring engine, rerank servers."""

from core.lazy_exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    "core.rerank",
    {
        "RerankError": "base",
        "Reranker": "base",
        "RerankerLoadError": "base",
        "sigmoid": "base",
        "Calibration": "calibration",
        "ZERANK_TEMPERATURE": "calibration",
        "CrossEncoderReranker": "local",
        "load_reranker": "local",
        "HttpReranker": "http",
        "RerankServerError": "http",
        "open_reranker": "factory",
        "reranker_query": "prompts",
        "KNOWN_MODELS": "known_models",
        "format_params": "known_models",
        "estimate_seconds": "estimate",
    },
)
