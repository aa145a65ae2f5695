"""Two models loading at once in two threads (a page loads the reranker while the bi-encoder loads in the
background): both come out whole, and score as models loaded one after the other do."""

from __future__ import annotations

import threading

import numpy as np

from core.embedding.bi_encoder import BiEncoder
from core.rerank.local import load_reranker

QUERY, TEXTS = "When can insiders sell after an IPO?", ["Insiders may sell after the lock-up.", "Herons eat fish."]


def test_a_reranker_and_a_bi_encoder_loaded_at_once_both_work(tiny_zerank_path):
    alone_scores = load_reranker(str(tiny_zerank_path), device="cpu").score(QUERY, TEXTS)
    alone_vector = BiEncoder(backend="torch").encode_query(QUERY)
    for _ in range(6):
        loaded, errors = {}, []
        start = threading.Barrier(2)

        def load(name, make):
            start.wait()
            try:
                loaded[name] = make()
            except Exception as exc:  # reported below, with the thread it came from
                errors.append(f"{name}: {type(exc).__name__}: {exc}")

        threads = [
            threading.Thread(
                target=load, args=("reranker", lambda: load_reranker(str(tiny_zerank_path), device="cpu"))
            ),
            threading.Thread(
                target=load, args=("encoder", lambda: BiEncoder(backend="torch"))
            ),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        assert not errors, errors
        np.testing.assert_allclose(loaded["reranker"].score(QUERY, TEXTS), alone_scores, atol=1e-4)
        np.testing.assert_allclose(loaded["encoder"].encode_query(QUERY), alone_vector, atol=1e-5)
