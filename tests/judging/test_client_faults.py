"""What a real server cannot be made to do on demand: 429s, timeouts, malformed JSON, a server that echoes
the request's secrets, one that refuses structured output. A loopback server answers from a script."""

from __future__ import annotations

import http.server
import json
import socket
import threading

import pytest

from core.judging.client import ChatJudgeClient, JudgeError, JudgeSettings
from core.judging.judge import Judge, JudgmentCache, Pair

KEY = "sk-test-SECRET-123"


class Scripted:
    """A chat server answering each POST with the next scripted (status, body, headers, delay)."""

    def __init__(self, script):
        self.script, self.requests = list(script), []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the standard library's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append({"body": body, "auth": self.headers.get("Authorization")})
                status, answer, headers, delay = owner.script.pop(0) if owner.script else (200, _chat("2"), {}, 0)
                if delay:
                    threading.Event().wait(delay)
                payload = (answer if isinstance(answer, str) else json.dumps(answer)).replace(
                    "{auth}", str(self.headers.get("Authorization"))
                )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload.encode())))
                self.end_headers()
                self.wfile.write(payload.encode())

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()


def _chat(content: str) -> dict:
    return {"choices": [{"message": {"role": "assistant", "content": content}}]}


def _client(url, **options) -> ChatJudgeClient:
    return ChatJudgeClient(JudgeSettings(url, "judge-model", KEY, **{"timeout": 5, "backoff": 0.01, **options}))


def test_a_429_is_retried_after_its_retry_after_and_then_answered():
    server = Scripted([(429, "slow down", {"Retry-After": "0.1"}, 0), (503, "busy", {}, 0)])
    try:
        client = _client(server.url)
        assert client.ask("rate this") == "2"
        assert len(server.requests) == 3 and all(r["auth"] == f"Bearer {KEY}" for r in server.requests)
        assert server.requests[0]["body"]["response_format"]["type"] == "json_schema"
    finally:
        server.close()


def test_errors_name_the_server_and_never_carry_the_key_even_when_the_server_echoes_it():
    echo = {"error": "bad key {auth}"}
    server = Scripted([(401, echo, {}, 0), (500, echo, {}, 0), (500, echo, {}, 0), (200, "{auth} not json", {}, 0)])
    url = server.url.replace("http://", "http://user:pa%23ss@")
    try:
        with pytest.raises(JudgeError) as unauthorised:
            _client(server.url).ask("x")
        assert "HTTP 401" in str(unauthorised.value) and "Check the key" in str(unauthorised.value)
        with pytest.raises(JudgeError, match="after 2 tries") as retried:
            _client(server.url, max_retries=1).ask("x")
        with pytest.raises(JudgeError, match="not JSON") as garbled:
            ChatJudgeClient(JudgeSettings(url, "m", None, timeout=5)).ask("x")
        for error in (unauthorised.value, retried.value, garbled.value):
            assert KEY not in str(error) and "pa%23ss" not in str(error) and "pa#ss" not in str(error)
        assert f"The judge at {server.url}/v1/chat/completions" in str(garbled.value) and "user" not in str(
            garbled.value
        )
        assert KEY not in repr(JudgeSettings(server.url, "m", KEY)) and "pa%23ss" not in repr(JudgeSettings(url, "m"))
    finally:
        server.close()


def test_a_server_without_structured_output_is_asked_plainly_and_read_tolerantly():
    refusal = {"error": {"message": "Unrecognized request argument supplied: response_format"}}
    server = Scripted(
        [(400, refusal, {}, 0), (200, _chat("Rating: 3"), {}, 0), (200, _chat("I cannot judge this."), {}, 0)]
    )
    try:
        judge = Judge(_client(server.url))
        first = judge.rate(Pair("q1", "bonds", "d1", "Bond prices fall when yields rise."))
        second = judge.rate(Pair("q1", "bonds", "d2", "A recipe."))
        assert (first.grade, second.grade, second.raw) == (3, None, "I cannot judge this.")  # unrateable, not 0
        assert "response_format" not in server.requests[-1]["body"]
    finally:
        server.close()


def test_a_timeout_is_an_error_naming_the_limit_and_the_cache_asks_nothing_twice(tmp_path):
    server = Scripted([(200, _chat('{"rating": 1}'), {}, 3), (200, _chat('{"rating": 1}'), {}, 0)])
    try:
        with pytest.raises(JudgeError, match="down or unreachable"):
            _client(server.url, timeout=0.5, max_retries=0).ask("x")
        judge = Judge(_client(server.url), JudgmentCache(tmp_path / "answers.sqlite"))
        pair = Pair("q1", "bonds", "d1", "text")
        assert judge.rate(pair).grade == 1
        sent = len(server.requests)
        again = Judge(_client(server.url), JudgmentCache(tmp_path / "answers.sqlite")).rate(pair)
        assert again.cached and again.grade == 1 and len(server.requests) == sent
    finally:
        server.close()


def test_a_judge_that_is_down_stops_the_batch_and_says_what_to_do():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    judge = Judge(_client(f"http://127.0.0.1:{port}", max_retries=1))
    with pytest.raises(JudgeError, match="down or unreachable.*Check that it runs"):
        judge.rate_all([Pair("q", "query", f"d{i}", "text") for i in range(5)])


def test_a_judge_that_is_down_leaves_human_labels_and_the_judges_earlier_grades_as_they_were(tmp_path):
    from core.evaluation.labels import LabelStore
    from core.experiments.snapshot import Experiment
    from core.judge_runner import JudgeLabelStore, judge_pool

    labels = LabelStore(tmp_path)
    labels.set_label("bonds", "a.md", 3)
    before = (labels.qrels_path.read_text(), labels.queries_path.read_text())
    store = JudgeLabelStore(tmp_path / "judge-labels")
    store.add("f" * 16, {"q1": {"b.md": 1}})
    experiment = Experiment(
        query_set={"name": "s", "fingerprint": "f" * 16, "judged": True, "queries": 1}, corpus={}, k=10,
        baseline="dense", pipelines={"dense": "dense"}, queries={"q1": "bonds"}, qrels={"q1": {"a.md": 3}},
        runs={"dense": {"q1": [["a.md", 2.0], ["c.md", 1.0]]}},
        passages={"a.md": {"source": "a.md", "text": "A"}, "c.md": {"source": "c.md", "text": "C"}},
    )  # fmt: skip
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(JudgeError, match="down or unreachable"):
        judge_pool(experiment, Judge(_client(f"http://127.0.0.1:{port}", max_retries=0)), 10, experiment.qrels)
    assert (labels.qrels_path.read_text(), labels.queries_path.read_text()) == before
    assert store.get("f" * 16) == {"q1": {"b.md": 1}} and experiment.qrels == {"q1": {"a.md": 3}}
