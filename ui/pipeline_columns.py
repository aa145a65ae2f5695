"""The Search page's extra columns: any saved pipelines side by side on the query shown (two rerankers,
with and without an instruction, local and served). Their reranker scores go through the workspace's score
cache, so a column seen once costs nothing on the next rerun."""

from __future__ import annotations

import streamlit as st

from core.config import Settings
from core.errors import ExplorerError
from core.ingest.workspace import Workspace
from core.rerank.score_cache import CachedReranker
from core.retrieval.first_stage import Retriever
from core.retrieval.pipeline import Pipeline
from core.retrieval.pipeline_spec import PipelineStore, spec_of
from core.retrieval.search import add_reranking, estimate_rerank_seconds, progress_slice, search, skip_reranking
from ui import resources
from ui.format import format_seconds
from ui.rerank_progress import rerank_progress
from ui.results import first_stage_column, reranked_column
from ui.safe import md

URL_KEY = "col"  # repeated: ?col=NAME&col=NAME


def chosen_pipelines(settings: Settings) -> dict[str, Pipeline]:
    """The saved pipelines picked for columns; the pick is kept in the URL so a link shows them too."""
    try:
        saved = PipelineStore(settings.workspace).all()
    except ExplorerError as exc:
        st.warning(md(exc), icon="⚠️")
        return {}
    if not saved:
        return {}
    asked = [name for name in st.query_params.get_all(URL_KEY) if name in saved]
    if "pipeline_columns" not in st.session_state:
        st.session_state["pipeline_columns"] = asked
    names = st.multiselect(
        "Saved pipelines as columns",
        list(saved),
        key="pipeline_columns",
        help="Pipelines saved on the Experiments page or with `python -m core pipelines save`",
    )
    st.query_params[URL_KEY] = names
    return {name: saved[name] for name in names}


def pipeline_columns(settings: Settings, workspace: Workspace, query: str, k: int, show: int) -> None:
    pipelines = chosen_pipelines(settings)
    if not pipelines or not query:
        return
    retriever = Retriever(workspace.encoder, workspace.store, workspace.lexical)
    columns = st.columns(min(len(pipelines), 4))
    for i, (name, pipeline) in enumerate(pipelines.items()):
        with columns[i % len(columns)]:
            st.markdown(f"**{md(name)}**")
            st.caption(md(spec_of(pipeline)))
            _column(settings, retriever, name, pipeline, query, k, show, i)


def _column(settings, retriever, name, pipeline, query, k, show, index) -> None:
    reranker, error = _reranker(settings, pipeline)
    try:
        result = search(query, pipeline, retriever, None, k, error or "no reranker in this pipeline")
    except Exception as exc:  # the index went away, a server stopped answering…
        st.error(f"{md(name)}: the search failed: {type(exc).__name__}: {md(exc)}", icon="⚠️")
        return
    if reranker is not None:
        pairs, seconds = estimate_rerank_seconds(result, reranker)
        key = f"pipeline_column_go_{index}"
        slow = reranker.runs_on_local_cpu and seconds > settings.confirm_seconds
        if slow and not st.session_state.get(key):
            st.button(f"Rerank {pairs} candidates (~{format_seconds(seconds)})", key=key)
            skip_reranking(result, f"Waiting: reranking here would take about {format_seconds(seconds)}.")
        else:
            _rerank_with_progress(result, reranker, pairs, seconds)
    if pipeline.reranks:
        # No label buttons: the main columns hold them, once per document.
        reranked_column(result, show, column=f"pipeline{index}")
        return
    mode = pipeline.first_stage.mode
    items = {"dense": result.dense, "bm25": result.bm25, "hybrid": result.fused}[mode]
    score = {"dense": "cosine", "bm25": "BM25", "hybrid": "fused score"}[mode]
    title = {"dense": "Dense (bi-encoder)", "bm25": "BM25", "hybrid": "Hybrid"}[mode]
    first_stage_column(title, pipeline.first_stage.label, items, score, result, show, None, f"pipeline{index}")


def _rerank_with_progress(result, reranker, pairs: int, seconds: float) -> None:
    # As in the page's own column: a long reranking goes in slices behind a bar, each update a point where
    # a newer search cuts this run short; the score cache keeps the slices already scored for the next.
    slice_size = progress_slice(pairs, seconds)
    with rerank_progress(slice_size) as scored:
        add_reranking(result, reranker, progress=scored, slice_size=slice_size)


def _reranker(settings: Settings, pipeline: Pipeline):
    """(the pipeline's reranker behind the score cache, None) or (None, why not)."""
    if not pipeline.reranks:
        return None, None
    loaded, error = resources.reranker(settings.with_(reranker=pipeline.reranker))
    if error is not None:
        return None, f"{error.reason}. {error.advice}."
    cache = resources.score_cache(str(settings.workspace.resolve() / "rerank-scores.sqlite"))
    return CachedReranker(loaded, cache), None
