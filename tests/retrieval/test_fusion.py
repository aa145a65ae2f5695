"""Rank fusion and score blending: hand-computed examples, and ranx as an independent reference.

ranx (``fuse`` with ``rrf``, and ``wsum`` over ``min-max`` normalised runs) is compiled by numba on
first use, which takes a while, so every ranx comparison lives in this module and calls it few times.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.chunks import Chunk
from core.retrieval.first_stage import fuse
from core.retrieval.fusion import RRF_K, blend, min_max, ranked, reciprocal_rank_fusion, weighted_fusion
from core.retrieval.pipeline import FirstStage
from core.retrieval.results import BM25, DENSE, RetrievedChunk

# --- hand-computed examples -------------------------------------------------------------------


def test_min_max_by_hand():
    assert min_max({"x": 2.0, "y": 4.0, "z": 3.0}) == {"x": 0.0, "y": 1.0, "z": 0.5}
    # (-1 - -3) / (5 - -3) = 2 / 8
    assert min_max({"a": -3.0, "b": -1.0, "c": 5.0}) == {"a": 0.0, "b": 0.25, "c": 1.0}
    # A list whose scores are all equal (one hit, say) maps to 1.0, by design.
    assert min_max({"only": 7.5}) == {"only": 1.0}
    assert min_max({"p": 0.3, "q": 0.3}) == {"p": 1.0, "q": 1.0}
    assert min_max({}) == {}


def test_rrf_by_hand_with_ids_in_one_list_only():
    fused = reciprocal_rank_fusion({"dense": ["a", "b", "c"], "bm25": ["c", "d"]})
    # a: rank 1 in dense only            -> 1/61
    # b: rank 2 in dense only            -> 1/62
    # c: rank 3 in dense, rank 1 in bm25 -> 1/63 + 1/61
    # d: rank 2 in bm25 only             -> 1/62
    assert fused == pytest.approx({"a": 1 / 61, "b": 1 / 62, "c": 1 / 63 + 1 / 61, "d": 1 / 62}, abs=1e-15)
    assert fused["c"] == pytest.approx(0.032266, abs=1e-6)  # 0.015873 + 0.016393
    # b and d tie at 1/62: the tiebreak (dense, then bm25) puts b first.
    assert ranked(fused, ["a", "b", "c", "c", "d"]) == ["c", "a", "b", "d"]
    assert RRF_K == 60


def test_rrf_k_is_a_parameter():
    fused = reciprocal_rank_fusion({"x": ["a", "b"], "y": ["b"]}, k=1)
    # a: 1/(1+1) = 0.5; b: 1/(1+2) + 1/(1+1) = 0.8333...
    assert fused == pytest.approx({"a": 0.5, "b": 1 / 3 + 1 / 2}, abs=1e-15)
    assert reciprocal_rank_fusion({}) == {}
    assert reciprocal_rank_fusion({"x": [], "y": []}) == {}


def test_weighted_fusion_by_hand():
    dense = {"a": 0.9, "b": 0.7, "c": 0.5}
    bm25 = {"c": 12.0, "e": 8.0, "d": 4.0}
    fused = weighted_fusion({"dense": dense, "bm25": bm25}, {"dense": 0.7, "bm25": 0.3})
    # min-max dense: a 1, b 0.5, c 0; min-max bm25: c 1, e 0.5, d 0
    # a: 0.7*1   + (missing from bm25) 0  = 0.7
    # b: 0.7*0.5                          = 0.35
    # c: 0.7*0   + 0.3*1                  = 0.3
    # e: (missing from dense) 0 + 0.3*0.5 = 0.15
    # d: 0.3*0                            = 0.0
    assert fused == pytest.approx({"a": 0.7, "b": 0.35, "c": 0.3, "e": 0.15, "d": 0.0}, abs=1e-12)
    assert ranked(fused) == ["a", "b", "c", "e", "d"]
    # A list with no weight contributes nothing; its ids are still present, at 0.
    only_dense = weighted_fusion({"dense": dense, "bm25": bm25}, {"dense": 1.0})
    assert only_dense == pytest.approx({"a": 1.0, "b": 0.5, "c": 0.0, "e": 0.0, "d": 0.0})


def test_ranked_ties_follow_the_tiebreak_then_insertion_order():
    scores = {"x": 1.0, "y": 2.0, "z": 1.0, "w": 1.0}
    assert ranked(scores) == ["y", "x", "z", "w"]  # insertion order among the 1.0s
    assert ranked(scores, ["w", "z"]) == ["y", "w", "z", "x"]  # tiebreak first, then the rest as inserted
    assert ranked({}) == []


def test_blend_by_hand():
    assert blend(0.8, 0.2, 1.0) == 0.8
    assert blend(0.8, 0.2, 0.0) == 0.2
    assert blend(0.8, 0.2, 0.25) == pytest.approx(0.25 * 0.8 + 0.75 * 0.2)  # 0.35
    assert blend(0.8, 0.2, 0.25) == pytest.approx(0.35)
    for weight in (-0.01, 1.01, float("nan")):
        with pytest.raises(ValueError, match="blend weight"):
            blend(0.5, 0.5, weight)


# --- against ranx on random runs --------------------------------------------------------------


def _random_runs(seed: int, distinct: bool) -> tuple[dict, dict]:
    """Two runs (dense-like and BM25-like) over 8 queries: different lengths, partial overlap, ties.

    ``distinct``: every list's scores differ (RRF needs an unambiguous rank); otherwise scores are
    rounded so that ties are common. Every list has at least two different scores (see below).
    """
    rng = np.random.default_rng(seed)
    runs: tuple[dict, dict] = ({}, {})
    for q in range(8):
        pool = [f"d{i}" for i in range(rng.integers(5, 40))]
        for run, (low, high) in zip(runs, ((-0.2, 0.9), (0.0, 25.0))):
            n = int(rng.integers(2, len(pool) + 1))
            ids = [str(doc) for doc in rng.choice(pool, size=n, replace=False)]
            while True:
                if distinct:
                    scores = rng.permutation(np.linspace(low, high, n) + rng.uniform(0, 1e-3))
                else:
                    scores = np.round(rng.uniform(low, high, n), 1 if high < 2 else 0)
                if len(set(scores.tolist())) > 1:
                    break
            run[f"q{q}"] = {doc: float(s) for doc, s in zip(ids, scores)}
    return runs


def _by_score(scores: dict[str, float]) -> list[str]:
    return sorted(scores, key=lambda doc: -scores[doc])


def _assert_same_scores(ours: dict[str, float], reference: dict[str, float]):
    assert set(ours) == set(reference)
    for doc, value in reference.items():
        assert ours[doc] == pytest.approx(value, abs=1e-9), doc


def test_rrf_and_weighted_fusion_equal_ranx():
    from ranx import Run, fuse

    dense, bm25 = _random_runs(seed=7, distinct=True)
    reference = fuse([Run(dense), Run(bm25)], norm=None, method="rrf", params={"k": 60}).to_dict()
    assert set(reference) == set(dense)
    overlaps = 0
    for qid in dense:
        ours = reciprocal_rank_fusion({"dense": _by_score(dense[qid]), "bm25": _by_score(bm25[qid])}, k=60)
        _assert_same_scores(ours, reference[qid])
        overlaps += bool(set(dense[qid]) & set(bm25[qid])) and bool(set(dense[qid]) ^ set(bm25[qid]))
    assert overlaps >= 4  # partial overlap is actually exercised

    dense, bm25 = _random_runs(seed=11, distinct=False)
    ties = sum(len(set(r[q].values())) < len(r[q]) for r in (dense, bm25) for q in r)
    assert ties >= 8  # ties are actually exercised
    for w in (0.0, 0.3, 0.5, 0.85, 1.0):
        reference = fuse([Run(dense), Run(bm25)], norm="min-max", method="wsum", params={"weights": [w, 1 - w]})
        reference = reference.to_dict()
        for qid in dense:
            ours = weighted_fusion({"dense": dense[qid], "bm25": bm25[qid]}, {"dense": w, "bm25": 1 - w})
            _assert_same_scores(ours, reference[qid])


def test_a_list_of_equal_scores_is_where_we_differ_from_ranx():
    """ranx divides by max(max - min, 1e-9) and gives such a list 0; we give it 1 (documented above)."""
    from ranx import Run, fuse

    dense = {"q": {"a": 0.8, "b": 0.4}}
    bm25 = {"q": {"c": 3.0}}  # one hit
    reference = fuse([Run(dense), Run(bm25)], norm="min-max", method="wsum", params={"weights": [0.5, 0.5]})
    assert reference.to_dict()["q"]["c"] == pytest.approx(0.0)
    ours = weighted_fusion({"dense": dense["q"], "bm25": bm25["q"]}, {"dense": 0.5, "bm25": 0.5})
    assert ours == pytest.approx({"a": 0.5, "b": 0.0, "c": 0.5})


# --- core.retrieval.first_stage.fuse on retrieved chunks -----------------------------------------------------


def _chunk(cid: str) -> Chunk:
    return Chunk(cid, f"{cid}.md", f"{cid}.md", cid.upper(), None, 0, 10, f"text of {cid}")


def _listed(name: str, scored: list[tuple[str, float]]) -> list[RetrievedChunk]:
    return [RetrievedChunk(r, _chunk(cid), s, {name: r}) for r, (cid, s) in enumerate(scored, start=1)]


DENSE_LIST = _listed(DENSE, [("a", 0.91), ("b", 0.85), ("c", 0.60), ("e", 0.41)])
BM25_LIST = _listed(BM25, [("c", 14.0), ("d", 9.0), ("a", 2.0)])


def test_fuse_rrf_keeps_provenance_and_scores():
    fused = fuse(DENSE_LIST, BM25_LIST, FirstStage("hybrid", "rrf"), k=10)
    # a: 1/61 + 1/63; c: 1/63 + 1/61 (an exact tie: see test_fuse_ties_keep_the_dense_order_for_ids_in_both);
    # b: 1/62; d: 1/62 (tie: b is in the dense list, d only in BM25, so b first); e: 1/64
    assert {r.chunk.chunk_id for r in fused[:2]} == {"a", "c"}
    assert [r.chunk.chunk_id for r in fused[2:]] == ["b", "d", "e"]
    assert [r.rank for r in fused] == [1, 2, 3, 4, 5]
    expected = {"a": 1 / 61 + 1 / 63, "c": 1 / 63 + 1 / 61, "b": 1 / 62, "d": 1 / 62, "e": 1 / 64}
    assert {r.chunk.chunk_id: r.score for r in fused} == pytest.approx(expected, abs=1e-15)
    assert {r.chunk.chunk_id: r.sources for r in fused} == {
        "a": {DENSE: 1, BM25: 3},
        "c": {DENSE: 3, BM25: 1},
        "b": {DENSE: 2},
        "d": {BM25: 2},
        "e": {DENSE: 4},
    }
    assert all(r.chunk == _chunk(r.chunk.chunk_id) for r in fused)


def test_fuse_weighted_and_cut_to_k():
    stage = FirstStage("hybrid", "weighted", dense_weight=0.6)
    fused = fuse(DENSE_LIST, BM25_LIST, stage, k=3)
    # dense min-max over [0.41, 0.91]: a 1, b 0.88, c 0.38, e 0
    # bm25 min-max over [2, 14]: c 1, d 7/12, a 0
    # a: 0.6;  b: 0.6*0.88 = 0.528;  c: 0.6*0.38 + 0.4 = 0.628;  d: 0.4*7/12 = 0.2333;  e: 0
    assert [r.chunk.chunk_id for r in fused] == ["c", "a", "b"]
    assert [r.rank for r in fused] == [1, 2, 3]
    assert [r.score for r in fused] == pytest.approx([0.6 * 0.38 + 0.4, 0.6, 0.6 * 0.88], abs=1e-12)
    assert [r.sources for r in fused] == [{DENSE: 3, BM25: 1}, {DENSE: 1, BM25: 3}, {DENSE: 2}]
    assert fuse(DENSE_LIST, BM25_LIST, stage, k=0) == []


def test_fuse_ties_keep_the_dense_order():
    dense = _listed(DENSE, [("p", 0.9), ("q", 0.8)])
    bm25 = _listed(BM25, [("r", 5.0), ("s", 4.0)])
    # Disjoint lists: p and r both score 1/61, q and s 1/62; the dense one goes first each time.
    fused = fuse(dense, bm25, FirstStage("hybrid", "rrf"), k=10)
    assert [r.chunk.chunk_id for r in fused] == ["p", "r", "q", "s"]
    # Weighted, equal weights: p and r score 0.5*1, q and s 0.5*0.
    fused = fuse(dense, bm25, FirstStage("hybrid", "weighted", 0.5), k=10)
    assert [(r.chunk.chunk_id, r.score) for r in fused] == [("p", 0.5), ("r", 0.5), ("q", 0.0), ("s", 0.0)]


def test_fuse_ties_keep_the_dense_order_for_ids_in_both():
    # The first-seen position of a repeated id is the one that counts, as "ties keep the order of tiebreak" says.
    assert ranked({"x": 1.0, "y": 1.0}, ["x", "y", "y", "x"]) == ["x", "y"]
    # Reversed lists tie everywhere: the dense order decides, whichever list holds it.
    fused = fuse(_listed(DENSE, [("x", 0.9), ("y", 0.8)]), _listed(BM25, [("y", 5.0), ("x", 4.0)]),
                 FirstStage("hybrid", "rrf"), k=10)  # fmt: skip
    assert fused[0].score == fused[1].score
    assert [r.chunk.chunk_id for r in fused] == ["x", "y"]
    # a: dense 1 + BM25 3, c: dense 3 + BM25 1 tie exactly; a is first in the dense list.
    fused = fuse(DENSE_LIST, BM25_LIST, FirstStage("hybrid", "rrf"), k=10)
    assert [r.chunk.chunk_id for r in fused] == ["a", "c", "b", "d", "e"]
    # Weighted, equal weights: x is 0.5*1 + 0.5*0, y is 0.5*0 + 0.5*1: a tie.
    fused = fuse(_listed(DENSE, [("x", 0.9), ("y", 0.8)]), _listed(BM25, [("y", 5.0), ("x", 4.0)]),
                 FirstStage("hybrid", "weighted", 0.5), k=10)  # fmt: skip
    assert [(r.chunk.chunk_id, r.score) for r in fused] == [("x", 0.5), ("y", 0.5)]


def test_fuse_with_an_empty_list():
    fused = fuse(DENSE_LIST, [], FirstStage("hybrid", "rrf"), k=10)
    assert [r.chunk.chunk_id for r in fused] == ["a", "b", "c", "e"]
    assert [r.sources for r in fused] == [{DENSE: 1}, {DENSE: 2}, {DENSE: 3}, {DENSE: 4}]
    assert fuse([], BM25_LIST, FirstStage("hybrid", "weighted", 0.5), k=10)[0].sources == {BM25: 1}
    assert fuse([], [], FirstStage("hybrid", "rrf"), k=10) == []


def test_weighted_hybrid_at_weight_one_is_the_dense_list_alone():
    def listed(ids, scores, name):
        return [
            RetrievedChunk(r, Chunk(i, "f", "f", "f", None, 0, 1, i), s, {name: r})
            for r, (i, s) in enumerate(zip(ids, scores), 1)
        ]

    dense = listed(["a", "b", "c"], [0.9, 0.5, 0.1], "dense")
    bm25 = listed(["d", "a"], [7.0, 2.0], "bm25")
    only_dense = fuse(dense, bm25, FirstStage("hybrid", "weighted", 1.0), k=10)
    assert [r.chunk.chunk_id for r in only_dense] == ["a", "b", "c"]  # d, found by BM25 alone, brings nothing
    only_bm25 = fuse(dense, bm25, FirstStage("hybrid", "weighted", 0.0), k=10)
    assert [r.chunk.chunk_id for r in only_bm25] == ["d", "a"]
