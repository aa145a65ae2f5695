"""End-to-end evaluation: medline with the bi-encoder alone, and both stages with the tiny zerank model."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytrec_eval

from core.demo import DEMO_JUDGMENTS, SHARED_DATASETS
from core.eval_runner import evaluations, run_dataset_evaluation
from core.evaluation.calibration import expected_calibration_error, precision_recall_at, reliability
from core.evaluation.datasets import load_dataset, read_qrels
from core.evaluation.report import Evaluation, RerankedDocument
from core.rerank.local import load_reranker
from core.retrieval.pipeline import FirstStage, Pipeline

ROOT = Path(__file__).resolve().parents[2]
MEDLINE = SHARED_DATASETS / "medline"


def _run_file(text: str) -> dict[str, dict[str, float]]:
    run: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        qid, _q0, doc, _rank, score, _tag = line.split()
        run.setdefault(qid, {})[doc] = float(score)
    return run


@pytest.mark.skipif(not MEDLINE.is_dir(), reason="../shared/datasets/medline is not here")
def test_medline_end_to_end_without_reranker(tmp_path):
    env = {**os.environ, "RERANK_WORKSPACE": str(tmp_path / "ws")}
    done = subprocess.run(
        [sys.executable, "-m", "core", "eval", str(MEDLINE), "-k", "100", "--reranker", "none",
         "--run-out", str(tmp_path / "runs"), "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["dataset"] == "medline" and out["queries"] == 30
    bi = out["metrics"]["dense"]
    assert set(bi) >= {"ndcg@10", "mrr@10", "recall@100"}
    # The shared README measures 0.7875 with whole documents truncated at 256 tokens; chunks with MaxP
    # read every word, so the figure is close to that, not equal.
    assert 0.70 < bi["ndcg@10"] < 0.90 and bi["recall@100"] > 0.9
    assert out["metrics"]["reranked"] is None and out["lift"] is None
    assert "--reranker none" in out["reranker_error"]

    # The exported run, scored by pytrec_eval with the dataset's qrels, gives the same figures.
    run = _run_file((tmp_path / "runs" / "dense.run").read_text())
    qrels, _, _ = read_qrels(MEDLINE / "qrels" / "test.tsv")
    reference = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10", "recall_100"}).evaluate(run)
    mean = sum(v["ndcg_cut_10"] for v in reference.values()) / len(reference)
    assert mean == pytest.approx(bi["ndcg@10"], abs=1e-6)
    assert all(len(docs) == 100 for docs in run.values())
    rows = list(csv.DictReader(io.StringIO((tmp_path / "runs" / "per_query.csv").read_text())))
    assert len(rows) == 30 and "dense:ndcg@10" in rows[0]


def test_both_stages_with_tiny_zerank(tmp_path, encoder, tiny_zerank_path):
    from core.config import Settings

    dataset = load_dataset(DEMO_JUDGMENTS)
    assert len(dataset.queries) >= 30
    reranker = load_reranker(str(tiny_zerank_path), device="cpu")
    settings = Settings(workspace=tmp_path / "ws")
    seen = []
    pipeline = Pipeline(reranker=reranker.model_id, rerank_depth=5)
    evaluation, ingest = run_dataset_evaluation(
        settings, encoder, dataset, pipeline, reranker, k=10, progress=lambda d, t: seen.append((d, t))
    )
    assert ingest.reports and all(r.status == "indexed" for r in ingest.reports)
    assert seen[-1] == (len(dataset.queries), len(dataset.queries))
    summary = evaluation.summary()
    assert summary["metrics"]["reranked"] is not None
    lift = summary["lift"]["ndcg@10"]
    assert lift["ci95"][0] <= lift["mean"] <= lift["ci95"][1] and 0 < lift["p_value"] <= 1
    for record in evaluation.queries:
        # Reranking reorders the top 5 of the same 10 documents and leaves ranks 6-10 in place.
        dense = record.run("dense")
        assert set(record.reranked) == set(dense)
        bi_order = sorted(dense, key=dense.get, reverse=True)
        re_order = sorted(record.reranked, key=record.reranked.get, reverse=True)
        assert set(re_order[:5]) == set(bi_order[:5]) and re_order[5:] == bi_order[5:]
    assert all(0 <= c.probability <= 1 for c in evaluation.reranked_documents)
    assert len(evaluation.reranked_documents) == 5 * len(dataset.queries)

    # Saved and listed for comparison; the saved copy reads back the same.
    store = evaluations(settings)
    path = store.save(evaluation)
    assert store.list() == [path]
    assert store.load(path).summary() == summary

    # A second evaluation of the same dataset embeds nothing new.
    again, ingest_again = run_dataset_evaluation(settings, encoder, dataset, Pipeline(rerank_depth=0), None, k=10)
    assert ingest_again.embedded == 0 and all(r.status == "unchanged" for r in ingest_again.reports)
    assert again.means("dense") == evaluation.means("dense")


def test_cancelled_evaluation_stops_early(tmp_path, encoder):
    from core.config import Settings

    dataset = load_dataset(DEMO_JUDGMENTS)
    calls = []
    evaluation, _ = run_dataset_evaluation(
        Settings(workspace=tmp_path / "ws"), encoder, dataset, Pipeline(rerank_depth=0), None, k=10,
        should_stop=lambda: len(calls) >= 3, progress=lambda d, t: calls.append(d),
    )  # fmt: skip
    assert evaluation.cancelled and len(evaluation.queries) == 3


def test_calibration_figures_on_hand_made_candidates():
    candidates = [
        RerankedDocument("q", "a", 0.95, 3),
        RerankedDocument("q", "b", 0.91, 0),
        RerankedDocument("q", "c", 0.15, None),
        RerankedDocument("q", "d", 0.12, 1),
        RerankedDocument("q", "e", 1.0, 2),
    ]
    bins = reliability(candidates, bins=10)
    top = bins[9]  # [0.9, 1.0], right-closed so p = 1.0 counts
    assert top.count == 3 and top.fraction_relevant == pytest.approx(2 / 3)
    assert bins[1].count == 2 and bins[1].fraction_relevant == pytest.approx(0.5)
    ece = expected_calibration_error(bins)
    expected = 3 / 5 * abs((0.95 + 0.91 + 1.0) / 3 - 2 / 3) + 2 / 5 * abs((0.15 + 0.12) / 2 - 0.5)
    assert ece == pytest.approx(expected)
    rows = precision_recall_at(candidates, [0.5, 0.0], total_relevant=4)
    assert rows[0] == {"threshold": 0.5, "kept": 3, "precision": 2 / 3, "recall": 0.5}
    assert rows[1]["recall"] == pytest.approx(0.75)


def test_evaluation_json_round_trip():
    evaluation = Evaluation(
        dataset="x", settings={"k": 10}, queries=[], metrics={"dense": {}}, reranked_documents=[],
        timings_s={"total": 1.0}, problems=[], skipped={},
    )  # fmt: skip
    assert Evaluation.from_json(json.loads(json.dumps(evaluation.to_json()))) == evaluation


def test_own_labels_are_evaluated_on_the_explorers_index(workspace):
    from core.demo import DEMO_CORPUS
    from core.eval_runner import run_label_evaluation
    from core.evaluation.labels import LabelStore, ndcg_at_10
    from core.retrieval.first_stage import Retriever

    workspace.ingest_paths([DEMO_CORPUS])
    labels = LabelStore(workspace.folder)
    query = "When does the IPO lock-up period expire?"
    labels.set_label(query, "finance/ipo-lock-up-period.md", 3)
    labels.set_label(query, "code/dependency-lock-files.md", 0)
    labels.set_label("a query with nothing relevant", "legal/fair-use-copyright.md", 0)

    evaluation = run_label_evaluation(workspace, Pipeline(rerank_depth=0), None, k=20, reranker_error="off")
    assert [q.query for q in evaluation.queries] == [query]
    assert evaluation.skipped == {"queries with no relevant document": 1}
    # The same figure the search page shows for this query from the same labels.
    retriever = Retriever(workspace.encoder, workspace.store, workspace.lexical)
    shown, _ = ndcg_at_10(retriever.first_stage(query, Pipeline(), k=20), labels.labels_for(query))
    assert evaluation.means("dense")["ndcg@10"] == pytest.approx(shown)


def test_exported_run_keeps_scores_that_differ_below_a_millionth(tmp_path):
    from core.evaluation.report import QueryRecord
    from core.evaluation.store import EvaluationStore

    record = QueryRecord("q1", "query", 1, {"dense": {"d-a": 0.81234561, "d-z": 0.81234559}}, None)
    evaluation = Evaluation(
        dataset="x", settings={}, queries=[record], metrics={"dense": {}}, reranked_documents=[],
        timings_s={}, problems=[], skipped={},
    )  # fmt: skip
    run = _run_file(evaluation.trec_run("dense"))
    assert run["q1"]["d-a"] > run["q1"]["d-z"]  # trec_eval would otherwise put d-z first (ties: id descending)

    store = EvaluationStore(tmp_path)
    first, second = store.save(evaluation), store.save(evaluation)
    assert first != second and len(store.list()) == 2  # two saves in the same second both survive
    first.write_text("{not json")
    with pytest.raises(ValueError, match="not a readable evaluation"):
        store.load(first)


@pytest.fixture(scope="module")
def demo_index(tmp_path_factory, encoder):
    """The demo judgments' corpus indexed once, as run_dataset_evaluation indexes it."""
    from core.config import Settings
    from core.eval_runner import dataset_workspace, index_corpus

    dataset = load_dataset(DEMO_JUDGMENTS)
    workspace = dataset_workspace(Settings(workspace=tmp_path_factory.mktemp("eval") / "ws"), encoder, dataset)
    index_corpus(workspace, dataset)
    yield dataset, workspace
    workspace.close()


