"""``python -m core.bench_rerank``: the reranker benchmark's old entry point, kept because the prepared GPU
script (../shared/gpu/bench.sh, read-only here) calls it; the benchmark is ``core.bench.rerank``."""

from core.bench.rerank import main

if __name__ == "__main__":
    raise SystemExit(main())
