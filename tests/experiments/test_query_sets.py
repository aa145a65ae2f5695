"""Query sets from plain lists and Quepid ratings: every bad line reported, hostile text kept verbatim."""

from __future__ import annotations

import json

import pytest

from core.evaluation.labels import query_id
from core.experiments.interop import read_quepid_ratings, trec_run, write_quepid_ratings
from core.experiments.query_sets import QuerySetError, read_query_file

HOSTILE = ['what "is" a bond', "back\\slash <b>bold</b> [x](http://127.0.0.1/)", "it's ünïcode 名前 #1", "a, b; c"]


def test_a_txt_list_gives_one_query_per_line_with_the_labels_ids():
    data = ("\n".join(HOSTILE) + "\n\n   \n" + HOSTILE[0] + "\n").encode()
    query_set = read_query_file("mine.txt", data)
    assert list(query_set.queries.values()) == HOSTILE
    assert list(query_set.queries) == [query_id(q) for q in HOSTILE]  # the Search page's labels line up
    assert query_set.qrels is None and not query_set.judged
    assert any("line 7" in p and "repeats" in p for p in query_set.problems)


def test_a_csv_needs_a_query_column_and_keeps_quoted_commas_quotes_and_newlines():
    rows = "id,query,notes\n" + "".join(f'q{i},"{q.replace(chr(34), chr(34) * 2)}",x\n' for i, q in enumerate(HOSTILE))
    rows += 'q9,"two\nlines",x\n'
    query_set = read_query_file("set.csv", rows.encode("utf-8-sig"))
    assert query_set.queries == {**{f"q{i}": q for i, q in enumerate(HOSTILE)}, "q9": "two lines"}
    with pytest.raises(QuerySetError, match=r"set\.csv.*'query' column"):
        read_query_file("set.csv", b"text,id\nhello,1\n")


def test_jsonl_lines_need_a_text_and_bad_lines_are_reported_by_number():
    lines = [json.dumps({"_id": "a", "text": HOSTILE[1]}), "{not json", json.dumps({"id": 5}),
             json.dumps({"text": ["list"]}), json.dumps({"text": HOSTILE[2]})]  # fmt: skip
    query_set = read_query_file("q.jsonl", "\n".join(lines).encode())
    assert query_set.queries == {"a": HOSTILE[1], query_id(HOSTILE[2]): HOSTILE[2]}
    assert [p.split(":")[0] for p in query_set.problems] == ["q.jsonl line 2", "q.jsonl line 3", "q.jsonl line 4"]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("q.pdf", b"x", "must be .txt, .csv or .jsonl"),
        ("q.txt", b"\xff\xfe\x00bad", "not UTF-8"),
        ("q.txt", b"\n  \n", "no queries"),
    ],  # fmt: skip
)
def test_an_unusable_file_is_one_clear_error_naming_it(name, data, message):
    with pytest.raises(QuerySetError, match=message) as raised:
        read_query_file(name, data)
    assert name in str(raised.value)


def test_quepid_ratings_round_trip_with_hostile_queries_and_document_ids():
    queries = {query_id(q): q for q in HOSTILE}
    qrels = {qid: {"doc,1": 3, 'doc "2"': 0, "folder/file.md#row 3": 2} for qid in queries}
    text = write_quepid_ratings(queries, qrels)
    assert text.splitlines()[0] == "query,docid,rating"
    back = read_quepid_ratings("ratings.csv", text)
    assert back.queries == queries and back.qrels == qrels and not back.problems


def test_quepid_ratings_skip_bad_rows_by_line_and_round_fractional_ratings():
    text = "query,docid,rating\nbonds,d1,2.6\nbonds,d2,high\n,d3,1\nswaps,d4,0\n"
    query_set = read_quepid_ratings("r.csv", text)
    assert query_set.qrels == {query_id("bonds"): {"d1": 3}, query_id("swaps"): {"d4": 0}}
    assert [p.split(":")[0] for p in query_set.problems] == ["r.csv line 3", "r.csv line 4"]
    with pytest.raises(QuerySetError, match="query,docid,rating"):
        read_quepid_ratings("r.csv", "q,doc,grade\n")


def test_a_trec_run_lists_each_query_in_rank_order():
    text = trec_run({"q1": [("a", 2.0), ("b", 1.5)], "q2": [("c", 0.25)]}, "dense")
    assert text == "q1 Q0 a 1 2.0 dense\nq1 Q0 b 2 1.5 dense\nq2 Q0 c 1 0.25 dense\n"


def test_judge_labels_merge_under_the_humans_and_the_set_says_whose_they_are(tmp_path):
    from core.cli_experiment import add_judge_labels
    from core.experiments.query_sets import QuerySet

    judge_file = tmp_path / "judge.qrels"
    judge_file.write_text("q1 0 a 0\nq1 0 new 2\nq9 0 x 3\n")
    judged = QuerySet("set", {"q1": "bonds", "q2": "swaps"}, {"q1": {"a": 3}})
    add_judge_labels(judged, judge_file)
    assert judged.qrels == {"q1": {"a": 3, "new": 2}} and judged.labels == "merged"  # q9 is not in the set
    unjudged = QuerySet("list", {"q1": "bonds"})
    add_judge_labels(unjudged, judge_file)
    assert unjudged.qrels == {"q1": {"a": 0, "new": 2}} and unjudged.labels == "judge"
