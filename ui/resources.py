"""Models and the workspace, loaded once per process (``st.cache_resource``) and shared by all pages."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.config import Settings
from core.embedding.bi_encoder import BiEncoder
from core.errors import ExplorerError
from core.ingest.workspace import Workspace
from core.rerank.base import Reranker, RerankerLoadError
from core.rerank.factory import open_reranker
from core.rerank.score_cache import ScoreCache
from ui.safe import md

# The settings a workspace is opened with (besides its folder); chunk sizes chosen on the Documents page
# are per-ingest arguments, not part of this.
WORKSPACE_FIELDS = (
    "bi_encoder", "device", "dtype", "embed_backend", "milvus_uri", "milvus_token", "index_type", "collection",
    "chunk_tokens", "chunk_overlap", "max_file_mb",
)  # fmt: skip


@st.cache_resource(show_spinner="Loading the bi-encoder…")
def bi_encoder(model_id: str, device: str, dtype: str, backend: str) -> BiEncoder:
    return BiEncoder(model_id, device, dtype, backend)


@st.cache_resource(show_spinner="Opening the index…")
def _workspace(settings: Settings) -> Workspace:
    return Workspace(settings, bi_encoder(settings.bi_encoder, settings.device, settings.dtype, settings.embed_backend))


def workspace(settings: Settings) -> Workspace:
    """The open workspace; if it cannot be opened the page shows why and stops (never a stack trace)."""
    refusal = settings.bi_encoder_refusal()
    if refusal:
        st.error(f"Not loaded: {md(refusal)}.", icon="⚠️")
        st.stop()
    # One Workspace per index: Milvus Lite allows a single client per file. Only what the workspace
    # depends on is in the cache key (the reranker or a rerank server setting must not reopen it).
    key = Settings(
        workspace=settings.workspace.resolve(),
        **{name: getattr(settings, name) for name in WORKSPACE_FIELDS},
    )
    try:
        opened = _workspace(key)
    except (ExplorerError, ValueError, OSError) as exc:
        st.error(f"The workspace {md(settings.workspace)} could not be opened: {md(exc)}", icon="⚠️")
        st.stop()
    st.sidebar.caption(f"Embedding path: {md(opened.encoder.path)}")
    return opened


@st.cache_resource(show_spinner="Loading the reranker (a 4B model takes a while)…")
def _reranker(settings: Settings) -> tuple[Reranker | None, RerankerLoadError | None]:
    # The failure is cached too, so every rerun doesn't retry a load that can't succeed; the search
    # page offers a retry button that clears this cache.
    try:
        return open_reranker(settings), None
    except RerankerLoadError as exc:
        return None, exc


def reranker(settings: Settings) -> tuple[Reranker | None, RerankerLoadError | None]:
    refusal = settings.reranker_refusal()
    if refusal:
        return None, RerankerLoadError(settings.reranker, refusal, "Pick one of the allowed models in the sidebar")
    # Only what the reranker depends on is in the cache key: changing the bi-encoder must not reload it.
    return _reranker(
        Settings(
            reranker=settings.reranker,
            device=settings.device,
            dtype=settings.dtype,
            rerank_engine=settings.rerank_engine,
            reranker_revision=settings.reranker_revision,
            prob_temperature=settings.prob_temperature,
            server=settings.server,
            reranker_problem=settings.reranker_problem,
        )
    )


@st.cache_resource
def score_cache(path: str) -> ScoreCache:
    """One score cache per file for the process: every session's experiments read and add to it."""
    return ScoreCache(Path(path))


def forget_reranker_failure() -> None:
    _reranker.clear()
