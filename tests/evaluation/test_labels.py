"""Hand-given relevance labels: the store, its qrels import/export, document keys, and per-query NDCG@10."""

from __future__ import annotations

import json
from math import log2

import pytest

from core.chunks import Chunk
from core.evaluation.datasets import DatasetError, parse_qrels
from core.evaluation.labels import GRADES, LabelStore, document_key, ndcg_at_10, query_id
from core.retrieval.pipeline import Pipeline
from core.retrieval.results import RerankedChunk, RetrievedChunk, SearchResult

Q1 = "When does an IPO lock-up period end?"
Q2 = "What is bond duration?"


# --- LabelStore -----------------------------------------------------------------------------------


def test_labels_and_query_texts_persist(tmp_path):
    store = LabelStore(tmp_path / "labels")  # the folder is created on the first write
    assert store.qrels() == {} and store.queries() == {} and store.labels_for(Q1) == {}
    store.set_label(Q1, "finance/ipo-lock-up-period.md", 3)
    store.set_label(Q1, "legal/lock-up-agreement.md", 1)
    store.set_label(Q1, "code/file-locking.py", 0)
    store.set_label(Q2, "finance/bond-duration-and-convexity.md", 2)

    reopened = LabelStore(tmp_path / "labels")
    assert reopened.labels_for(Q1) == {
        "finance/ipo-lock-up-period.md": 3,
        "legal/lock-up-agreement.md": 1,
        "code/file-locking.py": 0,
    }
    assert reopened.labels_for(Q2) == {"finance/bond-duration-and-convexity.md": 2}
    assert reopened.queries() == {query_id(Q1): Q1, query_id(Q2): Q2}
    assert set(reopened.qrels()) == {query_id(Q1), query_id(Q2)}
    # The files are TREC qrels and a BEIR queries.jsonl.
    assert parse_qrels(reopened.qrels_path.read_text(encoding="utf-8"), "labels")[0] == reopened.qrels()
    rows = [json.loads(line) for line in reopened.queries_path.read_text(encoding="utf-8").splitlines()]
    assert sorted(rows, key=lambda r: r["_id"]) == sorted(
        [{"_id": query_id(Q1), "text": Q1}, {"_id": query_id(Q2), "text": Q2}], key=lambda r: r["_id"]
    )


def test_relabel_and_remove(tmp_path):
    store = LabelStore(tmp_path)
    store.set_label(Q1, "a.md", 1)
    store.set_label(Q1, "b.md", 2)
    store.set_label(Q2, "c.md", 3)
    store.set_label(Q1, "a.md", 3)  # a new grade replaces the old one
    assert LabelStore(tmp_path).labels_for(Q1) == {"a.md": 3, "b.md": 2}

    store.set_label(Q1, "a.md", None)
    assert LabelStore(tmp_path).labels_for(Q1) == {"b.md": 2}
    store.set_label(Q1, "never-labelled.md", None)  # removing nothing is harmless
    assert LabelStore(tmp_path).labels_for(Q1) == {"b.md": 2}

    # Removing a query's last label removes the query, its text included.
    store.set_label(Q1, "b.md", None)
    reopened = LabelStore(tmp_path)
    assert reopened.labels_for(Q1) == {}
    assert reopened.qrels() == {query_id(Q2): {"c.md": 3}}
    assert reopened.queries() == {query_id(Q2): Q2}

    store.set_label(Q2, "c.md", None)
    assert LabelStore(tmp_path).qrels() == {} and LabelStore(tmp_path).queries() == {}
    store.set_label(Q2, "c.md", 1)  # an emptied store takes labels again
    assert LabelStore(tmp_path).labels_for(Q2) == {"c.md": 1}


@pytest.mark.parametrize("grade", [4, -1, 5, "2", 1.5])
def test_invalid_grade(tmp_path, grade):
    store = LabelStore(tmp_path)
    store.set_label(Q1, "a.md", 2)
    with pytest.raises(ValueError, match="grade"):
        store.set_label(Q1, "b.md", grade)
    assert LabelStore(tmp_path).labels_for(Q1) == {"a.md": 2}


