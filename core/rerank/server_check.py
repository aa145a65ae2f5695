"""Checking a deployment: the same pairs scored on a rerank server and on the local model (docs/serving.md)."""

from __future__ import annotations

import numpy as np

from core.rerank.base import Reranker
from core.rerank.http import HttpReranker


def check_against_local(server: HttpReranker, local: Reranker, query: str, texts: list[str]) -> dict:
    """Score the same pairs on ``server`` and on a local ``CrossEncoderReranker``; the differences.

    Used by ``docs/serving.md`` to verify a deployment. Returns the largest logit and probability
    differences and whether the two rankings agree.
    """
    remote_logits = server.score(query, texts)
    local_logits = local.score(query, texts)
    remote_p = server.probability(remote_logits)
    local_p = local.probability(local_logits)
    return {
        "max_logit_diff": float(np.max(np.abs(remote_logits - local_logits))),
        "max_probability_diff": float(np.max(np.abs(remote_p - local_p))),
        "same_order": bool(
            np.array_equal(np.argsort(-remote_logits, kind="stable"), np.argsort(-local_logits, kind="stable"))
        ),
        "server_logits": remote_logits.tolist(),
        "local_logits": local_logits.tolist(),
    }
