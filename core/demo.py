"""The bundled demo corpus and its suggested queries."""

from __future__ import annotations

import json
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEMO_CORPUS = DATA_DIR / "demo"
SUGGESTED_QUERIES = DATA_DIR / "suggested_queries.json"
DEMO_JUDGMENTS = DATA_DIR / "judgments"
# Confusable passages (near misses, paraphrases) on which dense, BM25 and hybrid differ: data/hard/README.md.
DEMO_HARD = DATA_DIR / "hard"
# Judged collections that sit beside the checkout (../shared/datasets), for evaluation and benchmarks.
SHARED_DATASETS = DATA_DIR.parent.parent / "shared" / "datasets"


def suggested_queries() -> list[dict]:
    """``[{"query": ..., "domain": ...}]``; empty when the file is missing, which only costs the hints."""
    try:
        return json.loads(SUGGESTED_QUERIES.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
