"""Search: the first stage's rankings (dense, BM25, hybrid) and the reranker's, side by side.

The form renders first, before the models are loaded; the results come right under it (the options a
search rarely changes are folded away, and kept in the URL like the rest of the view).
"""

from dataclasses import replace

import streamlit as st

from core.demo import suggested_queries
from core.retrieval.pipeline import FUSIONS, MAX_DEPTH, MODES
from ui import resources
from ui.display_names import FUSION_LABELS, MODE_LABELS
from ui.search_state import (
    View,
    asked_under,
    fill_form,
    form_defaults,
    form_view,
    pending_search,
    remember_pending,
    url_view,
    view_of,
    write_url,
)
from ui.sidebar import current_settings, reranker_enabled

settings = current_settings()
reranker_id = settings.reranker if reranker_enabled(settings) else None
signature = (settings.bi_encoder, settings.reranker, settings.device, settings.dtype, settings.embed_backend)
shown = st.session_state.get("result")
asked = url_view(reranker_id)

# A submitted form wins: its query is the one just typed. Otherwise a link or a shared URL that asks for
# another view than the one shown wins, unless it is the URL a pending search was asked under; then a
# pending search (one asked for, whose run another interaction cut short) runs again. Coming back to the
# page without either shows the last result again, with its own query and settings in the form.
# (The button's value is read before the form renders.)
submitting = bool(st.session_state.get("search_go"))
pending = pending_search(reranker_id)
to_search: View | None = None
if submitting:
    pass  # the form's view is read below, once the form has rendered
elif asked.query and (shown is None or not view_of(shown).same_search(asked)) and not asked_under(pending, asked):
    fill_form(asked)
    to_search = asked
elif pending is not None:
    if "search_query" not in st.session_state:
        fill_form(pending.view)
    to_search = pending.view
elif shown is not None and "search_query" not in st.session_state:
    fill_form(view_of(shown))
    write_url(view_of(shown))
elif shown is not None and st.session_state.get("result_settings") != signature:
    to_search = View(shown.query, shown.k, replace(shown.pipeline, reranker=reranker_id))  # the models changed
form_defaults()

title, picker = st.columns([2, 1], vertical_alignment="bottom")
title.title("Search")
suggestions = [item["query"] for item in suggested_queries()]
if suggestions:
    picked = picker.selectbox(
        "Suggested queries (demo corpus)", suggestions, index=None, placeholder="Pick one or type below"
    )
    if picked and picked != st.session_state.get("last_picked"):
        st.session_state["last_picked"] = picked
        st.session_state["search_query"] = picked

with st.form("search"):
    query, stage, go = st.columns([6, 3, 1], vertical_alignment="bottom")
    query.text_input("Query", key="search_query", placeholder="Ask something about your documents")
    stage.radio(
        "First stage",
        MODES,
        key="search_stage",
        horizontal=True,
        format_func=MODE_LABELS.get,
        help="Dense: the bi-encoder. BM25: exact words (ids, statute numbers, function names). Hybrid: both, fused.",
    )
    submitted = go.form_submit_button("Search", key="search_go", type="primary", width="stretch")
    state = st.session_state
    fusion = FUSION_LABELS.get(state["search_fusion"])
    folded = f"k {state['search_k']} · {state['search_depth']} to the reranker · {fusion}"
    folded += " · instruction set" if state["search_instruction"].strip() else ""
    with st.expander(f"Depth, fusion, instruction ({folded})"):
        left, middle, right = st.columns(3)
        left.number_input("Retrieval depth k (first-stage candidates)", 1, MAX_DEPTH, key="search_k")
        middle.number_input(
            "Candidates sent to the reranker",
            0,
            MAX_DEPTH,
            key="search_depth",
            help="The top N of the first stage's k candidates are rescored",
        )
        right.radio(
            "Hybrid fusion",
            FUSIONS,
            key="search_fusion",
            horizontal=True,
            format_func=FUSION_LABELS.get,
            help="RRF (k=60) uses ranks only. Weighted sums min-max normalised scores with the weight below.",
        )
        st.slider("Weighted fusion: dense share (BM25 gets the rest)", 0.0, 1.0, step=0.05, key="search_weight")
        st.text_area(
            "Instruction for the reranker (optional)",
            key="search_instruction",
            height=68,
            placeholder="e.g. Prefer statutes over commentary.",
            help="zerank-2 reads a task instruction with the query. The exact text it sees is shown below the results.",
        )
        st.checkbox(
            "Also rerank without the instruction, to show its effect",
            key="search_compare",
            help="Scores every candidate twice: doubles the reranking time.",
        )
if submitted and form_view(reranker_id).query:
    to_search = form_view(reranker_id)
if to_search is not None:
    remember_pending(to_search, asked)  # until its result is stored (search_results.run_search)


def nothing_shown(workspace) -> None:
    st.info(
        "Type a query, or pick a suggested one." if workspace.files() else "The index is empty: add documents first."
    )
    st.page_link("views/documents.py", label="Documents", icon="📄")


if to_search is None and "result" not in st.session_state:
    resources.when_open(settings, nothing_shown, "The form is ready; a search waits for it.")
    st.stop()
workspace = resources.workspace(settings)  # a search waits here, behind a status line, while the models load
from ui import search_results  # noqa: E402 (imports torch and friends: only once the form is on screen)

if to_search is not None:
    search_results.run_search(workspace, to_search, signature)
result = st.session_state.get("result")
if result is None:
    nothing_shown(workspace)
    st.stop()

search_results.second_stage(result, settings)
search_results.results_section(result, workspace)
search_results.saved_pipeline_columns(settings, workspace, result)
search_results.latency_section(result)
