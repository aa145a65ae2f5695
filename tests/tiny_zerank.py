"""The tiny reranker with zerank-2's architecture and on-disk layout, for offline tests.

The builder lives in ``core.zerank_arch`` (the reranker benchmark builds larger sizes of the same
model with it); this module keeps the names the tests import.
"""

from __future__ import annotations

from core.zerank_arch import CHAT_TEMPLATE, MERGE_WORDS, SPECIAL_TOKENS, build_tiny_zerank

__all__ = ["CHAT_TEMPLATE", "MERGE_WORDS", "SPECIAL_TOKENS", "build_tiny_zerank"]
