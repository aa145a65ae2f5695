"""Agreement between rankings and Holm's correction, against independent implementations."""

from __future__ import annotations

import random

import pytest
from rbo import RankingSimilarity
from statsmodels.stats.multitest import multipletests

from core.evaluation.metrics import holm
from core.experiments.agreement import jaccard_at, new_in_top, rbo_ext


def _random_pairs(n: int, seed: int = 7):
    rng = random.Random(seed)
    for _ in range(n):
        pool = [f"doc-{i}" for i in range(rng.randint(1, 40))]
        yield rng.sample(pool, rng.randint(1, len(pool))), rng.sample(pool, rng.randint(1, len(pool)))


def test_extrapolated_rbo_matches_the_rbo_package_on_lists_of_any_lengths():
    for a, b in _random_pairs(500):
        for p in (0.9, 0.5, 0.98):
            assert rbo_ext(a, b, p) == pytest.approx(RankingSimilarity(a, b).rbo_ext(p=p), abs=1e-12), (a, b, p)


def test_rbo_of_identical_disjoint_and_empty_rankings():
    ranking = [f"d{i}" for i in range(25)]
    assert rbo_ext(ranking, ranking) == pytest.approx(1.0)
    assert rbo_ext(ranking[:10], ranking) == pytest.approx(1.0)  # a prefix agrees fully, extrapolated
    assert rbo_ext(["a", "b"], ["c", "d"]) == 0.0
    assert rbo_ext([], []) == 1.0 and rbo_ext(["a"], []) == 0.0
    # Top-weighted: swapping the first two costs more than swapping the last two.
    top_swap = ["d1", "d0"] + ranking[2:]
    bottom_swap = ranking[:-2] + [ranking[-1], ranking[-2]]
    assert rbo_ext(top_swap, ranking) < rbo_ext(bottom_swap, ranking) < 1.0


def test_jaccard_and_new_in_top10_count_sets_not_order():
    base = [f"d{i}" for i in range(20)]
    shuffled = list(reversed(base[:10])) + base[10:]
    assert jaccard_at(shuffled, base) == 1.0 and new_in_top(shuffled, base) == 0
    three_new = ["x", "y", "z"] + base[:7]
    assert new_in_top(three_new, base) == 3
    assert jaccard_at(three_new, base) == pytest.approx(7 / 13)
    assert jaccard_at([], []) == 1.0


def test_holm_matches_statsmodels():
    rng = random.Random(3)
    for _ in range(40):  # multipletests takes about 0.1 s a call
        values = {f"p{i}": rng.choice([rng.random(), rng.random() / 50, 1.0, 0.0]) for i in range(rng.randint(1, 9))}
        expected = multipletests(list(values.values()), method="holm")[1]
        adjusted = holm(values)
        assert [adjusted[name] for name in values] == pytest.approx(list(expected), abs=1e-12)
