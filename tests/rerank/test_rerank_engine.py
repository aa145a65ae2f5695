"""The rerank engine on the tiny zerank-architecture model: the same scores as predict and as plain
transformers, whatever the batching, and the benchmark's report.

The reference is independent of sentence-transformers: the chat template with the query as the system
turn and the document as the user turn plus the assistant prefix, one unpadded sequence at a time
through the full causal LM, and the "Yes" logit at the last token.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from core.rerank.base import RerankerLoadError
from core.rerank.engine import RerankEngine, unsupported_reason
from core.rerank.local import load_reranker
from tests.tiny_zerank import reference_scorer

QUERY = "What is the duration of a bond and how does it relate to interest rate risk?"
DOCUMENTS = [
    "Duration measures how much a bond's price changes when interest rates move by one percentage point.",
    "The court held that the contract was void.",
    "Yes",
    "x",
    "A mutex is a lock that lets one thread at a time into a critical section; the code waits on it.\n\n" * 6,
    "  \n leading whitespace and a trailing newline\n",
    "Ünïcödé text — with accents, 中文字符 and emoji 🙂 — must be scored like any other document.",
    "long neighbour " * 120,  # about 1700 tokens, inside the 2048-token window
]


@pytest.fixture(scope="module")
def reranker(tiny_zerank_path):
    return load_reranker(str(tiny_zerank_path), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def predict_reranker(tiny_zerank_path):
    return load_reranker(str(tiny_zerank_path), device="cpu", dtype="float32", engine="predict")


@pytest.fixture(scope="module")
def reference(tiny_zerank_path):
    return reference_scorer(tiny_zerank_path)


def predict(model, pairs, batch_size=4) -> np.ndarray:
    return model.predict(pairs, batch_size=batch_size, activation_fn=torch.nn.Identity(), convert_to_numpy=True)


def test_engine_scores_by_default_and_predict_on_request(reranker, predict_reranker):
    assert reranker.scoring == "engine"
    assert predict_reranker.scoring == "predict"
    assert reranker.score(QUERY, []).shape == (0,)


def test_scores_equal_reference_and_predict(reranker, predict_reranker, reference):
    logits = reranker.score(QUERY, DOCUMENTS)
    expected = np.array([reference(QUERY, d) for d in DOCUMENTS])
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(logits, predict_reranker.score(QUERY, DOCUMENTS, batch_size=3), atol=1e-4, rtol=0)
    assert np.ptp(expected) > 0.5  # the scores spread, so the equalities prove something


def test_token_ids_are_predicts(reranker):
    """Each row is exactly what predict's preprocessing gives the pair alone, with no padding."""
    engine = reranker._engine
    pairs = [(QUERY, d) for d in DOCUMENTS]
    rows = engine.tokenize(pairs)
    for pair, row in zip(pairs, rows):
        alone = reranker.model.preprocess([pair])
        assert alone["attention_mask"].all()
        assert alone["input_ids"][0].tolist() == row
    tokenizer = reranker.model[0].tokenizer
    assert tokenizer.decode(rows[1]).endswith("<|im_start|>assistant\n")


def test_truncated_pairs_score_as_predict_does(reranker, predict_reranker):
    """Over the window, predict truncates and restores the template's suffix; the engine sees the same ids."""
    window = reranker.window
    texts = ["word " * (window + 50), "short text"]
    rows = reranker._engine.tokenize([(QUERY, t) for t in texts])
    assert len(rows[0]) == window
    np.testing.assert_allclose(reranker.score(QUERY, texts), predict_reranker.score(QUERY, texts), atol=1e-4, rtol=0)


@pytest.mark.parametrize("budget", [1, 64, 300, 2000, 100_000])
def test_scores_do_not_depend_on_the_token_budget(reranker, budget):
    alone = np.array([reranker.score(QUERY, [d])[0] for d in DOCUMENTS])
    engine = RerankEngine(reranker.model, token_budget=budget)
    np.testing.assert_allclose(engine.score(QUERY, DOCUMENTS), alone, atol=1e-4, rtol=0)
    for max_rows in (1, 2, 5):
        engine = RerankEngine(reranker.model, token_budget=budget, max_rows=max_rows)
        np.testing.assert_allclose(engine.score(QUERY, DOCUMENTS), alone, atol=1e-4, rtol=0)


def test_batches_respect_the_budget_longest_first():
    engine = RerankEngine.__new__(RerankEngine)
    engine.token_budget, engine.max_rows = 100, 3
    lengths = [10, 60, 30, 30, 5, 120, 20, 20, 20, 20]
    batches = engine.batches(lengths)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    flat = [lengths[i] for batch in batches for i in batch]
    assert flat == sorted(lengths, reverse=True)
    for batch in batches:
        padded = max(lengths[i] for i in batch)
        assert len(batch) <= 3
        assert len(batch) * padded <= 100 or len(batch) == 1


