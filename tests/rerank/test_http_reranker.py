"""The HTTP reranker backend against a real local HTTP server that scores with the tiny zerank model.

The server (tests/rerank_server.py) answers as vLLM does for zerank-2 converted to a sequence classifier
with the "Yes" row / 5 as its head: ``sigmoid(logit / 5)`` by default, ``logit / 5`` without activation.
The client must turn either back into the local backend's logits and show the same probabilities.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core.chunks import Chunk
from core.config import SERVER_ENV, ServerSettings
from core.errors import SettingsError
from core.rerank.http import HttpReranker, RerankServerError
from core.rerank.local import load_reranker
from core.rerank.server_check import check_against_local
from core.rerank.server_urls import endpoint_url
from core.retrieval.pipeline import Pipeline
from core.retrieval.results import RetrievedChunk, SearchResult
from core.retrieval.search import add_reranking, estimate_rerank_seconds
from tests.rerank_server import RerankTestServer, closed_port

QUERY = "What is the duration of a bond and how does it relate to interest rate risk?"
DOCUMENTS = [
    "Duration measures how much a bond's price changes when interest rates move by one percentage point.",
    "The court held that the contract was void.",
    "Yes",
    "A mutex is a lock that lets one thread at a time into a critical section; the code waits on it.\n\n" * 3,
    "Bonds with longer maturities and lower coupons have higher duration and so more interest rate risk.",
    "Ünïcödé text — with accents, 中文字符 and emoji 🙂 — {braces} too.",
    "  leading and trailing spaces  ",
    "the rate and the code",
]
MODEL = "zeroentropy/zerank-2-reranker"  # the served name; "zerank" in it gives the temperature of 5
SERVING_DOC = Path(__file__).resolve().parents[2] / "docs" / "serving.md"


def doc_block(marker: str) -> str:
    """The fenced code block that follows ``<!-- marker -->`` in docs/serving.md."""
    match = re.search(rf"<!-- {marker} -->\n```\w*\n(.*?)\n```", SERVING_DOC.read_text(), re.DOTALL)
    assert match, f"no {marker} block in {SERVING_DOC}"
    return match.group(1) + "\n"


@pytest.fixture(scope="module")
def local(tiny_zerank_path):
    return load_reranker(str(tiny_zerank_path), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def local_logits(local):
    logits = local.score(QUERY, DOCUMENTS)
    assert np.ptp(logits) > 0.5  # the fixture's scores spread, or equality would prove little
    return logits


@pytest.fixture
def serve(tiny_zerank_path):
    """Start a test server with the given switches; all are stopped at the end of the test."""
    started: list[RerankTestServer] = []

    def start(**switches) -> RerankTestServer:
        server = RerankTestServer(tiny_zerank_path, **switches).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def client(server_or_url, **options) -> HttpReranker:
    url = server_or_url if isinstance(server_or_url, str) else server_or_url.url
    options.setdefault("backoff", 0.05)
    return HttpReranker(url, MODEL, **options)


@pytest.mark.parametrize("api", ["rerank", "score", "infinity"])
@pytest.mark.parametrize("score_kind", ["probability", "logit"])
def test_scores_equal_the_local_backend(serve, local, local_logits, api, score_kind):
    server = serve(activation=score_kind == "probability")
    reranker = client(server, api=api, score_kind=score_kind)
    logits = reranker.score(QUERY, DOCUMENTS)
    assert logits.dtype == np.float32 and logits.shape == (len(DOCUMENTS),)
    np.testing.assert_allclose(logits, local_logits, atol=1e-4, rtol=0)
    np.testing.assert_allclose(reranker.probability(logits), local.probability(local_logits), atol=1e-6, rtol=0)
    assert reranker.probability_label == local.probability_label == "sigmoid(logit / 5)"
    expected_path = {"rerank": "/v1/rerank", "score": "/score", "infinity": "/rerank"}[api]
    assert [r.path for r in server.requests] == [expected_path]
    sent = server.requests[0].body
    assert sent["model"] == MODEL
    if api == "infinity":
        assert sent.get("raw_scores", False) is (score_kind == "logit")


def test_probabilities_shown_are_the_servers(serve):
    """In probability mode the probability shown is the server's own number, not a recomputation."""
    server = serve()
    reranker = client(server)
    probabilities = reranker.probability(reranker.score(QUERY, DOCUMENTS))
    served = {r["index"]: r["relevance_score"] for r in server.last_response["results"]}
    np.testing.assert_allclose(probabilities, [served[i] for i in range(len(DOCUMENTS))], atol=1e-6, rtol=0)


