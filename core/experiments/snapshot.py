"""A finished experiment, kept as a snapshot: its pipelines, its rankings, and what they say.

Everything shown about an experiment (metrics, lift against the baseline with CI, p-values adjusted by
Holm, judgment holes, agreement between rankings) is computed from the stored rankings and judgments,
so an old snapshot is read with today's code and a snapshot needs no model to be looked at.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from core.errors import ExplorerError
from core.evaluation.datasets import Qrels
from core.evaluation.metrics import METRICS, holm, lift, per_query_metrics
from core.experiments.agreement import RBO_P, TOP, jaccard_at, new_in_top, rbo_ext

AGREEMENT = ("jaccard@10", "rbo", "new_in_top10")
SNAPSHOT_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$")


class SnapshotError(ExplorerError):
    """A snapshot that does not exist or cannot be read."""


def new_snapshot_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


@dataclass
class Experiment:
    query_set: dict  # name, fingerprint, judged, queries
    corpus: dict  # fingerprint and what was indexed
    k: int
    baseline: str
    pipelines: dict[str, str]  # name -> short form
    queries: dict[str, str]  # qid -> text, in the set's order
    qrels: Qrels | None
    runs: dict[str, dict[str, list[list]]]  # pipeline -> qid -> [[doc, score], ...] best first
    probabilities: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # reranked docs only
    first_stage_ranks: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)  # before reranking
    passages: dict[str, dict] = field(default_factory=dict)  # doc -> {source, text}, for the top 10s
    reranking: dict[str, dict] = field(default_factory=dict)  # pipeline -> pairs_sent, pairs_from_cache
    timings_s: dict[str, float] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    id: str = field(default_factory=new_snapshot_id)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def ranking(self, pipeline: str, qid: str) -> list[str]:
        return [doc for doc, _ in self.runs[pipeline].get(qid, [])]

    @property
    def judged_qids(self) -> list[str]:
        """The queries with at least one document judged relevant: the ones metrics are computed on."""
        qrels = self.qrels or {}
        return [q for q in self.queries if any(g > 0 for g in qrels.get(q, {}).values())]

    def metrics(self) -> dict[str, dict[str, dict[str, float]]]:
        """pipeline -> qid -> metric, on the judged queries (empty without judgments)."""
        judged = {q: self.qrels[q] for q in self.judged_qids}
        if not judged:
            return {}
        return {
            name: per_query_metrics(judged, {q: dict(map(tuple, run.get(q, []))) for q in judged})
            for name, run in self.runs.items()
        }

    def comparisons(self, metrics: dict | None = None) -> dict[str, dict[str, dict]]:
        """Each pipeline against the baseline, per metric: paired lift, 95% CI, p raw and Holm-adjusted."""
        metrics = self.metrics() if metrics is None else metrics
        others = [n for n in self.pipelines if n != self.baseline]
        if not metrics or not others:
            return {}
        result: dict[str, dict[str, dict]] = {n: {} for n in others}
        for metric in METRICS:
            before = {q: m[metric] for q, m in metrics[self.baseline].items()}
            lifts = {n: lift(before, {q: m[metric] for q, m in metrics[n].items()}) for n in others}
            adjusted = holm({n: value.p_value for n, value in lifts.items()})
            for n, value in lifts.items():
                result[n][metric] = {**value.to_json(), "p_holm": adjusted[n]}
        return result

    def holes(self) -> dict[str, dict]:
        """Per pipeline: how many of each judged query's top 10 nobody judged (mean and total)."""
        qids = self.judged_qids
        if not qids:
            return {}
        counts = {
            name: [sum(doc not in self.qrels[q] for doc in self.ranking(name, q)[:TOP]) for q in qids]
            for name in self.pipelines
        }
        return {name: {"mean": float(np.mean(c)), "total": int(sum(c))} for name, c in counts.items()}

    def agreement_per_query(self) -> dict[str, dict[str, dict[str, float]]]:
        """pipeline -> qid -> Jaccard@10, RBO (p=0.9, extrapolated), new in top 10, against the baseline."""
        result: dict[str, dict[str, dict[str, float]]] = {}
        for name in self.pipelines:
            if name == self.baseline:
                continue
            result[name] = {}
            for qid in self.queries:
                mine, base = self.ranking(name, qid), self.ranking(self.baseline, qid)
                result[name][qid] = {
                    "jaccard@10": jaccard_at(mine, base),
                    "rbo": rbo_ext(mine, base, RBO_P),
                    "new_in_top10": new_in_top(mine, base),
                }
        return result

    def agreement(self, per_query: dict | None = None) -> dict[str, dict[str, float]]:
        per_query = self.agreement_per_query() if per_query is None else per_query
        return {
            name: {m: float(np.mean([v[m] for v in by_query.values()])) if by_query else 0.0 for m in AGREEMENT}
            for name, by_query in per_query.items()
        }

    def disagreement(self, per_query: dict | None = None) -> list[tuple[str, float]]:
        """Queries by how much the pipelines disagree with the baseline (1 − mean RBO), most first."""
        per_query = self.agreement_per_query() if per_query is None else per_query
        if not per_query:
            return [(q, 0.0) for q in self.queries]
        scores = {
            q: 1.0 - float(np.mean([by_query[q]["rbo"] for by_query in per_query.values()])) for q in self.queries
        }
        return sorted(scores.items(), key=lambda item: -item[1])

    def summary(self) -> dict:
        """The CLI's JSON (README lists the keys)."""
        metrics = self.metrics()
        per_query = self.agreement_per_query()
        means = {n: {m: float(np.mean([v[m] for v in by_q.values()])) for m in METRICS} for n, by_q in metrics.items()}
        return {
            "saved": self.id,
            "created_at": self.created_at,
            "query_set": self.query_set,
            "corpus": self.corpus,
            "k": self.k,
            "baseline": self.baseline,
            "pipelines": {n: {"spec": spec, "metrics": means.get(n)} for n, spec in self.pipelines.items()},
            "comparisons": self.comparisons(metrics),
            "agreement": self.agreement(per_query),
            "judgment_holes": self.holes(),
            "queries": len(self.queries),
            "judged_queries": len(self.judged_qids),
            "most_disagreement": [
                {"qid": q, "query": self.queries[q], "disagreement": d} for q, d in self.disagreement(per_query)[:10]
            ],  # fmt: skip
            "reranking": self.reranking,
            "timings_s": self.timings_s,
        }

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Experiment:
        return cls(**data)


