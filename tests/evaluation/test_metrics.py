"""Metrics equal pytrec_eval's on the same runs; MaxP, bootstrap and the significance test on known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytrec_eval

from core.evaluation.evaluate import maxp, reranked_then_rest
from core.evaluation.metrics import (
    METRICS,
    bootstrap_ci,
    lift,
    per_query_metrics,
    randomization_p_value,
    strictly_decreasing,
    trec_order,
)


def _random_case(seed: int):
    rng = np.random.default_rng(seed)
    docs = [f"d{i}" for i in range(300)]
    qrels, run = {}, {}
    for q in range(40):
        qid = f"q{q}"
        qrels[qid] = {str(d): int(rng.integers(0, 4)) for d in rng.choice(docs, 20, replace=False)}  # graded 0-3
        qrels[qid][docs[q]] = 2  # at least one relevant
        # Scores rounded to one decimal: many ties, which trec_eval breaks by document id.
        run[qid] = {str(d): float(np.round(rng.random(), 1)) for d in rng.choice(docs, 150, replace=False)}
    qrels["q-none-retrieved"] = {"never-retrieved-1": 3, "never-retrieved-2": 1}
    run["q-none-retrieved"] = {"d1": 0.5, "d2": 0.4}
    qrels["q-not-in-run"] = {"d3": 1}
    return qrels, run


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_pytrec_eval_on_the_same_runs(seed):
    qrels, run = _random_case(seed)
    ours = per_query_metrics(qrels, run)
    measures = {"ndcg_cut_10", "recall_10", "recall_100", "map_cut_100"}
    reference = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    # MRR@10: trec_eval's recip_rank over the run's top 10 in trec_eval's own order.
    top10 = {q: dict(sorted(s.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)[:10]) for q, s in run.items()}
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    names = {"ndcg@10": "ndcg_cut_10", "recall@10": "recall_10", "recall@100": "recall_100", "map@100": "map_cut_100"}
    for qid in qrels:
        if qid == "q-not-in-run":
            assert all(ours[qid][m] == 0.0 for m in METRICS)
            continue
        for ours_name, trec_name in names.items():
            assert ours[qid][ours_name] == pytest.approx(reference[qid][trec_name], abs=1e-6), (qid, ours_name)
        assert ours[qid]["mrr@10"] == pytest.approx(rr[qid]["recip_rank"], abs=1e-6), qid
    assert all(ours["q-none-retrieved"][m] == 0.0 for m in METRICS)


def test_graded_gain_is_trec_evals():
    # Ranking: d3 (grade 0), d1 (grade 2), d2 (grade 1). trec_eval's gain is the grade itself.
    ours = per_query_metrics({"q": {"d1": 2, "d2": 1, "d3": 0}}, {"q": {"d3": 3.0, "d1": 2.0, "d2": 1.0}})["q"]
    dcg = 0 / math.log2(2) + 2 / math.log2(3) + 1 / math.log2(4)
    ideal = 2 / math.log2(2) + 1 / math.log2(3)
    assert ours["ndcg@10"] == pytest.approx(dcg / ideal, abs=1e-12)
    assert ours["mrr@10"] == pytest.approx(0.5)
    assert ours["map@100"] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_ties_are_broken_by_document_id_descending():
    assert trec_order({"a": 1.0, "c": 1.0, "b": 2.0}) == ["b", "c", "a"]
    # Our own rankings never tie: a tie is nudged below its predecessor and the order is kept.
    scores = strictly_decreasing([("x", 1.0), ("a", 1.0), ("m", 0.5), ("b", 0.5)])
    assert trec_order(scores) == ["x", "a", "m", "b"]


def test_maxp_scores_a_document_by_its_best_chunk():
    chunks = [("d1", 0.9), ("d2", 0.8), ("d1", 0.95), ("d3", 0.8), ("d2", 0.1)]
    assert maxp(chunks) == [("d1", 0.95), ("d2", 0.8), ("d3", 0.8)]  # d2 before d3: its best chunk came first
    assert maxp([]) == []


def test_reranked_documents_come_first_then_the_rest_in_first_stage_order():
    run = reranked_then_rest([("d3", 2.0), ("d1", -1.0)], [("d1", 0.9), ("d2", 0.8), ("d3", 0.7), ("d4", 0.6)])
    assert trec_order(run) == ["d3", "d1", "d2", "d4"]
    assert run["d3"] == 2.0 and run["d1"] == -1.0


def test_bootstrap_interval_known_answers():
    assert bootstrap_ci(np.full(20, 0.25)) == (0.25, 0.25)
    rng = np.random.default_rng(7)
    diffs = rng.normal(0.1, 1.0, 2000)
    low, high = bootstrap_ci(diffs)
    half_width = 1.96 * diffs.std(ddof=1) / math.sqrt(len(diffs))  # normal theory, for a large sample
    assert low < diffs.mean() < high
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.1)
    assert bootstrap_ci(diffs, seed=3) == bootstrap_ci(diffs, seed=3)  # reproducible


def test_randomization_test_known_answers():
    # Five positive differences: of the 2^5 sign flips, only all-plus and all-minus are as extreme.
    assert randomization_p_value(np.array([0.1, 0.2, 0.3, 0.4, 0.5])) == pytest.approx(2 / 32)
    # Symmetric differences: the observed mean 0 is as extreme as every flip.
    assert randomization_p_value(np.array([0.3, -0.3, 0.2, -0.2])) == pytest.approx(1.0)
    assert randomization_p_value(np.zeros(5)) == 1.0


def test_lift_pairs_queries():
    before = {"a": 0.5, "b": 0.5, "c": 0.2, "d": 0.9}
    after = {"a": 0.7, "b": 0.4, "c": 0.2, "d": 1.0, "only-after": 1.0}
    result = lift(before, after)
    assert result.queries == 4 and result.helped == 2 and result.hurt == 1
    assert result.mean == pytest.approx((0.2 - 0.1 + 0 + 0.1) / 4)
    assert result.ci95[0] <= result.mean <= result.ci95[1]


def test_a_single_query_lift_is_untestable_not_a_crash():
    result = lift({"a": 0.2}, {"a": 0.5})
    assert result.mean == pytest.approx(0.3) and result.p_value == 1.0 and result.t_test_p_value == 1.0