def test_results_sorted_by_score_are_mapped_back_by_index(serve, local_logits):
    server = serve()
    logits = client(server).score(QUERY, DOCUMENTS)
    returned = [r["index"] for r in server.last_response["results"]]
    assert returned != list(range(len(DOCUMENTS)))  # the server really answered in another order
    assert returned == list(np.argsort(-local_logits, kind="stable"))
    np.testing.assert_allclose(logits, local_logits, atol=1e-4, rtol=0)


def test_preformatted_pairs_match_the_chat_template(serve, local_logits):
    """A server with no score template scores query + document as one prompt; the client formats it."""
    server = serve(pair_mode="concatenate")
    logits = client(server, preformat="zerank").score(QUERY, DOCUMENTS)
    np.testing.assert_allclose(logits, local_logits, atol=1e-4, rtol=0)
    sent = server.requests[0].body
    assert sent["query"].startswith("<|im_start|>system\n" + QUERY)
    assert sent["documents"][0].endswith("<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.parametrize("status", [429, 503])
def test_retries_after_overload_then_succeeds(serve, local_logits, status):
    server = serve(fail_first=2, fail_status=status)
    logits = client(server, max_retries=3).score(QUERY, DOCUMENTS)
    assert [r.status for r in server.requests] == [status, status, 200]
    np.testing.assert_allclose(logits, local_logits, atol=1e-4, rtol=0)


def test_retry_after_is_honoured(serve):
    server = serve(fail_first=1, fail_status=429, retry_after="1")
    started = time.perf_counter()
    client(server, backoff=0.01).score(QUERY, DOCUMENTS[:2])
    assert time.perf_counter() - started >= 1.0
    assert [r.status for r in server.requests] == [429, 200]


def test_retry_after_longer_than_the_client_waits_gives_up_at_once(serve):
    server = serve(fail_first=5, fail_status=503, retry_after="120")
    started = time.perf_counter()
    with pytest.raises(RerankServerError, match="asked to wait 120 s") as error:
        client(server, max_backoff=10).score(QUERY, DOCUMENTS[:2])
    assert time.perf_counter() - started < 5
    assert len(server.requests) == 1
    assert error.value.status == 503


def test_gives_up_after_max_retries_with_a_clear_error(serve):
    server = serve(fail_first=100, fail_status=503)
    with pytest.raises(RerankServerError) as error:
        client(server, max_retries=2).score(QUERY, DOCUMENTS)
    message = str(error.value)
    assert server.url in message
    assert "HTTP 503: Service temporarily overloaded" in message
    assert "after 3 attempts" in message
    assert len(server.requests) == 3
    assert error.value.status == 503 and error.value.attempts == 3


def test_batches_respect_the_document_limit(serve, local_logits):
    server = serve(max_documents=3)
    reranker = client(server, max_documents_per_request=3, concurrency=2)
    logits = reranker.score(QUERY, DOCUMENTS)
    assert sorted(r.documents for r in server.requests) == [2, 3, 3]
    assert all(r.status == 200 for r in server.requests)
    np.testing.assert_allclose(logits, local_logits, atol=1e-4, rtol=0)


def test_a_request_over_the_servers_limit_is_a_400_not_retried(serve):
    server = serve(max_documents=3)
    with pytest.raises(RerankServerError) as error:
        client(server, max_documents_per_request=5).score(QUERY, DOCUMENTS)
    assert "HTTP 400: at most 3 documents per request, got 5" in str(error.value)
    assert error.value.status == 400
    # A 400 is not retried: each of the two batches (5 and 3 documents, sent together) went once.
    assert sorted((r.documents, r.status) for r in server.requests) == [(3, 200), (5, 400)]


def test_batches_respect_the_byte_limit(serve, local_logits):
    server = serve()
    limit = 600
    logits = client(server, max_request_bytes=limit, max_documents_per_request=100).score(QUERY, DOCUMENTS)
    assert len(server.requests) > 1
    assert all(r.body_bytes <= limit for r in server.requests)
    assert sum(r.documents for r in server.requests) == len(DOCUMENTS)
    np.testing.assert_allclose(logits, local_logits, atol=1e-4, rtol=0)


def test_a_document_too_big_for_any_request_is_a_clear_error(serve):
    server = serve()
    with pytest.raises(RerankServerError, match="cannot take document 2"):
        client(server, max_request_bytes=400).score(QUERY, ["short", "x" * 1000])
    assert server.requests == []


def test_server_down_is_a_quick_clear_error():
    url = f"http://127.0.0.1:{closed_port()}"
    started = time.perf_counter()
    with pytest.raises(RerankServerError) as error:
        HttpReranker(url, MODEL).score(QUERY, DOCUMENTS)  # the default retries and backoff
    elapsed = time.perf_counter() - started
    assert elapsed < 5, elapsed
    message = str(error.value)
    assert f"Rerank server {url}/v1/rerank is down or unreachable (connection refused)" in message
    assert error.value.status is None


def test_timeout_is_not_retried(serve):
    server = serve(delay=3)
    started = time.perf_counter()
    with pytest.raises(RerankServerError, match=r"did not answer within 0\.5 s"):
        client(server, timeout=0.5).score(QUERY, DOCUMENTS[:2])
    assert time.perf_counter() - started < 2.5
    assert server.received == 1


def test_api_key_is_sent_and_a_wrong_one_is_explained(serve, local_logits):
    server = serve(api_key="s3cret")
    logits = client(server, api_key="s3cret").score(QUERY, DOCUMENTS)
    np.testing.assert_allclose(logits, local_logits, atol=1e-4, rtol=0)
    assert server.requests[0].authorization == "Bearer s3cret"
    with pytest.raises(RerankServerError, match="HTTP 401.*check the API key") as error:
        client(server).score(QUERY, DOCUMENTS)
    assert error.value.status == 401
    assert len(server.requests) == 2  # not retried


def test_wrong_route_is_explained(serve):
    server = serve()
    with pytest.raises(RerankServerError, match="HTTP 404.*check the URL and the API shape"):
        client(server.url + "/nope/rerank").score(QUERY, DOCUMENTS[:1])


def test_raw_logits_read_as_probabilities_are_refused(serve):
    server = serve(answer_probabilities_as_logits=True)
    with pytest.raises(RerankServerError, match="not a probability.*score_kind='logit'"):
        client(server).score(QUERY, DOCUMENTS)


def test_empty_input_sends_nothing(serve):
    server = serve()
    assert client(server).score(QUERY, []).shape == (0,)
    assert server.requests == []


def _search_result(texts: list[str], depth: int) -> SearchResult:
    candidates = [
        RetrievedChunk(rank, Chunk(f"doc{rank}:0", f"doc{rank}.txt", f"doc{rank}.txt", "", None, 0, len(t), t), 0.5)
        for rank, t in enumerate(texts, start=1)
    ]
    return SearchResult(QUERY, k=len(texts), pipeline=Pipeline(reranker=MODEL, rerank_depth=depth), dense=candidates)


def test_search_pipeline_reranks_through_the_server(serve, local, local_logits):
    server = serve()
    reranker = client(server)
    n_pairs, estimate = estimate_rerank_seconds(_search_result(DOCUMENTS, 6), reranker)
    assert n_pairs == 6 and estimate > 0  # a guess from the assumed throughput before any request
    result = add_reranking(_search_result(DOCUMENTS, 6), reranker)
    assert result.reranker_error is None
    assert result.reranker == MODEL and result.probability_label == "sigmoid(logit / 5)"
    assert result.reranker_truncated == 0
    local_by_text = dict(zip(DOCUMENTS, local_logits))
    for item in result.reranked:
        assert abs(item.logit - local_by_text[item.chunk.text]) < 1e-4
        assert abs(item.probability - float(local.probability(np.array([item.logit]))[0])) < 1e-9
    assert [r.logit for r in result.reranked] == sorted((r.logit for r in result.reranked), reverse=True)
    assert reranker.measured_pairs_per_second > 0


def test_search_pipeline_shows_a_down_server(tmp_path):
    reranker = HttpReranker(f"http://127.0.0.1:{closed_port()}", MODEL, max_retries=0)
    result = add_reranking(_search_result(DOCUMENTS, 4), reranker)
    assert result.reranked == []
    assert "is down or unreachable" in result.reranker_error
    assert result.dense  # the first stage is kept


def test_check_against_local_reports_agreement(serve, local):
    server = serve()
    report = check_against_local(client(server), local, QUERY, DOCUMENTS)
    assert report["max_logit_diff"] < 1e-4 and report["max_probability_diff"] < 1e-6 and report["same_order"]


@pytest.mark.parametrize(
    ("url", "api", "expected"),
    [
        ("http://gpu:8000", "rerank", "http://gpu:8000/v1/rerank"),
        ("http://gpu:8000/", "rerank", "http://gpu:8000/v1/rerank"),
        ("http://gpu:8000/v1", "rerank", "http://gpu:8000/v1/rerank"),
        ("http://gpu:8000/v2/rerank", "rerank", "http://gpu:8000/v2/rerank"),
        ("https://api.example.com/proxy", "score", "https://api.example.com/proxy/score"),
        ("http://gpu:7997", "infinity", "http://gpu:7997/rerank"),
    ],
)
def test_endpoint_urls(url, api, expected):
    assert endpoint_url(url, api) == expected


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="unknown rerank server API"):
        HttpReranker("http://gpu:8000", MODEL, api="cohere-v9")
    with pytest.raises(ValueError, match="http:// or https://"):
        HttpReranker("gpu:8000", MODEL)
    with pytest.raises(ValueError, match="score_kind"):
        HttpReranker("http://gpu:8000", MODEL, score_kind="percent")


