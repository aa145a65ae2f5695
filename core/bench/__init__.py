"""Benchmarks and the zerank-architecture model builder; runtime code never imports this package."""

from core.lazy_exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    "core.bench",
    {
        "bench_embed": "embed",
        "bench_rerank": "rerank",
        "build_zerank_like": "zerank_arch",
    },
)
