"""Checking a deployment: the same pairs scored on a rerank server and on the local model (docs/serving.md)."""

from __future__ import annotations

import numpy as np

from core.rerank.base import Reranker
from core.rerank.http import HttpReranker

# Logits closer than this agree (bf16 against float32 differs by a few hundredths; float32 by ~1e-5).
AGREE = 0.1


def check_against_local(server: HttpReranker, local: Reranker, query: str, texts: list[str]) -> dict:
    """Score the same pairs on ``server`` and on a local ``CrossEncoderReranker``; the differences.

    Used by ``docs/serving.md`` to verify a deployment. Returns the largest logit and probability
    differences, whether the two rankings agree, and ``advice``: what to change when they do not.
    """
    remote_logits = server.score(query, texts)
    local_logits = local.score(query, texts)
    remote_p = server.probability(remote_logits)
    local_p = local.probability(local_logits)
    same_order = bool(
        np.array_equal(np.argsort(-remote_logits, kind="stable"), np.argsort(-local_logits, kind="stable"))
    )
    difference = float(np.max(np.abs(remote_logits - local_logits)))
    return {
        "max_logit_diff": difference,
        "max_probability_diff": float(np.max(np.abs(remote_p - local_p))),
        "same_order": same_order,
        "advice": _advice(server, remote_logits, local_logits, same_order, difference),
        "server_logits": remote_logits.tolist(),
        "local_logits": local_logits.tolist(),
    }


def _advice(server: HttpReranker, remote: np.ndarray, local: np.ndarray, same_order: bool, difference: float) -> str:
    if difference <= AGREE:
        return "The server agrees with the local model."
    if same_order and np.all(np.abs(local) > 1e-3):
        ratios = remote / local
        ratio = float(np.median(ratios))
        if ratio > 0 and np.allclose(ratios, ratio, rtol=0.05):
            return (
                f"The server's scores are {ratio:.3g} times the local logits: the head's scale and the client's "
                f"differ. Set RERANK_SERVER_SCORE_SCALE={server.score_scale / ratio:.3g} (1 for a head that keeps "
                'the raw "Yes" row, the temperature for the converted checkpoint).'
            )
    order = "ranks the pairs differently" if not same_order else "is off by more than rounding"
    return (
        f'The server {order}: it scores something else. Check that its head reads the single "Yes" token '
        '(--hf-overrides classifier_from_token ["Yes"] with method no_post_processing, not the Qwen3-Reranker '
        'recipe ["no", "yes"]), that the prompt is zerank\'s chat template (--chat-template, or '
        "RERANK_SERVER_PREFORMAT=zerank), and RERANK_SERVER_SCORE_KIND and RERANK_SERVER_SCORE_SCALE against "
        "how the model is served (docs/serving.md)."
    )
