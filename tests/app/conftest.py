"""The app's pages under AppTest share one environment: a workspace of the test's own and the tiny reranker."""

from __future__ import annotations

import pytest


@pytest.fixture
def app_env(tmp_path, monkeypatch, tiny_zerank_path):
    monkeypatch.setenv("RERANK_WORKSPACE", str(tmp_path / "workspace"))
    monkeypatch.setenv("RERANK_RERANKER", str(tiny_zerank_path))
    monkeypatch.setenv("RERANK_DEVICE", "cpu")
    return tmp_path