def _retriever(workspace):
    from core.retrieval.first_stage import Retriever

    return Retriever(workspace.encoder, workspace.store, workspace.lexical)


def _mean_from_pytrec_eval(qrels, run, measure: str) -> float:
    """The mean over every judged query; a query the run does not list scores 0, as in our metrics."""
    scored = pytrec_eval.RelevanceEvaluator(qrels, {measure}).evaluate({q: d for q, d in run.items() if d})
    return sum(scored.get(q, {}).get(measure, 0.0) for q in qrels) / len(qrels)


def test_every_first_stage_is_reported_and_lift_is_against_the_chosen_one(demo_index, tiny_zerank_path):
    from core.evaluation.evaluate import evaluate
    from core.evaluation.metrics import METRICS
    from core.evaluation.report import FIRST_STAGES
    from core.evaluation.store import EvaluationStore
    from core.retrieval.pipeline import FirstStage

    dataset, workspace = demo_index
    reranker = load_reranker(str(tiny_zerank_path), device="cpu")
    evaluation = evaluate(
        dataset, _retriever(workspace), Pipeline(FirstStage("bm25"), reranker.model_id, 5), reranker, k=10
    )
    qids = set(dataset.queries)
    assert evaluation.stages == ["dense", "bm25", "hybrid_rrf", "hybrid_weighted", "reranked"]
    assert list(FIRST_STAGES) == evaluation.stages[:4]
    for stage in evaluation.stages:
        assert set(evaluation.metrics[stage]) == qids
        assert all(set(values) == set(METRICS) for values in evaluation.metrics[stage].values())
    assert evaluation.settings["first_stage"] == "bm25" and evaluation.baseline == "bm25"
    assert evaluation.settings["first_stage_label"] == "BM25"
    assert evaluation.settings["lexical_engine"] == "Milvus BM25"
    summary = evaluation.summary()
    assert summary["lift_against"] == "bm25"
    assert set(summary["metrics"]) == set(evaluation.stages)

    # The reranker rescored the BM25 list: the same documents, the top 5 reordered, the rest in BM25's order.
    for record in evaluation.queries:
        bm25 = sorted(record.run("bm25"), key=record.run("bm25").get, reverse=True)
        reranked = sorted(record.reranked, key=record.reranked.get, reverse=True)
        assert set(reranked) == set(bm25)
        assert set(reranked[:5]) == set(bm25[:5]) and reranked[5:] == bm25[5:]
    # The BM25 run is the store's BM25 list, chunks grouped into documents by their best (first) chunk.
    record = evaluation.queries[0]
    hits = workspace.store.search_text(record.query, 10 * 4)
    first_seen = list(dict.fromkeys(h.chunk.doc_id for h in hits))[:10]
    assert sorted(record.run("bm25"), key=record.run("bm25").get, reverse=True) == first_seen

    # The lift is reranked minus the chosen first stage, query by query.
    lift = evaluation.lift("ndcg@10")
    differences = [
        evaluation.metrics["reranked"][q]["ndcg@10"] - evaluation.metrics["bm25"][q]["ndcg@10"] for q in qids
    ]
    assert lift.mean == pytest.approx(sum(differences) / len(differences), abs=1e-12)
    assert lift.helped == sum(d > 0 for d in differences) and lift.hurt == sum(d < 0 for d in differences)
    rows = {r["qid"]: r for r in csv.DictReader(io.StringIO(evaluation.per_query_csv()))}
    for qid in qids:
        expected = evaluation.metrics["reranked"][qid]["recall@10"] - evaluation.metrics["bm25"][qid]["recall@10"]
        assert float(rows[qid]["lift:recall@10"]) == pytest.approx(expected, abs=1e-6)
        assert float(rows[qid]["hybrid_rrf:ndcg@10"]) == pytest.approx(
            evaluation.metrics["hybrid_rrf"][qid]["ndcg@10"], abs=1e-6
        )

    # Every stage's exported run, scored by pytrec_eval, gives the reported means.
    qrels = {q: dataset.qrels[q] for q in qids}
    for stage in evaluation.stages:
        run = _run_file(evaluation.trec_run(stage))
        means = evaluation.means(stage)
        assert _mean_from_pytrec_eval(qrels, run, "ndcg_cut_10") == pytest.approx(means["ndcg@10"], abs=1e-9), stage
        assert _mean_from_pytrec_eval(qrels, run, "recall_10") == pytest.approx(means["recall@10"], abs=1e-9), stage

    # Saved and read back whole.
    store = EvaluationStore(workspace.folder / "evaluations")
    again = store.load(store.save(evaluation))
    assert again.summary() == summary and again.queries == evaluation.queries