def test_neighbours_of_very_different_lengths(reranker):
    """A short pair batched with a window-long one (much right padding) scores as it does alone."""
    engine = RerankEngine(reranker.model, token_budget=100_000)
    short, long = DOCUMENTS[1], "long neighbour " * 300
    alone = engine.score(QUERY, [short])[0]
    before = engine.stats.batches
    together = engine.score(QUERY, [long, short, "x"])
    assert engine.stats.batches == before + 1  # one batch: the neighbours really shared it
    assert abs(together[1] - alone) < 1e-4
    assert abs(engine.score(QUERY, [short, "x"])[0] - alone) < 1e-4


def test_pairs_with_different_queries(reranker, predict_reranker):
    pairs = [(QUERY, DOCUMENTS[0]), ("court ruling", DOCUMENTS[1]), ("", DOCUMENTS[2]), ("a" * 300, "b")]
    np.testing.assert_allclose(
        reranker._engine.score_pairs(pairs), predict(predict_reranker.model, pairs), atol=1e-4, rtol=0
    )


def test_two_token_head_is_a_difference_of_logits(tiny_zerank_path):
    """LogitScore with a false token scores logit(true) - logit(false); the engine reads both rows."""
    model = load_reranker(str(tiny_zerank_path), device="cpu", dtype="float32", engine="predict").model
    tokenizer = model[0].tokenizer
    model[1].false_token_id = tokenizer.convert_tokens_to_ids("the")
    pairs = [(QUERY, d) for d in DOCUMENTS[:4]]
    np.testing.assert_allclose(RerankEngine(model).score_pairs(pairs), predict(model, pairs), atol=1e-4, rtol=0)


def test_models_the_engine_cannot_score(tiny_zerank_path):
    assert unsupported_reason([object()]) is not None
    model = load_reranker(str(tiny_zerank_path), device="cpu", dtype="float32", engine="predict").model
    assert unsupported_reason(model) is None
    model[0].model.config.final_logit_softcapping = 30.0
    assert "final_logit_softcapping" in unsupported_reason(model)
    with pytest.raises(ValueError, match="cannot score"):
        RerankEngine(model)
    with pytest.raises(RerankerLoadError, match="unknown scoring engine"):
        load_reranker(str(tiny_zerank_path), device="cpu", engine="fastest")


def test_benchmark_report(tmp_path, capsys):
    """Through the command the README gives: python -m core bench-rerank … --json."""
    from core.cli import main

    args = ["bench-rerank", "--config", "tiny", "--device", "cpu", "--pairs", "6", "--tokens", "48", "--repeats", "1"]
    assert main(args + ["--json", "--model-dir", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["engine"]["pairs_per_s"] > 0 and report["baseline"]["pairs_per_s"] > 0
    assert report["speedup"] > 0
    assert report["max_abs_logit_diff"] < 1e-3
    assert report["pairs"] == 6
    assert 24 <= report["tokens_per_pair_min"] <= report["tokens_per_pair_max"] <= 72


def test_shared_prefix_is_computed_once_and_changes_nothing(reranker):
    """The query's prefix is run once per query; scores equal those without reuse, even for duplicates."""
    texts = DOCUMENTS + [DOCUMENTS[1] + "!", DOCUMENTS[1] + "?"]  # rows that differ in their last tokens
    with_reuse = RerankEngine(reranker.model, token_budget=300)
    without = RerankEngine(reranker.model, token_budget=300, reuse_prefix=False)
    np.testing.assert_allclose(with_reuse.score(QUERY, texts), without.score(QUERY, texts), atol=1e-4, rtol=0)
    assert with_reuse.stats.computed_tokens < without.stats.computed_tokens

    rows = with_reuse.tokenize([(QUERY, t) for t in texts])
    shared = with_reuse.shared_prefix(rows)
    query_tokens = reranker.count_tokens(QUERY)
    assert shared > query_tokens  # the system turn with the query, and the start of the user turn
    assert all(row[:shared] == rows[0][:shared] for row in rows)
    assert with_reuse.shared_prefix([rows[1], rows[1]]) == len(rows[1]) - 1  # each keeps its last token
    assert with_reuse.shared_prefix(rows[:1]) == 0  # one pair alone: nothing to share


def test_identical_texts_tie_exactly(reranker):
    scores = reranker.score(QUERY, ["same text"] * 4 + ["other"] + ["same text"])
    assert len(set(scores[[0, 1, 2, 3, 5]].tolist())) == 1


def test_on_a_busy_cpu_the_engine_uses_the_idle_cores_and_scores_the_same(reranker):
    """Beside processes that keep every core busy the engine drops to one thread, and no score moves."""
    import os

    import torch

    from core.bench.busy import busy_load

    fixed = RerankEngine(reranker.model, adapt_threads=False)
    adaptive = RerankEngine(reranker.model)
    expected = fixed.score(QUERY, DOCUMENTS)
    configured = torch.get_num_threads()
    with busy_load(os.cpu_count() or 1):
        got = adaptive.score(QUERY, DOCUMENTS)
    assert adaptive.stats.threads < max(configured, 2) and adaptive.stats.threads >= 1
    assert torch.get_num_threads() == configured  # put back after the call
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
