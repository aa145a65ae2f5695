"""Query sets: the queries an experiment runs, judged or not.

A judged dataset (BEIR or TREC qrels), the user's own labels, or a plain list with no judgments:
``.txt`` (one query per line), ``.csv`` (a ``query`` column, optionally ``id``) or ``.jsonl`` (``text``,
optionally ``_id``). A query without an id gets the id the Search page's labels use for the same text, so
labels given there line up with it. Bad lines are reported by number and skipped, never fatal.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import ExplorerError
from core.evaluation.datasets import JudgedDataset, Qrels
from core.evaluation.labels import query_id

QUERY_FILE_SUFFIXES = (".txt", ".csv", ".jsonl")


class QuerySetError(ExplorerError):
    """A query set with no usable query; the message names the file and the cause."""


@dataclass
class QuerySet:
    name: str
    queries: dict[str, str]  # query id -> text, in the set's order
    qrels: Qrels | None = None  # None: no judgments
    problems: list[str] = field(default_factory=list)
    labels: str = "human"  # whose judgments the qrels are: human, judge, or merged (a human's win)

    @property
    def judged(self) -> bool:
        return bool(self.qrels)

    @property
    def fingerprint(self) -> str:
        """Changes when any query or judgment changes, not when the file is renamed."""
        content = json.dumps([sorted(self.queries.items()), sorted((self.qrels or {}).items())], sort_keys=True)
        return hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()[:16]

    @classmethod
    def from_dataset(cls, dataset: JudgedDataset) -> QuerySet:
        return cls(dataset.name, dict(dataset.queries), {q: dict(j) for q, j in dataset.qrels.items()},
                   list(dataset.problems))  # fmt: skip


def read_query_file(name: str, data: bytes) -> QuerySet:
    """A plain query list from a file's name and bytes (an upload or a file on disk)."""
    suffix = Path(name).suffix.lower()
    if suffix not in QUERY_FILE_SUFFIXES:
        raise QuerySetError(f"{name}: a query list must be .txt, .csv or .jsonl, not {suffix or 'no extension'}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise QuerySetError(f"{name}: not UTF-8 text ({exc})") from None
    rows, problems = {".txt": _txt_rows, ".csv": _csv_rows, ".jsonl": _jsonl_rows}[suffix](text, name)
    queries: dict[str, str] = {}
    for line, qid, query in rows:
        query = " ".join(query.split())
        qid = qid or query_id(query)
        if not query:
            problems.append(f"{name} line {line}: empty query; skipped")
        elif qid in queries:
            problems.append(f"{name} line {line}: query id {qid!r} repeats an earlier line; skipped")
        else:
            queries[qid] = query
    if not queries:
        raise QuerySetError(f"{name}: no queries found")
    return QuerySet(name[: len(name) - len(suffix)], queries, None, problems)


def _txt_rows(text: str, name: str):
    rows = [(n, "", line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    return rows, []


def _csv_rows(text: str, name: str):
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    if "query" not in header:
        raise QuerySetError(f"{name}: the CSV needs a 'query' column (found: {', '.join(header) or 'none'})")
    text_at = header.index("query")
    id_at = next((header.index(c) for c in ("id", "qid", "query_id") if c in header), None)
    rows, problems = [], []
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= text_at:
            problems.append(f"{name} line {line}: no query column; skipped")
            continue
        qid = row[id_at].strip() if id_at is not None and id_at < len(row) else ""
        rows.append((line, qid, row[text_at]))
    return rows, problems


def _jsonl_rows(text: str, name: str):
    rows, problems = [], []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
            query = item["text"]
            if not isinstance(query, str):
                raise TypeError("text is not a string")
            qid = str(item.get("_id", item.get("id", "")))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            problems.append(f"{name} line {line}: not an object with a text ({type(exc).__name__}: {exc}); skipped")
            continue
        rows.append((line, qid, query))
    return rows, problems
