"""Which reranker backend serves a search: a rerank server when RERANK_SERVER_URL is set, else the local model."""

from __future__ import annotations

import os

from core.http_reranker import ENV, HttpReranker
from core.reranker import Reranker, RerankerLoadError, load_reranker


def server_url() -> str:
    return os.environ.get(ENV["url"], "").strip()


def open_reranker(model_id: str, device: str = "auto", dtype: str = "auto") -> Reranker | HttpReranker:
    """The reranker to use; raises RerankerLoadError (reason and advice) when none can be had."""
    try:
        server = HttpReranker.from_env(model_id)
    except ValueError as exc:
        raise RerankerLoadError(model_id, str(exc), "Fix the RERANK_SERVER_* settings (see docs/serving.md)") from exc
    return server if server is not None else load_reranker(model_id, device, dtype)
