"""The Search page's view (query, k, pipeline) in three places kept in step: the URL, the form, the result.

A shared link names a view; the form shows the view being edited; the session keeps the last result.
The page asks here which view to show and records the one it ran, so the URL always reproduces it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import streamlit as st

from core.retrieval.pipeline import DEFAULT_K, MAX_DEPTH, FirstStage, Pipeline, number_param
from core.retrieval.results import SearchResult

# The form's widget keys, and what they hold before anything was typed.
FORM_DEFAULTS = {
    "search_query": "",
    "search_k": DEFAULT_K,
    "search_depth": Pipeline().rerank_depth,
    "search_stage": "dense",
    "search_fusion": "rrf",
    "search_weight": 0.5,
    "search_instruction": "",
}
URL_KEYS = ("q", "k", "stage", "fusion", "w", "depth", "instr")
PENDING = "search_pending"


@dataclass(frozen=True)
class View:
    query: str
    k: int
    pipeline: Pipeline

    def normalised(self) -> View:
        return replace(self, pipeline=replace(self.pipeline, first_stage=self.pipeline.first_stage.normalised()))

    def same_search(self, other: View) -> bool:
        """Whether two views show the same rankings (the reranker is the sidebar's, not the view's)."""
        return (self.query, self.k, replace(self.pipeline, reranker=None)) == (
            other.query,
            other.k,
            replace(other.pipeline, reranker=None),
        )


@dataclass(frozen=True)
class PendingSearch:
    """A search asked for whose result is not stored yet, and the view the URL named when it was asked."""

    view: View
    url: View


def view_of(result: SearchResult) -> View:
    return View(result.query, result.k, result.pipeline)


def url_view(reranker: str | None) -> View:
    """The view the URL asks for (its query is empty when it names none)."""
    params = {key: st.query_params[key] for key in URL_KEYS if key in st.query_params}
    k = number_param(params.get("k"), DEFAULT_K, int, 1, MAX_DEPTH)
    return View(params.get("q", "").strip(), k, Pipeline.from_params(params, reranker))


def write_url(view: View) -> None:
    """Record ``view`` in the URL; what it does not use is removed, so a shared link names it exactly."""
    params = {"q": view.query, "k": str(view.k), **view.pipeline.to_params()}
    for key in URL_KEYS:
        if key not in params:
            st.query_params.pop(key, None)
    st.query_params.update(params)


def fill_form(view: View) -> None:
    stage = view.pipeline.first_stage
    st.session_state.update(
        search_query=view.query,
        search_k=view.k,
        search_depth=view.pipeline.rerank_depth,
        search_stage=stage.mode,
        search_fusion=stage.fusion,
        search_weight=stage.dense_weight,
        search_instruction=view.pipeline.instruction,
    )


def form_defaults() -> None:
    for key, value in FORM_DEFAULTS.items():
        if key == "search_query":
            st.session_state.setdefault(key, value)  # not re-set: that would overwrite text typed, not yet sent
        else:
            # Re-set on every run: a value set by code is sent with the widget each time, so a form the
            # browser draws afresh (the page's layout changed above it) shows and submits it, not the
            # widget's own default (a number input's minimum: k 1, 0 to the reranker).
            st.session_state[key] = st.session_state.get(key, value)


def form_view(reranker: str | None) -> View:
    """The view the submitted form describes."""
    state = st.session_state
    stage = FirstStage(state["search_stage"], state["search_fusion"], float(state["search_weight"]))
    pipeline = Pipeline(stage, reranker, int(state["search_depth"]), state["search_instruction"])
    return View(state["search_query"].strip(), int(state["search_k"]), pipeline).normalised()


def remember_pending(view: View, url: View) -> None:
    st.session_state[PENDING] = PendingSearch(view, url)


def pending_search(reranker: str | None) -> PendingSearch | None:
    """The search asked for and not finished, with the sidebar's reranker (it may have changed since)."""
    pending = st.session_state.get(PENDING)
    if pending is None:
        return None
    return replace(pending, view=replace(pending.view, pipeline=replace(pending.view.pipeline, reranker=reranker)))


def asked_under(pending: PendingSearch | None, url: View) -> bool:
    """Whether ``url`` is the one a pending search was asked under (so not a newer request than it)."""
    return pending is not None and pending.url.same_search(url)


def forget_pending() -> None:
    st.session_state.pop(PENDING, None)
