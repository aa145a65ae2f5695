"""Search: the first stage's rankings (dense, BM25, hybrid) and the reranker's, side by side."""

import streamlit as st

from core.charts import latency_figure, rank_movement_figure
from core.demo import suggested_queries
from core.labels import LabelStore, ndcg_at_10
from core.prompts import reranker_query
from core.reranker import format_params, format_seconds
from core.search import (
    DEFAULT_K,
    DEFAULT_RERANK_DEPTH,
    FUSION_LABELS,
    FUSIONS,
    MODE_LABELS,
    MODES,
    FirstStage,
    add_reranking,
    confirm_above_seconds,
    estimate_rerank_seconds,
    first_stage,
    skip_reranking,
)
from ui import resources
from ui.results import bi_encoder_column, lexical_column, reranked_column
from ui.safe import md
from ui.sidebar import current_settings, reranker_enabled

settings = current_settings()
workspace = resources.workspace(settings)


MAX_K = 1000


def _int_param(name: str, default: int, low: int) -> int:
    try:
        return max(low, min(int(st.query_params.get(name, default)), MAX_K))
    except ValueError:
        return default


def _float_param(name: str, default: float) -> float:
    try:
        return max(0.0, min(float(st.query_params.get(name, default)), 1.0))
    except ValueError:
        return default


def _stage_from_url() -> FirstStage:
    mode = st.query_params.get("stage", "dense")
    fusion = st.query_params.get("fusion", "rrf")
    if mode != "hybrid":
        return FirstStage(mode if mode in MODES else "dense")
    # Rounded as the URL writes it, so the same link always names the same view.
    return FirstStage(mode, fusion if fusion in FUSIONS else "rrf", round(_float_param("w", 0.5), 4))


def _url(query: str, k: int, depth: int, stage: FirstStage, instruction: str) -> dict:
    params = {"q": query, "k": str(k), "depth": str(depth), "stage": stage.mode}
    if stage.mode == "hybrid":
        params.update(fusion=stage.fusion, w=f"{round(stage.dense_weight, 4):g}")
    if instruction:
        params["instr"] = instruction
    return params


def _search(query: str, k: int, depth: int, stage: FirstStage, instruction: str) -> None:
    """A new first stage; the reranker runs below. The URL records the view so it can be shared."""
    # Fusion settings matter to hybrid only; the weight is kept as the URL keeps it.
    stage = (
        FirstStage(stage.mode, stage.fusion, round(stage.dense_weight, 4))
        if stage.mode == "hybrid"
        else FirstStage(stage.mode)
    )
    params = _url(query, k, depth, stage, instruction)
    for name in ("fusion", "w", "instr"):  # what this view does not use must not linger in a shared link
        if name not in params:
            st.query_params.pop(name, None)
    st.query_params.update(params)
    try:
        result = first_stage(query, workspace.encoder, workspace.store, k, depth, stage, workspace.lexical)
    except Exception as exc:  # the index went away, a server stopped answering…
        st.error(f"The search failed: {type(exc).__name__}: {md(exc)}", icon="⚠️")
        st.stop()
    result.instruction = instruction
    st.session_state.update(result=result, result_settings=signature, confirmed=False, recorded=False)


def _view(result) -> tuple:
    return (result.query, result.k, result.rerank_depth, result.first_stage, result.instruction)


def _fill_form(view: tuple) -> None:
    query, k, depth, stage, instruction = view
    st.session_state.update(
        search_query=query, search_k=k, search_depth=depth, search_stage=stage.mode, search_fusion=stage.fusion,
        search_weight=stage.dense_weight, search_instruction=instruction,
    )  # fmt: skip


signature = (settings.bi_encoder, settings.reranker, settings.device, settings.dtype, settings.embed_backend)
shown = st.session_state.get("result")
url_query = st.query_params.get("q", "").strip()
url_view = (
    url_query,
    _int_param("k", DEFAULT_K, 1),
    _int_param("depth", DEFAULT_RERANK_DEPTH, 0),
    _stage_from_url(),
    st.query_params.get("instr", "").strip(),
)

# A link or a shared URL that asks for another view than the one shown wins; coming back to the page
# without one shows the last result again, with its own query and settings in the form.
if url_query and (shown is None or _view(shown) != url_view):
    _fill_form(url_view)
    _search(*url_view)
elif shown is not None and "search_query" not in st.session_state:
    _fill_form(_view(shown))
    st.query_params.update(_url(*_view(shown)))
elif shown is not None and st.session_state.get("result_settings") != signature:
    _search(*_view(shown))  # the models changed: the old rankings are stale
for name, default in (
    ("search_query", ""), ("search_k", DEFAULT_K), ("search_depth", DEFAULT_RERANK_DEPTH), ("search_stage", "dense"),
    ("search_fusion", "rrf"), ("search_weight", 0.5), ("search_instruction", ""),
):  # fmt: skip
    st.session_state.setdefault(name, default)

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
    left, middle, right = st.columns(3)
    k = left.number_input("Retrieval depth k (first-stage candidates)", 1, MAX_K, key="search_k")
    depth = middle.number_input(
        "Candidates sent to the reranker",
        0,
        MAX_K,
        key="search_depth",
        help="The top N of the first stage's k candidates are rescored",
    )
    mode = right.radio(
        "First stage",
        MODES,
        key="search_stage",
        horizontal=True,
        format_func=MODE_LABELS.get,
        help="Dense: the bi-encoder. BM25: exact words (ids, statute numbers, function names). Hybrid: both, fused.",
    )
    left, right = st.columns(2)
    fusion = left.radio(
        "Hybrid fusion",
        FUSIONS,
        key="search_fusion",
        horizontal=True,
        format_func=FUSION_LABELS.get,
        help="RRF (k=60) uses ranks only. Weighted sums min-max normalised scores with the weight on the right.",
    )
    weight = right.slider("Weighted fusion: dense share (BM25 gets the rest)", 0.0, 1.0, step=0.05, key="search_weight")
    instruction = st.text_area(
        "Instruction for the reranker (optional)",
        key="search_instruction",
        height=68,
        placeholder="e.g. Prefer statutes over commentary.",
        help="zerank-2 reads a task instruction with the query. The exact text it sees is shown below the results.",
    )
    compare = st.checkbox(
        "Also rerank without the instruction, to show its effect",
        key="search_compare",
        help="Scores every candidate twice: doubles the reranking time.",
    )
    submitted = st.form_submit_button("Search", type="primary")
if submitted and query.strip():
    stage = FirstStage(mode, fusion, float(weight))
    _search(query.strip(), int(k), int(depth), stage, instruction.strip())

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
        loaded = (
            f"Reranker: {reranker.describe()}"
            if hasattr(reranker, "describe")  # a rerank server
            else f"Reranker loaded: {format_params(reranker.params)} parameters on {reranker.device} ({reranker.dtype})"
        )
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
    slow = reranker.device == "cpu" and estimate > confirm_above_seconds()
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
            add_reranking(result, reranker, result.instruction, compare)

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
    cols[0].metric(f"NDCG@10 {result.first_stage.mode}", f"{bi_ndcg:.3f}")
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
        bi_encoder_column(result, show, labels)
else:
    if three:
        with columns[0]:
            bi_encoder_column(result, show, labels)
    with columns[-2]:
        lexical_column(result, show, labels)
with columns[-1]:
    reranked_column(result, show, labels, threshold, weight, below)
if result.reranked:
    with st.expander("The exact query text the reranker saw"):
        st.code(reranker_query(result.query, result.instruction), language=None)

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
