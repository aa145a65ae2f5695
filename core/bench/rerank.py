"""``python -m core bench-rerank``: the rerank engine against plain ``CrossEncoder.predict``, one run.

A reranker of zerank-2's exact architecture (Qwen3ForCausalLM, 4.02B parameters: ``--config zerank-2``,
for a GPU) or a small one of the same shape (``--config small``, for a CPU) is built with random weights
in the CrossEncoder hub layout (``core.zerank_arch``) and loaded the way the app loads a reranker. Random
weights cost the same compute as trained ones, and both paths score the same pairs, so the speed and the
agreement of the scores are what is measured, not relevance.

The pairs have controlled lengths: ``--pairs`` documents for ``--queries`` queries, each templated pair
(system turn with the query, user turn with the document, the assistant prefix) ``--tokens`` tokens long
on average, spread uniformly over +-``--spread`` of that. Each path is warmed up on all the pairs once,
then the two are timed in turn, ``--repeats`` times each, and the medians are reported: pairs/s,
tokens/s, the model FLOP utilisation (MFU: 2 x non-embedding parameters x the pairs' tokens per second,
against the peak of a large matmul measured on the same device in the same dtype; the engine skips the
reused prefix and the padding, and that skipped work counts as done, so its MFU is an effective one), and
on CUDA the peak GPU memory.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from core.bench.busy import busy_load
from core.bench.zerank_arch import count_params
from core.devices import resolve_device, resolve_dtype
from core.rerank.local import load_reranker

CONFIGS = ("tiny", "small", "zerank-2")
QUERY_TOKENS = 16
WORDS = ["bond", "rate", "court", "code", "contract", "interest", "the", "and", "query", "user", "system", "Yes"]


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--config",
        choices=CONFIGS,
        default="small",
        help="zerank-2: the real size (4.02B, for a GPU); small: the same shape at 100M for a CPU; tiny: for tests",
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    parser.add_argument("--dtype", default="auto", help="auto (bf16 on a GPU, fp32 on a CPU), float32, bfloat16")
    parser.add_argument("--pairs", type=int, default=64, help="(query, document) pairs scored per repeat")
    parser.add_argument("--tokens", type=int, default=256, help="mean tokens of a templated pair")
    parser.add_argument("--spread", type=float, default=0.5, help="pair lengths uniform in tokens x (1 +- spread)")
    parser.add_argument("--queries", type=int, default=1, help="distinct queries the pairs are spread over")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each path; medians are reported")
    parser.add_argument("--baseline-batch-size", type=int, default=32, help="predict's batch size (its default)")
    parser.add_argument("--token-budget", type=int, default=None, help="the engine's tokens per batch")
    parser.add_argument("--no-prefix-reuse", action="store_true", help="the engine runs every pair's full tokens")
    parser.add_argument("--model-dir", type=Path, default=None, help="where the random model is built and reused")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--fixed-threads", action="store_true",
        help="the engine keeps torch's thread count even when other processes are busy (no adaptation)",
    )  # fmt: skip
    parser.add_argument(
        "--busy", type=int, default=0, metavar="N",
        help="time both paths beside N single-threaded busy processes (a fixed CPU load; see core/bench/busy.py)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def model_path(config: str, model_dir: Path | None) -> Path:
    root = Path(model_dir) if model_dir else Path(os.environ.get("RERANK_BENCH_DIR", tempfile.gettempdir()))
    return root / f"zerank-arch-{config}" / "model"


def build_or_reuse(config: str, model_dir: Path | None, dtype, device: str = "cpu") -> Path:
    """The random-weight model of ``config``, built once (zerank-2 writes 8 GB) and reused."""
    from core.bench.zerank_arch import build_zerank_like

    path = model_path(config, model_dir)
    if (path / "modules.json").is_file():
        return path
    # Built beside and renamed into place, so an interrupted build is never taken for a model.
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    build_zerank_like(partial, config, seed=0, dtype=dtype, device=device)
    shutil.rmtree(path, ignore_errors=True)  # a folder left without modules.json is not a model: replace it
    partial.rename(path)
    return path


def make_pairs(engine, pairs: int, tokens: int, spread: float, queries: int, seed: int) -> list[tuple[str, str]]:
    """Pairs whose templated token counts are uniform in ``tokens`` x (1 +- ``spread``).

    A document is words, each preceded by a space, then digits: the tokenizer splits text at spaces and
    makes every digit its own token, so a document's tokens are the sum of its words' tokens plus one per
    digit, and the template and the query add a fixed number more (both measured with the tokenizer).
    """
    tokenizer = engine.transformer.tokenizer
    cost = {word: len(tokenizer(" " + word, add_special_tokens=False)["input_ids"]) for word in WORDS}
    rng = random.Random(seed)
    query_texts = [" ".join(rng.choice(WORDS) for _ in range(QUERY_TOKENS)) + f" {q}" for q in range(queries)]
    overhead = {q: len(engine.tokenize([(q, "")])[0]) for q in query_texts}
    low, high = max(1, round(tokens * (1 - spread))), max(1, round(tokens * (1 + spread)))
    out = []
    for i in range(pairs):
        query = query_texts[i % queries]
        left = max(1, rng.randint(low, high) - overhead[query])
        words = []
        while True:
            word = rng.choice(WORDS)
            if cost[word] > left:
                break
            words.append(" " + word)
            left -= cost[word]
        out.append((query, "".join(words) + "".join(str(rng.randrange(10)) for _ in range(left))))
    return out


def measured_peak_flops(device: str, dtype) -> tuple[float, str]:
    """FLOP/s of a large square matmul on ``device`` in ``dtype``: the peak the MFU is measured against."""
    import torch

    n = 8192 if device.startswith("cuda") else 2048
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    repeats = 20 if device.startswith("cuda") else 5
    for _ in range(2):
        torch.mm(a, b)
    _sync(device)
    started = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    _sync(device)
    seconds = time.perf_counter() - started
    return 2 * n**3 * repeats / seconds, f"torch.mm {n}x{n} @ {n}x{n} in {str(dtype).removeprefix('torch.')}"


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _path_report(seconds: list[float], memory: float | None, how: str, pairs: int, tokens: int, at_peak: float):
    """One path's figures; ``at_peak`` is the seconds a run would take at the measured peak FLOP rate."""
    median = statistics.median(seconds)
    return {
        "pairs_per_s": pairs / median,
        "tokens_per_s": tokens / median,
        "seconds_median": median,
        "seconds": seconds,
        "mfu": at_peak / median,
        "peak_gpu_memory_gib": memory,
        "path": how,
    }


