"""The progress bar of a reranking scored in slices (core.retrieval.search.progress_slice)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import streamlit as st


@contextmanager
def rerank_progress(slice_size: int | None) -> Iterator[Callable[[int, int], None] | None]:
    """The callback that moves a bar after each slice, the bar gone once the scores are in; None, and no
    bar, for a reranking that goes in one call."""
    if not slice_size:
        yield None
        return
    bar = st.progress(0.0, text="Reranking…")

    def scored(done: int, total: int) -> None:
        bar.progress(done / total, text=f"Reranked {done} of {total} pairs")

    yield scored
    bar.empty()
