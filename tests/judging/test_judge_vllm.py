"""The judge against a real vLLM serving a tiny chat model with structured output (marker ``vllm_server``).

The model's weights are random, so its grades mean nothing: vLLM's structured output (the JSON schema the
client sends) is what makes every answer a valid grade, which is what these tests hold. The server runs
with ``--api-key``, so the key travels as the client sends it, and a wrong key is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.demo import DEMO_CORPUS, DEMO_JUDGMENTS
from core.judging.answers import parse_grade
from core.judging.client import ChatJudgeClient, JudgeError, JudgeSettings
from core.judging.judge import Judge, JudgmentCache, Pair
from tests.tiny_chat import build_tiny_chat
from tests.vllm_server import VllmUnavailable, start_vllm, vllm_python

pytestmark = pytest.mark.vllm_server

ROOT = Path(__file__).resolve().parents[2]
KEY = "judge-key-SECRET-42"
MODEL = "tiny-judge"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    try:
        python = vllm_python()
    except VllmUnavailable as exc:
        pytest.skip(f"vLLM cannot run here: {exc}")
    folder = tmp_path_factory.mktemp("judge-vllm")
    model = build_tiny_chat(folder / "chat")
    # Random weights pad JSON with whitespace up to the token limit; compact JSON is what a real model writes.
    args = ["--served-model-name", MODEL, "--max-model-len", "2048", "--api-key", KEY,
            "--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}']  # fmt: skip
    server = start_vllm(python, model, args, folder)
    yield server
    server.stop()


def _pairs() -> list[Pair]:
    documents = sorted(DEMO_CORPUS.rglob("*.md"))[:6]
    queries = ["When does an IPO lock-up expire?", 'What is "duration" {document} <b>x</b>?']
    return [Pair(f"q{i}", q, d.name, d.read_text(encoding="utf-8")) for i, q in enumerate(queries) for d in documents]


def test_every_answer_is_a_grade_and_the_cache_asks_nothing_twice(served, tmp_path):
    client = ChatJudgeClient(JudgeSettings(served.url, MODEL, KEY, timeout=120, concurrency=3))
    judge = Judge(client, JudgmentCache(tmp_path / "answers.sqlite"))
    judgments = judge.rate_all(_pairs())
    assert len(judgments) == 12 and client.structured
    assert all(j.grade in (0, 1, 2, 3) for j in judgments), [j.raw for j in judgments]
    assert all(json.loads(j.raw)["rating"] == j.grade for j in judgments)
    sent = client.requests_sent
    again = Judge(client, JudgmentCache(tmp_path / "answers.sqlite")).rate_all(_pairs())
    assert client.requests_sent == sent and all(j.cached for j in again)
    assert [j.grade for j in again] == [j.grade for j in judgments]


def test_a_wrong_key_is_refused_and_no_key_is_ever_shown(served):
    wrong = ChatJudgeClient(JudgeSettings(served.url, MODEL, "not-the-" + KEY, timeout=60))
    with pytest.raises(JudgeError, match="HTTP 401") as refused:
        wrong.ask("Rate this.")
    assert KEY not in str(refused.value) and "not-the-" not in str(refused.value)
    answer = ChatJudgeClient(JudgeSettings(served.url, MODEL, KEY, timeout=60)).ask("Query: x\nDocument: y")
    assert parse_grade(answer) in (0, 1, 2, 3)


def test_the_cli_judges_the_unjudged_pool_and_measures_agreement(served, tmp_path):
    env = {**os.environ, "RERANK_WORKSPACE": str(tmp_path / "ws"), "RERANK_JUDGE_KEY": KEY}
    command = [sys.executable, "-m", "core", "judge", str(DEMO_JUDGMENTS), "--pipeline", "dense", "--pipeline",
               "bm25", "--depth", "2", "--judge-url", served.url, "--judge-model", MODEL, "--agreement",
               "--out", str(tmp_path / "judge.qrels"), "--json"]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert KEY not in done.stdout + done.stderr
    out = json.loads(done.stdout)
    assert out["graded"] == out["pairs_judged"] > 46 and out["unrateable"] == []
    lines = (tmp_path / "judge.qrels").read_text().splitlines()
    assert len(lines) == out["graded"] and all(line.split()[3] in "0123" for line in lines)
    agreement = out["agreement"]
    assert agreement["pairs"] > 0 and sum(map(sum, agreement["confusion"])) == agreement["pairs"]
    assert set(agreement["ndcg@10"]) == {"human", "judge", "merged"}
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    second = json.loads(again.stdout)
    assert second["from_cache"] == second["pairs_judged"] and second["requests_sent"] == 0


def test_the_experiments_page_tests_one_pair_grades_the_pool_and_shows_the_trust_figures(
    served, tmp_path, monkeypatch, encoder
):
    from core.config import Settings
    from core.experiment_runner import open_query_source, run_experiment_in
    from core.retrieval.pipeline_spec import parse_spec
    from tests.app.test_app_pages import _page, _texts

    monkeypatch.setenv("RERANK_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("RERANK_JUDGE_URL", served.url)
    monkeypatch.setenv("RERANK_JUDGE_MODEL", MODEL)
    monkeypatch.setenv("RERANK_JUDGE_KEY", KEY)
    settings = Settings(workspace=tmp_path / "ws")
    pipelines = {"dense": parse_spec("dense"), "bm25": parse_spec("bm25")}
    source = open_query_source(settings, DEMO_JUDGMENTS)
    experiment, _ = run_experiment_in(settings, encoder, source, pipelines, {}, baseline="dense", k=10)
    at = _page("views/experiments.py", snapshot=experiment.id)
    assert not at.exception
    at.number_input(key="j_depth").set_value(1)
    at.checkbox(key="j_also_human").check().run()
    next(b for b in at.button if b.label == "Test on one pair").click().run()
    assert not at.exception, at.exception
    prompt, answer = (c.value for c in at.code[-2:])
    assert "Query: " in prompt and json.loads(answer)["rating"] in (0, 1, 2, 3)
    next(b for b in at.button if b.label.startswith("Grade ")).click().run()
    assert not at.exception, at.exception
    assert any("graded" in t and "0 unrateable" in t for t in _texts(at.success))
    shown = " ".join(_texts(at.caption))
    assert "weighted kappa" in shown and KEY not in shown
    table = at.dataframe[-1].value
    assert list(table.columns) == ["human", "judge", "merged (human wins)"] and list(table.index) == ["dense", "bm25"]
    assert all(KEY not in str(e.value) for kind in ("markdown", "caption", "code", "error") for e in getattr(at, kind))
