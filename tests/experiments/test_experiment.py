"""Experiments end to end on the demo judgments: eval's figures, the score cache, cancel, snapshots, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import Settings
from core.demo import DEMO_CORPUS, DEMO_JUDGMENTS
from core.eval_runner import run_dataset_evaluation
from core.evaluation.datasets import load_dataset
from core.evaluation.metrics import METRICS
from core.experiment_runner import (
    QuerySource,
    cached_rerankers,
    open_query_source,
    run_experiment_in,
    score_cache,
    snapshots,
)
from core.experiments.query_sets import QuerySet
from core.experiments.runner import ExperimentError
from core.experiments.snapshot import SnapshotError, compare_snapshots
from core.rerank.local import load_reranker
from core.retrieval.pipeline_spec import parse_spec

ROOT = Path(__file__).resolve().parents[2]
K = 20


@pytest.fixture(scope="module")
def setup(tmp_path_factory, encoder, tiny_zerank_path):
    settings = Settings(workspace=tmp_path_factory.mktemp("experiments") / "ws")
    reranker = load_reranker(str(tiny_zerank_path), device="cpu")
    tiny = str(tiny_zerank_path)
    pipelines = {
        "dense": parse_spec("dense"),
        "bm25": parse_spec("bm25"),
        "rrf": parse_spec("hybrid:rrf"),
        "weighted": parse_spec("hybrid:weighted:0.3"),
        "reranked": parse_spec(f"hybrid:weighted:0.3+{tiny}@5"),
    }
    return settings, encoder, reranker, pipelines


def _run(setup, pipelines=None, **options):
    settings, encoder, reranker, default = setup
    pipelines = pipelines or default
    source = open_query_source(settings, DEMO_JUDGMENTS)
    rerankers = cached_rerankers(settings, pipelines, score_cache(settings), load=lambda _id: reranker)
    options.setdefault("baseline", "dense")
    experiment, path = run_experiment_in(settings, encoder, source, pipelines, rerankers, k=K, **options)
    return experiment, path, rerankers


def test_each_pipelines_metrics_equal_evals_for_the_same_stage(setup):
    settings, encoder, reranker, pipelines = setup
    experiment, _, _ = _run(setup)
    evaluation, _ = run_dataset_evaluation(
        settings, encoder, load_dataset(DEMO_JUDGMENTS), pipelines["reranked"], reranker, k=K
    )
    ours = experiment.metrics()
    same_stage = {"dense": "dense", "bm25": "bm25", "rrf": "hybrid_rrf", "weighted": "hybrid_weighted",
                  "reranked": "reranked"}  # fmt: skip
    for name, stage in same_stage.items():
        assert ours[name] == evaluation.metrics[stage], name
    summary = experiment.summary()
    for name, stage in same_stage.items():
        assert summary["pipelines"][name]["metrics"] == pytest.approx(evaluation.means(stage))
    assert set(summary["comparisons"]) == {"bm25", "rrf", "weighted", "reranked"}
    assert set(summary["comparisons"]["rrf"]) == set(METRICS)
    lift = summary["comparisons"]["reranked"]["ndcg@10"]
    assert lift["mean"] == pytest.approx(evaluation.compare("dense", "reranked").mean)
    assert lift["p_value"] <= lift["p_holm"] <= 1.0 and lift["ci95"][0] <= lift["mean"] <= lift["ci95"][1]
    assert set(summary["agreement"]["bm25"]) == {"jaccard@10", "rbo", "new_in_top10"}
    assert summary["judgment_holes"]["dense"]["total"] >= 0 and summary["queries"] == 46


def test_re_running_a_finished_experiment_scores_no_pair_again(setup):
    settings, encoder, reranker, pipelines = setup
    first, _, _ = _run(setup)
    model_calls = reranker.pairs_scored
    again, _, rerankers = _run(setup)  # a fresh CachedReranker: the scores come from the file
    (counts,) = again.reranking.values()
    assert counts["pairs_scored"] == 0 and counts["pairs_from_cache"] > 0
    assert reranker.pairs_scored == model_calls
    assert again.runs == first.runs and again.probabilities == first.probabilities

    deeper = {**pipelines, "reranked": parse_spec(pipelines["reranked"].reranker.join(["hybrid:weighted:0.3+", "@8"]))}
    deeper_run, _, _ = _run(setup, deeper)
    (counts,) = deeper_run.reranking.values()
    assert 0 < counts["pairs_scored"] < counts["pairs_from_cache"]  # only the documents below depth 5 are new
    assert reranker.pairs_scored == model_calls + counts["pairs_scored"]


def test_a_cancelled_experiment_saves_nothing(setup):
    settings = setup[0]
    before = snapshots(settings).ids()
    asked = []
    experiment, path = _run(setup, should_stop=lambda: len(asked) > 3 or asked.append(1) is not None)[:2]
    assert experiment is None and path is None
    assert snapshots(settings).ids() == before
    assert not list((settings.workspace / "experiments").glob("*.partial"))


def test_snapshots_load_compare_and_refuse_ids_that_are_paths(setup):
    settings = setup[0]
    shallow, path, _ = _run(setup)
    store = snapshots(settings)
    assert path.stem == shallow.id and shallow.id in store.ids()
    loaded = store.load(shallow.id)
    assert loaded.summary() == shallow.summary()
    deeper = {**setup[3], "reranked": parse_spec(setup[3]["reranked"].reranker.join(["hybrid:weighted:0.3+", "@12"]))}
    deep, _, _ = _run(setup, deeper)
    diff = compare_snapshots(loaded, deep)
    assert diff["same_queries"] and diff["same_corpus"]
    assert diff["pipelines"]["dense"]["queries_changed"] == 0
    assert diff["pipelines"]["dense"]["mean_delta"] == dict.fromkeys(METRICS, 0.0)
    reranked = diff["pipelines"]["reranked"]
    assert reranked["spec_before"].endswith("@5") and reranked["spec_after"].endswith("@12")
    assert reranked["queries_changed"] > 0 and set(reranked["mean_delta"]) == set(METRICS)
    for hostile in ("../../etc/passwd", shallow.id + "/../x", "", "20261202T000000Z-abcdef\n"):
        with pytest.raises(SnapshotError):
            store.load(hostile)
    with pytest.raises(SnapshotError, match="no snapshot"):
        store.load("20000101T000000Z-abcdef")


def test_an_unjudged_query_list_runs_on_the_explorers_index_and_reports_agreement(workspace):
    workspace.ingest_paths([DEMO_CORPUS])
    query_set = QuerySet("mine", {"a": "bond duration and yields", "b": "rust ownership", "c": 'it\'s "GDPR" <b>'})
    pipelines = {"dense": parse_spec("dense"), "bm25": parse_spec("bm25"), "rrf": parse_spec("hybrid:rrf")}
    experiment, _ = run_experiment_in(
        workspace.settings, workspace.encoder, QuerySource(query_set), pipelines, {}, baseline="dense", k=10,
        workspace=workspace,
    )  # fmt: skip
    summary = experiment.summary()
    assert summary["judged_queries"] == 0 and summary["comparisons"] == {} and summary["judgment_holes"] == {}
    assert all(p["metrics"] is None for p in summary["pipelines"].values())
    assert set(summary["agreement"]) == {"bm25", "rrf"}
    order = [row["disagreement"] for row in summary["most_disagreement"]]
    assert order == sorted(order, reverse=True) and len(order) == 3
    assert all("/" in doc or doc.endswith(".md") for doc in experiment.ranking("dense", "a"))  # file-level keys
    assert experiment.passages[experiment.ranking("dense", "a")[0]]["text"]


def test_a_reranker_that_goes_down_stops_the_experiment_and_keeps_nothing(setup):
    import socket

    from core.rerank.http import HttpReranker

    settings, encoder, _, _ = setup
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = HttpReranker(f"http://127.0.0.1:{port}", "zerank", max_retries=0)
    before = snapshots(settings).ids()
    pipelines = {"dense": parse_spec("dense"), "served": parse_spec("dense+zerank@3")}
    with pytest.raises(ExperimentError, match=r"pipeline 'served' failed at query .*down or unreachable"):
        run_experiment_in(settings, encoder, open_query_source(settings, DEMO_JUDGMENTS), pipelines,
                          cached_rerankers(settings, pipelines, score_cache(settings), load=lambda _id: down),
                          baseline="dense", k=K)  # fmt: skip
    assert snapshots(settings).ids() == before


def test_the_cli_prints_the_documented_keys_and_writes_runs_under_safe_names(tmp_path, tiny_zerank_path):
    env = {**os.environ, "RERANK_WORKSPACE": str(tmp_path / "ws")}
    saved = subprocess.run(
        [sys.executable, "-m", "core", "pipelines", "save", "my 'saved' one", "hybrid:weighted:0.7"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert saved.returncode == 0, saved.stderr
    done = subprocess.run(
        [sys.executable, "-m", "core", "experiment", str(DEMO_JUDGMENTS), "--pipeline", "base line=dense",
         "--pipeline", "../evil/x=bm25", "--pipeline", "my 'saved' one",
         "--pipeline", f"re=dense+{tiny_zerank_path}@3|Prefer a=b", "--baseline", "base line", "-k", "10",
         "--run-out", str(tmp_path / "runs"), "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    assert set(out) >= {"pipelines", "baseline", "comparisons", "agreement", "queries", "saved"}
    assert out["baseline"] == "base line" and out["queries"] == 46
    assert out["pipelines"]["my 'saved' one"]["spec"] == "hybrid:weighted:0.7"
    assert out["pipelines"]["re"]["spec"].endswith("@3|Prefer a=b")
    for name in ("../evil/x", "my 'saved' one", "re"):
        assert set(out["comparisons"][name]["ndcg@10"]) >= {"mean", "ci95", "p_value", "p_holm"}
        assert set(out["agreement"][name]) == {"jaccard@10", "rbo", "new_in_top10"}
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert "base_line-" in " ".join(runs) and all("/" not in r and not r.startswith(".") for r in runs)
    assert {"judgments.qrels", "judgments.quepid.csv"} <= set(runs) and len(runs) == 6
    assert not (tmp_path / "evil").exists()
    again = subprocess.run(
        [sys.executable, "-m", "core", "experiment", str(DEMO_JUDGMENTS), "--pipeline", "dense", "--pipeline",
         "dense", "-k", "10"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert again.returncode == 2 and "two pipelines are named 'dense'" in again.stderr