def test_from_settings():
    assert HttpReranker.from_settings(ServerSettings.from_env({}), MODEL) is None
    env = {
        SERVER_ENV["url"]: "http://gpu:8000",
        SERVER_ENV["api"]: "score",
        SERVER_ENV["api_key"]: "k",
        SERVER_ENV["score_kind"]: "logit",
        SERVER_ENV["max_documents_per_request"]: "16",
        SERVER_ENV["extra_body"]: json.dumps({"use_activation": False}),
        SERVER_ENV["preformat"]: "none",
    }
    reranker = HttpReranker.from_settings(ServerSettings.from_env(env), MODEL)
    assert reranker.endpoint == "http://gpu:8000/score"
    assert reranker.model_id == MODEL and reranker.api_key == "k" and reranker.options.score_kind == "logit"
    assert reranker.options.max_documents_per_request == 16 and reranker.options.extra_body == {"use_activation": False}
    assert reranker.options.preformat is None and reranker.calibration.temperature == 5 and reranker.score_scale == 5
    assert reranker.calibration.reason == "zerank-2 calibration, from the served model's name"
    assert not reranker.runs_on_local_cpu  # the CPU confirmation does not apply to a server
    with pytest.raises(SettingsError, match="RERANK_SERVER_TIMEOUT"):
        ServerSettings.from_env({SERVER_ENV["url"]: "http://gpu:8000", SERVER_ENV["timeout"]: "soon"})
    other = HttpReranker.from_settings(ServerSettings.from_env({SERVER_ENV["url"]: "http://gpu:8000"}), "BAAI/bge-v2")
    assert other.calibration.temperature == 1 and other.probability_label == "sigmoid(logit)"
    assert "RERANK_PROB_TEMPERATURE" in other.calibration.reason  # says how to set another scale
    pinned = HttpReranker.from_settings(ServerSettings.from_env({SERVER_ENV["url"]: "http://gpu:8000"}), "x", 5.0)
    assert pinned.calibration.reason == "set by RERANK_PROB_TEMPERATURE" and pinned.score_scale == 5


