"""Combining rankings and scores: rank fusion of first-stage lists, and blending reranker and first-stage scores.

The fusions follow the textbook definitions that ranx implements (its ``rrf`` and ``wsum`` with
``min-max`` normalisation), and the tests check them against ranx on random runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

RRF_K = 60  # Cormack et al. (2009); ranx's default too


def min_max(scores: Mapping[str, float]) -> dict[str, float]:
    """Scores rescaled to [0, 1] within one list; a list whose scores are all equal maps to 1.0.

    Only for combining lists: it always gives the top hit 1.0, so it says nothing about absolute relevance.
    """
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    if high == low:
        return dict.fromkeys(scores, 1.0)
    return {key: (value - low) / (high - low) for key, value in scores.items()}


def reciprocal_rank_fusion(rankings: Mapping[str, Sequence[str]], k: int = RRF_K) -> dict[str, float]:
    """RRF: each id scores the sum over lists of 1 / (k + its 1-based rank there)."""
    fused: dict[str, float] = {}
    for ranking in rankings.values():
        for rank, key in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + 1.0 / (k + rank)
    return fused


def weighted_fusion(scored: Mapping[str, Mapping[str, float]], weights: Mapping[str, float]) -> dict[str, float]:
    """Weighted sum of min-max normalised scores; an id missing from a list gets 0 from it."""
    fused: dict[str, float] = {}
    for name, scores in scored.items():
        weight = weights.get(name, 0.0)
        for key, value in min_max(scores).items():
            fused[key] = fused.get(key, 0.0) + weight * value
    return fused


def ranked(scores: Mapping[str, float], tiebreak: Sequence[str] = ()) -> list[str]:
    """Ids by score, best first; ties keep the order of ``tiebreak`` (then insertion order)."""
    position: dict[str, int] = {}
    for i, key in enumerate(tiebreak):
        position.setdefault(key, i)  # an id listed twice is placed by its first appearance
    order = list(scores)
    first_seen = {key: i for i, key in enumerate(order)}
    return sorted(order, key=lambda key: (-scores[key], position.get(key, len(position)), first_seen[key]))


def blend(probability: float, first_stage: float, weight: float) -> float:
    """``weight`` × reranker probability + (1 − ``weight``) × first-stage score in [0, 1]; 1 = reranker only."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"blend weight must be in [0, 1], got {weight}")
    return weight * probability + (1.0 - weight) * first_stage
