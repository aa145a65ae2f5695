"""Evaluate: NDCG@10 and friends for both stages on judged queries, and the lift reranking adds."""

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from core.errors import ExplorerError
from core.eval_runner import (
    dataset_folders,
    estimate_evaluation_seconds,
    evaluations,
    run_dataset_evaluation,
    run_label_evaluation,
    save_uploaded_dataset,
)
from core.evaluation.datasets import DatasetError, load_dataset, write_qrels
from core.evaluation.labels import LabelStore
from core.evaluation.report import FIRST_STAGES
from core.experiments.interop import read_quepid_ratings, write_quepid_ratings
from core.retrieval.pipeline import Pipeline
from ui import resources
from ui.display_names import STAGE_LABELS
from ui.evaluation import show_evaluation
from ui.format import format_seconds
from ui.ingest import progress_callback
from ui.safe import md
from ui.sidebar import current_settings, reranker_enabled

settings = current_settings()
store = evaluations(settings)
# The page draws at once; a run waits for the workspace (the bi-encoder and the index) if it is still loading.
labels_folder = settings.workspace

st.title("Evaluate")
st.write(
    "Run both stages on every judged query and measure what reranking adds: NDCG@10, MRR@10, Recall@10/100 and "
    "MAP@100 per stage, the lift with a 95% confidence interval and a significance test."
)


def import_labels(labels: LabelStore, qrels_file, queries_file) -> tuple[int, list[str]]:
    """TREC/BEIR qrels with an optional queries.jsonl, or a Quepid ratings CSV (queries by their text)."""
    text = qrels_file.getvalue().decode("utf-8", errors="replace")
    if qrels_file.name.lower().endswith(".csv"):
        rated = read_quepid_ratings(qrels_file.name, text)
        queries = "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in rated.queries.items())
        added, problems = labels.import_qrels(write_qrels(rated.qrels), qrels_file.name, queries)
        return added, rated.problems + problems
    queries = queries_file.getvalue().decode("utf-8", errors="replace") if queries_file else None
    return labels.import_qrels(text, qrels_file.name, queries)


FOLDER, UPLOAD, LABELS = "A dataset folder", "Upload a dataset", "My labelled queries"
source = st.radio("Judged queries", [FOLDER, UPLOAD, LABELS], horizontal=True)
dataset = None
if source == FOLDER:
    folders = dataset_folders(settings)
    folder = st.selectbox("Dataset (BEIR layout)", folders, format_func=lambda p: f"{p.name} — {p}")
    try:
        dataset = load_dataset(folder)
    except DatasetError as exc:
        st.error(md(exc), icon="⚠️")
    else:
        skipped = ", ".join(f"{n} {what}" for what, n in dataset.skipped.items())
        st.caption(f"{len(dataset.queries)} judged queries" + (f"; skipped: {md(skipped)}" if skipped else ""))
        if dataset.problems:
            with st.expander(f"{len(dataset.problems)} problem(s) in the dataset's files"):
                st.markdown("\n".join(f"- {md(p)}" for p in dataset.problems[:200]))
elif source == UPLOAD:
    name = st.text_input("Dataset name", "my-dataset")
    columns = st.columns(3)
    corpus = columns[0].file_uploader("corpus.jsonl", type=["jsonl"])
    queries = columns[1].file_uploader("queries.jsonl", type=["jsonl"])
    qrels = columns[2].file_uploader("qrels (BEIR .tsv or TREC)", type=["tsv", "txt", "qrels"])
    if st.button("Save the dataset", disabled=not (corpus and queries and qrels)):
        saved = save_uploaded_dataset(settings, name, corpus.getvalue(), queries.getvalue(), qrels.getvalue())
        st.success(f"Saved to {md(saved)}; pick it under “{FOLDER}”.")
else:
    labels = LabelStore(labels_folder)
    labelled = labels.qrels()
    st.caption(
        f"{len(labelled)} labelled queries in {md(labels_folder)} (label results on the Search page). "
        "They are evaluated on the explorer's own index."
    )
    exports = st.columns(3)
    exports[0].download_button("Export labels (TREC qrels)", labels.export_qrels(), "labels.qrels")
    exports[1].download_button("Export labelled queries (jsonl)", labels.export_queries(), "labels.queries.jsonl")
    exports[2].download_button(
        "Export labels (Quepid ratings CSV)", write_quepid_ratings(labels.queries(), labelled), "ratings.csv"
    )
    with st.expander("Import labels"):
        qrels_file = st.file_uploader(
            "qrels (TREC or BEIR), or Quepid ratings (.csv: query,docid,rating)",
            type=["qrels", "tsv", "txt", "csv"],
            key="import_qrels",
        )
        queries_file = st.file_uploader("queries.jsonl (texts of the queries)", type=["jsonl"], key="import_queries")
        if st.button("Import", disabled=qrels_file is None):
            try:
                added, problems = import_labels(labels, qrels_file, queries_file)
            except ExplorerError as exc:
                st.error(md(exc), icon="⚠️")
            else:
                st.success(f"Imported {added} label(s).")
                for problem in problems[:50]:
                    st.warning(md(problem))

