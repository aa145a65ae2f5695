"""The search page's score controls over a reranked list: a probability threshold and a blend weight."""

from __future__ import annotations

from dataclasses import dataclass

from core.retrieval.fusion import blend
from core.retrieval.results import RerankedChunk


@dataclass(frozen=True)
class ShownRow:
    """A reranked candidate as the score controls present it."""

    rank: int  # 1-based, by the blended score
    item: RerankedChunk
    score: float  # blended score; equals the probability when the blend weight is 1
    below_threshold: bool


def apply_score_controls(reranked: list[RerankedChunk], threshold: float = 0.0, weight: float = 1.0) -> list[ShownRow]:
    """Order by ``weight`` × probability + (1 − ``weight``) × first-stage score; flag rows under ``threshold``.

    The threshold applies to the calibrated probability, never to the blended or min-max scaled score:
    a min-max scaled top hit is always 1.0 whatever its relevance. Ties keep the reranker's order
    (the first stage's at weight 0).
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"the probability threshold must be in [0, 1], got {threshold}")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"blend weight must be in [0, 1], got {weight}")
    scored = [(blend(item.probability, item.first_stage_score, weight), item) for item in reranked]
    # Weight 0 is the first stage alone: its ties (frequent under RRF) keep its order, not the reranker's.
    tiebreak = (lambda item: item.first_stage_rank) if weight == 0 else (lambda item: item.rank)
    order = sorted(range(len(scored)), key=lambda i: (-scored[i][0], tiebreak(scored[i][1])))
    return [
        ShownRow(rank, scored[i][1], scored[i][0], scored[i][1].probability < threshold)
        for rank, i in enumerate(order, start=1)
    ]
