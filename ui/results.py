"""The two result columns of the search page."""

from __future__ import annotations

import re

import streamlit as st

from core.chunks import Chunk
from core.evaluation.labels import GRADES, LabelStore, document_key
from core.retrieval.results import RetrievedChunk, SearchResult, movement_label
from core.retrieval.score_controls import ShownRow, apply_score_controls
from ui.display_names import LIST_LABELS
from ui.highlight import escape_html, mark, snippet
from ui.safe import md

LINE_ENDING = re.compile(r"\r\n|\r|\n")


def _html(inner: str) -> None:
    # One line inside a <div>: Markdown leaves an HTML block alone up to the first blank line, so "# " or
    # "![i](…)" in a chunk stay text; every CommonMark line ending becomes <br> so no blank line can end it.
    st.markdown(f"<div>{LINE_ENDING.sub('<br>', inner)}</div>", unsafe_allow_html=True)


def _save_label(labels: LabelStore, query: str, document: str, key: str) -> None:
    value = st.session_state.get(key)
    labels.set_label(query, document, None if value is None else int(value))


def _label(labels: LabelStore | None, query: str, chunk: Chunk, column: str, given: dict[str, int]) -> None:
    """0-3 relevance of the chunk's document for this query, saved in the workspace as it is clicked."""
    if labels is None:
        return
    document = document_key(chunk)
    key = f"label_{column}_{chunk.chunk_id}"
    # Both columns can show the same document: each run starts both widgets from the stored label.
    st.session_state[key] = str(given[document]) if given.get(document) in GRADES else None
    st.segmented_control(
        "Relevance",
        [str(g) for g in GRADES],
        key=key,
        on_change=_save_label,
        args=(labels, query, document, key),
        help="Your judgment of this document for this query: 0 not relevant … 3 highly relevant",
    )


# A card's frame, drawn by the browser's CSS rather than by a Streamlit container per card.
CARD = (
    '<div style="border:1px solid rgba(128,132,149,0.35);border-radius:0.5rem;padding:0.6rem 0.8rem;'
    'margin-bottom:0.5rem">'
)
COLOURS = {"green": "#21c354", "red": "#ff4b4b", "gray": "#808495"}


def _coloured(colour: str, inner: str) -> str:
    return f'<span style="color:{COLOURS[colour]}">{inner}</span>'


def _card_body(header: str, chunk: Chunk, query: str) -> str:
    return f"{header}<br><small>{chunk.location(escape_html)}</small><br>{snippet(chunk.text, query)}"


def _cards(rows: list[tuple[str, Chunk]], query: str) -> None:
    """Every card of a column in one element, each with its full text in a <details> (the browser opens
    it without a rerun). One element, not a bordered container, an expander and a Markdown block per
    card: what the browser redraws on every search (docs/performance.md)."""
    if rows:
        cards = (
            f"{CARD}{_card_body(header, chunk, query)}<details><summary>Full chunk</summary>{mark(chunk.text, query)}"
            "</details></div>"
            for header, chunk in rows
        )
        _html("".join(cards))


def _labelled_card(header: str, chunk: Chunk, query: str, labels: LabelStore, column: str, given: dict) -> None:
    """A card with its label control: Streamlit elements of its own, so the control sits under its card."""
    with st.container(border=True):
        _html(_card_body(header, chunk, query))
        # The full text is sent only once the expander is opened (a fragment rerun): most rows never are.
        full = st.expander("Full chunk", key=f"full_{column}_{chunk.chunk_id}", on_change="rerun")
        with full:
            if full.open:
                _html(mark(chunk.text, query))
        _label(labels, query, chunk, column, given)


def _column_cards(rows: list[tuple[str, Chunk]], query: str, labels: LabelStore | None, column: str) -> None:
    """``rows``: (header as HTML, made of our own text only; chunk)."""
    if labels is None:
        _cards(rows, query)
        return
    given = labels.labels_for(query)
    for header, chunk in rows:
        _labelled_card(header, chunk, query, labels, column, given)


def provenance(sources: dict[str, int]) -> str:
    """Which first-stage lists a candidate came from, with its rank in each: "dense #3 · BM25 #1"."""
    return " · ".join(f"{label} #{sources[name]}" for name, label in LIST_LABELS.items() if name in sources)


def first_stage_column(
    title: str, caption: str, items: list[RetrievedChunk], score_name: str, result: SearchResult, show: int,
    labels: LabelStore | None, column: str, mark_sources: bool = False,
) -> None:  # fmt: skip
    st.subheader(title)
    st.caption(caption)
    if not items:
        st.info(
            "No results: the index is empty. Load documents on the Documents page."
            if column == "dense"
            else "No results: no indexed chunk shares a word with the query (after stop words and stemming)."
        )
    rows = []
    for item in items[:show]:
        header = f"<strong>#{item.rank}</strong> · {score_name} <strong>{item.score:.4g}</strong>"
        if mark_sources:
            header += f" · from {provenance(item.sources)}"
        rows.append((header, item.chunk))
    _column_cards(rows, result.query, labels, column)


