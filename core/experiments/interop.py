"""Judgments and runs in the formats other tools read: Quepid's ratings CSV and TREC run files."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping

from core.evaluation.datasets import Qrels
from core.evaluation.labels import query_id
from core.experiments.query_sets import QuerySet, QuerySetError

QUEPID_COLUMNS = ("query", "docid", "rating")


def read_quepid_ratings(name: str, text: str) -> QuerySet:
    """Quepid's ratings export (``query,docid,rating``): queries by text, graded judgments.

    A rating that is not a whole number (Quepid allows fractions on some scales) is rounded; a bad row
    is reported by its line and skipped.
    """
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip().lower() for h in next(reader, [])]
    missing = [c for c in QUEPID_COLUMNS if c not in header]
    if missing:
        raise QuerySetError(
            f"{name}: a Quepid ratings CSV needs columns query,docid,rating (missing {', '.join(missing)})"
        )
    at = {c: header.index(c) for c in QUEPID_COLUMNS}
    queries: dict[str, str] = {}
    qrels: Qrels = {}
    problems: list[str] = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        try:
            query, doc, rating = (row[at[c]] for c in QUEPID_COLUMNS)
            grade = round(float(rating))
        except (IndexError, ValueError, OverflowError) as exc:
            problems.append(f"{name} line {reader.line_num}: not a query,docid,rating row ({exc}); skipped")
            continue
        query = " ".join(query.split())
        if not query or not doc.strip():
            problems.append(f"{name} line {reader.line_num}: empty query or docid; skipped")
            continue
        qid = query_id(query)
        queries[qid] = query
        qrels.setdefault(qid, {})[doc.strip()] = grade
    if not qrels:
        raise QuerySetError(f"{name}: no ratings found")
    return QuerySet(name.rsplit(".", 1)[0], queries, qrels, problems)


def write_quepid_ratings(queries: Mapping[str, str], qrels: Qrels) -> str:
    """The judgments as Quepid's ratings CSV; csv quoting keeps commas, quotes and newlines intact."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(QUEPID_COLUMNS)
    for qid in qrels:
        for doc, grade in sorted(qrels[qid].items()):
            writer.writerow([queries.get(qid, qid), doc, grade])
    return out.getvalue()


def trec_run(runs: Mapping[str, list[tuple[str, float]]], tag: str) -> str:
    """``qid Q0 docid rank score tag`` per line from each query's ranking (best first, scores decreasing)."""
    lines = []
    for qid, ranking in runs.items():
        for rank, (doc, score) in enumerate(ranking, start=1):
            lines.append(f"{qid} Q0 {doc} {rank} {score!r} {tag}\n")
    return "".join(lines)