def test_every_grade_is_kept(tmp_path):
    store = LabelStore(tmp_path)
    for grade in GRADES:
        store.set_label(Q1, f"doc{grade}.md", grade)
    assert LabelStore(tmp_path).labels_for(Q1) == {f"doc{g}.md": g for g in GRADES}
    assert GRADES == (0, 1, 2, 3)


def test_a_bool_grade_is_stored_as_a_number(tmp_path):
    store = LabelStore(tmp_path)
    store.set_label(Q1, "a.md", True)
    assert LabelStore(tmp_path).labels_for(Q1) == {"a.md": 1}
    store.set_label(Q1, "b.md", 2)  # the store is still readable
    assert LabelStore(tmp_path).labels_for(Q1) == {"a.md": 1, "b.md": 2}


def test_document_names_with_spaces(tmp_path):
    # Indexed files are named by users; "Annual Report.pdf" must not break the store.
    store = LabelStore(tmp_path)
    store.set_label(Q1, "reports/Annual Report 2023.pdf", 2)
    store.set_label(Q1, "notes/a  b.md#row 3", 1)
    assert LabelStore(tmp_path).labels_for(Q1) == {"reports/Annual Report 2023.pdf": 2, "notes/a  b.md#row 3": 1}
    store.set_label(Q1, "reports/Annual Report 2023.pdf", None)
    assert LabelStore(tmp_path).labels_for(Q1) == {"notes/a  b.md#row 3": 1}


def test_query_id_is_stable_under_whitespace_and_case():
    qid = query_id("IPO lock-up period")
    assert qid.startswith("u") and len(qid) == 11
    assert query_id("  ipo   LOCK-UP\tperiod \n") == qid
    assert query_id("ipo lock-up periods") != qid
    assert query_id("ipo lockup period") != qid


def test_labels_follow_the_normalised_query(tmp_path):
    store = LabelStore(tmp_path)
    store.set_label("  IPO   lock-up period ", "a.md", 2)
    store.set_label("ipo lock-up PERIOD", "b.md", 1)
    reopened = LabelStore(tmp_path)
    assert reopened.labels_for("IPO lock-up period") == {"a.md": 2, "b.md": 1}
    assert len(reopened.qrels()) == 1
    # The text kept is the latest spelling, whitespace collapsed.
    assert reopened.queries() == {query_id("ipo lock-up period"): "ipo lock-up PERIOD"}


# --- export and import ----------------------------------------------------------------------------


def test_export_is_trec_qrels(tmp_path):
    store = LabelStore(tmp_path)
    store.set_label(Q1, "b.md", 0)
    store.set_label(Q1, "a.md", 3)
    store.set_label(Q2, "rows.jsonl#7", 2)
    q1, q2 = query_id(Q1), query_id(Q2)
    expected = sorted([f"{q1} 0 a.md 3", f"{q1} 0 b.md 0", f"{q2} 0 rows.jsonl#7 2"])
    lines = store.export_qrels().splitlines()
    assert sorted(lines) == expected
    assert lines == sorted(lines, key=lambda line: line.split()[0])  # grouped by query
    for line in lines:
        qid, iteration, _doc, grade = line.split(" ")
        assert qid in (q1, q2)
        assert iteration == "0" and int(grade) in GRADES
    queries = [json.loads(line) for line in store.export_queries().splitlines()]
    assert {row["_id"]: row["text"] for row in queries} == {q1: Q1, q2: Q2}


