"""How well the reranker's probabilities match the judgments: histograms, reliability, thresholds.

A reranked document counts as relevant when judged 1 or more. Unjudged ones count as not relevant, as
they do in the metrics; the figures say how many were unjudged, so that assumption stays visible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.evaluation.report import RerankedDocument


@dataclass(frozen=True)
class ReliabilityBin:
    low: float
    high: float
    count: int
    mean_probability: float  # nan when empty
    fraction_relevant: float  # nan when empty


def split_by_judgment(documents: list[RerankedDocument]) -> dict[str, list[float]]:
    groups: dict[str, list[float]] = {"relevant": [], "judged not relevant": [], "unjudged": []}
    for c in documents:
        key = "unjudged" if c.grade is None else "relevant" if c.grade > 0 else "judged not relevant"
        groups[key].append(c.probability)
    return groups


def reliability(documents: list[RerankedDocument], bins: int = 10) -> list[ReliabilityBin]:
    """Candidates binned by probability: is p = 0.8 relevant 80% of the time?"""
    probabilities = np.array([c.probability for c in documents], dtype=np.float64)
    relevant = np.array([bool(c.grade and c.grade > 0) for c in documents])
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Right-closed last bin so p = 1.0 is counted.
    index = np.clip(np.digitize(probabilities, edges[1:-1], right=False), 0, bins - 1)
    result = []
    for b in range(bins):
        mask = index == b
        count = int(mask.sum())
        result.append(
            ReliabilityBin(
                low=float(edges[b]),
                high=float(edges[b + 1]),
                count=count,
                mean_probability=float(probabilities[mask].mean()) if count else float("nan"),
                fraction_relevant=float(relevant[mask].mean()) if count else float("nan"),
            )
        )
    return result


def expected_calibration_error(bins: list[ReliabilityBin]) -> float:
    total = sum(b.count for b in bins)
    if not total:
        return float("nan")
    return sum(b.count / total * abs(b.mean_probability - b.fraction_relevant) for b in bins if b.count)


def precision_recall_at(documents: list[RerankedDocument], thresholds: list[float], total_relevant: int) -> list[dict]:
    """Keeping documents with p >= t: precision among them, recall of all judged-relevant documents."""
    rows = []
    for t in thresholds:
        kept = [c for c in documents if c.probability >= t]
        hits = sum(1 for c in kept if c.grade and c.grade > 0)
        rows.append(
            {
                "threshold": t,
                "kept": len(kept),
                "precision": hits / len(kept) if kept else float("nan"),
                "recall": hits / total_relevant if total_relevant else float("nan"),
            }
        )
    return rows
