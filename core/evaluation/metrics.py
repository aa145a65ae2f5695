"""Ranking metrics (pytrec_eval, i.e. trec_eval), the lift between two runs, its bootstrap interval
and a significance test.

Metrics are per query, on document ids, as the qrels are. Graded qrels use trec_eval's gain (the
grade itself, not 2^grade - 1). Ties are broken as trec_eval breaks them: by score, then by document
id in descending order. The rankings this project produces never tie (``strictly_decreasing`` makes
sure), so the exported run files evaluate to the same figures under trec_eval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.evaluation.datasets import Qrels

Run = dict[str, dict[str, float]]  # query id -> document id -> score

METRICS = ("ndcg@10", "mrr@10", "recall@10", "recall@100", "map@100")


def trec_order(scores: dict[str, float]) -> list[str]:
    """Documents in trec_eval's order: score descending, ties by document id descending."""
    return sorted(scores, key=lambda doc: (scores[doc], doc), reverse=True)


# Our names -> trec_eval measures. MRR@10 has no trec_eval cutoff: it is recip_rank on the top 10.
TREC_MEASURES = {
    "ndcg@10": "ndcg_cut_10",
    "recall@10": "recall_10",
    "recall@100": "recall_100",
    "map@100": "map_cut_100",
    "mrr@10": "recip_rank",
}


def per_query_metrics(qrels: Qrels, run: Run, metrics: tuple[str, ...] = METRICS) -> dict[str, dict[str, float]]:
    """``{qid: {metric: value}}`` for every query in ``qrels``; a query the run lacks scores 0."""
    import pytrec_eval

    results = {qid: dict.fromkeys(metrics, 0.0) for qid in qrels}
    present = {qid: run[qid] for qid in qrels if run.get(qid)}
    if not present:
        return results
    measures = {TREC_MEASURES[m] for m in metrics if m != "mrr@10"}
    if measures:
        evaluated = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(present)
        for qid, values in evaluated.items():
            for metric in metrics:
                if metric != "mrr@10":
                    results[qid][metric] = float(values[TREC_MEASURES[metric]])
    if "mrr@10" in metrics:
        top10 = {qid: {doc: scores[doc] for doc in trec_order(scores)[:10]} for qid, scores in present.items()}
        for qid, values in pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10).items():
            results[qid]["mrr@10"] = float(values["recip_rank"])
    return results


def mean_metrics(per_query: dict[str, dict[str, float]]) -> dict[str, float]:
    if not per_query:
        return {}
    metrics = next(iter(per_query.values())).keys()
    return {m: float(np.mean([values[m] for values in per_query.values()])) for m in metrics}


def strictly_decreasing(ranking: list[tuple[str, float]], step: float = 1e-6) -> dict[str, float]:
    """Scores for a ranking that keep its order under trec_eval: a tie is nudged just below its predecessor."""
    scores: dict[str, float] = {}
    previous = None
    for doc, score in ranking:
        value = float(score)
        if previous is not None and value >= previous:
            value = previous - step * max(1.0, abs(previous))
        scores[doc] = value
        previous = value
    return scores


@dataclass(frozen=True)
class Lift:
    mean: float
    ci95: tuple[float, float]
    p_value: float  # paired randomization test, two-sided
    t_test_p_value: float  # paired t-test, two-sided, for reference
    queries: int
    helped: int
    hurt: int

    def to_json(self) -> dict:
        return {
            "mean": self.mean,
            "ci95": list(self.ci95),
            "p_value": self.p_value,
            "t_test_p_value": self.t_test_p_value,
            "queries": self.queries,
            "helped": self.helped,
            "hurt": self.hurt,
        }


def bootstrap_ci(differences: np.ndarray, resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean paired difference (queries resampled with replacement)."""
    from scipy.stats import bootstrap

    differences = np.asarray(differences, dtype=np.float64)
    if len(differences) < 2 or np.ptp(differences) < 1e-12:
        value = float(differences.mean()) if len(differences) else 0.0
        return value, value
    result = bootstrap(
        (differences,),
        np.mean,
        confidence_level=0.95,
        n_resamples=resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def randomization_p_value(differences: np.ndarray, resamples: int = 10_000, seed: int = 0) -> float:
    """Two-sided paired randomization (sign-flip) test of mean difference 0; exact when n <= 13."""
    from scipy.stats import permutation_test

    differences = np.asarray(differences, dtype=np.float64)
    if len(differences) < 2 or np.all(differences == 0):
        return 1.0  # one query (or none) cannot show anything
    result = permutation_test(
        (differences,),
        np.mean,
        permutation_type="samples",
        alternative="two-sided",
        n_resamples=resamples,
        rng=np.random.default_rng(seed),
    )
    return float(min(1.0, result.pvalue))


def lift(before: dict[str, float], after: dict[str, float]) -> Lift:
    """The paired lift ``after - before`` over the queries both have."""
    from scipy.stats import ttest_rel

    queries = sorted(set(before) & set(after))
    a = np.array([after[q] for q in queries])
    b = np.array([before[q] for q in queries])
    diffs = a - b
    if len(diffs) > 1 and np.ptp(diffs) >= 1e-12:
        t_p = float(ttest_rel(a, b).pvalue)
    else:
        # One query cannot be tested; a constant difference over several has no variance (certain unless 0).
        t_p = 1.0 if len(diffs) < 2 or np.allclose(diffs, 0) else 0.0
    return Lift(
        mean=float(diffs.mean()) if len(diffs) else 0.0,
        ci95=bootstrap_ci(diffs),
        p_value=randomization_p_value(diffs),
        t_test_p_value=t_p,
        queries=len(diffs),
        helped=int((diffs > 0).sum()),
        hurt=int((diffs < 0).sum()),
    )


def holm(p_values: dict[str, float]) -> dict[str, float]:
    """Holm's step-down adjustment of p-values for several comparisons made at once (family-wise error)."""
    order = sorted(p_values, key=lambda name: p_values[name])
    m = len(order)
    adjusted: dict[str, float] = {}
    running = 0.0
    for i, name in enumerate(order):
        running = max(running, min(1.0, (m - i) * p_values[name]))
        adjusted[name] = running
    return adjusted
