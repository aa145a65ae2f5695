"""Judged datasets: BEIR layout (corpus.jsonl, queries.jsonl, qrels/test.tsv) and TREC qrels.

Bad lines never stop an evaluation: each one becomes a message naming the file and the line, is
skipped, and is counted, and whatever is valid is evaluated.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import ExplorerError

Qrels = dict[str, dict[str, int]]  # query id -> document id -> relevance grade


class DatasetError(ExplorerError):
    """A dataset that cannot be evaluated at all; the message names the file and the cause."""


@dataclass
class JudgedDataset:
    name: str
    folder: Path
    corpus: Path  # corpus.jsonl, or a folder of files whose relative paths are the document ids
    queries: dict[str, str]  # the judged queries that can be evaluated
    qrels: Qrels
    problems: list[str] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)


def read_qrels(path: Path, line_numbers: dict | None = None) -> tuple[Qrels, list[str], Counter]:
    """Qrels in BEIR TSV (``query-id corpus-id score``, header optional) or TREC (``qid 0 docid rel``)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot be read ({exc})") from None
    return parse_qrels(text, str(path), line_numbers)


def parse_qrels(text: str, name: str, line_numbers: dict | None = None) -> tuple[Qrels, list[str], Counter]:
    """As ``read_qrels``, from text; ``name`` is what messages call the file.

    ``line_numbers``, when given, is filled with the line of each ``(qid, docid)`` judgment, so that
    later checks (a query or document the dataset lacks) can point at the line too.
    """
    qrels: Qrels = {}
    problems: list[str] = []
    skipped: Counter = Counter()
    first = True
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        header_line, first = first, False
        if "\t" in line:  # BEIR TSV: a tab separates the columns, so a document id may contain spaces
            tab_fields = [f.strip() for f in line.split("\t") if f.strip()]
            if len(tab_fields) in (3, 4):
                fields = tab_fields
        if len(fields) == 3:
            qid, docid, grade = fields
        elif len(fields) == 4:
            qid, _iteration, docid, grade = fields
        elif len(fields) > 4 and "\t" not in line:  # TREC, spaces in the document id (as write_qrels writes)
            qid, _iteration, rest = line.split(None, 2)
            docid, grade = rest.rsplit(None, 1)
        else:
            problems.append(f"{name} line {number}: expected 3 columns (BEIR) or 4 (TREC), got {len(fields)}; skipped")
            skipped["qrels lines malformed"] += 1
            continue
        try:
            value = int(float(grade))
        except (ValueError, OverflowError):  # OverflowError: "inf"
            if header_line:  # a header such as "query-id corpus-id score"
                continue
            problems.append(f"{name} line {number}: relevance {grade!r} is not a number; skipped")
            skipped["qrels lines malformed"] += 1
            continue
        qrels.setdefault(qid, {})[docid] = value
        if line_numbers is not None:
            line_numbers[(qid, docid)] = number
    if not qrels:
        raise DatasetError(f"{name}: no judgments (the file is empty or has only a header)")
    return qrels, problems, skipped


def write_qrels(qrels: Qrels) -> str:
    """TREC qrels text: ``qid 0 docid rel`` per line."""
    return "".join(f"{qid} 0 {docid} {rel}\n" for qid in sorted(qrels) for docid, rel in sorted(qrels[qid].items()))


