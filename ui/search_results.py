"""The Search page below its form: the search itself, the second stage, the results and the charts.

Imported by the page only once the workspace is open (these modules pull in torch and friends), so the
page's title and form render before the models have loaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from core.concurrency.turns import waiting_notice
from core.evaluation.labels import LabelStore, ndcg_at_10
from core.ingest.workspace import Workspace
from core.retrieval.first_stage import Retriever
from core.retrieval.results import SearchResult
from core.retrieval.search import RerankMemo, add_reranking, estimate_rerank_seconds, progress_slice, skip_reranking
from ui import resources
from ui.charts import latency_figure, rank_movement_figure
from ui.display_names import MODE_LABELS
from ui.format import format_params, format_seconds
from ui.pipeline_columns import pipeline_columns
from ui.rerank_progress import rerank_progress
from ui.results import dense_column, lexical_column, reranked_column
from ui.safe import md
from ui.search_state import View, forget_pending, write_url
from ui.sidebar import reranker_enabled

# (the reranker's identity, what it has scored for the search shown): see _memo.
RERANK_MEMO = "rerank_memo"


@contextmanager
def _told_when_waiting() -> Iterator[list[float]]:
    """While another session has the model, say so; yields the list of seconds each wait took."""
    notice = st.empty()

    def waiting(what: str, ahead: int) -> None:
        others = "another session's work" if ahead <= 1 else f"{ahead} other sessions' work"
        notice.info(f"Waiting for another search: {what} is busy with {others}…", icon="⏳")

    with waiting_notice(waiting) as waited:
        yield waited
    notice.empty()


def _add_wait(result: SearchResult, waited: list[float]) -> None:
    result.timings_ms["queue"] = result.timings_ms.get("queue", 0.0) + sum(waited) * 1000


def run_search(workspace: Workspace, view: View, signature: tuple) -> None:
    """A new first stage; the reranker runs below. The URL records the view once its result is stored, so it
    always names what is shown: a search cut short (another submit, a closed tab) leaves the old one."""
    try:
        retriever = Retriever(workspace.encoder, workspace.store, workspace.lexical)
        with _told_when_waiting() as waited:
            result = retriever.first_stage(view.query, view.pipeline, view.k)
        _add_wait(result, waited)
    except Exception as exc:  # the index went away, a server stopped answering…
        forget_pending()  # shown as failed: not run again by itself
        st.error(f"The search failed: {type(exc).__name__}: {md(exc)}", icon="⚠️")
        st.stop()
    st.session_state.update(result=result, result_settings=signature, confirmed=False, recorded=False)
    st.session_state.pop(RERANK_MEMO, None)
    write_url(view)  # first: a run cut short between the two keeps the pending search, which names this view
    forget_pending()


def second_stage(result: SearchResult, settings) -> None:
    """Load the reranker (once per process), estimate, ask first when it would be slow, then score."""
    reranker, load_error = None, None
    if reranker_enabled(settings):
        reranker, load_error = resources.reranker(settings)
        if reranker is not None:
            calibration = reranker.calibration
            loaded = f"Reranker: {reranker.describe()}; probability {calibration.formula} ({calibration.reason})"
            st.sidebar.caption(md(loaded + (f"; licence {reranker.license}" if reranker.license else "")))
    pending = not result.reranked and result.reranker_error is None
    if pending and not reranker_enabled(settings):
        skip_reranking(result, "Reranking is off (the reranker is set to 'none' in the sidebar).")
    elif pending and reranker is None:
        skip_reranking(result, f"{load_error.reason}. {load_error.advice}. Showing the first stage's ranking only.")
        st.session_state["reranker_failed"] = load_error.model_id
    elif pending:
        _rerank(result, reranker, settings)
    if st.session_state.get("reranker_failed") and st.button("Retry loading the reranker"):
        resources.forget_reranker_failure()
        st.session_state.pop("reranker_failed")
        result.reranker_error = None
        st.rerun()
    done = bool(result.reranked) or result.reranker_error is not None
    if done and not st.session_state.get("recorded"):
        st.session_state.setdefault("history", []).append({"query": result.query, **result.timings_ms})
        st.session_state["recorded"] = True


def _memo(reranker) -> RerankMemo:
    """This search's scores so far: a run cut short by a click that is not a new search (the sidebar, an
    expander) goes on from there. A new search starts a new one (run_search)."""
    kept = st.session_state.get(RERANK_MEMO)
    if kept is None or kept[0] != reranker.identity:
        kept = st.session_state[RERANK_MEMO] = (reranker.identity, RerankMemo())
    return kept[1]


def _rerank(result: SearchResult, reranker, settings) -> None:
    n_pairs, estimate = estimate_rerank_seconds(result, reranker)
    compare = bool(result.instruction) and st.session_state.get("search_compare", False)
    estimate *= 2 if compare else 1  # every candidate is scored with and without the instruction
    slow = reranker.runs_on_local_cpu and estimate > settings.confirm_seconds
    if slow and not st.session_state.get("confirmed"):
        st.warning(
            f"Reranking {n_pairs} candidates with {md(reranker.model_id)} "
            f"({format_params(reranker.params)} parameters) "
            f"on the CPU will take about **{format_seconds(estimate)}**. Lower “Candidates sent to the reranker” "
            "and search again, or go ahead.",
            icon="⏳",
        )
        if st.button(f"Rerank {n_pairs} candidates anyway (~{format_seconds(estimate)})"):
            st.session_state["confirmed"] = True
            st.rerun()
        return
    # A long reranking is scored in slices with a progress bar: each update is also where a newer search
    # or a click outside the results' own controls cuts this run short, instead of waiting for every pair
    # of a query no longer wanted (the next run goes on from the memo).
    slice_size = progress_slice(n_pairs, estimate / (2 if compare else 1))
    with st.spinner(f"Reranking {n_pairs} candidates with {md(reranker.model_id)} (~{format_seconds(estimate)})…"):
        with rerank_progress(slice_size) as scored, _told_when_waiting() as waited:
            add_reranking(result, reranker, compare, scored, slice_size, _memo(reranker))
        _add_wait(result, waited)


@st.fragment
def results_section(result: SearchResult, workspace: Workspace) -> None:
    """The ranked columns and their controls. A fragment: a label click, the threshold or the blend
    reruns this part only, not the search, the sidebar or the charts."""
    labels = LabelStore(workspace.folder)
    given = labels.labels_for(result.query)
    if given:
        first_ndcg, re_ndcg = ndcg_at_10(result, given)
        cols = st.columns([1, 1, 2])
        cols[0].metric(f"NDCG@10 {result.first_stage.mode}", f"{first_ndcg:.3f}")
        cols[1].metric("NDCG@10 reranked", f"{re_ndcg:.3f}" if re_ndcg is not None else "—")
        cols[2].caption(
            f"From your labels ({len(given)} document(s) labelled for this query); unlabelled documents count "
            "as not relevant."
        )
    st.subheader("Results")
    # Says which search these are: the box above may already hold the next query, not yet searched.
    said = f"For “{md(result.query)}” · {MODE_LABELS[result.first_stage.mode]} first stage, k {result.k}."
    waited = result.timings_ms.get("queue", 0.0)
    if waited >= 50:  # ms: a wait for one batch of an upload is worth saying
        said += f" Waited {format_seconds(waited / 1000)} for other sessions' work before this search ran."
    st.caption(said)
    show, threshold, below, weight = _score_controls()
    left, right = st.columns(2)
    # Off by default: twenty label controls cost the browser more than the search on every search.
    judging = left.toggle(
        "Label results 0–3", key="judging",
        help="A relevance control on each result (0 not relevant … 3 highly relevant), saved in the workspace: "
        "the NDCG@10 of both columns is shown for every labelled query",
    )  # fmt: skip
    labels = labels if judging else None
    three = result.first_stage.mode != "dense" and right.toggle(
        "Show the dense column too",
        value=True,
        key="three_columns",
        help="Three columns: dense, the first stage, reranked",
    )
    columns = st.columns(3 if three else 2)
    if result.first_stage.mode == "dense" or three:
        with columns[0]:
            dense_column(result, show, labels)
    if result.first_stage.mode != "dense":
        with columns[-2]:
            lexical_column(result, show, labels)
    with columns[-1]:
        reranked_column(result, show, labels, threshold, weight, below)
    if result.reranked:
        with st.expander("The exact query text the reranker saw"):
            st.code(result.pipeline.reranker_query(result.query), language=None)


def _score_controls() -> tuple[int, float, str, float]:
    controls = st.columns([1, 1, 1, 1])
    show = controls[0].radio("Rows shown", [10, 20, 50], horizontal=True, key="rows_shown")
    threshold = controls[1].slider(
        "Probability threshold", 0.0, 1.0, 0.0, 0.05, key="threshold",
        help="Applies to the calibrated P(relevant), never to min-max scaled scores (those make every top hit 1.0).",
    )  # fmt: skip
    below = controls[2].radio("Below the threshold", ["grey out", "hide"], horizontal=True, key="below")
    weight = controls[3].slider(
        "Blend: reranker weight", 0.0, 1.0, 1.0, 0.05, key="blend",
        help="Order by w × P(relevant) + (1 − w) × first-stage score (min-max over the reranked candidates). "
        "1 = reranker only.",
    )  # fmt: skip
    return show, threshold, below, weight


def saved_pipeline_columns(settings, workspace: Workspace, result: SearchResult) -> None:
    pipeline_columns(settings, workspace, result.query, result.k, st.session_state.get("rows_shown", 10))


def latency_section(result: SearchResult) -> None:
    st.subheader("Latency")
    timings = result.timings_ms
    cols = st.columns(6)
    cols[0].metric("Query embedding", f"{timings['embed_query']:.1f} ms")
    cols[1].metric("Vector search", f"{timings['search']:.1f} ms")
    lexical = timings.get("bm25", 0) + timings.get("fusion", 0)
    cols[2].metric("BM25 + fusion", f"{lexical:.1f} ms" if "bm25" in timings else "—")
    cols[3].metric("Reranking", f"{timings['rerank']:.0f} ms" if result.reranked else "—")
    cols[4].metric("Total", f"{timings['total']:.0f} ms")
    pairs_per_s = result.pairs_per_second
    cols[5].metric("Reranker throughput", f"{pairs_per_s:.1f} pairs/s" if pairs_per_s else "—")
    history = st.session_state.get("history", [])
    if history:
        # Drawn once opened, and on every search after while it stays open: a plotly chart costs the
        # browser more than the search itself on every search (docs/performance.md).
        # A fixed label: an expander's state is keyed on its label too, and a new one would close it.
        chart = st.expander("Latency per query: chart of this session's searches", key="latency_history",
                            on_change="rerun")  # fmt: skip
        with chart:
            if chart.open:
                st.plotly_chart(latency_figure(history), key="latency_chart")
    if result.reranked:
        st.subheader("Rank movement")
        st.plotly_chart(rank_movement_figure(result), key="movement_chart")