def test_hybrid_first_stage_is_reranked_and_is_the_lift_baseline(demo_index, tiny_zerank_path):
    from core.evaluation.evaluate import evaluate
    from core.retrieval.pipeline import FirstStage

    dataset, workspace = demo_index
    reranker = load_reranker(str(tiny_zerank_path), device="cpu")
    evaluation = evaluate(
        dataset, _retriever(workspace), Pipeline(FirstStage("hybrid", "rrf"), reranker.model_id, 3), reranker, k=10
    )
    assert evaluation.baseline == "hybrid_rrf" and evaluation.settings["first_stage_label"] == "hybrid (RRF, k=60)"
    for record in evaluation.queries:
        hybrid = sorted(record.run("hybrid_rrf"), key=record.run("hybrid_rrf").get, reverse=True)
        reranked = sorted(record.reranked, key=record.reranked.get, reverse=True)
        assert set(reranked[:3]) == set(hybrid[:3]) and reranked[3:] == hybrid[3:]
    before = {q: m["mrr@10"] for q, m in evaluation.metrics["hybrid_rrf"].items()}
    after = {q: m["mrr@10"] for q, m in evaluation.metrics["reranked"].items()}
    assert evaluation.lift("mrr@10").mean == pytest.approx(sum(after[q] - before[q] for q in after) / len(after))


