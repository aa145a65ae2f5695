"""Search: the first stage's rankings (dense, BM25, hybrid) and the reranker's, side by side."""

from dataclasses import replace

import streamlit as st

from core.demo import suggested_queries
from core.evaluation.labels import LabelStore, ndcg_at_10
from core.retrieval.first_stage import Retriever
from core.retrieval.pipeline import FUSIONS, MAX_DEPTH, MODES
from core.retrieval.search import add_reranking, estimate_rerank_seconds, skip_reranking
from ui import resources
from ui.charts import latency_figure, rank_movement_figure
from ui.display_names import FUSION_LABELS, MODE_LABELS
from ui.format import format_params, format_seconds
from ui.pipeline_columns import pipeline_columns
from ui.results import dense_column, lexical_column, reranked_column
from ui.safe import md
from ui.search_state import View, fill_form, form_defaults, form_view, url_view, view_of, write_url
from ui.sidebar import current_settings, reranker_enabled

settings = current_settings()
workspace = resources.workspace(settings)
reranker_id = settings.reranker if reranker_enabled(settings) else None


def _search(view: View) -> None:
    """A new first stage; the reranker runs below. The URL records the view so it can be shared."""
    write_url(view)
    try:
        retriever = Retriever(workspace.encoder, workspace.store, workspace.lexical)
        result = retriever.first_stage(view.query, view.pipeline, view.k)
    except Exception as exc:  # the index went away, a server stopped answering…
        st.error(f"The search failed: {type(exc).__name__}: {md(exc)}", icon="⚠️")
        st.stop()
    st.session_state.update(result=result, result_settings=signature, confirmed=False, recorded=False)


signature = (settings.bi_encoder, settings.reranker, settings.device, settings.dtype, settings.embed_backend)
shown = st.session_state.get("result")
asked = url_view(reranker_id)

# A link or a shared URL that asks for another view than the one shown wins; coming back to the page
# without one shows the last result again, with its own query and settings in the form.
if asked.query and (shown is None or not view_of(shown).same_search(asked)):
    fill_form(asked)
    _search(asked)
elif shown is not None and "search_query" not in st.session_state:
    fill_form(view_of(shown))
    write_url(view_of(shown))
elif shown is not None and st.session_state.get("result_settings") != signature:
    _search(View(shown.query, shown.k, replace(shown.pipeline, reranker=reranker_id)))  # the models changed
form_defaults()

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
    st.text_input("Query", key="search_query", placeholder="Ask something about your documents")
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
        "First stage",
        MODES,
        key="search_stage",
        horizontal=True,
        format_func=MODE_LABELS.get,
        help="Dense: the bi-encoder. BM25: exact words (ids, statute numbers, function names). Hybrid: both, fused.",
    )
    left, right = st.columns(2)
    left.radio(
        "Hybrid fusion",
        FUSIONS,
        key="search_fusion",
        horizontal=True,
        format_func=FUSION_LABELS.get,
        help="RRF (k=60) uses ranks only. Weighted sums min-max normalised scores with the weight on the right.",
    )
    right.slider("Weighted fusion: dense share (BM25 gets the rest)", 0.0, 1.0, step=0.05, key="search_weight")
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
    submitted = st.form_submit_button("Search", type="primary")
if submitted and form_view(reranker_id).query:
    _search(form_view(reranker_id))

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
    n_pairs, estimate = estimate_rerank_seconds(result, reranker)
    compare = bool(result.instruction) and st.session_state.get("search_compare", False)
    estimate *= 2 if compare else 1  # every candidate is scored with and without the instruction
    slow = reranker.runs_on_local_cpu and estimate > settings.confirm_seconds
    if slow and not st.session_state.get("confirmed"):
        st.warning(
            f"Reranking {n_pairs} candidates with {md(reranker.model_id)} ({format_params(reranker.params)} parameters) "
            f"on the CPU will take about **{format_seconds(estimate)}**. Lower “Candidates sent to the reranker” "
            "and search again, or go ahead.",
            icon="⏳",
        )
        if st.button(f"Rerank {n_pairs} candidates anyway (~{format_seconds(estimate)})"):
            st.session_state["confirmed"] = True
            st.rerun()
    else:
        with st.spinner(f"Reranking {n_pairs} candidates with {md(reranker.model_id)} (~{format_seconds(estimate)})…"):
            add_reranking(result, reranker, compare)

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
    first_ndcg, re_ndcg = ndcg_at_10(result, given)
    judged = f"{len(given)} document(s) labelled for this query"
    cols = st.columns([1, 1, 2])
    cols[0].metric(f"NDCG@10 {result.first_stage.mode}", f"{first_ndcg:.3f}")
    cols[1].metric("NDCG@10 reranked", f"{re_ndcg:.3f}" if re_ndcg is not None else "—")
    cols[2].caption(f"From your labels ({judged}); unlabelled documents count as not relevant.")

st.subheader("Results")
controls = st.columns([1, 1, 1, 1])
show = controls[0].radio("Rows shown", [10, 20, 50], horizontal=True, key="rows_shown")
threshold = controls[1].slider(
    "Probability threshold",
    0.0,
    1.0,
    0.0,
    0.05,
    key="threshold",
    help="Applies to the calibrated P(relevant), never to min-max scaled scores (those make every top hit 1.0).",
)
below = controls[2].radio("Below the threshold", ["grey out", "hide"], horizontal=True, key="below")
weight = controls[3].slider(
    "Blend: reranker weight",
    0.0,
    1.0,
    1.0,
    0.05,
    key="blend",
    help="Order by w × P(relevant) + (1 − w) × first-stage score (min-max over the reranked candidates). 1 = reranker only.",
)
three = result.first_stage.mode != "dense" and st.toggle(
    "Show the dense column too", value=True, key="three_columns", help="Three columns: dense, the first stage, reranked"
)
columns = st.columns(3 if three else 2)
if result.first_stage.mode == "dense":
    with columns[0]:
        dense_column(result, show, labels)
else:
    if three:
        with columns[0]:
            dense_column(result, show, labels)
    with columns[-2]:
        lexical_column(result, show, labels)
with columns[-1]:
    reranked_column(result, show, labels, threshold, weight, below)
if result.reranked:
    with st.expander("The exact query text the reranker saw"):
        st.code(result.pipeline.reranker_query(result.query), language=None)
pipeline_columns(settings, workspace, result.query, result.k, show)

st.subheader("Latency")
timings = result.timings_ms
cols = st.columns(6)
cols[0].metric("Query embedding", f"{timings['embed_query']:.1f} ms")
cols[1].metric("Vector search", f"{timings['search']:.1f} ms")
cols[2].metric(
    "BM25 + fusion", f"{timings.get('bm25', 0) + timings.get('fusion', 0):.1f} ms" if "bm25" in timings else "—"
)
cols[3].metric("Reranking", f"{timings['rerank']:.0f} ms" if result.reranked else "—")
cols[4].metric("Total", f"{timings['total']:.0f} ms")
pairs_per_s = result.pairs_per_second
cols[5].metric("Reranker throughput", f"{pairs_per_s:.1f} pairs/s" if pairs_per_s else "—")
history = st.session_state.get("history", [])
if history:
    st.plotly_chart(latency_figure(history), key="latency_chart")

if result.reranked:
    st.subheader("Rank movement")
    st.plotly_chart(rank_movement_figure(result), key="movement_chart")
