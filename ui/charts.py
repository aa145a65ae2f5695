"""Plotly figures for the search page: rank movement and per-stage latency.

Plotly renders labels, tick texts and hover texts as a subset of HTML (<b>, <a href>, <br>) and fills
``%{...}`` in a hover template: user text (queries, file names, query ids) therefore goes in escaped
with ``plain`` and only ever as data (``customdata``, category labels), never into a template.
"""

from __future__ import annotations

import html

import plotly.graph_objects as go

from core.retrieval.results import SearchResult, movement_label

STAGES = ("embed_query", "search", "bm25", "fusion", "rerank")
STAGE_LABELS = {
    "embed_query": "query embedding",
    "search": "vector search",
    "bm25": "BM25 search",
    "fusion": "fusion",
    "rerank": "reranking",
}
UP, DOWN, SAME = "#2e7d32", "#c62828", "#9e9e9e"


def plain(text: object) -> str:
    """``text`` for a plotly label: its markup shown as characters (plotly decodes the entities)."""
    return html.escape(str(text))


def _where(chunk) -> str:
    return plain(chunk.source if chunk.doc_id == chunk.source else f"{chunk.source} › {chunk.doc_id}")


def rank_movement_figure(result: SearchResult, top: int = 10) -> go.Figure:
    """One line per reranked candidate from its first-stage rank (left) to its reranked rank (right)."""
    figure = go.Figure()
    for item in result.reranked:
        colour = UP if item.movement > 0 else DOWN if item.movement < 0 else SAME
        emphasis = item.rank <= top or item.first_stage_rank <= top
        label = movement_label(item.movement, item.rank, item.first_stage_rank, top)
        figure.add_trace(
            go.Scatter(
                x=["first-stage rank", "reranked rank"],
                y=[item.first_stage_rank, item.rank],
                mode="lines+markers",
                line={"color": colour, "width": 2.5 if emphasis else 1},
                opacity=1.0 if emphasis else 0.35,
                name=_where(item.chunk),
                customdata=[_where(item.chunk)] * 2,
                hovertemplate=(
                    f"%{{customdata}}<br>first stage #{item.first_stage_rank} → reranked #{item.rank} "
                    f"({label})<br>p={item.probability:.3f}<extra></extra>"
                ),
                showlegend=False,
            )
        )
    depth = max((i.first_stage_rank for i in result.reranked), default=1)
    figure.update_yaxes(autorange="reversed", title="rank", range=[depth + 0.5, 0.5], dtick=max(1, depth // 10))
    figure.update_layout(
        title="Rank movement (green: moved up, red: moved down)", height=420, margin={"t": 50, "b": 20}
    )
    return figure


def latency_figure(history: list[dict]) -> go.Figure:
    """Stacked per-stage milliseconds for each query of the session, oldest first."""
    labels = [plain(f"{i + 1}. {h['query'][:24]}") for i, h in enumerate(history)]
    figure = go.Figure()
    for stage in STAGES:
        figure.add_trace(go.Bar(name=STAGE_LABELS[stage], x=labels, y=[h.get(stage, 0.0) for h in history]))
    figure.update_layout(
        barmode="stack", title="Latency per query (ms)", yaxis_title="ms", height=320, margin={"t": 50, "b": 20}
    )
    return figure


def per_query_lift_figure(evaluation, metric: str = "ndcg@10") -> go.Figure:
    """Reranked minus the reranked first stage per query, sorted: where reranking helped (right) and hurt (left)."""
    before, after = evaluation.metrics[evaluation.baseline], evaluation.metrics["reranked"]
    texts = {q.qid: q.query for q in evaluation.queries}
    rows = sorted(((after[q][metric] - before[q][metric], q) for q in after), key=lambda r: r[0])
    figure = go.Figure(
        go.Bar(
            x=[plain(q) for _, q in rows],
            y=[d for d, _ in rows],
            marker_color=[UP if d > 0 else DOWN if d < 0 else SAME for d, _ in rows],
            customdata=[plain(texts.get(q, "")[:80]) for _, q in rows],
            hovertemplate="%{x}: %{customdata}<br>lift %{y:+.3f}<extra></extra>",
        )
    )
    figure.update_layout(
        title=plain(f"{metric} lift per query (reranked − {evaluation.baseline}), sorted"),
        xaxis={"type": "category", "showticklabels": len(rows) <= 60, "title": "query"},
        yaxis_title=f"Δ {metric}",
        height=360,
        margin={"t": 50, "b": 20},
    )
    return figure


def probability_histogram_figure(groups: dict[str, list[float]]) -> go.Figure:
    """Reranker probabilities of candidates, by judgment."""
    figure = go.Figure()
    colours = {"relevant": UP, "judged not relevant": DOWN, "unjudged": SAME}
    for name, values in groups.items():
        if values:
            figure.add_trace(
                go.Histogram(
                    x=values, name=f"{name} ({len(values)})", xbins={"start": 0, "end": 1, "size": 0.05},
                    marker_color=colours.get(name), opacity=0.7,
                )
            )  # fmt: skip
    figure.update_layout(
        barmode="overlay",
        title="Reranker probability of each reranked candidate",
        xaxis={"title": "P(relevant)", "range": [0, 1]},
        yaxis_title="candidates",
        height=340,
        margin={"t": 50, "b": 20},
    )
    return figure


def reliability_figure(bins) -> go.Figure:
    """Observed fraction relevant against mean predicted probability per bin; the diagonal is perfect."""
    filled = [b for b in bins if b.count]
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dash", "color": SAME}, name="perfect"))
    figure.add_trace(
        go.Scatter(
            x=[b.mean_probability for b in filled],
            y=[b.fraction_relevant for b in filled],
            mode="lines+markers",
            marker={"size": [6 + 24 * (b.count / max(f.count for f in filled)) ** 0.5 for b in filled]},
            customdata=[b.count for b in filled],
            hovertemplate="p≈%{x:.2f}: %{y:.0%} relevant (%{customdata} candidates)<extra></extra>",
            name="reranker",
        )
    )
    figure.update_layout(
        title="Reliability: is p = 0.8 relevant 80% of the time?",
        xaxis={"title": "mean predicted probability", "range": [0, 1]},
        yaxis={"title": "fraction judged relevant", "range": [0, 1]},
        height=360,
        margin={"t": 50, "b": 20},
    )
    return figure