def test_the_chosen_dense_weight_is_the_one_evaluated(demo_index):
    from core.evaluation.evaluate import CHUNKS_PER_DOCUMENT, evaluate
    from core.retrieval.first_stage import fuse
    from core.retrieval.pipeline import FirstStage
    from core.retrieval.results import BM25, DENSE, RetrievedChunk

    dataset, workspace = demo_index
    stage = FirstStage("hybrid", "weighted", dense_weight=0.1)
    evaluation = evaluate(dataset, _retriever(workspace), Pipeline(stage, None, 0), None, k=10)
    assert evaluation.settings["first_stage_label"] == "hybrid (weighted: 0.10 dense + 0.90 BM25, min-max)"
    limit = 10 * CHUNKS_PER_DOCUMENT
    qids = [r.qid for r in evaluation.queries]
    vectors = workspace.encoder.encode_queries([dataset.queries[q] for q in qids])
    for record, vector in zip(evaluation.queries, vectors):
        dense = [
            RetrievedChunk(r, h.chunk, h.score, {DENSE: r})
            for r, h in enumerate(workspace.store.search(vector, limit), 1)
        ]
        bm25 = [
            RetrievedChunk(r, h.chunk, h.score, {BM25: r})
            for r, h in enumerate(workspace.lexical.search(record.query, limit), 1)
        ]
        expected = list(dict.fromkeys(c.chunk.doc_id for c in fuse(dense, bm25, stage, limit)))[:10]
        run = record.run("hybrid_weighted")
        assert sorted(run, key=run.get, reverse=True) == expected, record.qid