@pytest.fixture(scope="module")
def converted(tiny_zerank_path, tmp_path_factory) -> Path:
    """The tiny zerank converted to a sequence classifier by the script in docs/serving.md, as written."""
    folder = tmp_path_factory.mktemp("seq-cls")
    script = folder / "convert_zerank_seq_cls.py"
    script.write_text(doc_block("convert-script"))
    target = folder / "model"
    done = subprocess.run(
        [sys.executable, str(script), str(tiny_zerank_path), str(target), "float32"],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    config = json.loads((target / "config.json").read_text())
    assert config["architectures"] == ["Qwen3ForSequenceClassification"] and len(config["id2label"]) == 1
    return target


def test_documented_score_template_renders_zerank_prompt(tiny_zerank_path):
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_zerank_path)
    template = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(
        doc_block("score-template")
    )
    for document in DOCUMENTS:
        messages = [{"role": "system", "content": QUERY}, {"role": "user", "content": document}]
        expected = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        rendered = template.render(
            messages=[{"role": "query", "content": QUERY}, {"role": "document", "content": document}]
        )
        assert rendered == expected


@pytest.mark.parametrize("prompt", ["score-template", "preformatted"])
def test_documented_conversion_served_matches_local(serve, tiny_zerank_path, converted, local, local_logits, prompt):
    """The converted checkpoint, served with the documented template (or pre-formatted text), gives the
    local backend's logits and probabilities through the client's default probability mode."""
    if prompt == "score-template":
        server = serve(seq_cls_path=converted, chat_template=doc_block("score-template"))
        reranker = client(server)
    else:
        server = serve(seq_cls_path=converted)  # no template: the server scores query + document
        reranker = client(server, preformat="zerank")
    logits = reranker.score(QUERY, DOCUMENTS)
    np.testing.assert_allclose(logits, local_logits, atol=1e-4, rtol=0)
    np.testing.assert_allclose(reranker.probability(logits), local.probability(local_logits), atol=1e-6, rtol=0)


