"""Showing one evaluation: metrics and lift, per-query chart, calibration, exports."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from core.evaluation.calibration import expected_calibration_error, precision_recall_at, reliability, split_by_judgment
from core.evaluation.metrics import METRICS
from core.evaluation.report import Evaluation
from ui.charts import per_query_lift_figure, probability_histogram_figure, reliability_figure
from ui.display_names import STAGE_LABELS
from ui.safe import md

THRESHOLDS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def metrics_table(evaluation: Evaluation) -> pd.DataFrame:
    """One row per metric, one column per first stage, then reranked with its lift over the reranked stage."""
    means = {stage: evaluation.means(stage) for stage in evaluation.stages}
    rows = []
    for metric in METRICS:
        row = {"metric": metric}
        row |= {STAGE_LABELS.get(s, s): round(m[metric], 4) for s, m in means.items() if s != "reranked"}
        if evaluation.has_reranking:
            result = evaluation.lift(metric)
            row |= {
                "reranked": round(means["reranked"][metric], 4),
                "lift": f"{result.mean:+.4f}",
                "95% CI (bootstrap)": f"{result.ci95[0]:+.4f} … {result.ci95[1]:+.4f}",
                "p (randomization)": f"{result.p_value:.4f}",
                "helped / hurt": f"{result.helped} / {result.hurt}",
            }
        rows.append(row)
    return pd.DataFrame(rows)


def show_evaluation(evaluation: Evaluation, key: str) -> None:
    settings = evaluation.settings
    # A saved evaluation is a file in the workspace: every value in it is shown as text.
    st.markdown(
        f"**{md(evaluation.dataset)}** · {len(evaluation.queries)} queries · k={md(settings.get('k'))} · "
        f"rerank depth {md(settings.get('rerank_depth'))} · reranked first stage: "
        f"{md(settings.get('first_stage_label', 'dense (bi-encoder)'))} · bi-encoder {md(settings.get('bi_encoder'))} · "
        f"reranker {md(settings.get('reranker') or 'none')} · {evaluation.timings_s.get('total', 0):.1f} s · "
        f"{md(evaluation.created_at.replace('T', ' '))}"
    )
    if settings.get("instruction"):
        st.caption(f"Reranker instruction: {md(settings['instruction'])}")
    calibration = settings.get("calibration")
    if isinstance(calibration, dict):
        st.caption(f"P(relevant) = {md(calibration.get('formula'))}: {md(calibration.get('reason'))}")
    if evaluation.cancelled:
        st.warning("This evaluation was cancelled: the figures cover the queries it finished.")
    if evaluation.reranker_error:
        st.info(f"No reranking: {md(evaluation.reranker_error)}")
    if not evaluation.queries:
        st.info("No query was evaluated.")
        return
    if evaluation.skipped or evaluation.problems:
        skipped = ", ".join(f"{n} {what}" for what, n in evaluation.skipped.items()) or "nothing skipped"
        with st.expander(f"Input problems: {md(skipped)}"):
            st.markdown("\n".join(f"- {md(p)}" for p in evaluation.problems[:200]) or "No line-level problems.")
    st.dataframe(metrics_table(evaluation), hide_index=True)
    st.caption(
        "Documents are scored by their best chunk (MaxP); metrics are per document id, with trec_eval's graded "
        f"gain. BM25 by {md(settings.get('lexical_engine', 'BM25'))}; hybrid RRF with k=60; hybrid weighted: "
        f"{md(settings.get('first_stage_label')) if evaluation.baseline == 'hybrid_weighted' else '0.5 × min-max dense + 0.5 × min-max BM25'}. "
        "Recall@100 of a first stage is the ceiling for reranking it. "
        f"Lift = reranked − {md(STAGE_LABELS.get(evaluation.baseline, evaluation.baseline))} per query; CI from 10,000 "
        "paired bootstrap resamples of queries; p from a two-sided paired randomization test."
    )

    _first_stages(evaluation)
    if evaluation.has_reranking:
        metric = st.selectbox("Per-query lift of", METRICS, key=f"lift_metric_{key}")
        st.plotly_chart(per_query_lift_figure(evaluation, metric), key=f"lift_{key}")
        _calibration(evaluation, key)

    downloads = st.columns(len(evaluation.stages) + 1)
    for column, stage in zip(downloads, evaluation.stages):
        column.download_button(
            f"{md(STAGE_LABELS.get(stage, stage).capitalize())} run (TREC)",
            evaluation.trec_run(stage),
            f"{stage}.run",
            key=f"dl_{stage}_{key}",
        )
    downloads[-1].download_button(
        "Per-query metrics (CSV)", evaluation.per_query_csv(), "per_query.csv", key=f"dl_csv_{key}"
    )


def _first_stages(evaluation: Evaluation) -> None:
    compared = evaluation.first_stages_against_dense()
    if not compared:
        return
    rows = []
    for stage, metrics in compared.items():
        for metric, result in metrics.items():
            low, high = result["ci95"]
            rows.append(
                {
                    "first stage": STAGE_LABELS.get(stage, stage),
                    "metric": metric,
                    "Δ against dense": f"{result['mean']:+.4f}",
                    "95% CI (bootstrap)": f"{low:+.4f} … {high:+.4f}",
                    "p (randomization)": f"{result['p_value']:.4f}",
                    "helped / hurt": f"{result['helped']} / {result['hurt']}",
                }
            )
    st.write("First stages against dense: does BM25 or a hybrid raise the ceiling for reranking (Recall@100)?")
    st.dataframe(pd.DataFrame(rows), hide_index=True)


def _calibration(evaluation: Evaluation, key: str) -> None:
    documents = evaluation.reranked_documents
    if not documents:
        return
    groups = split_by_judgment(documents)
    left, right = st.columns(2)
    left.plotly_chart(probability_histogram_figure(groups), key=f"hist_{key}")
    bins = reliability(documents)
    right.plotly_chart(reliability_figure(bins), key=f"rel_{key}")
    ece = expected_calibration_error(bins)
    st.caption(
        f"{len(documents)} reranked documents: {len(groups['relevant'])} judged relevant, "
        f"{len(groups['judged not relevant'])} judged not relevant, {len(groups['unjudged'])} unjudged "
        f"(counted as not relevant in the reliability diagram and below). "
        + (f"Expected calibration error {ece:.3f}." if not math.isnan(ece) else "")
    )
    total_relevant = sum(q.relevant for q in evaluation.queries)
    table = pd.DataFrame(precision_recall_at(documents, THRESHOLDS, total_relevant))
    st.write("Keeping only documents with P(relevant) ≥ threshold:")
    st.dataframe(table.round(3), hide_index=True)
