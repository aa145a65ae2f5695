"""Facts about well-known rerankers, shown before a model is loaded (a 4B model takes a while on a CPU)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KnownModel:
    params: float
    license: str
    note: str


# Facts shown before a model is loaded (loading a 4B model on a CPU takes a while).
KNOWN_MODELS = {
    "zeroentropy/zerank-2-reranker": KnownModel(
        params=4.02e9,
        # Not asserted: the loaded model's card decides (core.rerank.local._license); this note is all that
        # can be said without it (before loading, a served model, a card not in the cache).
        license="see the model card of the revision you use (it said cc-by-nc-4.0, non-commercial, in 2025)",
        note="Qwen3 4B, bf16 weights of about 8 GB, 32k-token context",
    ),
}


KNOWN_MODELS["zeroentropy/zerank-2"] = KNOWN_MODELS["zeroentropy/zerank-2-reranker"]


def format_params(params: float) -> str:
    """4.02B, 22.7M, 35k: how model sizes are written everywhere."""
    if params >= 1e9:
        return f"{params / 1e9:.2f}B"
    if params >= 1e6:
        return f"{params / 1e6:.1f}M"
    return f"{params / 1e3:.0f}k" if params >= 1e3 else str(int(params))
