"""An evaluation's results: per-query runs and metrics per stage, the lift, and the files they export."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from core.evaluation.metrics import METRICS, Lift, lift, mean_metrics
from core.retrieval.pipeline import FirstStage

# Every first stage the evaluation reports, by metrics key (``FirstStage.key``).
FIRST_STAGES = {
    "dense": FirstStage("dense"),
    "bm25": FirstStage("bm25"),
    "hybrid_rrf": FirstStage("hybrid", "rrf"),
    "hybrid_weighted": FirstStage("hybrid", "weighted"),
}


# Evaluations saved before the dense stage had one name called it "bi_encoder"; they load under the new name.
OLD_STAGE_KEYS = {"bi_encoder": "dense"}


@dataclass
class QueryRecord:
    qid: str
    query: str
    relevant: int  # judged relevant documents (grade > 0)
    first_stages: dict[str, dict[str, float]]  # stage key -> document -> score
    reranked: dict[str, float] | None

    def run(self, stage: str) -> dict[str, float] | None:
        return self.reranked if stage == "reranked" else self.first_stages.get(stage)

    @classmethod
    def from_json(cls, data: dict) -> QueryRecord:
        data = dict(data)
        stages = dict(data.pop("first_stages", {}))
        if "bi_encoder" in data:  # saved before the rename: the dense run had its own field
            stages = {"dense": data.pop("bi_encoder"), **stages}
        return cls(first_stages=stages, **data)


@dataclass
class RerankedDocument:
    """A reranked document: for the probability histogram and the reliability diagram."""

    qid: str
    doc_id: str
    probability: float
    grade: int | None  # None: not judged


@dataclass
class Evaluation:
    dataset: str
    settings: dict
    queries: list[QueryRecord]
    metrics: dict[str, dict[str, dict[str, float]]]  # stage -> qid -> metric -> value
    reranked_documents: list[RerankedDocument]
    timings_s: dict[str, float]
    problems: list[str]
    skipped: dict[str, int]
    cancelled: bool = False
    reranker_error: str | None = None
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def has_reranking(self) -> bool:
        return "reranked" in self.metrics

    @property
    def baseline(self) -> str:
        """The first stage that was reranked, which the lift is measured against."""
        return self.settings.get("first_stage", "dense")

    @property
    def stages(self) -> list[str]:
        """First stages, then reranked, in a fixed order."""
        return [s for s in (*FIRST_STAGES, "reranked") if s in self.metrics]

    def means(self, stage: str) -> dict[str, float]:
        return mean_metrics(self.metrics.get(stage, {}))

    def lift(self, metric: str = "ndcg@10") -> Lift | None:
        """What reranking adds to the first stage it reranked."""
        return self.compare(self.baseline, "reranked", metric) if self.has_reranking else None

    def compare(self, before: str, after: str, metric: str = "ndcg@10") -> Lift:
        """Per-query ``after`` − ``before`` on ``metric``, with CI and p-value (e.g. hybrid against dense)."""
        return lift(
            {q: m[metric] for q, m in self.metrics[before].items()},
            {q: m[metric] for q, m in self.metrics[after].items()},
        )

    def first_stages_against_dense(self) -> dict[str, dict[str, dict]]:
        """BM25 and the hybrids against dense on NDCG@10 and Recall@100 (the ceiling for reranking)."""
        others = [s for s in self.stages if s not in ("dense", "reranked")]
        return {
            stage: {m: self.compare("dense", stage, m).to_json() for m in ("ndcg@10", "recall@100")} for stage in others
        }

    def summary(self) -> dict:
        """The CLI's JSON: dataset, query count, mean metrics per stage, lift with CI and p-value."""
        lifts = {m: self.lift(m) for m in METRICS} if self.has_reranking else None
        return {
            "dataset": self.dataset,
            "queries": len(self.queries),
            "metrics": {
                **{stage: self.means(stage) for stage in self.stages},
                "reranked": self.means("reranked") if self.has_reranking else None,
            },
            "lift_against": self.baseline,
            "first_stages_against_dense": self.first_stages_against_dense() if self.queries else {},
            "lift": {m: value.to_json() for m, value in lifts.items()} if lifts else None,
            "settings": self.settings,
            "timings_s": self.timings_s,
            "skipped": self.skipped,
            "problems": self.problems[:50],
            "cancelled": self.cancelled,
            "reranker_error": self.reranker_error,
            "created_at": self.created_at,
        }

    def trec_run(self, stage: str, tag: str | None = None) -> str:
        """``qid Q0 docid rank score tag`` lines; scores never tie, so trec_eval keeps our order."""
        tag = tag or stage
        lines = []
        for record in self.queries:
            run = record.run(stage) or {}
            for rank, (doc, score) in enumerate(sorted(run.items(), key=lambda kv: -kv[1]), start=1):
                # repr: the shortest text that reads back as the same float, so no two scores print alike.
                lines.append(f"{record.qid} Q0 {doc} {rank} {score!r} {tag}\n")
        return "".join(lines)

    def per_query_csv(self) -> str:
        out = io.StringIO()
        stages = self.stages
        columns = ["qid", "query", "relevant"] + [f"{s}:{m}" for s in stages for m in METRICS]
        if self.has_reranking:
            columns += [f"lift:{m}" for m in METRICS]
        writer = csv.writer(out)
        writer.writerow(columns)
        for record in self.queries:
            row = [record.qid, record.query, record.relevant]
            row += [round(self.metrics[s][record.qid][m], 6) for s in stages for m in METRICS]
            if self.has_reranking:
                row += [
                    round(self.metrics["reranked"][record.qid][m] - self.metrics[self.baseline][record.qid][m], 6)
                    for m in METRICS
                ]
            writer.writerow(row)
        return out.getvalue()

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Evaluation:
        data = dict(data)
        data["queries"] = [QueryRecord.from_json(q) for q in data["queries"]]
        data["metrics"] = {OLD_STAGE_KEYS.get(stage, stage): m for stage, m in data["metrics"].items()}
        stage = data["settings"].get("first_stage")
        if stage in OLD_STAGE_KEYS:
            data["settings"] = {**data["settings"], "first_stage": OLD_STAGE_KEYS[stage]}
        documents = data.pop("candidates", None)  # the field's name before the rename
        documents = data.get("reranked_documents", documents) or []
        data["reranked_documents"] = [RerankedDocument(**c) for c in documents]
        return cls(**data)
