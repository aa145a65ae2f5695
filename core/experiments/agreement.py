"""How much two rankings agree, with no judgments needed: Jaccard of the top k, rank-biased overlap
(Webber, Moffat and Zobel 2010, extrapolated, eq. 32) and how many of a ranking's top k are new.

Each ranking is a list of document ids, best first, without repeats.
"""

from __future__ import annotations

from collections.abc import Sequence

RBO_P = 0.9  # the top 10 carry about 86% of the weight at p = 0.9
TOP = 10


def jaccard_at(a: Sequence[str], b: Sequence[str], k: int = TOP) -> float:
    """|A ∩ B| / |A ∪ B| of the two top-k sets; two empty lists agree fully."""
    top_a, top_b = set(a[:k]), set(b[:k])
    union = top_a | top_b
    return len(top_a & top_b) / len(union) if union else 1.0


def new_in_top(ranking: Sequence[str], baseline: Sequence[str], k: int = TOP) -> int:
    """How many of ``ranking``'s top k are not in the baseline's top k."""
    return len(set(ranking[:k]) - set(baseline[:k]))


def rbo_ext(a: Sequence[str], b: Sequence[str], p: float = RBO_P) -> float:
    """Extrapolated rank-biased overlap of two rankings of possibly different lengths, in [0, 1].

    The agreement seen down to the longer list's end is extrapolated below it, assuming the overlap goes on
    at the rate it had (eq. 32); two identical lists score 1 at any length.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if not a and not b:
        return 1.0
    if not a or not b:
        return 0.0
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    s, l = len(short), len(long_)  # noqa: E741 (the paper's names)
    seen_short: set[str] = set()
    seen_long: set[str] = set()
    overlap = 0
    overlap_at_s = 0
    total = 0.0
    for d in range(1, l + 1):
        item_long = long_[d - 1]
        if d <= s:
            item_short = short[d - 1]
            overlap += (item_short == item_long) + (item_short in seen_long) + (item_long in seen_short)
            seen_short.add(item_short)
            if d == s:
                overlap_at_s = overlap
        else:
            overlap += item_long in seen_short
        seen_long.add(item_long)
        total += overlap / d * p**d
        if d > s:
            total += overlap_at_s * (d - s) / (s * d) * p**d
    extrapolated = ((overlap - overlap_at_s) / l + overlap_at_s / s) * p**l
    return min(1.0, max(0.0, (1 - p) / p * total + extrapolated))
