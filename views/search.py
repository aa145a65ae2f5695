"""Search: the bi-encoder's ranking and the reranker's, side by side, with movement and latency."""

import streamlit as st

from core.charts import latency_figure, rank_movement_figure
from core.demo import suggested_queries
from core.reranker import format_params, format_seconds
from core.search import (
    DEFAULT_K,
    DEFAULT_RERANK_DEPTH,
    add_reranking,
    confirm_above_seconds,
    estimate_rerank_seconds,
    first_stage,
    skip_reranking,
)
from ui import resources
from ui.results import bi_encoder_column, reranked_column
from ui.sidebar import current_settings, reranker_enabled

settings = current_settings()
workspace = resources.workspace(settings)


def _int_param(name: str, default: int) -> int:
    try:
        return int(st.query_params.get(name, default))
    except ValueError:
        return default


# The URL is the source of truth on the first run, so a shared link opens the same view.
if "search_query" not in st.session_state:
    st.session_state["search_query"] = st.query_params.get("q", "")
    st.session_state["search_k"] = max(1, min(_int_param("k", DEFAULT_K), 1000))
    st.session_state["search_depth"] = max(0, min(_int_param("depth", DEFAULT_RERANK_DEPTH), 1000))

st.title("Search")
suggestions = [item["query"] for item in suggested_queries()]
if suggestions:
    picked = st.selectbox(
        "Suggested queries (demo corpus)", suggestions, index=None, placeholder="Pick one or type below"
    )
    if picked and picked != st.session_state.get("last_picked"):
        st.session_state["last_picked"] = picked
        st.session_state["search_query"] = picked

with st.form("search"):
    query = st.text_input("Query", key="search_query", placeholder="Ask something about your documents")
    left, right = st.columns(2)
    k = left.number_input("Retrieval depth k (bi-encoder candidates)", 1, 1000, key="search_k")
    depth = right.number_input(
        "Candidates sent to the reranker",
        0,
        1000,
        key="search_depth",
        help="The top N of the k candidates are rescored",
    )
    submitted = st.form_submit_button("Search", type="primary")

url_query = st.query_params.get("q", "")
fresh_from_url = url_query and "result" not in st.session_state
if (submitted and query.strip()) or fresh_from_url:
    run_query = query.strip() or url_query
    st.query_params.update({"q": run_query, "k": str(int(k)), "depth": str(int(depth))})
    st.session_state["result"] = first_stage(run_query, workspace.encoder, workspace.store, int(k), int(depth))
    st.session_state["confirmed"] = False
    st.session_state["recorded"] = False

result = st.session_state.get("result")
if result is None:
    st.info(
        "Type a query, or pick a suggested one." if workspace.files() else "The index is empty: add documents first."
    )
    st.page_link("views/documents.py", label="Documents", icon="📄")
    st.stop()

# Second stage: load the reranker (once per process), estimate, then score.
reranker = None
if reranker_enabled(settings):
    reranker, load_error = resources.reranker(settings)
    if reranker is not None:
        st.sidebar.caption(
            f"Reranker loaded: {format_params(reranker.params)} parameters on {reranker.device} ({reranker.dtype})"
            + (f"; licence {reranker.license}" if reranker.license else "")
        )
pending = not result.reranked and result.reranker_error is None
if pending and not reranker_enabled(settings):
    skip_reranking(result, "Reranking is off (the reranker is set to 'none' in the sidebar).")
elif pending and reranker is None:
    skip_reranking(result, f"{load_error.reason}. {load_error.advice}. Showing the bi-encoder's ranking only.")
    st.session_state["reranker_failed"] = load_error.model_id
elif pending:
    n_pairs, estimate = estimate_rerank_seconds(result, reranker, workspace.chunker.count_tokens)
    slow = reranker.device == "cpu" and estimate > confirm_above_seconds()
    if slow and not st.session_state.get("confirmed"):
        st.warning(
            f"Reranking {n_pairs} candidates with {reranker.model_id} ({format_params(reranker.params)} parameters) "
            f"on the CPU will take about **{format_seconds(estimate)}**. Lower “Candidates sent to the reranker” "
            "and search again, or go ahead.",
            icon="⏳",
        )
        if st.button(f"Rerank {n_pairs} candidates anyway (~{format_seconds(estimate)})"):
            st.session_state["confirmed"] = True
            st.rerun()
    else:
        with st.spinner(f"Reranking {n_pairs} candidates with {reranker.model_id} (~{format_seconds(estimate)})…"):
            add_reranking(result, reranker)

if st.session_state.get("reranker_failed") and st.button("Retry loading the reranker"):
    resources.forget_reranker_failure()
    st.session_state.pop("reranker_failed")
    result.reranker_error = None
    st.rerun()

done = bool(result.reranked) or result.reranker_error is not None
if done and not st.session_state.get("recorded"):
    st.session_state.setdefault("history", []).append({"query": result.query, **result.timings_ms})
    st.session_state["recorded"] = True

show = st.radio("Rows shown", [10, 20, 50], horizontal=True, key="rows_shown")
left, right = st.columns(2)
with left:
    bi_encoder_column(result, show)
with right:
    reranked_column(result, show, settings.reranker)

st.subheader("Latency")
timings = result.timings_ms
cols = st.columns(5)
cols[0].metric("Query embedding", f"{timings['embed_query']:.1f} ms")
cols[1].metric("Vector search", f"{timings['search']:.1f} ms")
cols[2].metric("Reranking", f"{timings['rerank']:.0f} ms" if result.reranked else "—")
cols[3].metric("Total", f"{timings['total']:.0f} ms")
pairs_per_s = result.pairs_per_second
cols[4].metric("Reranker throughput", f"{pairs_per_s:.1f} pairs/s" if pairs_per_s else "—")
history = st.session_state.get("history", [])
if history:
    st.plotly_chart(latency_figure(history), key="latency_chart")

if result.reranked:
    st.subheader("Rank movement")
    st.plotly_chart(rank_movement_figure(result), key="movement_chart")
