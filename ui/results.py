"""The two result columns of the search page."""

from __future__ import annotations

import html

import streamlit as st

from core.chunking import Chunk
from core.highlight import mark, snippet
from core.labels import GRADES, LabelStore, document_key
from core.search import SearchResult, movement_label


def _where(chunk: Chunk) -> str:
    where = html.escape(chunk.source)
    if chunk.doc_id != chunk.source:
        where += f" › {html.escape(chunk.doc_id)}"
    if chunk.page is not None:
        where += f" · page {chunk.page}"
    return where + f" · chars {chunk.start}–{chunk.end}"


def _html(inner: str) -> None:
    # One line inside a <div>: markdown leaves an HTML block alone, so "# " or "*" in a chunk stay text.
    st.markdown(f"<div>{inner.replace(chr(10), '<br>')}</div>", unsafe_allow_html=True)


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


def _row(header: str, chunk: Chunk, query: str, labels: LabelStore | None, column: str, given: dict) -> None:
    with st.container(border=True):
        st.markdown(header)
        _html(f"<small>{_where(chunk)}</small>")
        _html(snippet(chunk.text, query))
        with st.expander("Full chunk"):
            _html(mark(chunk.text, query))
        _label(labels, query, chunk, column, given)


def bi_encoder_column(result: SearchResult, show: int, labels: LabelStore | None = None) -> None:
    st.subheader("Bi-encoder")
    st.caption(f"Top {len(result.bi_encoder)} by cosine similarity of the query and chunk embeddings.")
    if not result.bi_encoder:
        st.info("No results: the index is empty. Load documents on the Documents page.")
    given = labels.labels_for(result.query) if labels else {}
    for item in result.bi_encoder[:show]:
        _row(f"**#{item.rank}** · cosine **{item.score:.3f}**", item.chunk, result.query, labels, "bi", given)


def reranked_column(result: SearchResult, show: int, labels: LabelStore | None = None) -> None:
    st.subheader(f"Reranked by {result.reranker.rstrip('/').split('/')[-1]}" if result.reranker else "Reranked")
    if result.reranker_error:
        st.warning(result.reranker_error, icon="⚠️")
        return
    if not result.reranked:
        st.info("Not reranked yet.")
        return
    st.caption(
        f"Top {len(result.reranked)} bi-encoder candidates rescored by {result.reranker}. "
        f"**P(relevant) = {result.probability_label}**; the raw logit is the model's score before calibration."
    )
    if result.reranker_truncated:
        st.warning(
            f"{result.reranker_truncated} of {len(result.reranked)} candidates are longer than the reranker's "
            "window and were scored on their beginning only. Use smaller chunks on the Documents page.",
            icon="✂️",
        )
    given = labels.labels_for(result.query) if labels else {}
    for item in result.reranked[:show]:
        move = movement_label(item.movement, item.rank, item.bi_encoder_rank)
        colour = "green" if item.movement > 0 else "red" if item.movement < 0 else "gray"
        header = (
            f"**#{item.rank}** :{colour}[{move}] · P(relevant) **{item.probability:.3f}** · "
            f"logit {item.logit:+.2f} · was #{item.bi_encoder_rank}"
        )
        _row(header, item.chunk, result.query, labels, "re", given)
