"""Plotly figures for the search page: rank movement and per-stage latency."""

from __future__ import annotations

import plotly.graph_objects as go

from core.search import SearchResult, movement_label

STAGES = ("embed_query", "search", "rerank")
STAGE_LABELS = {"embed_query": "query embedding", "search": "vector search", "rerank": "reranking"}
UP, DOWN, SAME = "#2e7d32", "#c62828", "#9e9e9e"


def rank_movement_figure(result: SearchResult, top: int = 10) -> go.Figure:
    """One line per reranked candidate from its bi-encoder rank (left) to its reranked rank (right)."""
    figure = go.Figure()
    for item in result.reranked:
        colour = UP if item.movement > 0 else DOWN if item.movement < 0 else SAME
        emphasis = item.rank <= top or item.bi_encoder_rank <= top
        label = movement_label(item.movement, item.rank, item.bi_encoder_rank, top)
        figure.add_trace(
            go.Scatter(
                x=["bi-encoder rank", "reranked rank"],
                y=[item.bi_encoder_rank, item.rank],
                mode="lines+markers",
                line={"color": colour, "width": 2.5 if emphasis else 1},
                opacity=1.0 if emphasis else 0.35,
                name=item.chunk.chunk_id,
                hovertemplate=(
                    f"{item.chunk.chunk_id}<br>bi-encoder #{item.bi_encoder_rank} → reranked #{item.rank} "
                    f"({label})<br>p={item.probability:.3f}<extra></extra>"
                ),
                showlegend=False,
            )
        )
    depth = max((i.bi_encoder_rank for i in result.reranked), default=1)
    figure.update_yaxes(autorange="reversed", title="rank", range=[depth + 0.5, 0.5], dtick=max(1, depth // 10))
    figure.update_layout(
        title="Rank movement (green: moved up, red: moved down)", height=420, margin={"t": 50, "b": 20}
    )
    return figure


def latency_figure(history: list[dict]) -> go.Figure:
    """Stacked per-stage milliseconds for each query of the session, oldest first."""
    labels = [f"{i + 1}. {h['query'][:24]}" for i, h in enumerate(history)]
    figure = go.Figure()
    for stage in STAGES:
        figure.add_trace(go.Bar(name=STAGE_LABELS[stage], x=labels, y=[h.get(stage, 0.0) for h in history]))
    figure.update_layout(
        barmode="stack", title="Latency per query (ms)", yaxis_title="ms", height=320, margin={"t": 50, "b": 20}
    )
    return figure
