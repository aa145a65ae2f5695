"""Experiments: any number of saved pipelines over a query set, judged or not; snapshots and their comparison."""

import time
from pathlib import Path

import streamlit as st

from core.errors import ExplorerError
from core.eval_runner import dataset_folders
from core.experiment_runner import LABELS, open_query_source, query_source_from_upload, run_experiment_in, snapshots
from core.experiments.snapshot import SnapshotError, SnapshotStore, compare_snapshots
from core.rerank.score_cache import CachedReranker
from core.retrieval.pipeline_spec import PipelineStore, parse_spec
from ui import resources
from ui.experiments import comparison, downloads, drill_down, per_query_figure, pipelines_table, queries_table
from ui.format import format_seconds
from ui.judging import judge_panel
from ui.safe import md
from ui.sidebar import current_settings, reranker_enabled

settings = current_settings()
store = snapshots(settings)
saved_pipelines = PipelineStore(settings.workspace)

st.title("Experiments")
st.write(
    "Run any number of pipelines over a query set and compare them: with judgments, NDCG@10 and friends and "
    "each pipeline's lift over a baseline (95% CI, randomization p, Holm-adjusted); with or without, how much "
    "their rankings agree. Every finished run is kept as a snapshot you can link to and compare."
)


def query_source():
    """The chosen query set, or None with the reason shown."""
    folder_choice, upload_choice, labels_choice = "A dataset folder", "A query list", "My labelled queries"
    kind = st.radio("Query set", [folder_choice, upload_choice, labels_choice], horizontal=True, key="x_source")
    try:
        if kind == folder_choice:
            folder = st.selectbox("Dataset", dataset_folders(settings), format_func=lambda p: f"{p.name} — {p}")
            return open_query_source(settings, folder)
        if kind == labels_choice:
            return open_query_source(settings, LABELS)
        queries = st.file_uploader("Queries (.txt one per line, .csv with a query column, .jsonl with text)",
                                   type=["txt", "csv", "jsonl"], key="x_queries")  # fmt: skip
        judged = st.file_uploader("Judgments (optional): TREC/BEIR qrels or Quepid ratings .csv",
                                  type=["qrels", "tsv", "txt", "csv"], key="x_judgments")  # fmt: skip
        if queries is None:
            st.info("Upload a query list; it runs on the explorer's own index (the Documents page).")
            return None
        judgments = (judged.name, judged.getvalue()) if judged is not None else None
        return query_source_from_upload(queries.name, queries.getvalue(), judgments)
    except ExplorerError as exc:
        st.error(md(exc), icon="⚠️")
        return None


def pipeline_editor() -> None:
    """Save a pipeline by name and short form, or the examples in one click."""
    with st.expander("Add a pipeline"):
        name = st.text_input("Name", key="x_new_name")
        spec = st.text_input("Short form", key="x_new_spec", placeholder="hybrid:weighted:0.3+MODEL@50|instruction",
                             help="STAGE[+RERANKER[@DEPTH]][|INSTRUCTION]; STAGE is dense, bm25, hybrid:rrf or "
                             "hybrid:weighted:W (README: Pipelines)")  # fmt: skip
        if st.button("Save the pipeline", disabled=not (name.strip() and spec.strip())):
            try:
                saved_pipelines.save(name.strip(), parse_spec(spec))
            except ExplorerError as exc:
                st.error(md(exc), icon="⚠️")
            else:
                st.success(f"Saved {md(name.strip())}.")
    if st.button("Add the example pipelines", help="dense, BM25, both hybrids, and dense + the sidebar's reranker"):
        examples = {
            "dense": "dense",
            "BM25": "bm25",
            "hybrid RRF": "hybrid:rrf",
            "hybrid weighted": "hybrid:weighted:0.5",
        }
        if reranker_enabled(settings):
            examples["dense + reranker"] = f"dense+{settings.reranker}@20"
        for name, spec in examples.items():
            saved_pipelines.save(name, parse_spec(spec))