def _time_paths(paths: dict, repeats: int, device: str) -> tuple[dict, dict, dict]:
    """Seconds per run and peak GPU memory of each path, and each path's scores (from the warm-up)."""
    import torch

    seconds: dict[str, list[float]] = {name: [] for name in paths}
    memory: dict[str, float] = {}
    scores: dict[str, np.ndarray] = {}
    for name, run in paths.items():  # warm-up: every batch shape once
        scores[name] = np.asarray(run(), dtype=np.float32).reshape(-1)
    for _ in range(max(1, repeats)):
        for name, run in paths.items():  # interleaved, so drift in a shared machine hits both alike
            if device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            _sync(device)
            started = time.perf_counter()
            run()
            _sync(device)
            seconds[name].append(time.perf_counter() - started)
            if device.startswith("cuda"):
                memory[name] = max(memory.get(name, 0.0), torch.cuda.max_memory_allocated() / 2**30)
    return seconds, memory, scores


def bench_rerank(args) -> dict:
    import torch

    from core.rerank.engine import RerankEngine

    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    path = build_or_reuse(args.config, args.model_dir, dtype, device)
    model = load_reranker(str(path), device=device, dtype=str(dtype).removeprefix("torch.")).model
    engine = RerankEngine(model, args.token_budget, reuse_prefix=not args.no_prefix_reuse,
                          adapt_threads=not args.fixed_threads)  # fmt: skip
    pairs = make_pairs(engine, args.pairs, args.tokens, args.spread, args.queries, args.seed)
    lengths = [len(row) for row in engine.tokenize(pairs)]
    real_tokens = sum(lengths)
    params, body_params = count_params(model[0].model.config)

    def run_baseline():
        return model.predict(pairs, batch_size=args.baseline_batch_size, activation_fn=torch.nn.Identity(),
                             convert_to_numpy=True, show_progress_bar=False)  # fmt: skip

    paths = {"engine": lambda: engine.score_pairs(pairs), "baseline": run_baseline}
    with busy_load(args.busy):
        seconds, memory, scores = _time_paths(paths, args.repeats, device)
    peak, peak_how = measured_peak_flops(device, dtype)
    flops = 2.0 * body_params * real_tokens

    def report(name: str, how: str) -> dict:
        return _path_report(seconds[name], memory.get(name), how, len(pairs), real_tokens, flops / peak)

    engine_stats = engine.stats
    return {
        "config": args.config,
        "device": device,
        "dtype": str(dtype).removeprefix("torch."),
        "params": params,
        "non_embedding_params": body_params,
        "pairs": len(pairs),
        "queries": args.queries,
        "tokens_per_pair_mean": real_tokens / len(pairs),
        "tokens_per_pair_min": min(lengths),
        "tokens_per_pair_max": max(lengths),
        "repeats": args.repeats,
        "busy_processes": args.busy,
        "engine": report(
            "engine",
            f"RerankEngine, token budget {engine.token_budget}, prefix reuse {'on' if engine.reuse_prefix else 'off'}, "
            + _threads_note(engine, device),
        ),
        "baseline": report("baseline", f"CrossEncoder.predict, batch size {args.baseline_batch_size}"),
        "speedup": statistics.median(seconds["baseline"]) / statistics.median(seconds["engine"]),
        "max_abs_logit_diff": float(np.max(np.abs(scores["engine"] - scores["baseline"]))),
        "max_abs_logit": float(np.max(np.abs(scores["baseline"]))),
        "engine_computed_tokens_per_pair_token": engine_stats.computed_tokens / max(engine_stats.real_tokens, 1),
        "peak_flops": peak,
        "peak_flops_from": peak_how,
        "flops_per_run": flops,
    }


