"""How far to trust the judge: its grades against a human's on the same pairs."""

from __future__ import annotations

import numpy as np

from core.evaluation.datasets import Qrels
from core.judging.prompt import GRADES


def shared_pairs(human: Qrels, judge: Qrels) -> list[tuple[int, int]]:
    """(human grade, judge grade) for every (query, document) both judged."""
    return [
        (grades[doc], judge[qid][doc]) for qid, grades in human.items() for doc in grades if doc in judge.get(qid, {})
    ]


def grade_labels(pairs: list[tuple[int, int]]) -> list[int]:
    """The grades the matrix has rows and columns for: 0–3 and whatever else a human's scale holds
    (cranfield grades 1–4 and -1): a pair is never dropped for being off the judge's scale."""
    return sorted(set(GRADES) | {grade for pair in pairs for grade in pair})


def confusion(pairs: list[tuple[int, int]], labels: list[int] | None = None) -> np.ndarray:
    """Rows: the human's grade; columns: the judge's; in the order of ``labels`` (``grade_labels``)."""
    labels = labels or grade_labels(pairs)
    index = {grade: i for i, grade in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for human, judged in pairs:
        matrix[index[human], index[judged]] += 1
    return matrix


def weighted_kappa(pairs: list[tuple[int, int]]) -> float | None:
    """Cohen's kappa with quadratic weights on the grades' positions (as scikit-learn weighs them); None without
    pairs or without variation."""
    if not pairs:
        return None
    labels = grade_labels(pairs)
    observed = confusion(pairs, labels).astype(float)
    observed /= observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    n = len(labels)
    weights = np.array([[(i - j) ** 2 / (n - 1) ** 2 for j in range(n)] for i in range(n)])
    chance = (weights * expected).sum()
    return None if chance == 0 else float(1.0 - (weights * observed).sum() / chance)


def merged(human: Qrels, judge: Qrels) -> Qrels:
    """The judge's grades with every human grade laid over them: a human label always wins."""
    result = {qid: dict(grades) for qid, grades in judge.items()}
    for qid, grades in human.items():
        result.setdefault(qid, {}).update(grades)
    return result