def rerankers_for(pipelines):
    """Each reranker the pipelines name, loaded once per process, behind the workspace's score cache."""
    cache = resources.score_cache(str(settings.workspace.resolve() / "rerank-scores.sqlite"))
    loaded = {}
    for model_id in dict.fromkeys(p.reranker for p in pipelines.values() if p.reranks):
        reranker, error = resources.reranker(settings.with_(reranker=model_id))
        if error is not None:
            users = ", ".join(name for name, p in pipelines.items() if p.reranker == model_id)
            st.error(f"Pipelines {md(users)}: {md(error.reason)}. {md(error.advice)}.", icon="⚠️")
            return None
        loaded[model_id] = CachedReranker(reranker, cache)
    return loaded


def run_form(source) -> None:
    pipeline_editor()
    try:
        available = saved_pipelines.all()
    except ExplorerError as exc:
        st.error(md(exc), icon="⚠️")
        return
    chosen = st.multiselect("Pipelines", list(available), default=list(available)[:4], key="x_pipelines")
    if not chosen:
        st.info("Save a pipeline (or add the examples) and pick at least one.")
        return
    left, right = st.columns(2)
    baseline = left.selectbox("Baseline", chosen, key="x_baseline")
    k = right.number_input("Documents per query (k)", 1, 1000, 100, key="x_k")
    pipelines = {name: available[name] for name in chosen}
    reranking = {n: p for n, p in pipelines.items() if p.reranks}
    if source is not None and reranking:
        pairs = sum(min(p.rerank_depth, int(k)) for p in reranking.values()) * len(source.query_set.queries)
        st.caption(
            f"Reranking: up to about {pairs:,} documents to score ({', '.join(md(n) for n in reranking)}), each one "
            "or more chunks; pairs scored before come from the score cache. A 4B reranker on a CPU scores a few "
            "pairs a second: lower the depth for a first look."
        )
    if source is not None:
        st.caption(f"{len(pipelines)} pipelines × {len(source.query_set.queries)} queries"
                   + (" (judged)" if source.query_set.judged else " (no judgments: agreement only)"))  # fmt: skip
    if st.session_state.pop("x_running", False):
        st.warning("The last experiment was cancelled before it finished; nothing was saved.")
    run, cancel = st.columns([1, 5])
    start = run.button("Run the experiment", type="primary", disabled=source is None)
    cancel.button("Cancel", help="Stops the running experiment; nothing half-done is kept")
    if start:
        launch(source, pipelines, baseline, int(k))


def launch(source, pipelines, baseline, k) -> None:
    workspace = resources.workspace(settings)  # waits (behind a status) if it is still loading
    rerankers = rerankers_for(pipelines)
    if rerankers is None:
        return
    st.session_state["x_running"] = True
    bar = st.progress(0.0, text="Preparing…")
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        left = (time.perf_counter() - started) / done * (total - done)
        bar.progress(done / total, text=f"Query {done}/{total} · about {format_seconds(left)} left")

    try:
        experiment, _ = run_experiment_in(
            settings, workspace.encoder, source, pipelines, rerankers, baseline=baseline, k=k,
            workspace=None if source.dataset is not None else workspace, progress=progress,
        )  # fmt: skip
    except ExplorerError as exc:
        st.error(md(exc), icon="⚠️")
    else:
        st.query_params.clear()
        st.query_params["snapshot"] = experiment.id
    st.session_state["x_running"] = False
    bar.empty()


with st.expander("New experiment", expanded=not store.ids()):
    run_form(query_source())


@st.cache_data(max_entries=16, show_spinner="Computing the metrics, intervals and agreement…")
def analysis(folder: str, snapshot_id: str) -> dict:
    """A snapshot never changes once written, so its figures are computed once per process."""
    experiment = SnapshotStore(Path(folder)).load(snapshot_id)
    metrics, per_query = experiment.metrics(), experiment.agreement_per_query()
    return {
        "metrics": metrics,
        "comparisons": experiment.comparisons(metrics),
        "per_query": per_query,
        "agreement": experiment.agreement(per_query),
        "order": experiment.disagreement(per_query),
    }