def _threads_note(engine, device: str) -> str:
    import torch

    if device != "cpu":
        return device
    if engine.adapt_threads:
        return f"{engine.stats.threads} of {torch.get_num_threads()} threads (the idle cores)"
    return f"{torch.get_num_threads()} threads (fixed)"


def run(args) -> int:
    result = bench_rerank(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    e, b = result["engine"], result["baseline"]
    print(
        f"{result['config']} ({result['params'] / 1e9:.2f}B params) on {result['device']} in {result['dtype']}: "
        f"{result['pairs']} pairs, {result['tokens_per_pair_mean']:.0f} tokens each on average "
        f"({result['tokens_per_pair_min']}-{result['tokens_per_pair_max']}), median of {result['repeats']}"
        + (f", beside {result['busy_processes']} busy process(es)" if result["busy_processes"] else "")
    )
    for name, part in (("engine", e), ("baseline", b)):
        memory = f", peak GPU memory {part['peak_gpu_memory_gib']:.2f} GiB" if part["peak_gpu_memory_gib"] else ""
        print(
            f"  {name:8} {part['pairs_per_s']:9.1f} pairs/s {part['tokens_per_s']:11.0f} tokens/s "
            f"MFU {part['mfu'] * 100:5.1f}%{memory}  ({part['path']})"
        )
    print(
        f"  speedup {result['speedup']:.2f}x, max |logit difference| {result['max_abs_logit_diff']:.2e} "
        f"(logits up to {result['max_abs_logit']:.2f}); MFU = 2 x {result['non_embedding_params'] / 1e9:.3f}B "
        f"non-embedding params x tokens/s against {result['peak_flops'] / 1e12:.3f} TFLOP/s measured "
        f"({result['peak_flops_from']}); the engine computed {result['engine_computed_tokens_per_pair_token']:.2f} "
        "tokens per pair token (prefix reuse and padding)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = argparse.ArgumentParser(prog="python -m core bench-rerank", description=__doc__.splitlines()[0])
    return run(add_arguments(parser).parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
