"""Which reranker serves a search: a rerank server when one is set (RERANK_SERVER_URL), else the local model."""

from __future__ import annotations

from core.config import Settings
from core.errors import SettingsError
from core.rerank.base import Reranker, RerankerLoadError
from core.rerank.http import HttpReranker
from core.rerank.local import load_reranker


def open_reranker(settings: Settings) -> Reranker:
    """The reranker ``settings`` name; raises RerankerLoadError (reason and advice) when none can be had."""
    if settings.reranker_problem:
        raise RerankerLoadError(
            settings.reranker, settings.reranker_problem, "Fix the setting (README: Configuration; docs/serving.md)"
        )
    try:
        server = HttpReranker.from_settings(settings.server, settings.reranker, settings.prob_temperature)
    except (ValueError, SettingsError) as exc:
        raise RerankerLoadError(
            settings.reranker, str(exc), "Fix the RERANK_SERVER_* settings (see docs/serving.md)"
        ) from exc
    if server is not None:
        return server
    return load_reranker(
        settings.reranker,
        settings.device,
        settings.dtype,
        settings.rerank_engine,
        settings.prob_temperature,
        settings.reranker_revision or None,
    )
