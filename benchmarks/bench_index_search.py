"""Ingest throughput and per-stage query latency at a given index size (a benchmark, not a test).

Builds a corpus of N chunk-sized documents from the real text of the judged collections in
../shared/datasets (each document is a window of consecutive sentences, so texts are distinct),
ingests it through the same Workspace code the app uses, then runs the collections' queries and
prints p50/p95 per stage. The reranker is optional (a local path or hub id); without one only the
first stage is timed.

    python benchmarks/bench_index_search.py --chunks 10000
    python benchmarks/bench_index_search.py --chunks 100000 --queries 200
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.demo import SHARED_DATASETS as DATASETS  # noqa: E402


def _sentences() -> list[str]:
    sentences: list[str] = []
    for corpus in sorted(DATASETS.glob("*/corpus.jsonl")):
        for line in corpus.read_text(encoding="utf-8").splitlines():
            text = json.loads(line)["text"]
            sentences.extend(s.strip() for s in re.split(r"(?<=\.)\s+", text) if len(s.split()) >= 5)
    return sentences


def _queries(limit: int) -> list[str]:
    queries = []
    for path in sorted(DATASETS.glob("*/queries.jsonl")):
        queries.extend(json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines())
    return queries[:limit]


def build_corpus(n_docs: int, sentences_per_doc: int = 3) -> list[bytes]:
    """JSONL files of BEIR rows, 5,000 rows per file, each row a distinct window of real sentences."""
    sentences = _sentences()
    rows = []
    for i in range(n_docs):
        start = (i * 7) % len(sentences)
        window = [sentences[(start + j * (1 + i // len(sentences))) % len(sentences)] for j in range(sentences_per_doc)]
        rows.append(json.dumps({"_id": f"d{i}", "title": "", "text": " ".join(window) + f" [{i}]"}))
    return ["\n".join(rows[s : s + 5000]).encode() for s in range(0, len(rows), 5000)]


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("-k", type=int, default=50)
    parser.add_argument("--reranker", default="none")
    parser.add_argument("--rerank-depth", type=int, default=20)
    parser.add_argument("--workspace", help="reuse an index (default: a fresh temporary folder)")
    parser.add_argument("--no-ingest", action="store_true", help="only time queries on the --workspace index")
    parser.add_argument("--dtype", default="auto", help="bi-encoder dtype: auto (bf16 where native), float32")
    parser.add_argument("--backend", default="auto", help="embedding runtime (core.config.EMBED_BACKENDS)")
    args = parser.parse_args()

    import torch

    from core.config import Settings
    from core.embedding.bi_encoder import BiEncoder
    from core.ingest.workspace import Workspace

    folder = Path(args.workspace or tempfile.mkdtemp(prefix="bench-"))
    encoder = BiEncoder(dtype=args.dtype, backend=args.backend)
    workspace = Workspace(Settings(workspace=folder), encoder)
    print(f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}")
    print(f"embedding path: {encoder.path}")
    if not args.no_ingest:
        ingest(workspace, args.chunks)
    print(f"index: {workspace.store.count()} chunks in {folder}")
    time_queries(args, encoder, workspace)
    workspace.close()


def ingest(workspace, n_chunks: int) -> None:
    from core.ingest.workspace import FileInput

    files = build_corpus(n_chunks)
    last = [0.0]

    def progress(done: int, total: int, rate: float) -> None:
        if time.perf_counter() - last[0] > 5:
            last[0] = time.perf_counter()
            print(f"  embedded {done}/{total} ({rate:.0f} chunks/s)", file=sys.stderr, flush=True)

    summary = workspace.ingest([FileInput(f"bench-{i}.jsonl", data) for i, data in enumerate(files)], progress)
    chunks = sum(r.chunks for r in summary.reports)
    print(
        f"ingest: {chunks / summary.seconds:.0f} chunks/s end to end ({summary.seconds:.1f} s: parse, chunk, embed, "
        f"write); embedding alone {summary.embedded_per_second:.0f} chunks/s ({summary.embedded} embedded)"
    )


def time_queries(args, encoder, workspace) -> None:
    from core.rerank.local import load_reranker
    from core.retrieval.first_stage import Retriever
    from core.retrieval.pipeline import Pipeline
    from core.retrieval.search import add_reranking

    reranker = None if args.reranker == "none" else load_reranker(args.reranker)
    retriever = Retriever(encoder, workspace.store, workspace.lexical)
    pipeline = Pipeline(reranker=reranker.model_id if reranker else None, rerank_depth=args.rerank_depth)
    for warm in _queries(3):
        retriever.first_stage(warm, pipeline, args.k)
    timings: dict[str, list[float]] = {}
    for query in _queries(args.queries):
        result = retriever.first_stage(query, pipeline, args.k)
        if reranker:
            add_reranking(result, reranker)
        for stage, ms in result.timings_ms.items():
            timings.setdefault(stage, []).append(ms)
    n = len(timings["total"])
    print(f"query latency over {n} queries, k={args.k}" + (f", rerank depth {args.rerank_depth}" if reranker else ""))
    for stage in ("embed_query", "search", "rerank", "total"):
        if stage == "rerank" and not reranker:
            continue
        values = timings[stage]
        print(f"  {stage:12s} p50 {percentile(values, 50):8.1f} ms   p95 {percentile(values, 95):8.1f} ms")


if __name__ == "__main__":
    main()
