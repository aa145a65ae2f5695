"""An experiment on screen: the pipelines' metrics and agreement, per-query charts, the drill-down into one
query with a column per pipeline, and the comparison of two snapshots."""

from __future__ import annotations

import json

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.evaluation.datasets import write_qrels
from core.evaluation.labels import GRADES, LabelStore
from core.evaluation.metrics import METRICS
from core.experiments.agreement import TOP
from core.experiments.interop import trec_run, write_quepid_ratings
from core.experiments.snapshot import Experiment
from ui.charts import plain
from ui.highlight import snippet
from ui.results import _html
from ui.safe import md


def pipelines_table(experiment: Experiment, metrics: dict, comparisons: dict, agreement: dict) -> pd.DataFrame:
    """One row per pipeline: its metrics (judged), lift against the baseline with CI and p, agreement."""
    holes = experiment.holes()
    rows = []
    for name, spec in experiment.pipelines.items():
        row = {"pipeline": name, "spec": spec, "baseline": "✓" if name == experiment.baseline else ""}
        if metrics:
            means = {m: sum(v[m] for v in metrics[name].values()) / len(metrics[name]) for m in METRICS}
            row.update({m: round(means[m], 4) for m in METRICS})
            lift = comparisons.get(name, {}).get("ndcg@10")
            row["Δ ndcg@10"] = round(lift["mean"], 4) if lift else None
            row["95% CI"] = f"{lift['ci95'][0]:+.4f} … {lift['ci95'][1]:+.4f}" if lift else ""
            row["p"] = round(lift["p_value"], 4) if lift else None
            row["p (Holm)"] = round(lift["p_holm"], 4) if lift else None
            row["unjudged in top 10"] = round(holes[name]["mean"], 2)
        shared = agreement.get(name)
        row["Jaccard@10"] = round(shared["jaccard@10"], 3) if shared else 1.0
        row["RBO (p=0.9)"] = round(shared["rbo"], 3) if shared else 1.0
        row["new in top 10"] = round(shared["new_in_top10"], 2) if shared else 0.0
        rows.append(row)
    return pd.DataFrame(rows)


def per_query_figure(experiment: Experiment, values: dict[str, dict[str, float]], order: list[str], title: str):
    """One marker trace per pipeline over the queries (in ``order``); names and queries go in as data only."""
    figure = go.Figure()
    for name, by_query in values.items():
        figure.add_trace(
            go.Scatter(
                x=[plain(q) for q in order],
                y=[by_query.get(q) for q in order],
                mode="markers",
                name=plain(name),
                customdata=[plain(experiment.queries[q]) for q in order],
                hovertemplate="%{customdata}<br>%{y:.3f}<extra></extra>",
            )
        )
    figure.update_layout(title=plain(title), height=340, margin={"l": 40, "r": 10, "t": 40, "b": 40})
    figure.update_xaxes(type="category", title="query (most disagreement first)")
    return figure


def queries_table(experiment: Experiment, order: list[tuple[str, float]], metrics: dict) -> pd.DataFrame:
    rows = []
    for qid, disagreement in order:
        row = {"qid": qid, "query": experiment.queries[qid], "disagreement (1 − RBO)": round(disagreement, 3)}
        for name in experiment.pipelines if metrics else ():
            value = metrics[name].get(qid, {}).get("ndcg@10")
            row[f"{name}: ndcg@10"] = None if value is None else round(value, 4)
        rows.append(row)
    return pd.DataFrame(rows)


def downloads(experiment: Experiment) -> None:
    """Each pipeline's run (TREC), the judgments (TREC qrels, Quepid CSV) and the summary (JSON)."""
    names = list(experiment.pipelines)
    columns = st.columns(min(4, len(names) + 1))
    for i, name in enumerate(names):
        columns[i % len(columns)].download_button(
            f"Run: {md(name)}", trec_run(experiment.runs[name], f"p{i}"), f"pipeline-{i}.run", key=f"run_{i}"
        )
    if experiment.qrels:
        st.download_button("Judgments (TREC qrels)", write_qrels(experiment.qrels), "judgments.qrels")
        st.download_button(
            "Judgments (Quepid ratings CSV)", write_quepid_ratings(experiment.queries, experiment.qrels), "ratings.csv"
        )
    st.download_button("Summary (JSON)", json.dumps(experiment.summary(), indent=2), f"{experiment.id}.json")