def show(experiment) -> None:
    query_set = experiment.query_set
    labels = f"; judgments: {query_set['labels']}" if query_set.get("labels") else ""
    st.caption(
        f"Query set **{md(query_set['name'])}** ({query_set['queries']} queries, fingerprint {query_set['fingerprint']}"
        f"{labels}); corpus {md(experiment.corpus.get('fingerprint', '?'))}; k={experiment.k}; baseline "
        f"**{md(experiment.baseline)}**; {experiment.created_at} UTC; {experiment.timings_s.get('total', 0):.1f} s."
    )
    for model_id, counts in experiment.reranking.items():
        st.caption(
            f"{md(model_id)}: {counts['pairs_scored']} pairs scored, {counts['pairs_from_cache']} from the cache."
        )
    figures = analysis(str(store.folder), experiment.id)
    metrics, per_query, order = figures["metrics"], figures["per_query"], figures["order"]
    st.dataframe(pipelines_table(experiment, metrics, figures["comparisons"], figures["agreement"]), hide_index=True)
    if not metrics:
        st.info("No judgments for these queries: the table shows agreement with the baseline only.")
    qids = [q for q, _ in order]
    if metrics:
        lift = {n: {q: metrics[n][q]["ndcg@10"] - metrics[experiment.baseline][q]["ndcg@10"] for q in metrics[n]}
                for n in experiment.pipelines if n != experiment.baseline}  # fmt: skip
        st.plotly_chart(per_query_figure(experiment, lift, qids, "NDCG@10 minus the baseline's, per query"))
    overlap = {n: {q: 1 - v["rbo"] for q, v in by_q.items()} for n, by_q in per_query.items()}
    st.plotly_chart(per_query_figure(experiment, overlap, qids, "Disagreement with the baseline (1 − RBO), per query"))
    st.dataframe(queries_table(experiment, order, metrics), hide_index=True)
    downloads(experiment)
    st.subheader("One query, every pipeline")
    asked = st.query_params.get("query")
    qid = st.selectbox("Query (most disagreement first)", qids, index=qids.index(asked) if asked in qids else 0,
                       format_func=lambda q: f"{q}: {experiment.queries[q]}", key="x_query")  # fmt: skip
    st.query_params["query"] = qid
    labels = None
    if experiment.settings.get("index") == "workspace":
        from core.evaluation.labels import LabelStore

        labels = LabelStore(settings.workspace)
    drill_down(experiment, qid, labels)


def compare_with(experiment, ids) -> None:
    st.subheader("Compare with another snapshot")
    others = ["(none)"] + [i for i in ids if i != experiment.id]
    asked = st.query_params.get("against")
    other = st.selectbox("Earlier snapshot", others, index=others.index(asked) if asked in others else 0)
    if other == "(none)":
        st.query_params.pop("against", None)
        return
    st.query_params["against"] = other
    try:
        before = store.load(other)
    except SnapshotError as exc:
        st.error(md(exc), icon="⚠️")
        return
    comparison(compare_snapshots(before, experiment), before, experiment)


ids = store.ids()
if not ids:
    st.info("No experiment yet. Add the example pipelines and run them on the demo judgments (about a minute).")
    st.stop()
asked = st.query_params.get("snapshot")
if asked and asked not in ids:
    st.warning(f"No snapshot {md(asked)} in this workspace; showing the latest.")
picked = st.selectbox("Snapshot", ids, index=ids.index(asked) if asked in ids else 0, key=f"x_snapshot_{asked}")
st.query_params["snapshot"] = picked
try:
    shown = store.load(picked)
except SnapshotError as exc:
    st.error(md(exc), icon="⚠️")
    st.stop()
show(shown)
compare_with(shown, ids)
st.subheader("Assisted judging")
judge_panel(shown, settings)