def test_credentials_in_the_url_are_sent_as_basic_auth_and_never_shown(serve, local_logits):
    import base64

    server = serve(fail_first=5)  # every attempt fails: the error names the server
    url = server.url.replace("http://", "http://alice:s3cr%40t@") + "?api_key=k-123"
    reranker = client(url, max_retries=1)
    with pytest.raises(RerankServerError) as error:
        reranker.score(QUERY, DOCUMENTS[:1])
    shown = " ".join([str(error.value), reranker.describe(), reranker.model_id, reranker.shown_endpoint])
    assert "s3cr" not in shown and "alice" not in shown and "k-123" not in shown
    assert "/v1/rerank?api_key=***" in shown
    expected = "Basic " + base64.b64encode(b"alice:s3cr@t").decode()
    assert {r.authorization for r in server.requests} == {expected}

    down = client(f"http://bob:hunter2@127.0.0.1:{closed_port()}", max_retries=0)
    with pytest.raises(RerankServerError) as error:
        down.score(QUERY, DOCUMENTS[:1])
    assert "hunter2" not in str(error.value) and "bob" not in str(error.value)


def test_a_bad_server_setting_never_echoes_a_secret():
    with pytest.raises(ValueError) as error:
        ServerSettings.from_env({"RERANK_SERVER_URL": "http://gpu:8000", "RERANK_SERVER_EXTRA": '{"key": "sk-9'})
    assert "sk-9" not in str(error.value) and "RERANK_SERVER_EXTRA" in str(error.value)
    with pytest.raises(ValueError) as error:
        HttpReranker.from_settings(ServerSettings.from_env({"RERANK_SERVER_URL": "ftp://carol:pw-77@gpu:8000"}))
    assert "pw-77" not in str(error.value) and "carol" not in str(error.value)


def test_a_key_a_server_quotes_back_is_blanked(serve):
    server = serve(api_key="right-key")
    with pytest.raises(RerankServerError) as error:
        client(server, api_key="wrong-key-42").score(QUERY, DOCUMENTS[:1])
    assert "wrong-key-42" not in str(error.value)


@pytest.mark.parametrize(
    ("url", "shown", "basic"),
    [
        ("http://user:p#ss@gpu:8080/v1", "http://***@gpu:8080/v1", "user:p#ss"),
        ("http://user:p?ss@gpu:8080", "http://***@gpu:8080", "user:p?ss"),
        ("http://user:p%2Fss@[::1]:8080/v1?key=k1#frag", "http://***@[::1]:8080/v1?key=***", "user:p/ss"),
        ("http://gpu:8080/v1/models@v2", "http://gpu:8080/v1/models@v2", None),
    ],
)
def test_credentials_are_split_from_the_raw_url(url, shown, basic):
    import base64

    from core.rerank.server_urls import redact_url, split_credentials

    assert redact_url(url) == shown
    bare, header = split_credentials(url)
    assert "ss" not in bare.split("/")[2] and (header == f"Basic {base64.b64encode(basic.encode()).decode()}"
                                              if basic else header is None)  # fmt: skip


def test_a_url_whose_password_mangles_the_port_is_refused_without_showing_it():
    with pytest.raises(ValueError) as error:
        HttpReranker("http://user:zq/x9@gpu:8080", MODEL)
    assert "zq" not in str(error.value) and "x9" not in str(error.value) and "percent-encoded" in str(error.value)


def test_request_options_are_normalised_as_they_come():
    from core.rerank.server_options import ServerOptions

    options = ServerOptions(max_request_bytes=0, extra_body=None, timeout="5", max_documents_per_request="8")
    assert options.max_request_bytes is None and options.extra_body == {}  # 0 and null: no limit, no extras
    assert options.timeout == 5.0 and options.max_documents_per_request == 8
    with pytest.raises(ValueError, match="not both"):
        HttpReranker("http://gpu:8000", MODEL, options=ServerOptions(), timeout=1)