def test_an_evaluation_saved_before_hybrid_first_stages_and_the_dense_rename_still_loads(tmp_path):
    from core.evaluation.metrics import METRICS
    from core.evaluation.store import EvaluationStore

    values = {"q1": dict.fromkeys(METRICS, 0.5), "q2": dict.fromkeys(METRICS, 0.25)}
    raised = {"q1": dict.fromkeys(METRICS, 1.0), "q2": dict.fromkeys(METRICS, 0.25)}
    old = {  # as saved before BM25 and hybrid existed: no first_stages per query, no first_stage setting
        "dataset": "demo",
        "settings": {"k": 10, "rerank_depth": 5, "bi_encoder": "some/model", "reranker": "tiny"},
        "queries": [
            {
                "qid": "q1",
                "query": "one",
                "relevant": 1,
                "bi_encoder": {"a": 0.9, "b": 0.8},
                "reranked": {"b": 2.0, "a": 1.0},
            },
            {"qid": "q2", "query": "two", "relevant": 2, "bi_encoder": {"c": 0.7}, "reranked": {"c": 0.5}},
        ],
        "metrics": {"bi_encoder": values, "reranked": raised},
        "candidates": [{"qid": "q1", "doc_id": "b", "probability": 0.6, "grade": 2}],
        "timings_s": {"total": 3.0},
        "problems": [],
        "skipped": {},
        "cancelled": False,
        "reranker_error": None,
        "created_at": "2025-01-01T00:00:00+00:00",
    }
    path = tmp_path / "20250101T000000Z-demo-abcdef.json"
    path.write_text(json.dumps(old), encoding="utf-8")
    evaluation = EvaluationStore(tmp_path).load(path)
    assert evaluation.stages == ["dense", "reranked"]  # "bi_encoder" was the dense stage's old name
    assert evaluation.baseline == "dense"
    assert evaluation.queries[0].first_stages == {"dense": {"a": 0.9, "b": 0.8}}
    assert evaluation.queries[0].run("bm25") is None
    assert evaluation.lift("ndcg@10").mean == pytest.approx(0.25)
    summary = evaluation.summary()
    assert summary["lift_against"] == "dense" and set(summary["metrics"]) == {"dense", "reranked"}
    assert _run_file(evaluation.trec_run("dense")) == {"q1": {"a": 0.9, "b": 0.8}, "q2": {"c": 0.7}}
    assert evaluation.trec_run("bm25") == ""
    assert _run_file(evaluation.trec_run("reranked")) == {"q1": {"b": 2.0, "a": 1.0}, "q2": {"c": 0.5}}
    assert "reranked:ndcg@10" in evaluation.per_query_csv().splitlines()[0]


