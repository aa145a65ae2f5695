"""``python -m core bench-embed``: our embedding path against plain sentence-transformers fp32, one run.

Both embed the same documents (truncated at the model's window by both) on the same machine, one after
the other, after a warm-up each; the report gives docs/s, the speedup and how close our vectors are to
the fp32 ones (cosine per document).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from core.config import DEFAULT_BI_ENCODER
from core.embedding import BiEncoder, resolve_bi_encoder_path
from core.parsing import titled_text

BASELINE_BATCH = 32


def load_texts(dataset: Path, docs: int) -> list[str]:
    texts = []
    with open(Path(dataset) / "corpus.jsonl", encoding="utf-8") as corpus:
        for line in corpus:
            row = json.loads(line)
            texts.append(titled_text((row.get("title") or "").strip(), row.get("text") or ""))
            if len(texts) >= docs:
                break
    return texts


def bench_embed(dataset: Path, docs: int = 400, model_id: str = DEFAULT_BI_ENCODER, dtype: str = "auto") -> dict:
    from sentence_transformers import SentenceTransformer

    texts = load_texts(dataset, docs)
    baseline = SentenceTransformer(resolve_bi_encoder_path(model_id), device="cpu")
    baseline.encode(texts[:16], batch_size=BASELINE_BATCH)
    started = time.perf_counter()
    reference = baseline.encode(texts, batch_size=BASELINE_BATCH, normalize_embeddings=True, convert_to_numpy=True)
    baseline_seconds = time.perf_counter() - started

    engine = BiEncoder(model_id, device="cpu", dtype=dtype)
    engine.encode(texts[:16])
    started = time.perf_counter()
    ours = engine.encode(texts)
    engine_seconds = time.perf_counter() - started

    cosine = np.sum(reference * ours, axis=1)  # both unit length
    return {
        "dataset": str(dataset),
        "docs": len(texts),
        "model": model_id,
        "baseline": {
            "docs_per_s": len(texts) / baseline_seconds,
            "seconds": baseline_seconds,
            "path": f"sentence-transformers fp32, batch {BASELINE_BATCH}",
        },
        "engine": {"docs_per_s": len(texts) / engine_seconds, "seconds": engine_seconds, "path": engine.path},
        "speedup": baseline_seconds / engine_seconds,
        "mean_cosine_to_fp32": float(cosine.mean()),
        "min_cosine_to_fp32": float(cosine.min()),
    }
