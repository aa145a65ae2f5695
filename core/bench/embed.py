"""``python -m core bench-embed``: our embedding path against plain sentence-transformers fp32, one run.

Both embed the same documents (truncated at the model's window by both) on the same machine. Our path's
first pass is timed on its own (what a first upload costs: static shapes compiled and first run);
then, after a warm pass of the baseline, the two take turns for a few rounds, so that the machine's
drift (the baseline's docs/s moved 42-48 between runs on one quiet Xeon) lands on both sides; the
speedup is the median of the rounds' own ratios. The report also says how close our vectors are to the
fp32 ones (cosine per document) and how close each side runs to this CPU's matmul peak (useful GFLOP/s
over a timed torch matmul per precision), which bounds what any runtime can gain.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from core.config import DEFAULT_BI_ENCODER
from core.devices import cpu_has_native_bf16
from core.embedding.bi_encoder import BiEncoder, resolve_bi_encoder_path
from core.ingest.parsing import titled_text

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


def bench_embed(
    dataset: Path,
    docs: int = 400,
    model_id: str = DEFAULT_BI_ENCODER,
    dtype: str = "auto",
    backend: str = "auto",
    rounds: int = 3,
) -> dict:
    from sentence_transformers import SentenceTransformer

    texts = load_texts(dataset, docs)
    baseline = SentenceTransformer(resolve_bi_encoder_path(model_id), device="cpu")
    engine = BiEncoder(model_id, device="cpu", dtype=dtype, backend=backend)
    engine.encode(texts[:1])  # a query-sized call: what the app runs before anything is uploaded
    first_pass_seconds, _ = _timed(lambda: engine.encode(texts))

    def baseline_pass():
        return baseline.encode(texts, batch_size=BASELINE_BATCH, normalize_embeddings=True, convert_to_numpy=True)

    baseline_pass()  # its warm-up: the engine's was its first pass
    baseline_seconds, engine_seconds, reference, ours = _take_turns(baseline_pass, lambda: engine.encode(texts), rounds)
    ratios = [b / e for b, e in zip(baseline_seconds, engine_seconds)]
    baseline_median, engine_median = float(np.median(baseline_seconds)), float(np.median(engine_seconds))

    cosine = np.sum(reference * ours, axis=1)  # both unit length
    token_ids = baseline.tokenizer(texts, truncation=True, max_length=baseline.max_seq_length)["input_ids"]
    lengths = [len(ids) for ids in token_ids]
    gflop = encoder_flops(baseline[0].auto_model.config, lengths) / 1e9
    return {
        "dataset": str(dataset),
        "docs": len(texts),
        "model": model_id,
        "rounds": len(ratios),
        "baseline": {
            "docs_per_s": len(texts) / baseline_median,
            "seconds": baseline_seconds,
            "path": f"sentence-transformers fp32, batch {BASELINE_BATCH}",
        },
        "engine": {
            "docs_per_s": len(texts) / engine_median,
            "seconds": engine_seconds,
            "first_pass_seconds": first_pass_seconds,
            "path": engine.path,
        },
        "speedup": float(np.median(ratios)),
        "speedup_per_round": ratios,
        "mean_cosine_to_fp32": float(cosine.mean()),
        "min_cosine_to_fp32": float(cosine.min()),
        "compute": {
            "tokens": int(sum(lengths)),
            "gflop": gflop,
            "baseline_gflop_per_s": gflop / baseline_median,
            "engine_gflop_per_s": gflop / engine_median,
            "matmul_peak_gflop_per_s": _matmul_peaks(),
        },
    }


def _take_turns(baseline_pass, engine_pass, rounds: int) -> tuple[list[float], list[float], object, object]:
    """Each side's seconds per round, taken in turn, and each side's last vectors."""
    baseline_seconds, engine_seconds = [], []
    for _ in range(max(1, rounds)):
        seconds, reference = _timed(baseline_pass)
        baseline_seconds.append(seconds)
        seconds, ours = _timed(engine_pass)
        engine_seconds.append(seconds)
    return baseline_seconds, engine_seconds, reference, ours


def _matmul_peaks() -> dict[str, float]:
    return {
        name: matmul_peak_gflop_per_s(torch_dtype)
        for name, torch_dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16))
        if torch_dtype == torch.float32 or cpu_has_native_bf16()
    }


def _timed(run) -> tuple[float, object]:
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


def encoder_flops(config, lengths: list[int]) -> float:
    """Floating-point operations of a BERT-style encoder's forward pass over sequences of these lengths
    (real tokens, no padding): the linear layers (4 h x h for attention, 2 h x i for the MLP) and the two
    attention products; a multiply-add is two operations. Embeddings, norms and softmax are left out."""
    hidden, inner, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_layer = sum(2 * n * (4 * hidden * hidden + 2 * hidden * inner) + 4 * n * n * hidden for n in lengths)
    return float(layers * per_layer)


def matmul_peak_gflop_per_s(dtype, m: int = 4096, k: int = 384, n: int = 1536, repeats: int = 20) -> float:
    """The best of a few timed torch matmuls shaped like MiniLM's MLP on 16 x 256 tokens."""
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = min(best, (time.perf_counter() - started) / repeats)
    return 2 * m * k * n / best / 1e9
