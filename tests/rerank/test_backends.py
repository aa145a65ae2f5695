"""Choosing the reranker backend: a rerank server when RERANK_SERVER_URL is set, else the local model."""

import socket

import pytest

from core.chunks import Chunk
from core.config import Settings
from core.errors import SettingsError
from core.rerank.base import RerankerLoadError
from core.rerank.factory import open_reranker
from core.rerank.http import HttpReranker
from core.rerank.local import CrossEncoderReranker
from core.retrieval.pipeline import Pipeline
from core.retrieval.results import RetrievedChunk, SearchResult
from core.retrieval.search import add_reranking
from tests.rerank_server import RerankTestServer


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_without_a_server_url_the_local_model_loads(tiny_zerank_path, monkeypatch):
    monkeypatch.delenv("RERANK_SERVER_URL", raising=False)
    settings = Settings.from_env(reranker=str(tiny_zerank_path), device="cpu", dtype="float32")
    assert isinstance(open_reranker(settings), CrossEncoderReranker)


def test_a_server_url_selects_the_server_and_scores_like_the_local_model(tiny_zerank_path, monkeypatch):
    server = RerankTestServer(tiny_zerank_path).start()
    try:
        monkeypatch.setenv("RERANK_SERVER_URL", server.url)
        remote = open_reranker(Settings.from_env(reranker="zerank-served"))
        assert isinstance(remote, HttpReranker) and remote.model_id == "zerank-served"
        monkeypatch.delenv("RERANK_SERVER_URL")
        here = open_reranker(Settings.from_env(reranker=str(tiny_zerank_path), device="cpu", dtype="float32"))
        texts = ["lock-up periods end 180 days after an IPO", "a recipe for bread", "x"]
        remote_logits = remote.score("When does the lock-up expire?", texts)
        local_logits = here.score("When does the lock-up expire?", texts)
        assert max(abs(a - b) for a, b in zip(remote_logits, local_logits)) < 1e-4
    finally:
        server.stop()


def test_a_bad_reranker_setting_costs_the_reranker_only(monkeypatch, tmp_path):
    monkeypatch.setenv("RERANK_WORKSPACE", str(tmp_path / "mine"))
    monkeypatch.setenv("RERANK_SERVER_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("RERANK_SERVER_TIMEOUT", "soon")
    monkeypatch.setenv("RERANK_ENGINE", "fastest")
    settings = Settings.from_env()  # the index and the first stage keep every other setting
    assert settings.workspace == tmp_path / "mine" and settings.reranker_problem
    with pytest.raises(RerankerLoadError) as raised:
        open_reranker(settings)
    assert "RERANK_SERVER_TIMEOUT='soon' is not valid" in raised.value.reason
    assert "RERANK_ENGINE='fastest' is not valid" in raised.value.reason

    monkeypatch.setenv("RERANK_CHUNK_TOKENS", "many")  # a setting the index needs still stops the start
    with pytest.raises(SettingsError, match="RERANK_CHUNK_TOKENS"):
        Settings.from_env()


def test_a_down_server_keeps_the_first_stage_and_says_what_to_do(monkeypatch):
    monkeypatch.setenv("RERANK_SERVER_URL", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("RERANK_SERVER_RETRIES", "0")
    reranker = open_reranker(Settings.from_env(reranker="zerank"))
    chunk = Chunk("a.md:0", "a.md", "a.md", "a", None, 0, 4, "text")
    result = SearchResult(
        "q", 1, Pipeline(reranker="zerank", rerank_depth=1), [RetrievedChunk(1, chunk, 0.5, {"dense": 1})]
    )
    add_reranking(result, reranker)
    assert result.reranked == [] and result.dense
    assert "is down or unreachable" in result.reranker_error
    assert "unset RERANK_SERVER_URL" in result.reranker_error


def test_local_and_server_prefixes_put_both_side_by_side(tiny_zerank_path, monkeypatch):
    """One experiment can hold the local model and the served one: ``local:`` and ``server:`` say which."""
    server = RerankTestServer(tiny_zerank_path).start()
    try:
        monkeypatch.setenv("RERANK_SERVER_URL", server.url)
        monkeypatch.setenv("RERANK_SERVER_MODEL", "the-setting")
        local = open_reranker(Settings.from_env(reranker=f"local:{tiny_zerank_path}", device="cpu", dtype="float32"))
        served = open_reranker(Settings.from_env(reranker="server:zerank-served"))
        assert isinstance(local, CrossEncoderReranker) and local.model_id == str(tiny_zerank_path)
        assert isinstance(served, HttpReranker) and served.model_id == "zerank-served"
        assert local.identity != served.identity  # the score cache keeps them apart
        texts = ["lock-up periods end 180 days after an IPO", "a recipe for bread"]
        gap = abs(local.score("lock-up?", texts) - served.score("lock-up?", texts)).max()
        assert gap < 1e-4
        monkeypatch.delenv("RERANK_SERVER_URL")
        with pytest.raises(RerankerLoadError, match="no rerank server is set.*RERANK_SERVER_URL"):
            open_reranker(Settings.from_env(reranker="server:zerank-served"))
    finally:
        server.stop()
