"""The on-disk embedding cache: unchanged content is never embedded twice."""

from __future__ import annotations

import numpy as np

from core.embedding.cache import EmbeddingCache, embed_with_cache, text_key
from core.ingest.workspace import FileInput

TEXT = "Put-call parity links the price of a European call and put with the same strike and expiry.\n\n" * 3


def test_cached_vectors_equal_fresh_ones(tmp_path, encoder):
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    texts = ["bond duration", "force majeure", "bond duration", "git rebase"]
    first, fresh_first = embed_with_cache(encoder, cache, texts)
    assert fresh_first.tolist() == [True, True, False, True]  # the repeat is embedded once
    before = encoder.texts_encoded
    second, fresh_second = embed_with_cache(encoder, cache, texts)
    assert encoder.texts_encoded == before and not fresh_second.any()
    np.testing.assert_array_equal(first, second)
    # Each cached vector belongs to its own text: a fresh encode agrees up to the bf16 path's batch noise.
    np.testing.assert_allclose(first, encoder.encode(texts), atol=2e-3)
    assert np.all(np.sum(first * encoder.encode(texts[::-1])[::-1], axis=1) > 0.9999)
    assert len(cache) == 3


def test_cache_key_includes_model(tmp_path):
    assert text_key("model-a", "same text") != text_key("model-b", "same text")


def test_second_ingest_of_same_file_runs_zero_encodes(workspace, encoder):
    first = workspace.ingest([FileInput("notes.md", TEXT.encode())])
    assert first.reports[0].status == "indexed" and first.reports[0].embedded == first.reports[0].chunks > 0

    before = encoder.texts_encoded
    again = workspace.ingest([FileInput("notes.md", TEXT.encode())])
    assert encoder.texts_encoded == before
    assert again.reports[0].status == "unchanged" and "nothing embedded" in again.reports[0].message

    # The same content under another name is chunked and stored, but every vector comes from the cache.
    copy = workspace.ingest([FileInput("copy-of-notes.md", TEXT.encode())])
    assert encoder.texts_encoded == before
    assert copy.reports[0].status == "indexed" and copy.reports[0].embedded == 0 and copy.reports[0].chunks > 0


def test_cache_survives_reopening(settings, encoder):
    from core.ingest.workspace import Workspace

    ws = Workspace(settings, encoder)
    ws.ingest([FileInput("a.txt", TEXT.encode())])
    ws.close()
    before = encoder.texts_encoded
    ws = Workspace(settings, encoder)
    # A different name defeats the "unchanged file" shortcut, so only the embedding cache can spare the work.
    report = ws.ingest([FileInput("b.txt", TEXT.encode())]).reports[0]
    ws.close()
    assert report.embedded == 0 and encoder.texts_encoded == before
