"""Models and the workspace, loaded once per process (``st.cache_resource``) and shared by all pages."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.backends import open_reranker, server_url
from core.config import Settings
from core.embedding import BiEncoder, BiEncoderLoadError
from core.reranker import Reranker, RerankerLoadError
from core.vector_store import VectorStoreError
from core.workspace import Workspace
from ui.safe import md


@st.cache_resource(show_spinner="Loading the bi-encoder…")
def bi_encoder(model_id: str, device: str, dtype: str, backend: str) -> BiEncoder:
    return BiEncoder(model_id, device, dtype, backend)


@st.cache_resource(show_spinner="Opening the index…")
def _workspace(
    folder: str, milvus_uri: str, index_type: str, model_id: str, device: str, dtype: str, backend: str
) -> Workspace:
    settings = Settings.from_env(workspace=Path(folder), milvus_uri=milvus_uri, index_type=index_type)
    return Workspace(
        settings.with_(bi_encoder=model_id, device=device, dtype=dtype, embed_backend=backend),
        bi_encoder(model_id, device, dtype, backend),
    )


def workspace(settings: Settings) -> Workspace:
    """The open workspace; if it cannot be opened the page shows why and stops (never a stack trace)."""
    # One Workspace per index: Milvus Lite allows a single client per file, so chunking options are
    # per-ingest arguments rather than part of this cache key.
    refusal = settings.bi_encoder_refusal()
    if refusal:
        st.error(f"Not loaded: {md(refusal)}.", icon="⚠️")
        st.stop()
    try:
        opened = _workspace(
            str(settings.workspace.resolve()),
            settings.milvus_uri,
            settings.index_type,
            settings.bi_encoder,
            settings.device,
            settings.dtype,
            settings.embed_backend,
        )
    except (BiEncoderLoadError, VectorStoreError, ValueError, OSError) as exc:
        st.error(f"The workspace {md(settings.workspace)} could not be opened: {md(exc)}", icon="⚠️")
        st.stop()
    st.sidebar.caption(f"Embedding path: {md(opened.encoder.path)}")
    return opened


@st.cache_resource(show_spinner="Loading the reranker (a 4B model takes a while)…")
def _reranker(model_id: str, device: str, dtype: str, server: str) -> tuple[Reranker | None, RerankerLoadError | None]:
    # The failure is cached too, so every rerun doesn't retry a load that can't succeed; the search
    # page offers a retry button that clears this cache. ``server`` (RERANK_SERVER_URL) is in the key
    # so that pointing the app at a rerank server takes effect.
    try:
        return open_reranker(model_id, device, dtype), None
    except RerankerLoadError as exc:
        return None, exc


def reranker(settings: Settings) -> tuple[Reranker | None, RerankerLoadError | None]:
    refusal = settings.reranker_refusal()
    if refusal:
        return None, RerankerLoadError(settings.reranker, refusal, "Pick one of the allowed models in the sidebar")
    return _reranker(settings.reranker, settings.device, settings.dtype, server_url())


def forget_reranker_failure() -> None:
    _reranker.clear()