def dense_column(result: SearchResult, show: int, labels: LabelStore | None = None) -> None:
    first_stage_column(
        "Dense (bi-encoder)",
        f"Top {len(result.dense)} by cosine similarity of the query and chunk embeddings.",
        result.dense, "cosine", result, show, labels, "dense",
    )  # fmt: skip


def lexical_column(result: SearchResult, show: int, labels: LabelStore | None = None) -> None:
    """BM25's list, or the hybrid list with where each candidate came from."""
    if result.first_stage.mode == "bm25":
        first_stage_column(
            "BM25",
            f"Top {len(result.bm25)} by BM25 ({result.lexical_engine}; English analyzer: lowercase, stop words, "
            "stemming).",
            result.bm25, "BM25", result, show, labels, "bm25",
        )  # fmt: skip
        return
    scale = "RRF score" if result.first_stage.fusion == "rrf" else "fused score"
    first_stage_column(
        "Hybrid",
        f"Top {len(result.fused)} by {result.first_stage.label} of the dense list and {len(result.bm25)} BM25 hits "
        f"({result.lexical_engine}).",
        result.fused, scale, result, show, labels, "hybrid", mark_sources=True,
    )  # fmt: skip


def reranked_column(
    result: SearchResult,
    show: int,
    labels: LabelStore | None = None,
    threshold: float = 0.0,
    weight: float = 1.0,
    below: str = "grey out",
    column: str = "re",
) -> None:
    """The reranked list under the score controls: blend weight, probability threshold (hide or grey out).

    ``column`` names its widgets: unique per column on a page."""
    st.subheader(f"Reranked by {md(result.reranker.rstrip('/').split('/')[-1])}" if result.reranker else "Reranked")
    if result.reranker_error:
        st.warning(md(result.reranker_error), icon="⚠️")
        return
    if not result.reranked:
        st.info("Not reranked yet.")
        return
    blended = weight < 1.0
    st.caption(
        f"Top {len(result.reranked)} {result.first_stage.label} candidates rescored by {md(result.reranker)}. "
        f"**P(relevant) = {result.probability_label}** ({md(result.calibration.reason)}); the raw logit is the "
        "model's score before calibration."
        + (
            f" Ordered by {weight:.2f} × P(relevant) + {1 - weight:.2f} × first-stage score (min-max over these "
            "candidates)."
            if blended
            else ""
        )
    )
    if result.instruction:
        st.caption(f"Instruction given to the reranker: {md(result.instruction)}")
    if result.reranker_truncated:
        st.warning(
            f"{result.reranker_truncated} of {len(result.reranked)} candidates are longer than the reranker's "
            "window and were scored on their beginning only. Use smaller chunks on the Documents page.",
            icon="✂️",
        )
    rows = apply_score_controls(result.reranked, threshold, weight)
    under = sum(row.below_threshold for row in rows)
    if under:
        st.info(
            f"{under} of {len(rows)} candidates have P(relevant) below {threshold:.2f}"
            + (" and are hidden." if below == "hide" else " and are greyed out.")
        )
    shown = [row for row in rows if not (below == "hide" and row.below_threshold)]
    cards = [(_reranked_header(row, result, blended), row.item.chunk) for row in shown[:show]]
    _column_cards(cards, result.query, labels, column)


def _reranked_header(row: ShownRow, result: SearchResult, blended: bool) -> str:
    item = row.item
    move = movement_label(item.first_stage_rank - row.rank, row.rank, item.first_stage_rank)
    colour = "green" if item.first_stage_rank > row.rank else "red" if item.first_stage_rank < row.rank else "gray"
    details = (
        f"P(relevant) <strong>{item.probability:.3f}</strong> · logit {item.logit:+.2f} · was #{item.first_stage_rank}"
    )
    if blended:
        details += f" · blended {row.score:.3f}"
    if result.first_stage.mode != "dense":
        details += f" · from {provenance(item.sources)}"
    if item.rank_without_instruction is not None:
        change = item.rank_without_instruction - item.rank
        effect = f"↑{change}" if change > 0 else f"↓{-change}" if change < 0 else "="
        details += f" · instruction {effect} (reranker #{item.rank_without_instruction} without, #{item.rank} with)"
    if row.below_threshold:
        return _coloured("gray", f"<strong>#{row.rank}</strong> {move} · {details} · below the threshold")
    return f"<strong>#{row.rank}</strong> {_coloured(colour, move)} · {details}"