def test_import_into_a_fresh_store_restores_everything(tmp_path):
    store = LabelStore(tmp_path / "a")
    store.set_label(Q1, "a.md", 3)
    store.set_label(Q1, "b.md", 0)
    store.set_label(Q2, "c.md", 1)
    store.set_label(Q2, "My Report.pdf", 2)

    fresh = LabelStore(tmp_path / "b")
    added, problems = fresh.import_qrels(store.export_qrels(), "labels.qrels", store.export_queries())
    assert added == 4 and problems == []
    assert fresh.qrels() == store.qrels()
    assert fresh.queries() == store.queries()
    assert fresh.labels_for(Q2) == {"c.md": 1, "My Report.pdf": 2}
    assert LabelStore(tmp_path / "b").export_qrels() == store.export_qrels()


def test_import_merges_with_existing_labels(tmp_path):
    store = LabelStore(tmp_path)
    store.set_label(Q1, "a.md", 1)
    store.set_label(Q1, "b.md", 2)
    incoming = f"{query_id(Q1)} 0 a.md 3\n{query_id(Q1)} 0 c.md 0\n"
    added, problems = store.import_qrels(incoming, "upload.txt")  # texts already known
    assert (added, problems) == (2, [])
    assert LabelStore(tmp_path).labels_for(Q1) == {"a.md": 3, "b.md": 2, "c.md": 0}


def test_import_beir_with_header_and_queries(tmp_path):
    store = LabelStore(tmp_path)
    qrels = "query-id\tcorpus-id\tscore\nq1\tfinance/a.md\t2\nq1\tlegal/b.md\t0\nq2\tcode/c.py\t1\n"
    queries = '{"_id": "q1", "text": "first"}\n\n{"_id": "q2", "text": "second"}\n'
    added, problems = store.import_qrels(qrels, "test.tsv", queries)
    assert (added, problems) == (3, [])
    reopened = LabelStore(tmp_path)
    assert reopened.qrels() == {"q1": {"finance/a.md": 2, "legal/b.md": 0}, "q2": {"code/c.py": 1}}
    assert reopened.queries() == {"q1": "first", "q2": "second"}


def test_import_without_query_text_is_reported_and_skipped(tmp_path):
    store = LabelStore(tmp_path)
    qrels = "q1 0 a.md 2\nq2 0 b.md 1\nq2 0 c.md 3\n"
    added, problems = store.import_qrels(qrels, "upload.qrels", '{"_id": "q1", "text": "known"}\n')
    assert added == 1
    assert len(problems) == 1
    assert "upload.qrels" in problems[0] and "'q2'" in problems[0]
    reopened = LabelStore(tmp_path)
    assert reopened.qrels() == {"q1": {"a.md": 2}}
    assert reopened.queries() == {"q1": "known"}


def test_import_reports_bad_lines_and_keeps_the_rest(tmp_path):
    store = LabelStore(tmp_path)
    qrels = "q1 0 a.md 2\nq1 a.md\nq1 0 b.md high\n"
    queries = '{"_id": "q1", "text": "known"}\n{"_id": "q2", \n'
    added, problems = store.import_qrels(qrels, "upload.qrels", queries)
    assert added == 1
    assert any("upload.qrels line 2" in p for p in problems)
    assert any("upload.qrels line 3" in p for p in problems)
    assert any("queries line 2" in p for p in problems)
    assert LabelStore(tmp_path).qrels() == {"q1": {"a.md": 2}}


def test_import_of_nothing_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="empty.qrels"):
        LabelStore(tmp_path).import_qrels("", "empty.qrels")


# --- document keys --------------------------------------------------------------------------------


def chunk(source: str, doc_id: str | None = None, n: int = 0) -> Chunk:
    doc_id = source if doc_id is None else doc_id
    return Chunk(f"{source}|{doc_id}|{n}", source, doc_id, source, None, 0, 4, "text")


def test_document_key():
    assert document_key(chunk("finance/a.md")) == "finance/a.md"
    assert document_key(chunk("report.pdf", n=3)) == "report.pdf"
    assert document_key(chunk("data/rows.jsonl", "r17")) == "data/rows.jsonl#r17"
    assert document_key(chunk("data/rows.csv", "3")) == "data/rows.csv#3"
    # Two rows of one file are two documents.
    assert document_key(chunk("rows.jsonl", "a")) != document_key(chunk("rows.jsonl", "b"))


