"""The search pipeline and its CLI: both stages, the JSON contract, and the reranker-missing path."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.demo import DEMO_CORPUS
from core.rerank.local import load_reranker
from core.retrieval.first_stage import Retriever
from core.retrieval.pipeline import Pipeline
from core.retrieval.results import movement_label
from core.retrieval.search import MIN_SLICE, PROGRESS_EVERY_S, RerankMemo, add_reranking, progress_slice, search

ROOT = Path(__file__).resolve().parents[2]


def test_movement_labels():
    assert movement_label(3, 2, 5) == "↑3"
    assert movement_label(-5, 8, 3) == "↓5"
    assert movement_label(0, 4, 4) == "="
    assert movement_label(30, 2, 32) == "new in top 10 (↑30)"


def test_two_stages_on_demo_corpus(workspace, tiny_zerank_path):
    workspace.ingest_paths([DEMO_CORPUS])
    reranker = load_reranker(str(tiny_zerank_path), device="cpu")
    retriever = Retriever(workspace.encoder, workspace.store, workspace.lexical)
    pipeline = Pipeline(reranker=reranker.model_id, rerank_depth=12)
    result = search("When does an IPO lock-up period end?", pipeline, retriever, reranker, k=30)
    assert len(result.dense) == 30
    assert result.dense[0].chunk.source == "finance/ipo-lock-up-period.md"
    scores = [r.score for r in result.dense]
    assert scores == sorted(scores, reverse=True)
    assert len(result.reranked) == 12
    assert {r.chunk.chunk_id for r in result.reranked} == {r.chunk.chunk_id for r in result.dense[:12]}
    assert set(result.timings_ms) >= {"embed_query", "search", "rerank", "total"}
    assert result.timings_ms["total"] >= result.timings_ms["rerank"] > 0
    assert result.pairs_per_second > 0


def _cli(*args: str, workspace: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RERANK_WORKSPACE": str(workspace)}
    return subprocess.run(
        [sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def cli_workspace(tmp_path_factory) -> Path:
    workspace = tmp_path_factory.mktemp("cli") / "ws"
    done = _cli("index", str(DEMO_CORPUS), workspace=workspace)
    assert done.returncode == 0, done.stderr
    assert "36 ok, 0 failed" in done.stdout
    return workspace


def test_cli_search_json_contract(cli_workspace, tiny_zerank_path):
    done = _cli(
        "search",
        "How is interest compounded?",
        "-k",
        "20",
        "--rerank-depth",
        "8",
        "--reranker",
        str(tiny_zerank_path),
        "--json",
        workspace=cli_workspace,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["query"] == "How is interest compounded?" and out["reranker_error"] is None
    assert [r["rank"] for r in out["dense"]] == list(range(1, 21))
    assert {"chunk_id", "source", "text", "score"} <= set(out["dense"][0])
    assert len(out["reranked"]) == 8
    first = {r["chunk_id"]: r for r in out["dense"]}
    for row in out["reranked"]:
        assert {"rank", "chunk_id", "source", "text", "first_stage_rank", "logit", "probability"} <= set(row)
        assert row["text"] == first[row["chunk_id"]]["text"]
        assert first[row["chunk_id"]]["rank"] == row["first_stage_rank"] <= 8
        assert row["probability"] == pytest.approx(1 / (1 + math.exp(-row["logit"] / 5)))
    logits = [r["logit"] for r in out["reranked"]]
    assert logits == sorted(logits, reverse=True)
    assert set(out["timings_ms"]) >= {"embed_query", "search", "rerank", "total"}
    # The model sits in a folder whose name says nothing of zerank: the scale comes from its files, and says so.
    assert out["calibration"]["formula"] == "sigmoid(logit / 5)"
    assert out["calibration"]["reason"].startswith("zerank-2 calibration, detected from its scoring head")
    assert out["pipeline"]["name"] == "dense+reranker@8" and out["pipeline"]["reranker"] == str(tiny_zerank_path)

    # "text" is exactly what was scored: an independent score of it against the query matches the logit.
    reranker = load_reranker(str(tiny_zerank_path), device="cpu")
    top = out["reranked"][0]
    assert reranker.score(out["query"], [top["text"]])[0] == pytest.approx(top["logit"], abs=1e-4)


def test_cli_without_reranker(cli_workspace):
    none = json.loads(_cli("search", "force majeure", "--reranker", "none", "--json", workspace=cli_workspace).stdout)
    assert none["dense"] and none["reranked"] == [] and "none" in none["reranker_error"]

    missing = _cli(
        "search", "force majeure", "--reranker", "zeroentropy/zerank-2-reranker", "--json", workspace=cli_workspace
    )
    assert missing.returncode == 0
    out = json.loads(missing.stdout)
    assert out["dense"] and out["reranked"] == []
    assert "zeroentropy/zerank-2-reranker" in out["reranker_error"] and "cache" in out["reranker_error"]


def test_cli_index_reports_bad_files(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "ok.txt").write_text("A readable note about SQL indexes.")
    (tmp_path / "in" / "bad.pdf").write_bytes(b"definitely not a pdf")
    done = _cli("index", str(tmp_path / "in"), workspace=tmp_path / "ws")
    assert done.returncode == 1
    assert 'OK     "ok.txt"' in done.stdout
    assert 'ERROR  "bad.pdf"' in done.stdout and "PDF" in done.stdout


def test_cli_text_output_keeps_one_line_per_file_whatever_the_names(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    names = ["two\nlines.txt", 'o\'brien "quoted".txt', "back\\slash.txt"]
    for name in names:
        (folder / name).write_text(f"A note called {name}.")
    fast = ("--embed-backend", "torch")  # no OpenVINO conversion in each of these processes
    done = _cli("index", str(folder), *fast, workspace=tmp_path / "ws")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == len(names) + 1
    listed = _cli("list", *fast, workspace=tmp_path / "ws").stdout.splitlines()
    assert sorted(json.loads(line.split("\t")[0]) for line in listed) == sorted(names)
    found = _cli("search", "a note called", "--reranker", "none", *fast, workspace=tmp_path / "ws").stdout
    assert '"two\\nlines.txt"' in found
    deleted = _cli("delete", "back\\slash.txt", *fast, workspace=tmp_path / "ws")
    assert deleted.returncode == 0 and deleted.stdout.strip() == 'deleted "back\\\\slash.txt": 1 chunks'


def test_a_reranking_scored_in_slices_gives_the_same_result_and_counts_its_pairs(workspace, tiny_zerank_path):
    """The Search page scores a long reranking in slices to show progress (and to be cut short between
    them): the rows, logits and ranks without the instruction are those of one call."""
    import numpy as np

    workspace.ingest_paths([DEMO_CORPUS])
    reranker = load_reranker(str(tiny_zerank_path), device="cpu")
    retriever = Retriever(workspace.encoder, workspace.store, workspace.lexical)
    pipeline = Pipeline(reranker=reranker.model_id, rerank_depth=20, instruction="Prefer primary sources.")
    query = "When does an IPO lock-up period end?"
    whole = add_reranking(retriever.first_stage(query, pipeline, 30), reranker, compare_without_instruction=True)
    told: list[tuple[int, int]] = []
    sliced = add_reranking(
        retriever.first_stage(query, pipeline, 30),
        reranker,
        compare_without_instruction=True,
        progress=lambda done, total: told.append((done, total)),
        slice_size=8,
    )
    assert [r.chunk.chunk_id for r in sliced.reranked] == [r.chunk.chunk_id for r in whole.reranked]
    np.testing.assert_allclose([r.logit for r in sliced.reranked], [r.logit for r in whole.reranked], atol=1e-4)
    assert [r.rank_without_instruction for r in sliced.reranked] == [r.rank_without_instruction for r in whole.reranked]
    # Two passes of 20 pairs in slices of 8: told after each slice, counting both passes.
    assert told == [(8, 40), (16, 40), (20, 40), (28, 40), (36, 40), (40, 40)]


def test_a_reranking_cut_short_goes_on_from_its_memo(workspace, tiny_zerank_path):
    """The Search page's run can be stopped after any slice (Streamlit raises a BaseException there);
    the next run with the same memo scores only what is missing, and ranks as one call does."""

    class CutShort(BaseException):
        pass

    def stop_after_the_first_slice(done: int, total: int) -> None:
        if done < total:
            raise CutShort

    workspace.ingest_paths([DEMO_CORPUS])
    reranker = load_reranker(str(tiny_zerank_path), device="cpu")
    retriever = Retriever(workspace.encoder, workspace.store, workspace.lexical)
    pipeline = Pipeline(reranker=reranker.model_id, rerank_depth=20)
    query = "When does an IPO lock-up period end?"
    whole = add_reranking(retriever.first_stage(query, pipeline, 30), reranker)
    memo = RerankMemo()
    result = retriever.first_stage(query, pipeline, 30)
    before = reranker.pair_counts()[0]
    with pytest.raises(CutShort):
        add_reranking(result, reranker, progress=stop_after_the_first_slice, slice_size=8, memo=memo)
    assert reranker.pair_counts()[0] - before == 8 and not result.reranked
    add_reranking(result, reranker, progress=lambda done, total: None, slice_size=8, memo=memo)
    distinct = len({c.chunk.text for c in result.candidates[:20]})
    assert reranker.pair_counts()[0] - before == distinct  # the first 8 were not scored again
    assert [r.chunk.chunk_id for r in result.reranked] == [r.chunk.chunk_id for r in whole.reranked]
    assert result.timings_ms["rerank"] > 0  # both runs' scoring time


def test_a_reranking_is_sliced_only_when_it_is_long():
    assert progress_slice(50, PROGRESS_EVERY_S) is None  # quick enough: one call
    assert progress_slice(MIN_SLICE, 60.0) is None  # too few pairs to slice
    assert progress_slice(50, 15.0) == MIN_SLICE  # never fewer pairs per call than MIN_SLICE
    assert progress_slice(100, 10 * PROGRESS_EVERY_S) == 10  # ~one report per PROGRESS_EVERY_S
    assert progress_slice(40, 1.1 * PROGRESS_EVERY_S) == 20  # even slices, not 39 and 1


def test_rerank_time_estimate():
    from core.rerank.estimate import estimate_seconds

    assert estimate_seconds(40, 300, 4e9, pairs_per_second=8.0) == 5.0
    # Without a measurement it is a FLOP count over the measured matmul rate: linear in pairs, tokens, size.
    small = estimate_seconds(10, 200, 1e8)
    assert estimate_seconds(20, 200, 1e8) == pytest.approx(2 * small)
    assert estimate_seconds(10, 200, 4e9) == pytest.approx(40 * small)


def test_bm25_and_hybrid_first_stages_on_demo_corpus(workspace, tiny_zerank_path):
    from core.retrieval.first_stage import fuse
    from core.retrieval.pipeline import FirstStage
    from core.retrieval.results import BM25, DENSE
    from core.retrieval.search import add_reranking

    workspace.ingest_paths([DEMO_CORPUS])
    query = "Can a force majeure clause excuse performance during a pandemic?"

    def run(stage: FirstStage):
        retriever = Retriever(workspace.encoder, workspace.store, workspace.lexical)
        return retriever.first_stage(query, Pipeline(stage, "tiny", rerank_depth=6), k=15)

    dense = run(FirstStage("dense"))
    assert len(dense.dense) == 15 and dense.bm25 == [] and dense.fused == []
    assert dense.candidates is dense.dense and dense.lexical_engine is None
    assert "bm25" not in dense.timings_ms and "fusion" not in dense.timings_ms
    assert all(r.sources == {DENSE: r.rank} for r in dense.dense)

    bm25 = run(FirstStage("bm25"))
    assert bm25.candidates is bm25.bm25 and bm25.fused == []
    assert [r.chunk.chunk_id for r in bm25.dense] == [r.chunk.chunk_id for r in dense.dense]
    assert bm25.lexical_engine == "Milvus BM25"
    assert 0 < len(bm25.bm25) <= 15
    assert bm25.bm25[0].chunk.source == "legal/force-majeure-clauses.md"
    # The BM25 list is Milvus' BM25 search, ranked 1..n, each row knowing it came from BM25 at that rank.
    expected = workspace.store.search_text(query, 15)
    assert [(r.chunk, r.score) for r in bm25.bm25] == [(h.chunk, h.score) for h in expected]
    assert [r.rank for r in bm25.bm25] == list(range(1, len(bm25.bm25) + 1))
    assert all(r.sources == {BM25: r.rank} for r in bm25.bm25)
    assert "bm25" in bm25.timings_ms and "fusion" not in bm25.timings_ms

    for stage in (FirstStage("hybrid", "rrf"), FirstStage("hybrid", "weighted", 0.3)):
        hybrid = run(stage)
        assert hybrid.candidates is hybrid.fused
        assert [r.chunk.chunk_id for r in hybrid.bm25] == [r.chunk.chunk_id for r in bm25.bm25]
        assert hybrid.fused == fuse(hybrid.dense, hybrid.bm25, stage, 15)
        assert len(hybrid.fused) == 15 and [r.rank for r in hybrid.fused] == list(range(1, 16))
        scores = [r.score for r in hybrid.fused]
        assert scores == sorted(scores, reverse=True)
        # Provenance: the rank each fused chunk had in each list it was found in.
        ranks = {DENSE: {r.chunk.chunk_id: r.rank for r in hybrid.dense},
                 BM25: {r.chunk.chunk_id: r.rank for r in hybrid.bm25}}  # fmt: skip
        for r in hybrid.fused:
            assert r.sources == {
                name: ranks[name][r.chunk.chunk_id] for name in ranks if r.chunk.chunk_id in ranks[name]
            }
            assert r.sources
        assert {"bm25", "fusion", "embed_query", "search", "total"} <= set(hybrid.timings_ms)

    reranker = load_reranker(str(tiny_zerank_path), device="cpu")
    hybrid = add_reranking(run(FirstStage("hybrid", "rrf")), reranker)
    assert hybrid.reranker_error is None
    assert {r.chunk.chunk_id for r in hybrid.reranked} == {r.chunk.chunk_id for r in hybrid.fused[:6]}
    out = json.loads(json.dumps(hybrid.to_json()))
    assert out["first_stage"] == {"mode": "hybrid", "fusion": "rrf", "dense_weight": 0.5,
                                  "label": "hybrid (RRF, k=60)", "lexical_engine": "Milvus BM25"}  # fmt: skip
    assert [r["chunk_id"] for r in out["bm25"]] == [r.chunk.chunk_id for r in hybrid.bm25]
    assert [r["chunk_id"] for r in out["hybrid"]] == [r.chunk.chunk_id for r in hybrid.fused]
    assert [r["sources"] for r in out["hybrid"]] == [r.sources for r in hybrid.fused]
    assert [r["sources"] for r in out["dense"]] == [{DENSE: r.rank} for r in hybrid.dense]
    fused = {r.chunk.chunk_id: r for r in hybrid.fused}
    for row in out["reranked"]:
        assert row["sources"] == fused[row["chunk_id"]].sources
        assert row["first_stage_rank"] == fused[row["chunk_id"]].rank
    assert out["reranker_query"] == query and out["instruction"] == ""
    assert out["pipeline"]["name"] == "hybrid_rrf+tiny@6" and out["pipeline"]["rerank_depth"] == 6
    assert out["calibration"]["formula"] == "sigmoid(logit / 5)"
    assert {"bm25", "fusion", "rerank"} <= set(out["timings_ms"])


def test_cli_saved_pipeline_drives_search(cli_workspace, tiny_zerank_path):
    spec = f"hybrid:weighted:0.3+{tiny_zerank_path}@6|Prefer passages that give a formula."
    saved = _cli("pipelines", "save", "formula 'first'", spec, workspace=cli_workspace)
    assert saved.returncode == 0, saved.stderr
    listed = _cli("pipelines", "list", workspace=cli_workspace).stdout
    assert listed.startswith("\"formula 'first'\"\t")
    out = json.loads(_cli("search", "How is interest compounded?", "--pipeline", "formula 'first'", "--json",
                          workspace=cli_workspace).stdout)  # fmt: skip
    assert out["pipeline"]["first_stage"]["mode"] == "hybrid" and out["pipeline"]["first_stage"]["dense_weight"] == 0.3
    assert out["pipeline"]["reranker"] == str(tiny_zerank_path) and len(out["reranked"]) == 6
    assert out["instruction"] == "Prefer passages that give a formula." and out["reranker_error"] is None
    bad = _cli("search", "x", "--pipeline", "sparse", workspace=cli_workspace)
    assert bad.returncode == 2 and "the first stage must be" in bad.stderr