def drill_down(experiment: Experiment, qid: str, labels: LabelStore | None) -> None:
    """The query's top 10 in a column per pipeline: movement against the baseline, probability, provenance."""
    query = experiment.queries[qid]
    judged = (experiment.qrels or {}).get(qid, {})
    given = labels.labels_for(query) if labels else {}
    baseline = experiment.ranking(experiment.baseline, qid)
    names = list(experiment.pipelines)
    for start in range(0, len(names), 4):  # at most four columns side by side, then a new row
        for column, name in zip(st.columns(4), names[start : start + 4]):
            with column:
                st.markdown(f"**{md(name)}**" + (" (baseline)" if name == experiment.baseline else ""))
                st.caption(md(experiment.pipelines[name]))
                for rank, doc in enumerate(experiment.ranking(name, qid)[:TOP], start=1):
                    _card(experiment, name, qid, rank, doc, baseline, judged, labels, given)


def _card(experiment, name, qid, rank, doc, baseline, judged, labels, given) -> None:
    with st.container(border=True):
        details = [f"**#{rank}**"]
        if name != experiment.baseline:
            details.append(_movement(rank, doc, baseline))
        probability = experiment.probabilities.get(name, {}).get(qid, {}).get(doc)
        if probability is not None:
            details.append(f"P(relevant) **{probability:.3f}**")
        before = experiment.first_stage_ranks.get(name, {}).get(qid, {}).get(doc)
        if before is not None:
            details.append(f"was #{before} in its first stage")
        grade = judged.get(doc)
        details.append(f"grade {grade}" if grade is not None else ":orange[unjudged]")
        st.markdown(" · ".join(details))
        st.caption(md(doc))
        passage = experiment.passages.get(doc)
        if passage:
            _html(snippet(passage["text"], experiment.queries[qid], width=200))
        if labels is not None:
            _label(labels, experiment.queries[qid], doc, given, key=f"xl_{name}_{qid}_{rank}")


def _movement(rank: int, doc: str, baseline: list[str]) -> str:
    """Where the baseline column has this document: up, down, level, or new to the top."""
    if doc not in baseline:
        return ":blue[new]"
    change = baseline.index(doc) + 1 - rank
    return f":green[↑{change}]" if change > 0 else f":red[↓{-change}]" if change < 0 else ":gray[=]"


def _label(labels: LabelStore, query: str, doc: str, given: dict[str, int], key: str) -> None:
    st.session_state[key] = str(given[doc]) if given.get(doc) in GRADES else None

    def save() -> None:
        value = st.session_state.get(key)
        labels.set_label(query, doc, None if value is None else int(value))

    st.segmented_control("Relevance", [str(g) for g in GRADES], key=key, on_change=save)


def comparison(diff: dict, before: Experiment, after: Experiment) -> None:
    """Two snapshots: what each shared pipeline's metrics did, and per query what entered and left its top 10."""
    if not diff["same_queries"]:
        st.warning("The two snapshots ran different query sets; only the queries both have are compared.")
    if not diff["same_corpus"]:
        st.warning("The corpus changed between the two snapshots (different indexed text or bi-encoder).")
    if not diff["pipelines"]:
        st.info("The two snapshots share no pipeline name.")
        return
    rows = []
    for name, change in diff["pipelines"].items():
        row = {"pipeline": name, "before": change["spec_before"], "after": change["spec_after"],
               "queries changed": change["queries_changed"]}  # fmt: skip
        for metric, delta in (change["mean_delta"] or {}).items():
            row[f"Δ {metric}"] = round(delta, 4)
        rows.append(row)
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    name = st.selectbox("Pipeline", list(diff["pipelines"]), key="compare_pipeline")
    per_query = diff["pipelines"][name]["per_query"]
    changed = [
        {
            "qid": qid,
            "query": after.queries[qid],
            "Δ ndcg@10": round(row.get("delta", {}).get("ndcg@10", 0.0), 4),
            "entered top 10": ", ".join(row["entered"]),
            "left top 10": ", ".join(row["left"]),
            "RBO": round(row["rbo"], 3),
        }
        for qid, row in per_query.items()
        if row["entered"] or row["rbo"] < 1.0 - 1e-9
    ]
    st.dataframe(pd.DataFrame(changed) if changed else pd.DataFrame({"qid": []}), hide_index=True)