def test_first_stages_are_compared_with_dense_per_query(demo_index):
    from core.evaluation.evaluate import evaluate

    dataset, workspace = demo_index
    evaluation = evaluate(dataset, _retriever(workspace), Pipeline(), None, k=10)
    compared = evaluation.summary()["first_stages_against_dense"]
    assert set(compared) == {"bm25", "hybrid_rrf", "hybrid_weighted"}
    for stage, metrics in compared.items():
        for metric, result in metrics.items():
            differences = [
                evaluation.metrics[stage][q][metric] - evaluation.metrics["dense"][q][metric]
                for q in evaluation.metrics["dense"]
            ]
            assert result["mean"] == pytest.approx(sum(differences) / len(differences))
            assert result["helped"] == sum(d > 0 for d in differences)
            assert result["hurt"] == sum(d < 0 for d in differences)
            assert result["ci95"][0] <= result["mean"] <= result["ci95"][1]


def test_a_reranker_that_fails_midway_leaves_the_first_stages_evaluated(demo_index):
    """A rerank server that is down: the evaluation finishes on the first stages and says why."""
    import socket

    from core.evaluation.evaluate import evaluate
    from core.rerank.http import HttpReranker

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = HttpReranker(f"http://127.0.0.1:{port}", "zerank", max_retries=0)
    dataset, workspace = demo_index
    evaluation = evaluate(dataset, _retriever(workspace), Pipeline(reranker="zerank", rerank_depth=3), down, k=10)
    assert not evaluation.has_reranking and evaluation.settings["rerank_depth"] == 0
    assert "reranking failed" in evaluation.reranker_error and "down or unreachable" in evaluation.reranker_error
    assert len(evaluation.queries) == len(dataset.queries)
    assert all(record.reranked is None for record in evaluation.queries)
    assert set(evaluation.stages) == {"dense", "bm25", "hybrid_rrf", "hybrid_weighted"}


def test_every_stage_of_a_query_reads_one_dense_and_one_bm25_search(demo_index, tiny_zerank_path):
    """Four first stages and the reranked one share each query's two searches (Retriever.lists)."""
    from core.evaluation.evaluate import evaluate

    dataset, workspace = demo_index
    retriever = _retriever(workspace)
    calls = {"dense": 0, "bm25": 0}
    store_search, lexical_search = workspace.store.search, retriever.lexical.search

    def counted(name, search):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return search(*args, **kwargs)

        return wrapper

    retriever.store = type("Counted", (), {"search": staticmethod(counted("dense", store_search))})()
    retriever.lexical.search = counted("bm25", lexical_search)
    try:
        reranker = load_reranker(str(tiny_zerank_path), device="cpu")
        pipeline = Pipeline(FirstStage("hybrid", "weighted", 0.3), reranker.model_id, 2)
        evaluation = evaluate(dataset, retriever, pipeline, reranker, k=10)
    finally:
        del retriever.lexical.search
    assert evaluation.has_reranking and len(evaluation.stages) == 5
    assert calls == {"dense": len(dataset.queries), "bm25": len(dataset.queries)}
    assert evaluation.settings["pipeline"]["name"] == "hybrid_weighted0.3+reranker@2"
