"""Judged datasets: BEIR and TREC qrels, the real BEIR datasets, the demo judgments, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.evaluation.datasets import DatasetError, load_dataset, parse_qrels, read_qrels, write_qrels

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path("/work/shared/datasets")
MEDLINE = SHARED / "medline"
CRANFIELD = SHARED / "cranfield"

CORPUS = [
    {"_id": "d1", "title": "Bonds", "text": "Duration measures a bond's sensitivity to rates."},
    {"_id": "d2", "title": "Options", "text": "A call option gives the right to buy."},
    {"_id": "d3", "title": "Leases", "text": "A lease is a contract for the use of an asset."},
    {"_id": "d4", "title": "Python", "text": "A context manager runs code on entry and exit."},
]
QUERIES = [
    {"_id": "q1", "text": "what is bond duration"},
    {"_id": "q2", "text": "how do call options work"},
    {"_id": "q3", "text": "python with statement"},
]
# q1: graded, with a judged non-relevant document; q2: one relevant; q3: relevant and non-relevant.
JUDGMENTS = [("q1", "d1", 3), ("q1", "d2", 0), ("q1", "d3", 1), ("q2", "d2", 2), ("q3", "d4", 1), ("q3", "d1", 0)]
EXPECTED = {"q1": {"d1": 3, "d2": 0, "d3": 1}, "q2": {"d2": 2}, "q3": {"d4": 1, "d1": 0}}


def jsonl(rows) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def beir_tsv(judgments, header: bool = True) -> str:
    head = "query-id\tcorpus-id\tscore\n" if header else ""
    return head + "".join(f"{q}\t{d}\t{r}\n" for q, d, r in judgments)


def trec(judgments) -> str:
    return "".join(f"{q} 0 {d} {r}\n" for q, d, r in judgments)


def make_dataset(
    folder: Path,
    qrels: str | None = None,
    queries: str | None = None,
    corpus: str | None = None,
    qrels_name: str = "qrels/test.tsv",
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text(jsonl(CORPUS) if corpus is None else corpus, encoding="utf-8")
    (folder / "queries.jsonl").write_text(jsonl(QUERIES) if queries is None else queries, encoding="utf-8")
    path = folder / qrels_name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(beir_tsv(JUDGMENTS) if qrels is None else qrels, encoding="utf-8")
    return folder


def qrels_file(folder: Path) -> Path:
    return folder / "qrels" / "test.tsv"


# --- valid input: BEIR with and without a header, TREC ----------------------------------------------


def test_beir_with_header(tmp_path):
    dataset = load_dataset(make_dataset(tmp_path / "beir"))
    assert dataset.name == "beir"
    assert dataset.qrels == EXPECTED
    assert dataset.queries == {q["_id"]: q["text"] for q in QUERIES}
    assert dataset.corpus == tmp_path / "beir" / "corpus.jsonl"
    assert dataset.problems == []
    assert sum(dataset.skipped.values()) == 0


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(beir_tsv(JUDGMENTS, header=False), id="beir-no-header"),
        pytest.param(trec(JUDGMENTS), id="trec"),
        pytest.param("".join(f"{q}\t0\t{d}\t{r}\n" for q, d, r in JUDGMENTS), id="trec-tabs"),
        pytest.param("\ufeff" + beir_tsv(JUDGMENTS), id="beir-bom"),
        pytest.param(beir_tsv(JUDGMENTS).replace("\n", "\r\n"), id="beir-crlf"),
        pytest.param("\n" + beir_tsv(JUDGMENTS) + "\n\n", id="blank-lines"),
    ],
)
def test_other_qrels_formats_give_the_same_qrels(tmp_path, text):
    with_header = load_dataset(make_dataset(tmp_path / "a"))
    other = load_dataset(make_dataset(tmp_path / "b", qrels=text))
    assert other.qrels == with_header.qrels == EXPECTED
    assert other.queries == with_header.queries
    assert other.problems == []
    assert sum(other.skipped.values()) == 0


@pytest.mark.parametrize("name", ["qrels.tsv", "qrels.txt", "qrels"])
def test_qrels_found_at_the_other_places(tmp_path, name):
    dataset = load_dataset(make_dataset(tmp_path / "d", qrels=trec(JUDGMENTS), qrels_name=name))
    assert dataset.qrels == EXPECTED


def test_split_and_explicit_qrels_path(tmp_path):
    folder = make_dataset(tmp_path / "d")
    (folder / "qrels" / "dev.tsv").write_text(beir_tsv([("q2", "d2", 1)]), encoding="utf-8")
    assert load_dataset(folder, split="dev").qrels == {"q2": {"d2": 1}}
    other = tmp_path / "elsewhere.txt"
    other.write_text(trec([("q3", "d4", 2)]), encoding="utf-8")
    assert load_dataset(folder, qrels_path=other).qrels == {"q3": {"d4": 2}}
    with pytest.raises(DatasetError, match="no qrels found"):
        load_dataset(folder, split="train")


def test_a_query_without_a_relevant_document_is_skipped_and_counted(tmp_path):
    judgments = [j for j in JUDGMENTS if j[0] != "q3"] + [("q3", "d1", 0), ("q3", "d2", 0)]
    dataset = load_dataset(make_dataset(tmp_path / "d", qrels=beir_tsv(judgments)))
    assert set(dataset.qrels) == set(dataset.queries) == {"q1", "q2"}
    assert dataset.skipped["queries with no relevant document"] == 1
    assert dataset.problems == []


def test_graded_values_and_duplicates(tmp_path):
    # A float grade is truncated as trec_eval reads it; a repeated judgment keeps the last value.
    text = beir_tsv([("q1", "d1", "2.0"), ("q1", "d2", 1), ("q1", "d2", 3), ("q2", "d2", -1), ("q2", "d3", 1)])
    dataset = load_dataset(make_dataset(tmp_path / "d", qrels=text))
    assert dataset.qrels == {"q1": {"d1": 2, "d2": 3}, "q2": {"d2": -1, "d3": 1}}


# --- the real BEIR datasets -------------------------------------------------------------------------


@pytest.mark.skipif(not MEDLINE.is_dir(), reason="shared medline dataset not present")
def test_medline():
    dataset = load_dataset(MEDLINE)
    assert dataset.name == "medline"
    assert len(dataset.queries) == 30
    assert set(dataset.queries) == set(dataset.qrels)
    assert sum(len(judged) for judged in dataset.qrels.values()) == 696
    assert {g for judged in dataset.qrels.values() for g in judged.values()} == {1}
    assert dataset.problems == []
    assert sum(dataset.skipped.values()) == 0
    assert dataset.queries["1"] == "the crystalline lens in vertebrates, including humans."
    assert dataset.qrels["1"]["13"] == 1
    # The header is recognised, not read as a judgment.
    qrels, problems, skipped = read_qrels(MEDLINE / "qrels" / "test.tsv")
    assert "query-id" not in qrels and problems == [] and not skipped


@pytest.mark.skipif(not CRANFIELD.is_dir(), reason="shared cranfield dataset not present")
def test_cranfield():
    dataset = load_dataset(CRANFIELD)
    assert len(dataset.queries) == 225
    assert set(dataset.qrels) == set(dataset.queries)
    assert {g for judged in dataset.qrels.values() for g in judged.values()} == {1, 2, 3, 4}
    assert sum(len(judged) for judged in dataset.qrels.values()) == 1612
    assert dataset.qrels["1"]["184"] == 3
    assert dataset.problems == []
    assert sum(dataset.skipped.values()) == 0


# --- bad input: reported with file and line, skipped, counted; the rest still loads --------------------


def test_missing_column(tmp_path):
    text = beir_tsv(JUDGMENTS[:2]) + "q1\td3\n" + beir_tsv(JUDGMENTS[3:], header=False)
    folder = make_dataset(tmp_path / "d", qrels=text)
    dataset = load_dataset(folder)
    assert len(dataset.problems) == 1
    problem = dataset.problems[0]
    assert str(qrels_file(folder)) in problem and "line 4" in problem and "got 2" in problem
    assert dataset.skipped["qrels lines malformed"] == 1
    assert dataset.qrels == {"q1": {"d1": 3, "d2": 0}, "q2": {"d2": 2}, "q3": {"d4": 1, "d1": 0}}


def test_too_many_columns_in_a_tsv(tmp_path):
    text = beir_tsv(JUDGMENTS) + "q2\t0\td3\t1\textra\n"
    dataset = load_dataset(make_dataset(tmp_path / "d", qrels=text))
    assert dataset.skipped["qrels lines malformed"] == 1
    assert "line 8" in dataset.problems[0] and "got 5" in dataset.problems[0]
    assert dataset.qrels == EXPECTED


@pytest.mark.parametrize("grade", ["high", "", "inf", "nan"])
def test_non_numeric_grade(tmp_path, grade):
    text = beir_tsv(JUDGMENTS[:3]) + f"q2\td3\t{grade}\n" + beir_tsv(JUDGMENTS[3:], header=False)
    if grade == "":  # a missing grade is a missing column
        text = text.replace("q2\td3\t\n", "q2\td3\n")
    folder = make_dataset(tmp_path / "d", qrels=text)
    dataset = load_dataset(folder)
    assert len(dataset.problems) == 1
    assert str(qrels_file(folder)) in dataset.problems[0] and "line 5" in dataset.problems[0]
    assert dataset.skipped["qrels lines malformed"] == 1
    assert dataset.qrels == EXPECTED


def test_non_numeric_first_line_is_a_header_only_there(tmp_path):
    qrels, problems, skipped = parse_qrels("qid docno rel\nq1 d1 1\nqid docno rel\n", "x.tsv")
    assert qrels == {"q1": {"d1": 1}}
    assert problems == ["x.tsv line 3: relevance 'rel' is not a number; skipped"]
    assert skipped["qrels lines malformed"] == 1


def test_header_after_leading_blank_lines(tmp_path):
    qrels, problems, _ = parse_qrels("\n\nquery-id\tcorpus-id\tscore\nq1\td1\t2\n", "x.tsv")
    assert qrels == {"q1": {"d1": 2}}
    assert problems == []


def test_query_not_in_queries_file(tmp_path):
    text = beir_tsv(JUDGMENTS + [("q9", "d1", 2), ("q9", "d2", 1)])
    folder = make_dataset(tmp_path / "d", qrels=text)
    dataset = load_dataset(folder)
    assert dataset.qrels == EXPECTED
    assert "q9" not in dataset.queries
    assert len(dataset.problems) == 1
    problem = dataset.problems[0]
    assert str(qrels_file(folder)) in problem and "'q9'" in problem and "queries.jsonl" in problem
    assert dataset.skipped["queries not in queries file"] == 1


def test_document_not_in_corpus(tmp_path):
    text = beir_tsv(JUDGMENTS + [("q2", "d99", 3), ("q3", "gone", 1)])
    folder = make_dataset(tmp_path / "d", qrels=text)
    dataset = load_dataset(folder)
    assert dataset.qrels == EXPECTED
    assert len(dataset.problems) == 2
    assert all(str(qrels_file(folder)) in p for p in dataset.problems)
    assert any("'q2'" in p and "'d99'" in p for p in dataset.problems)
    assert any("'q3'" in p and "'gone'" in p for p in dataset.problems)
    assert dataset.skipped["judgments of documents not in corpus"] == 2


def test_a_query_whose_relevant_documents_are_all_missing_is_skipped(tmp_path):
    text = beir_tsv(JUDGMENTS + [("q4", "d99", 2), ("q4", "d1", 0)])
    queries = jsonl(QUERIES + [{"_id": "q4", "text": "missing"}])
    dataset = load_dataset(make_dataset(tmp_path / "d", qrels=text, queries=queries))
    assert "q4" not in dataset.qrels and "q4" not in dataset.queries
    assert dataset.skipped["judgments of documents not in corpus"] == 1
    assert dataset.skipped["queries with no relevant document"] == 1


def test_broken_query_line(tmp_path):
    lines = jsonl(QUERIES).splitlines()
    lines.insert(1, '{"_id": "q7", "text": ')  # line 2: truncated JSON
    lines.append('{"_id": "q8"}')  # line 5: no text
    lines.append('["q9", "a list"]')  # line 6: not an object
    folder = make_dataset(tmp_path / "d", queries="\n".join(lines) + "\n")
    dataset = load_dataset(folder)
    queries_path = folder / "queries.jsonl"
    assert dataset.qrels == EXPECTED
    query_problems = [p for p in dataset.problems if str(queries_path) in p]
    assert len(query_problems) == 3
    assert [p.split(": ")[0] for p in query_problems] == [f"{queries_path} line {n}" for n in (2, 5, 6)]
    assert dataset.skipped["queries lines malformed"] == 3


def test_broken_query_line_of_a_judged_query(tmp_path):
    lines = jsonl(QUERIES).splitlines()
    lines[1] = lines[1][:-5]  # q2's line, broken
    folder = make_dataset(tmp_path / "d", queries="\n".join(lines))
    dataset = load_dataset(folder)
    assert set(dataset.qrels) == {"q1", "q3"}
    assert any(f"{folder / 'queries.jsonl'} line 2" in p for p in dataset.problems)
    assert any("'q2'" in p and str(qrels_file(folder)) in p for p in dataset.problems)
    assert dataset.skipped["queries lines malformed"] == 1
    assert dataset.skipped["queries not in queries file"] == 1


@pytest.mark.parametrize("text", ["", "\n\n", "query-id\tcorpus-id\tscore\n"], ids=["empty", "blank", "header-only"])
def test_no_judgments_is_an_error_naming_the_file(tmp_path, text):
    folder = make_dataset(tmp_path / "d", qrels=text)
    with pytest.raises(DatasetError) as error:
        load_dataset(folder)
    assert str(qrels_file(folder)) in str(error.value)
    assert "no judgments" in str(error.value)


def test_only_malformed_lines_is_an_error(tmp_path):
    folder = make_dataset(tmp_path / "d", qrels="q1 d1\nq2\n")
    with pytest.raises(DatasetError, match="no judgments"):
        load_dataset(folder)


def test_nothing_evaluable_is_an_error(tmp_path):
    folder = make_dataset(tmp_path / "d", qrels=beir_tsv([("q1", "d1", 0), ("q2", "nope", 2)]))
    with pytest.raises(DatasetError) as error:
        load_dataset(folder)
    assert str(qrels_file(folder)) in str(error.value)
    assert "nothing to evaluate" in str(error.value)


def test_missing_queries_file(tmp_path):
    folder = make_dataset(tmp_path / "d")
    (folder / "queries.jsonl").unlink()
    with pytest.raises(DatasetError) as error:
        load_dataset(folder)
    assert str(folder) in str(error.value) and "queries.jsonl" in str(error.value)


def test_missing_corpus(tmp_path):
    folder = make_dataset(tmp_path / "d")
    (folder / "corpus.jsonl").unlink()
    with pytest.raises(DatasetError) as error:
        load_dataset(folder)
    assert str(folder) in str(error.value) and "no corpus" in str(error.value)


def test_missing_folder_and_missing_qrels(tmp_path):
    with pytest.raises(DatasetError, match="no such dataset folder"):
        load_dataset(tmp_path / "nowhere")
    folder = make_dataset(tmp_path / "d")
    qrels_file(folder).unlink()
    with pytest.raises(DatasetError) as error:
        load_dataset(folder)
    assert str(folder) in str(error.value) and "no qrels" in str(error.value)


def test_unreadable_qrels_is_an_error_naming_the_file(tmp_path):
    folder = make_dataset(tmp_path / "d")
    qrels_file(folder).write_bytes(b"q1\td1\t\xff\xfe\n")
    with pytest.raises(DatasetError) as error:
        load_dataset(folder)
    assert str(qrels_file(folder)) in str(error.value) and "cannot be read" in str(error.value)


def test_bad_corpus_lines_do_not_stop_loading(tmp_path):
    corpus = jsonl(CORPUS[:2]) + "not json\n" + jsonl(CORPUS[2:])
    dataset = load_dataset(make_dataset(tmp_path / "d", corpus=corpus))
    assert dataset.qrels == EXPECTED


# --- a dataset whose corpus is a folder (dataset.json), as the bundled demo judgments --------------------


def test_demo_judgments():
    folder = ROOT / "data" / "judgments"
    demo = (ROOT / "data" / "demo").resolve()
    dataset = load_dataset(folder)
    assert dataset.corpus == demo
    assert len(dataset.queries) >= 30
    assert set(dataset.queries) == set(dataset.qrels)
    assert dataset.problems == []
    assert sum(dataset.skipped.values()) == 0
    grades = set()
    for judged in dataset.qrels.values():
        assert any(g >= 2 for g in judged.values())  # as data/judgments/README.md promises
        for doc, grade in judged.items():
            assert (demo / doc).is_file(), doc
            grades.add(grade)
    assert grades <= {0, 1, 2, 3}
    assert {0, 3} <= grades


def test_dataset_json_corpus_folder(tmp_path):
    corpus = tmp_path / "files"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "a.md").write_text("alpha", encoding="utf-8")
    (corpus / "sub" / "b.txt").write_text("beta", encoding="utf-8")
    folder = tmp_path / "judged"
    folder.mkdir()
    (folder / "dataset.json").write_text(json.dumps({"corpus": "../files"}), encoding="utf-8")
    (folder / "queries.jsonl").write_text(jsonl([{"_id": "1", "text": "alpha"}]), encoding="utf-8")
    (folder / "qrels.tsv").write_text(beir_tsv([("1", "a.md", 2), ("1", "sub/b.txt", 1), ("1", "c.md", 1)]))
    dataset = load_dataset(folder)
    assert dataset.corpus == corpus.resolve()
    assert dataset.qrels == {"1": {"a.md": 2, "sub/b.txt": 1}}
    assert dataset.skipped["judgments of documents not in corpus"] == 1


@pytest.mark.parametrize("manifest", ['{"corpus": "../absent"}', "{not json", '{"other": 1}', "[]"])
def test_bad_dataset_json_is_an_error(tmp_path, manifest):
    folder = make_dataset(tmp_path / "d")
    (folder / "dataset.json").write_text(manifest, encoding="utf-8")
    with pytest.raises(DatasetError) as error:
        load_dataset(folder)
    assert str(folder) in str(error.value)


# --- write_qrels ----------------------------------------------------------------------------------


def test_write_qrels_is_trec_and_round_trips():
    qrels = {"q2": {"b": 0, "a": 3}, "q10": {"x/y.md": 1}, "q1": {"rows.jsonl#7": 2}}
    text = write_qrels(qrels)
    assert text == "q1 0 rows.jsonl#7 2\nq10 0 x/y.md 1\nq2 0 a 3\nq2 0 b 0\n"
    parsed, problems, skipped = parse_qrels(text, "written")
    assert parsed == qrels and problems == [] and not skipped
    assert write_qrels({}) == ""


def test_write_qrels_round_trips_document_ids_with_spaces():
    # Document ids are file paths, and file names have spaces.
    qrels = {"u1": {"reports/Annual Report 2023.pdf": 2, "a  b.md": 1, "plain.md": 0}}
    parsed, problems, _ = parse_qrels(write_qrels(qrels), "written")
    assert parsed == qrels and problems == []


def test_beir_tsv_document_ids_with_spaces():
    parsed, problems, _ = parse_qrels("query-id\tcorpus-id\tscore\nq1\tmy doc.md\t1\nq1\t0\tother doc.md\t2\n", "x")
    assert parsed == {"q1": {"my doc.md": 1, "other doc.md": 2}} and problems == []


def test_unknown_query_and_document_messages_name_their_line(tmp_path):
    folder = tmp_path / "lines"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text('{"_id": "d1", "text": "one"}\n{"_id": "d2", "text": "two"}\n')
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "first"}\n')
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\tghost\t1\nq9\td2\t1\n")
    dataset = load_dataset(folder)
    assert dataset.qrels == {"q1": {"d1": 1}}
    assert any("line 3" in p and "'ghost'" in p for p in dataset.problems)
    assert any("line 4" in p and "'q9'" in p for p in dataset.problems)
