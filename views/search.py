"""Search: the bi-encoder's ranking and the reranker's, side by side, with movement and latency."""

import streamlit as st

from core.charts import latency_figure, rank_movement_figure
from core.demo import suggested_queries
from core.labels import LabelStore, ndcg_at_10
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


MAX_K = 1000


def _int_param(name: str, default: int, low: int) -> int:
    try:
        return max(low, min(int(st.query_params.get(name, default)), MAX_K))
    except ValueError:
        return default


def _search(query: str, k: int, depth: int) -> None:
    """A new first stage; the reranker runs below. The URL records the view so it can be shared."""
    st.query_params.update({"q": query, "k": str(k), "depth": str(depth)})
    try:
        result = first_stage(query, workspace.encoder, workspace.store, k, depth)
    except Exception as exc:  # the index went away, a server stopped answering…
        st.error(f"The search failed: {type(exc).__name__}: {exc}", icon="⚠️")
        st.stop()
    st.session_state.update(result=result, result_settings=signature, confirmed=False, recorded=False)


signature = (settings.bi_encoder, settings.reranker, settings.device, settings.dtype)
shown = st.session_state.get("result")
url_query = st.query_params.get("q", "").strip()
url_view = (url_query, _int_param("k", DEFAULT_K, 1), _int_param("depth", DEFAULT_RERANK_DEPTH, 0))

# A link or a shared URL that asks for another view than the one shown wins; coming back to the page
# without one shows the last result again, with its own query and depths in the form.
if url_query and (shown is None or (shown.query, shown.k, shown.rerank_depth) != url_view):
    st.session_state.update(search_query=url_view[0], search_k=url_view[1], search_depth=url_view[2])
    _search(*url_view)
elif shown is not None and "search_query" not in st.session_state:
    st.session_state.update(search_query=shown.query, search_k=shown.k, search_depth=shown.rerank_depth)
    st.query_params.update({"q": shown.query, "k": str(shown.k), "depth": str(shown.rerank_depth)})
elif shown is not None and st.session_state.get("result_settings") != signature:
    _search(shown.query, shown.k, shown.rerank_depth)  # the models changed: the old rankings are stale
st.session_state.setdefault("search_query", "")
st.session_state.setdefault("search_k", DEFAULT_K)
st.session_state.setdefault("search_depth", DEFAULT_RERANK_DEPTH)

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
    k = left.number_input("Retrieval depth k (bi-encoder candidates)", 1, MAX_K, key="search_k")
    depth = right.number_input(
        "Candidates sent to the reranker",
        0,
        MAX_K,
        key="search_depth",
        help="The top N of the k candidates are rescored",
    )
    submitted = st.form_submit_button("Search", type="primary")
if submitted and query.strip():
    _search(query.strip(), int(k), int(depth))

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
    n_pairs, estimate = estimate_rerank_seconds(result, reranker)
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

labels = LabelStore(workspace.folder)
given = labels.labels_for(result.query)
if given:
    bi_ndcg, re_ndcg = ndcg_at_10(result, given)
    judged = f"{len(given)} document(s) labelled for this query"
    cols = st.columns([1, 1, 2])
    cols[0].metric("NDCG@10 bi-encoder", f"{bi_ndcg:.3f}")
    cols[1].metric("NDCG@10 reranked", f"{re_ndcg:.3f}" if re_ndcg is not None else "—")
    cols[2].caption(f"From your labels ({judged}); unlabelled documents count as not relevant.")

show = st.radio("Rows shown", [10, 20, 50], horizontal=True, key="rows_shown")
left, right = st.columns(2)
with left:
    bi_encoder_column(result, show, labels)
with right:
    reranked_column(result, show, labels)

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
