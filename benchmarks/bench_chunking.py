"""Chunking time per MB, for prose and for text with no boundaries, at growing sizes (linear = flat s/MB).

    .venv/bin/python benchmarks/bench_chunking.py                 # 1 and 4 MB, every kind
    .venv/bin/python benchmarks/bench_chunking.py --mb 1 2 4 8 --kinds prose line

Kinds: prose (MEDLINE abstracts from ../shared/datasets, paragraphs and sentences), line (the same prose
as one line with no sentence ends: the splitter's worst case before blocks), cjk (Chinese characters
with no spaces), punct ("a,b;c-d " repeated: about one token per character), blob (no spaces at all:
few, long [UNK] tokens). Default chunking: 256 tokens with 32 overlap.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.demo import SHARED_DATASETS  # noqa: E402
from core.embedding.bi_encoder import resolve_bi_encoder_path
from core.ingest.chunking import Chunker
from core.ingest.parsing import ParsedDocument, Section

KINDS = ("prose", "line", "cjk", "punct", "blob")


def _prose() -> str:
    corpus = SHARED_DATASETS / "medline" / "corpus.jsonl"
    with corpus.open(encoding="utf-8") as rows:
        return "\n\n".join(json.loads(row)["text"] for row in rows)


def make_text(kind: str, megabytes: float, prose: str) -> str:
    size = int(megabytes * 2**20)
    if kind in ("prose", "line"):
        text = prose * (size // len(prose) + 1)
        if kind == "line":
            text = re.sub(r"\s*[.!?]\s*|\n+", " ", text)
        return text.encode()[:size].decode(errors="ignore")
    if kind == "cjk":
        rng = random.Random(0)
        return "".join(chr(0x4E00 + rng.randrange(2000)) for _ in range(size // 3))
    if kind == "punct":
        return ("a,b;c-d " * (size // 8 + 1))[:size]
    return ("abcdefghij" * (size // 10 + 1))[:size]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, nargs="+", default=[1, 4])
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    args = parser.parse_args()
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(resolve_bi_encoder_path("sentence-transformers/all-MiniLM-L6-v2"))
                                        / "tokenizer.json"))  # fmt: skip
    chunker = Chunker(tokenizer, 256, 32)
    prose = _prose()
    print(f"# {platform.processor() or platform.machine()}; chunk 256 tokens, overlap 32")
    per_mb: dict[str, float] = {}
    for kind in args.kinds:
        for megabytes in args.mb:
            text = make_text(kind, megabytes, prose)
            started = time.perf_counter()
            chunks = chunker.chunk_document("bench.txt", ParsedDocument("bench.txt", "", [Section(text)]))
            seconds = time.perf_counter() - started
            real_mb = len(text.encode()) / 2**20
            per_mb[kind] = seconds / real_mb
            print(f"{kind:6s} {real_mb:5.2f} MB  {seconds:7.2f} s  {seconds / real_mb:6.2f} s/MB  "
                  f"{len(chunks):6d} chunks  {1000 * seconds / max(len(chunks), 1):5.2f} ms/chunk", flush=True)  # fmt: skip
    if "prose" in per_mb:
        for kind, value in per_mb.items():
            print(f"# {kind}: {value / per_mb['prose']:.2f}x prose s/MB (largest size)")


if __name__ == "__main__":
    main()
