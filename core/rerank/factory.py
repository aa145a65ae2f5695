"""Which reranker serves a search: a rerank server when one is set (RERANK_SERVER_URL), else the local model.

A reranker id may say which, so one experiment or one Search page can hold both: ``local:MODEL`` always
loads in this process, ``server:MODEL`` always asks the server at RERANK_SERVER_URL for the served model
MODEL. A bare id follows the setting.
"""

from __future__ import annotations

from dataclasses import replace

from core.config import Settings
from core.errors import SettingsError
from core.rerank.base import Reranker, RerankerLoadError
from core.rerank.http import HttpReranker

LOCAL, SERVED = "local:", "server:"


def open_reranker(settings: Settings) -> Reranker:
    """The reranker ``settings`` name; raises RerankerLoadError (reason and advice) when none can be had."""
    if settings.reranker_problem:
        raise RerankerLoadError(
            settings.reranker, settings.reranker_problem, "Fix the setting (README: Configuration; docs/serving.md)"
        )
    model = settings.reranker
    if model.startswith(LOCAL):
        return _local(settings, model[len(LOCAL) :])
    if model.startswith(SERVED):
        if not settings.server.url:
            raise RerankerLoadError(model, "no rerank server is set", "Set RERANK_SERVER_URL (docs/serving.md)")
        return _served(settings, replace(settings.server, model=model[len(SERVED) :]))
    server = _served(settings, settings.server)
    return server if server is not None else _local(settings, model)


def _served(settings: Settings, server) -> HttpReranker | None:
    try:
        return HttpReranker.from_settings(server, settings.reranker, settings.prob_temperature)
    except (ValueError, SettingsError) as exc:
        raise RerankerLoadError(
            settings.reranker, str(exc), "Fix the RERANK_SERVER_* settings (see docs/serving.md)"
        ) from exc


def _local(settings: Settings, model: str) -> Reranker:
    # Imported here: it imports torch (seconds), and the Experiments page imports this module before it draws.
    from core.rerank.local import load_reranker

    return load_reranker(
        model,
        settings.device,
        settings.dtype,
        settings.rerank_engine,
        settings.prob_temperature,
        settings.reranker_revision or None,
    )
