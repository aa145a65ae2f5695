"""Judging the unjudged: run the pipelines over a query set, pool each query's top documents, and ask the
judge about every pooled pair no human has labelled. Top floor: it composes experiments with judging."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from core.evaluation.datasets import Qrels, parse_qrels, write_qrels
from core.experiments.agreement import TOP
from core.experiments.snapshot import Experiment
from core.judging.agreement import confusion, grade_labels, merged, shared_pairs, weighted_kappa
from core.judging.judge import Judge, Judgment, Pair
from core.locking import FolderLock


@dataclass
class JudgingRun:
    judgments: list[Judgment] = field(default_factory=list)
    skipped_human: int = 0  # pooled pairs a human had labelled: never sent

    @property
    def qrels(self) -> Qrels:
        """The judge's grades (unrateable pairs left out), as qrels."""
        graded: Qrels = {}
        for j in self.judgments:
            if j.grade is not None:
                graded.setdefault(j.pair.qid, {})[j.pair.doc_id] = j.grade
        return graded

    @property
    def unrateable(self) -> list[Judgment]:
        return [j for j in self.judgments if j.grade is None]

    def summary(self) -> dict:
        return {
            "pairs_judged": len(self.judgments),
            "graded": len(self.judgments) - len(self.unrateable),
            "unrateable": [
                {"qid": j.pair.qid, "doc_id": j.pair.doc_id, "answer": j.raw[:200]} for j in self.unrateable
            ],
            "from_cache": sum(j.cached for j in self.judgments),
            "skipped_human_labelled": self.skipped_human,
            "grades": {str(g): sum(j.grade == g for j in self.judgments) for g in range(4)},
        }

    def trec_qrels(self) -> str:
        return write_qrels(self.qrels)


def pooled_pairs(experiment: Experiment, depth: int, human: Qrels | None) -> tuple[list[Pair], int]:
    """Each query's top ``depth`` documents from every pipeline, once, without the ones a human labelled."""
    depth = min(depth, TOP)  # the snapshot keeps the text of each pipeline's top 10
    pairs, skipped = [], 0
    for qid, query in experiment.queries.items():
        pooled = dict.fromkeys(doc for name in experiment.pipelines for doc in experiment.ranking(name, qid)[:depth])
        for doc in pooled:
            if doc in (human or {}).get(qid, {}):
                skipped += 1
            elif doc in experiment.passages:
                pairs.append(Pair(qid, query, doc, experiment.passages[doc]["text"]))
    return pairs, skipped


def judge_pool(
    experiment: Experiment,
    judge: Judge,
    depth: int,
    human: Qrels | None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> JudgingRun:
    pairs, skipped = pooled_pairs(experiment, depth, human)
    return JudgingRun(judge.rate_all(pairs, progress, should_stop), skipped)


def judged_counts(human: Mapping | None, judge: Mapping | None) -> dict[str, int]:
    return {
        "human": sum(len(g) for g in (human or {}).values()),
        "judge": sum(len(g) for g in (judge or {}).values()),
    }


class JudgeLabelStore:
    """A judge's grades per query set (by its fingerprint), as TREC qrels apart from any human's labels."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def path(self, fingerprint: str) -> Path:
        return self.folder / f"{fingerprint}.qrels"  # a hex digest of ours: never the user's text

    def get(self, fingerprint: str) -> Qrels:
        path = self.path(fingerprint)
        return parse_qrels(path.read_text(encoding="utf-8"), path.name)[0] if path.is_file() else {}

    def add(self, fingerprint: str, graded: Qrels) -> None:
        """Merge new grades over older ones of the same judge run (the latest answer wins)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with FolderLock.for_folder(self.folder):
            current = self.get(fingerprint)
            for qid, grades in graded.items():
                current.setdefault(qid, {}).update(grades)
            partial = self.path(fingerprint).with_suffix(".partial")
            partial.write_text(write_qrels(current), encoding="utf-8")
            os.replace(partial, self.path(fingerprint))


def trust(experiment: Experiment, human: Qrels, judged: Qrels) -> dict:
    """The judge against the human on the pairs both graded, and each pipeline's NDCG@10 under the human's,
    the judge's and the merged labels (a human label wins)."""
    pairs = shared_pairs(human, judged)
    under = {}
    for labels, qrels in (("human", human), ("judge", judged), ("merged", merged(human, judged))):
        metrics = replace(experiment, qrels=qrels).metrics()
        under[labels] = {n: sum(m["ndcg@10"] for m in q.values()) / len(q) for n, q in metrics.items()}
    grades = grade_labels(pairs)
    return {"pairs": len(pairs), "weighted_kappa": weighted_kappa(pairs), "grades": grades,
            "confusion": confusion(pairs, grades).tolist(), "ndcg@10": under}  # fmt: skip