left, middle, right = st.columns(3)
k = left.number_input("Documents retrieved per query (k)", 1, 1000, 100)
depth = middle.number_input("Documents reranked per query", 0, 1000, 20, help="Chunks of the top N documents")
stage_key = right.selectbox(
    "First stage to rerank",
    list(FIRST_STAGES),
    format_func=STAGE_LABELS.get,
    key="eval_first_stage",
    help="Every first stage is evaluated and reported; the reranker rescores this one's candidates.",
)
instruction = st.text_input(
    "Reranker instruction (optional)", key="eval_instruction", placeholder="e.g. Prefer statutes over commentary."
)


def chosen_reranker():
    """(reranker, load error), or (None, None) when reranking is off; loaded once per process."""
    if reranker_enabled(settings) and depth > 0:
        return resources.reranker(settings)
    return None, None


def reranker_notes(reranker, load_error) -> None:
    if load_error:
        st.warning(
            f"{md(load_error.reason)}. {md(load_error.advice)}. The evaluation will cover the first stages only."
        )
    n_queries = len(dataset.queries) if dataset else len(LabelStore(labels_folder).qrels())
    if reranker is not None and n_queries:
        guess = estimate_evaluation_seconds(n_queries, int(depth), reranker)
        if reranker.runs_on_local_cpu and guess > 60:
            st.warning(
                f"Reranking may take about {format_seconds(guess)} on the CPU; lower the depth for a quick look."
            )


# Filled at the end of the page: loading a reranker (a 4B model: a while) must not hold back the rest of it.
notes = st.container()
if st.session_state.pop("evaluation_running", False):
    st.warning("The last evaluation was cancelled before it finished; nothing was saved.")

run, cancel = st.columns([1, 5])
start = run.button("Run the evaluation", type="primary", disabled=not (dataset or source == LABELS))
cancel.button("Cancel", help="Stops the running evaluation")
if start:
    workspace = resources.workspace(settings)  # waits (behind a status) if it is still loading
    st.session_state["evaluation_running"] = True
    bar = st.progress(0.0, text="Indexing the corpus…")

    def query_progress(done: int, total: int) -> None:
        bar.progress(done / total, text=f"Query {done}/{total}")

    reranker, load_error = chosen_reranker()
    if reranker:
        error = None
    elif load_error:
        error = str(load_error)
    else:
        error = "the rerank depth is 0" if depth == 0 else "reranking is off (reranker 'none' in the sidebar)"
    pipeline = Pipeline(FIRST_STAGES[stage_key], reranker.model_id if reranker else None, int(depth), instruction)
    try:
        if source == LABELS:
            evaluation = run_label_evaluation(
                workspace, pipeline, reranker, k=int(k), reranker_error=error, progress=query_progress
            )
        else:
            evaluation, _ = run_dataset_evaluation(
                settings, workspace.encoder, dataset, pipeline, reranker, k=int(k), reranker_error=error,
                embed_progress=progress_callback(bar), progress=query_progress,
            )  # fmt: skip
    except ExplorerError as exc:
        st.error(md(exc), icon="⚠️")
    else:
        st.session_state["evaluation_shown"] = str(store.save(evaluation))
    st.session_state["evaluation_running"] = False
    bar.empty()


def past_evaluations() -> None:
    st.subheader("Past evaluations")
    paths = store.list()
    if not paths:
        st.info("No evaluation yet. The demo judgments (data/judgments) run in about a minute on a laptop CPU.")
        return
    loaded = {}
    for path in paths[:50]:
        try:
            loaded[str(path)] = store.load(path)
        except ValueError as exc:
            st.warning(f"Skipped a saved evaluation: {md(exc)}")
    if not loaded:
        return
    overview = pd.DataFrame(
        [
            {
                "when (UTC)": e.created_at.replace("T", " ").removesuffix("+00:00"),
                "dataset": e.dataset,
                "queries": len(e.queries),
                "reranker": e.settings.get("reranker") or "none",
                "k": e.settings.get("k"),
                "depth": e.settings.get("rerank_depth"),
                "dense NDCG@10": round(e.means("dense")["ndcg@10"], 4) if e.queries else None,
                "hybrid RRF NDCG@10": round(e.means("hybrid_rrf")["ndcg@10"], 4) if "hybrid_rrf" in e.metrics else None,
                "reranked": STAGE_LABELS.get(e.baseline, e.baseline) if e.has_reranking else None,
                "reranked NDCG@10": round(e.means("reranked")["ndcg@10"], 4) if e.has_reranking and e.queries else None,
                "run": Path(p).name,
            }
            for p, e in loaded.items()
        ]
    )
    st.dataframe(overview, hide_index=True)
    shown = st.session_state.get("evaluation_shown")
    choice = st.selectbox(
        "Show",
        list(loaded),
        index=list(loaded).index(shown) if shown in loaded else 0,
        format_func=lambda p: Path(p).name,
    )
    show_evaluation(loaded[choice], key=Path(choice).stem)


past_evaluations()
with notes:
    reranker_notes(*chosen_reranker())