# --- NDCG@10 of one labelled query, both columns ---------------------------------------------------


def dcg(gains: list[float]) -> float:
    """trec_eval's DCG: gain = grade, discount log2(rank + 1)."""
    return sum(g / log2(rank + 1) for rank, g in enumerate(gains[:10], start=1))


def ndcg(ranked_grades: list[float], all_grades: list[float]) -> float:
    return dcg(ranked_grades) / dcg(sorted(all_grades, reverse=True))


def search_result(bi: list[tuple[Chunk, float]], reranked: list[tuple[Chunk, float]] = ()) -> SearchResult:
    """Bi-encoder chunks with cosine scores, in rank order; reranked chunks with logits, in reranked order."""
    bi_ranks = {c.chunk_id: rank for rank, (c, _) in enumerate(bi, start=1)}
    return SearchResult(
        query="q",
        k=len(bi),
        pipeline=Pipeline(reranker="tiny", rerank_depth=len(reranked)),
        dense=[RetrievedChunk(rank, c, score) for rank, (c, score) in enumerate(bi, start=1)],
        reranked=[
            RerankedChunk(rank, c, bi_ranks[c.chunk_id], logit, 1 / (1 + 2.718281828459045**-logit))
            for rank, (c, logit) in enumerate(reranked, start=1)
        ],
    )


def test_ndcg_maxp_counts_a_document_once_at_its_best_chunk():
    a0, a1 = chunk("a.md", n=0), chunk("a.md", n=1)
    b, c = chunk("b.md"), chunk("c.md")
    r1, r2 = chunk("rows.jsonl", "r1"), chunk("rows.jsonl", "r2")
    labels = {"a.md": 1, "b.md": 0, "c.md": 3, "d.md": 2, "rows.jsonl#r2": 2}  # d.md never retrieved
    bi = [(a0, 0.9), (b, 0.8), (a1, 0.7), (r1, 0.65), (c, 0.6), (r2, 0.5)]
    # The reranker likes a's second chunk and c; a's first chunk it puts last.
    reranked = [(c, 5.0), (a1, 2.0), (r2, 1.5), (b, 1.0), (r1, 0.0), (a0, -1.0)]
    bi_score, reranked_score = ndcg_at_10(search_result(bi, reranked), labels)

    ideal = list(labels.values())
    # Bi-encoder documents: a (its first chunk, rank 1), b, rows#r1, c, rows#r2.
    assert bi_score == pytest.approx(ndcg([1, 0, 0, 3, 2], ideal), abs=1e-9)
    # Reranked documents: c, a (best chunk a1), rows#r2, b, rows#r1.
    assert reranked_score == pytest.approx(ndcg([3, 1, 2, 0, 0], ideal), abs=1e-9)
    # Were a's chunks counted twice, or at its worst chunk, the figures would differ.
    assert bi_score != pytest.approx(ndcg([1, 0, 1, 0, 3, 2], ideal), abs=1e-9)
    assert reranked_score != pytest.approx(ndcg([3, 2, 0, 0, 1], ideal), abs=1e-9)


def test_ndcg_reranked_list_shorter_than_the_dense_list():
    d = [chunk(f"d{i}.md") for i in range(1, 6)]
    d2_again = chunk("d2.md", n=1)
    labels = {"d1.md": 2, "d3.md": 3, "d5.md": 1}
    bi = [(d[0], 0.9), (d[1], 0.8), (d[2], 0.7), (d[3], 0.6), (d2_again, 0.55), (d[4], 0.5)]
    # Only the top two were reranked, with negative logits: the rest still follows, in bi-encoder order,
    # and d2's unreranked second chunk does not bring d2 back among the rest.
    reranked = [(d[1], -0.5), (d[0], -3.0)]
    bi_score, reranked_score = ndcg_at_10(search_result(bi, reranked), labels)

    ideal = [2, 3, 1]
    assert bi_score == pytest.approx(ndcg([2, 0, 3, 0, 1], ideal), abs=1e-9)  # d1 d2 d3 d4 d5
    assert reranked_score == pytest.approx(ndcg([0, 2, 3, 0, 1], ideal), abs=1e-9)  # d2 d1 | d3 d4 d5
    expected = (2 / log2(3) + 3 / log2(4) + 1 / log2(6)) / (3 + 2 / log2(3) + 1 / log2(4))
    assert reranked_score == pytest.approx(expected, abs=1e-9)