def read_queries(path: Path) -> tuple[dict[str, str], list[str]]:
    queries: dict[str, str] = {}
    problems: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot be read ({exc})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            queries[str(row["_id"])] = str(row["text"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            problems.append(f"{path} line {number}: not a query row with _id and text ({exc}); skipped")
    return queries, problems


def corpus_ids(corpus: Path) -> set[str]:
    """Document ids of a corpus.jsonl (``_id``) or a corpus folder (relative file paths)."""
    if corpus.is_dir():
        return {p.relative_to(corpus).as_posix() for p in corpus.rglob("*") if p.is_file()}
    ids = set()
    for line in corpus.read_text(encoding="utf-8-sig").splitlines():
        try:
            row = json.loads(line)
            ids.add(str(row["_id"] if "_id" in row else row["id"]))  # the parser accepts either
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # the ingest reports bad corpus lines with their numbers
    return ids


def find_qrels(folder: Path, split: str = "test") -> Path:
    for candidate in (folder / "qrels" / f"{split}.tsv", folder / "qrels.tsv", folder / "qrels.txt", folder / "qrels"):
        if candidate.is_file():
            return candidate
    raise DatasetError(f"{folder}: no qrels found (looked for qrels/{split}.tsv, qrels.tsv, qrels.txt)")


def find_corpus(folder: Path) -> Path:
    """corpus.jsonl, or the folder named by dataset.json's "corpus" (the demo judgments use ../demo)."""
    manifest = folder / "dataset.json"
    if manifest.is_file():
        try:
            corpus = (folder / json.loads(manifest.read_text(encoding="utf-8"))["corpus"]).resolve()
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DatasetError(f'{manifest}: not a JSON object naming a "corpus" folder ({exc!r})') from None
    else:
        corpus = folder / "corpus.jsonl"
    if not corpus.exists():
        raise DatasetError(f"{folder}: no corpus (expected corpus.jsonl or a dataset.json naming a corpus folder)")
    return corpus


def load_dataset(folder: Path, split: str = "test", qrels_path: Path | None = None) -> JudgedDataset:
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such dataset folder")
    corpus = find_corpus(folder)
    queries_path = folder / "queries.jsonl"
    if not queries_path.is_file():
        raise DatasetError(f"{folder}: no queries.jsonl")
    qrels_file = qrels_path or find_qrels(folder, split)
    lines: dict[tuple[str, str], int] = {}
    qrels, problems, skipped = read_qrels(qrels_file, lines)
    queries, query_problems = read_queries(queries_path)
    problems.extend(query_problems)
    if query_problems:
        skipped["queries lines malformed"] += len(query_problems)
    return _validated(folder.name, folder, corpus, queries, qrels, problems, skipped, qrels_file, queries_path, lines)


def _validated(
    name, folder, corpus, queries, qrels, problems, skipped, qrels_file, queries_path, lines
) -> JudgedDataset:
    known_docs = corpus_ids(corpus)
    kept: Qrels = {}
    for qid, judged in qrels.items():
        if qid not in queries:
            first = min(lines.get((qid, doc), 0) for doc in judged)
            problems.append(
                f"{qrels_file} line {first}: query {qid!r} is not in {queries_path.name}; "
                f"its {len(judged)} judgment(s) are skipped"
            )
            skipped["queries not in queries file"] += 1
            continue
        present = {doc: rel for doc, rel in judged.items() if doc in known_docs}
        for doc in sorted(set(judged) - set(present), key=lambda d: lines.get((qid, d), 0)):
            problems.append(
                f"{qrels_file} line {lines.get((qid, doc), '?')}: document {doc!r} (query {qid!r}) "
                "is not in the corpus; skipped"
            )
            skipped["judgments of documents not in corpus"] += 1
        if not any(rel > 0 for rel in present.values()):
            skipped["queries with no relevant document"] += 1
            continue
        kept[qid] = present
    if not kept:
        raise DatasetError(f"{qrels_file}: no query has a relevant judged document in the corpus; nothing to evaluate")
    judged_queries = {qid: queries[qid] for qid in kept}
    return JudgedDataset(name, folder, corpus, judged_queries, kept, problems, skipped)


def dataset_from_labels(name: str, folder: Path, queries: dict[str, str], qrels: Qrels) -> JudgedDataset:
    """The user's own labelled queries over the explorer's index, as a dataset (corpus: the index itself)."""
    skipped: Counter = Counter()
    kept = {}
    for qid, judged in qrels.items():
        if qid in queries and any(rel > 0 for rel in judged.values()):
            kept[qid] = dict(judged)
        else:
            skipped["queries with no relevant document"] += 1
    if not kept:
        raise DatasetError("no labelled query has a document labelled relevant (1-3) yet")
    return JudgedDataset(name, folder, folder, {q: queries[q] for q in kept}, kept, [], skipped)
