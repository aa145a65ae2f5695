"""Relevance labels given by hand on the search page, kept in the workspace as TREC qrels."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from core.chunks import Chunk
from core.evaluation.datasets import Qrels, parse_qrels, write_qrels
from core.evaluation.evaluate import maxp, reranked_then_rest
from core.evaluation.metrics import per_query_metrics, strictly_decreasing
from core.locking import locked
from core.retrieval.results import SearchResult

GRADES = (0, 1, 2, 3)  # 0 not relevant, 1 marginally, 2 relevant, 3 highly relevant


def document_key(chunk: Chunk) -> str:
    """A document's id across the whole index: the file, or file#row for rows of a CSV/JSON file."""
    return chunk.source if chunk.doc_id == chunk.source else f"{chunk.source}#{chunk.doc_id}"


def query_id(query: str) -> str:
    return "u" + hashlib.sha1(" ".join(query.split()).lower().encode()).hexdigest()[:10]


_LOCKS: dict[Path, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(path: Path) -> threading.RLock:
    """One lock per labels file for the whole process: every session's store of a workspace shares it."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(path.resolve(), threading.RLock())


class LabelStore:
    """``labels.qrels`` (TREC qrels) and ``labels.queries.jsonl`` (the labelled queries' texts).

    A change is a read-modify-write under the file's lock, and files are replaced atomically, so two
    sessions labelling at once never lose each other's labels nor read a half-written file.
    """

    def __init__(self, folder: Path, name: str = "labels"):
        """``name``: "labels" for a human's, "judge" for an LLM judge's (kept apart: a human label wins)."""
        self.qrels_path = Path(folder) / f"{name}.qrels"
        self.queries_path = Path(folder) / f"{name}.queries.jsonl"
        self._lock = _lock_for(self.qrels_path)

    @locked
    def qrels(self) -> Qrels:
        text = self.qrels_path.read_text(encoding="utf-8") if self.qrels_path.is_file() else ""
        return parse_qrels(text, str(self.qrels_path))[0] if text.strip() else {}

    @locked
    def queries(self) -> dict[str, str]:
        if not self.queries_path.is_file():
            return {}
        rows = [json.loads(line) for line in self.queries_path.read_text(encoding="utf-8").splitlines() if line]
        return {row["_id"]: row["text"] for row in rows}

    def labels_for(self, query: str) -> dict[str, int]:
        return self.qrels().get(query_id(query), {})

    @locked
    def set_label(self, query: str, document: str, grade: int | None) -> None:
        """Label ``document`` for ``query``; None removes the label."""
        if grade is not None and grade not in GRADES:
            raise ValueError(f"a grade is one of {GRADES}, got {grade}")
        qrels, queries = self.qrels(), self.queries()
        qid = query_id(query)
        judged = qrels.setdefault(qid, {})
        if grade is None:
            judged.pop(document, None)
        else:
            judged[document] = int(grade)  # True would be written as "True", which no reader takes
        queries[qid] = " ".join(query.split())
        self._write({q: j for q, j in qrels.items() if j}, queries)

    @locked
    def import_qrels(self, qrels_text: str, name: str, queries_text: str | None = None) -> tuple[int, list[str]]:
        """Merge TREC/BEIR qrels (and optionally a queries.jsonl); returns labels added and problems."""
        incoming, problems, _ = parse_qrels(qrels_text, name)
        queries = self.queries()
        if queries_text:
            for number, line in enumerate(queries_text.splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    queries[str(row["_id"])] = str(row["text"])
                except (json.JSONDecodeError, KeyError, TypeError):
                    problems.append(f"queries line {number}: not a row with _id and text; skipped")
        qrels = self.qrels()
        added = 0
        for qid, judged in incoming.items():
            if qid not in queries:
                problems.append(f"{name}: query {qid!r} has no text (add a queries.jsonl); its labels are skipped")
                continue
            valid = {doc: grade for doc, grade in judged.items() if grade in GRADES}
            if len(valid) < len(judged):
                problems.append(f"{name}: query {qid!r} has grades outside 0-3; those labels are skipped")
            qrels.setdefault(qid, {}).update(valid)
            added += len(valid)
        self._write(qrels, queries)
        return added, problems

    def export_qrels(self) -> str:
        return write_qrels(self.qrels())

    def export_queries(self) -> str:
        return "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in sorted(self.queries().items()))

    @locked
    def _write(self, qrels: Qrels, queries: dict[str, str]) -> None:
        self.qrels_path.parent.mkdir(parents=True, exist_ok=True)
        labelled = {q: t for q, t in queries.items() if q in qrels}
        _replace(
            self.queries_path, "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in sorted(labelled.items()))
        )
        _replace(self.qrels_path, write_qrels(qrels))


def _replace(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def ndcg_at_10(result: SearchResult, labels: dict[str, int]) -> tuple[float, float | None]:
    """NDCG@10 of the first stage's and the reranked column for one labelled query (documents by MaxP).

    Candidates below the rerank depth follow the reranked ones in the first stage's order, so both
    columns are judged on the same candidates. (The page reranks the top chunks; the evaluation reranks
    every chunk of the top documents, so the two can differ slightly for the same query.)
    """
    if not any(grade > 0 for grade in labels.values()):
        return 0.0, (0.0 if result.reranked else None)
    qrels = {"q": labels}
    first = maxp((document_key(r.chunk), r.score) for r in result.candidates)
    first_ndcg = per_query_metrics(qrels, {"q": strictly_decreasing(first)}, ("ndcg@10",))["q"]["ndcg@10"]
    if not result.reranked:
        return first_ndcg, None
    run = reranked_then_rest(maxp((document_key(r.chunk), r.logit) for r in result.reranked), first)
    return first_ndcg, per_query_metrics(qrels, {"q": run}, ("ndcg@10",))["q"]["ndcg@10"]