def test_ndcg_cuts_at_ten():
    docs = [chunk(f"doc{i:02d}.md") for i in range(1, 13)]
    bi = [(c, 1.0 - i / 100) for i, c in enumerate(docs)]
    labels = {"doc11.md": 2, "doc01.md": 0}
    # The relevant document is 11th for the bi-encoder; the reranker moves it to the top.
    reranked = [(docs[10], 4.0)] + [(c, 1.0 - i / 10) for i, c in enumerate(docs[:10])]
    bi_score, reranked_score = ndcg_at_10(search_result(bi, reranked), labels)
    assert bi_score == 0.0
    assert reranked_score == pytest.approx(1.0, abs=1e-9)


def test_ndcg_ties_keep_the_ranking_order():
    # Equal scores: the documents keep the order the ranking gave them, not trec_eval's id order.
    a, b, c = chunk("a.md"), chunk("b.md"), chunk("c.md")
    labels = {"a.md": 1, "c.md": 3}
    bi_score, reranked_score = ndcg_at_10(search_result([(a, 0.5), (b, 0.5), (c, 0.5)], [(c, 1.0), (a, 1.0)]), labels)
    assert bi_score == pytest.approx(ndcg([1, 0, 3], [1, 3]), abs=1e-9)
    assert reranked_score == pytest.approx(ndcg([3, 1, 0], [1, 3]), abs=1e-9)


def test_ndcg_without_a_reranked_column():
    a, b = chunk("a.md"), chunk("b.md")
    bi_score, reranked_score = ndcg_at_10(search_result([(a, 0.9), (b, 0.8)]), {"b.md": 2, "x.md": 1})
    assert bi_score == pytest.approx(ndcg([0, 2], [2, 1]), abs=1e-9)
    assert reranked_score is None


def test_ndcg_perfect_and_nothing_relevant_retrieved():
    a, b = chunk("a.md"), chunk("b.md")
    result = search_result([(a, 0.9), (b, 0.8)], [(b, 2.0), (a, 1.0)])
    assert ndcg_at_10(result, {"a.md": 3, "b.md": 1}) == (
        pytest.approx(1.0, abs=1e-9),
        pytest.approx(ndcg([1, 3], [3, 1]), abs=1e-9),
    )
    assert ndcg_at_10(result, {"zzz.md": 2}) == (0.0, 0.0)


def test_ndcg_all_labels_zero():
    a, b = chunk("a.md"), chunk("b.md")
    labels = {"a.md": 0, "b.md": 0}
    assert ndcg_at_10(search_result([(a, 0.9), (b, 0.8)], [(b, 1.0), (a, 0.0)]), labels) == (0.0, 0.0)
    assert ndcg_at_10(search_result([(a, 0.9), (b, 0.8)]), labels) == (0.0, None)
    assert ndcg_at_10(search_result([(a, 0.9)], [(a, 1.0)]), {}) == (0.0, 0.0)


def test_imported_grades_outside_0_to_3_are_skipped(tmp_path):
    store = LabelStore(tmp_path)
    added, problems = store.import_qrels(
        "q1 0 d1 4\nq1 0 d2 2\n", "cranfield.qrels", '{"_id": "q1", "text": "wing lift"}\n'
    )
    assert added == 1 and store.qrels() == {"q1": {"d2": 2}}
    assert any("outside 0-3" in p for p in problems)
