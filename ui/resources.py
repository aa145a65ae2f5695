"""Models and the workspace, loaded once per process (``st.cache_resource``) and shared by all pages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from core.concurrency.background import BackgroundLoad, Loads
from core.config import Settings
from core.errors import ExplorerError
from core.rerank.base import RerankerLoadError
from ui.safe import md

if TYPE_CHECKING:  # the heavy modules are imported where they are first needed (see _open_workspace)
    from core.ingest.workspace import Workspace
    from core.rerank.base import Reranker
    from core.rerank.score_cache import ScoreCache

EMBEDDING_PATH_SHOWN = "embedding_path_shown"

# The settings a workspace is opened with (besides its folder); chunk sizes chosen on the Documents page
# are per-ingest arguments, not part of this.
WORKSPACE_FIELDS = (
    "bi_encoder", "device", "dtype", "embed_backend", "milvus_uri", "milvus_token", "index_type", "collection",
    "chunk_tokens", "chunk_overlap", "max_file_mb",
)  # fmt: skip


@st.cache_resource
def _loads() -> Loads:
    """The process's background loads (one per workspace key) and bi-encoders (one per model and runtime)."""
    return Loads()


@st.cache_resource
def _encoders() -> Loads:
    return Loads()


def _open_workspace(settings: Settings, encoders: Loads, step) -> Workspace:
    # Imported here, in the loading thread: torch, transformers, OpenVINO and Milvus Lite take seconds
    # to import, and a page that imported them at its top could not render until they had.
    step("Importing the embedding and index libraries")
    from core.embedding.bi_encoder import BiEncoder
    from core.ingest.workspace import Workspace

    step(f"Loading the bi-encoder {settings.bi_encoder}")
    key = (settings.bi_encoder, settings.device, settings.dtype, settings.embed_backend)
    load = encoders.get(key, lambda _: BiEncoder(*key), f"Loading the bi-encoder {settings.bi_encoder}")
    load.wait()
    encoders.forget_failure(key)
    encoder = load.result()
    step(f"Opening the index ({settings.resolved_milvus_uri})")
    return Workspace(settings, encoder)


def _workspace_key(settings: Settings) -> Settings:
    # One Workspace per index: Milvus Lite allows a single client per file. Only what the workspace
    # depends on is in the key (the reranker or a rerank server setting must not reopen it).
    return Settings(
        workspace=settings.workspace.resolve(),
        **{name: getattr(settings, name) for name in WORKSPACE_FIELDS},
    )


def start_loading(settings: Settings) -> BackgroundLoad | None:
    """Start opening the workspace in the background (once per process); None if the settings refuse it."""
    if settings.bi_encoder_refusal():
        return None
    key = _workspace_key(settings)
    encoders = _encoders()
    return _loads().get(key, lambda step: _open_workspace(key, encoders, step), "Starting")


def loading_step(settings: Settings) -> str | None:
    """What the workspace's load is doing now; None once it is over (or was never started)."""
    load = start_loading(settings)
    return None if load is None or load.done else load.step


def opened(settings: Settings) -> Workspace | None:
    """The workspace if it is open, without waiting and without drawing anything (None while it loads,
    or if it could not be opened: the page's ``workspace()`` or ``when_open()`` call says why)."""
    load = start_loading(settings)
    return load.result() if load is not None and load.done and not load.failed else None


def when_open(settings: Settings, draw: Callable[[Workspace], None], waiting: str) -> None:
    """``draw(workspace)`` now if the workspace is open; else a status line (what is loading, then
    ``waiting``) that polls every 0.5 s, and one full run of the page once it is open, so the parts of the
    page drawn without it catch up."""
    polled = f"polled_{draw.__qualname__}"
    loading = loading_step(settings) is not None
    if loading:  # this part polls: whatever run of it sees the load over brings the page up to date
        st.session_state[polled] = True
    else:  # a full run with the workspace open draws the whole page anyway
        st.session_state.pop(polled, None)
        # Opened (or failed) before this part started: opened here, so the sidebar's embedding path is
        # drawn by the page's run, not by the part below, whose own reruns may not write to the sidebar.
        workspace(settings)

    @st.fragment(run_every=0.5 if loading else None)
    def section() -> None:
        step = loading_step(settings)
        if step is not None:
            st.info(f"{md(step)}… {waiting}", icon="⏳")
            return
        if st.session_state.pop(polled, False):  # opened since this part started polling: catch the page up
            st.rerun()
        draw(workspace(settings))

    section()


def workspace(settings: Settings) -> Workspace:
    """The open workspace, waiting for its load behind a status line that says what is loading; if it
    cannot be opened the page shows why and stops (never a stack trace)."""
    refusal = settings.bi_encoder_refusal()
    if refusal:
        st.error(f"Not loaded: {md(refusal)}.", icon="⚠️")
        st.stop()
    load = start_loading(settings)
    # The slot is taken on every call, loading or not, so what the page draws below it keeps its place
    # from run to run: Streamlit overwrites the last run's elements by position, and a shifted page shows
    # the old results (greyed) beside the new ones until the run ends.
    status = st.empty()
    while not load.wait(0.25):
        status.info(f"{md(load.step)}… ({load.seconds:.0f} s)", icon="⏳")
    status.empty()
    try:
        opened = load.result()
    except (ExplorerError, ValueError, OSError) as exc:
        _loads().forget_failure(_workspace_key(settings))  # the next run tries again
        st.error(f"The workspace {md(settings.workspace)} could not be opened: {md(exc)}", icon="⚠️")
        st.stop()
    if not st.session_state.get(EMBEDDING_PATH_SHOWN):  # once per run (app.py shows it when already open)
        st.session_state[EMBEDDING_PATH_SHOWN] = True
        _embedding_path(opened)
    return opened


def show_embedding_path(settings: Settings) -> None:
    """On every full run, before the page (app.py): the sidebar says what embeds, if the workspace is open;
    else the page's first ``workspace()`` call says it once it has opened."""
    now = opened(settings)
    st.session_state[EMBEDDING_PATH_SHOWN] = now is not None
    if now is not None:
        _embedding_path(now)


def _embedding_path(workspace: Workspace) -> None:
    st.sidebar.caption(f"Embedding path: {md(workspace.encoder.path)}")


@st.cache_resource(show_spinner="Loading the reranker (a 4B model takes a while)…")
def _reranker(settings: Settings) -> tuple[Reranker | None, RerankerLoadError | None]:
    # The failure is cached too, so every rerun doesn't retry a load that can't succeed; the search
    # page offers a retry button that clears this cache.
    from core.rerank.factory import open_reranker

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
    from core.rerank.score_cache import ScoreCache

    return ScoreCache(Path(path))


def forget_reranker_failure() -> None:
    _reranker.clear()