class SnapshotStore:
    """Finished experiments as ``experiments/<id>.json`` in the workspace."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def save(self, experiment: Experiment) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{experiment.id}.json"
        partial = path.with_suffix(".partial")  # renamed when complete: never half a snapshot
        partial.write_text(json.dumps(experiment.to_json(), ensure_ascii=False), encoding="utf-8")
        os.replace(partial, path)
        return path

    def ids(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted((p.stem for p in self.folder.glob("*.json") if SNAPSHOT_ID.match(p.stem)), reverse=True)

    def load(self, snapshot_id: str) -> Experiment:
        """An id from a URL is untrusted: only the id's own pattern names a file."""
        if not SNAPSHOT_ID.match(snapshot_id):
            raise SnapshotError(f"{snapshot_id!r} is not a snapshot id")
        path = self.folder / f"{snapshot_id}.json"
        try:
            return Experiment.from_json(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise SnapshotError(f"no snapshot {snapshot_id}") from None
        except (OSError, ValueError, TypeError) as exc:
            raise SnapshotError(f"snapshot {snapshot_id} is not readable ({type(exc).__name__}: {exc})") from exc


def compare_snapshots(before: Experiment, after: Experiment) -> dict:
    """What changed between two snapshots, for the pipelines (by name) and queries (by id) both have."""
    names = [n for n in after.pipelines if n in before.pipelines]
    qids = [q for q in after.queries if q in before.queries]
    metrics_before, metrics_after = before.metrics(), after.metrics()
    pipelines = {}
    for name in names:
        per_query = {}
        for qid in qids:
            old, new = before.ranking(name, qid)[:TOP], after.ranking(name, qid)[:TOP]
            row = {"entered": [d for d in new if d not in old], "left": [d for d in old if d not in new],
                   "jaccard@10": jaccard_at(new, old), "rbo": rbo_ext(new, old, RBO_P)}  # fmt: skip
            if qid in metrics_before.get(name, {}) and qid in metrics_after.get(name, {}):
                row["delta"] = {m: metrics_after[name][qid][m] - metrics_before[name][qid][m] for m in METRICS}
            per_query[qid] = row
        deltas = [row["delta"] for row in per_query.values() if "delta" in row]
        pipelines[name] = {
            "spec_before": before.pipelines[name],
            "spec_after": after.pipelines[name],
            "mean_delta": {m: float(np.mean([d[m] for d in deltas])) for m in METRICS} if deltas else None,
            "queries_changed": sum(bool(row["entered"]) or row["rbo"] < 1.0 - 1e-9 for row in per_query.values()),
            "per_query": per_query,
        }
    return {
        "before": before.id,
        "after": after.id,
        "same_queries": before.query_set.get("fingerprint") == after.query_set.get("fingerprint"),
        "same_corpus": before.corpus.get("fingerprint") == after.corpus.get("fingerprint"),
        "pipelines": pipelines,
        "queries": qids,
    }
