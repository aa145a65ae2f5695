"""The Experiments page's judging panel: point a judge at the snapshot's pooled top documents, test it on one
pair, grade the unjudged, and see how far to trust it against the human labels."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import streamlit as st

from core.config import Settings, judge_env
from core.errors import ExplorerError
from core.experiments.snapshot import Experiment
from core.judge_runner import JudgeLabelStore, JudgingRun, pooled_pairs, trust
from core.judging.client import ChatJudgeClient, JudgeSettings
from core.judging.judge import Judge, JudgmentCache
from core.judging.prompt import DEFAULT_TEMPLATE, TemplateError
from ui.format import format_seconds
from ui.safe import md


def judge_panel(experiment: Experiment, settings: Settings) -> None:
    store = JudgeLabelStore(settings.workspace / "judge-labels")
    fingerprint = experiment.query_set["fingerprint"]
    with st.expander("Judge the unjudged with an LLM"):
        judge, depth, also_human = _judge_form(settings)
        pairs, skipped = pooled_pairs(experiment, depth, None if also_human else experiment.qrels)
        st.caption(f"{len(pairs)} pooled pairs to grade; {skipped} left out because a human labelled them.")
        if judge is None or not pairs:
            return
        test, run, cancel = st.columns([1, 1, 2])
        cancel.button("Cancel", key="j_cancel", help="Stops the grading; every answer already given stays cached")
        if test.button("Test on one pair", key="j_test"):
            _test_one(judge, pairs[0])
        if run.button(f"Grade {len(pairs)} pairs", key="j_run", type="primary"):
            _grade(judge, pairs, store, fingerprint)
    _trust(experiment, store.get(fingerprint))


def _judge_form(settings: Settings):
    """The judge the form describes, or None with the reason shown; the key is never shown back."""
    env = judge_env()
    left, right = st.columns(2)
    url = left.text_input("Judge URL (OpenAI-compatible)", env.get("url", ""), key="j_url",
                          placeholder="http://localhost:8000")  # fmt: skip
    model = right.text_input("Model", env.get("model", ""), key="j_model")
    typed_key = left.text_input("API key (optional; RERANK_JUDGE_KEY otherwise)", type="password", key="j_key")
    depth = right.number_input("Pool each pipeline's top", 1, 10, 5, key="j_depth")
    concurrency = left.number_input("Requests at once", 1, 32, 4, key="j_concurrency")
    retries = right.number_input("Retries (429, 5xx, dropped connection)", 0, 10, 3, key="j_retries")
    template = st.text_area("Prompt template ({query}, {document}, {instruction})", DEFAULT_TEMPLATE, height=220,
                            key="j_template")  # fmt: skip
    also_human = st.checkbox("Also grade pairs a human labelled, to measure agreement", key="j_also_human")
    if not (url.strip() and model.strip()):
        st.info("Give the judge's URL and model name.")
        return None, int(depth), also_human
    settings_ = JudgeSettings(url.strip(), model.strip(), typed_key or env.get("api_key"), max_retries=int(retries),
                              concurrency=int(concurrency))  # fmt: skip
    try:
        judge = Judge(ChatJudgeClient(settings_), _cache(str(settings.workspace / "judge-answers.sqlite")), template)
    except TemplateError as exc:
        st.error(md(exc), icon="⚠️")
        judge = None
    return judge, int(depth), also_human


@st.cache_resource
def _cache(path: str) -> JudgmentCache:
    """One answer cache per file for the process, shared by every session."""
    return JudgmentCache(Path(path))


def _test_one(judge: Judge, pair) -> None:
    try:
        judgment = judge.rate(pair)
    except ExplorerError as exc:
        st.error(md(exc), icon="⚠️")
        return
    st.caption(f"Query {md(pair.qid)}, document {md(pair.doc_id)}" + (" (from the cache)" if judgment.cached else ""))
    st.code(judge.prompt(pair), language=None)
    st.code(judgment.raw, language=None)
    st.markdown(f"Grade: **{judgment.grade}**" if judgment.grade is not None else "**Unrateable**: no grade 0–3 in it.")


def _grade(judge: Judge, pairs, store: JudgeLabelStore, fingerprint: str) -> None:
    bar, started = st.progress(0.0, text="Asking the judge…"), time.perf_counter()

    def progress(done: int, total: int) -> None:
        left = (time.perf_counter() - started) / done * (total - done)
        bar.progress(done / total, text=f"Pair {done}/{total} · about {format_seconds(left)} left")

    try:
        run = JudgingRun(judge.rate_all(pairs, progress))
    except ExplorerError as exc:
        st.error(f"{md(exc)} Every human label and every result is unchanged; grades already given are cached.")
        return
    finally:
        bar.empty()
    store.add(fingerprint, run.qrels)
    summary = run.summary()
    st.success(
        f"{summary['graded']} graded ({summary['from_cache']} from the cache), {len(run.unrateable)} unrateable."
    )
    if run.unrateable:
        st.dataframe(pd.DataFrame(summary["unrateable"]), hide_index=True)


def _trust(experiment: Experiment, judged) -> None:
    """The judge against the human on shared pairs, and each pipeline's NDCG@10 under each set of labels."""
    if not judged:
        return
    figures = trust(experiment, experiment.qrels or {}, judged)
    kappa = figures["weighted_kappa"]
    st.subheader("The judge's labels")
    st.caption(f"{sum(len(g) for g in judged.values())} pairs graded by the judge; {figures['pairs']} also labelled "
               f"by a human; weighted kappa {'—' if kappa is None else f'{kappa:.3f}'} (quadratic).")  # fmt: skip
    if figures["pairs"]:
        grades = figures["grades"]
        matrix = pd.DataFrame(figures["confusion"], index=[f"human {g}" for g in grades],
                              columns=[f"judge {g}" for g in grades])  # fmt: skip
        st.dataframe(matrix)
    names = {"human": "human", "judge": "judge", "merged": "merged (human wins)"}
    rows = {names[k]: {n: round(v, 4) for n, v in by_pipeline.items()} for k, by_pipeline in figures["ndcg@10"].items()}
    st.caption(
        "Each pipeline's NDCG@10 under each set of labels: where the columns disagree, the judge changes the verdict."
    )
    st.dataframe(pd.DataFrame(rows).rename_axis("pipeline"), hide_index=False)
