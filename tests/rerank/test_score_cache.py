"""The reranker score cache: the same scores as the model, kept across processes, keyed by what decides them."""

from __future__ import annotations

import numpy as np
import pytest

from core.rerank.local import load_reranker
from core.rerank.score_cache import CachedReranker, ScoreCache

TEXTS = ["Bond prices fall when yields rise.", "The borrow checker enforces ownership.", 'quotes " and \\ and <b>']


@pytest.fixture(scope="module")
def tiny(tiny_zerank_path):
    return load_reranker(str(tiny_zerank_path), device="cpu")


def test_cached_scores_are_the_models_and_a_second_call_scores_nothing(tmp_path, tiny):
    direct = tiny.score("what moves bond prices?", TEXTS)
    cached = CachedReranker(tiny, ScoreCache(tmp_path / "scores.sqlite"))
    first = cached.score("what moves bond prices?", TEXTS + TEXTS[:1])  # a repeated text is scored once
    assert np.array_equal(first, np.append(direct, direct[0]).astype(np.float64))
    assert cached.pair_counts() == (3, 1)
    scored_by_model = tiny.pairs_scored
    again = cached.score("what moves bond prices?", list(reversed(TEXTS)))
    assert np.array_equal(again, direct[::-1].astype(np.float64))
    assert tiny.pairs_scored == scored_by_model and cached.pair_counts() == (3, 4)


def test_the_cache_outlives_the_process_and_separates_queries_texts_and_models(tmp_path, tiny):
    path = tmp_path / "scores.sqlite"
    CachedReranker(tiny, ScoreCache(path)).score("q", TEXTS)
    reopened = CachedReranker(tiny, ScoreCache(path))
    reopened.score("q", TEXTS)
    assert reopened.pair_counts() == (0, 3)
    reopened.score("q\n", TEXTS)  # a different query text (an instruction, a newline) is a different pair
    reopened.score("q", [TEXTS[0] + " "])
    assert reopened.pair_counts() == (4, 3)
    keys = {reopened.key("q", TEXTS[0]), reopened.key("q ", TEXTS[0]), reopened.key("q", TEXTS[1])}
    assert len(keys) == 3
    assert len(ScoreCache(path)) == 7
