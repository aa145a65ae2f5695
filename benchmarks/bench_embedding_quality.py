"""NDCG@10 of the bi-encoder with fp32 and with the fast embedding path, on the shared judged datasets.

The fast path must not cost quality: the target is |ΔNDCG@10| <= 0.005 against fp32.

    python benchmarks/bench_embedding_quality.py [--datasets medline cranfield] [--backend openvino-int8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.demo import SHARED_DATASETS as DATASETS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["medline", "cranfield"])
    parser.add_argument("-k", type=int, default=100)
    parser.add_argument("--backend", default="auto", help="the fast path's runtime (core.config.EMBED_BACKENDS)")
    parser.add_argument("--dtype", default="auto", help="the fast path's dtype")
    args = parser.parse_args()

    from core.config import Settings
    from core.embedding.bi_encoder import BiEncoder
    from core.eval_runner import run_dataset_evaluation
    from core.evaluation.datasets import load_dataset
    from core.retrieval.pipeline import Pipeline

    encoders = {"fp32": BiEncoder(dtype="float32"), "fast": BiEncoder(dtype=args.dtype, backend=args.backend)}
    print(f"fast path: {encoders['fast'].path}")
    print(f"{'dataset':10s} {'path':5s} {'NDCG@10':>8s} {'R@100':>7s} {'index s':>8s} {'chunks/s':>9s}")
    for name in args.datasets:
        dataset = load_dataset(DATASETS / name)
        ndcg = {}
        for label, encoder in encoders.items():
            settings = Settings(workspace=Path(tempfile.mkdtemp(prefix=f"quality-{label}-")))
            started = time.perf_counter()
            evaluation, ingest = run_dataset_evaluation(settings, encoder, dataset, Pipeline(), None, k=args.k)
            means = evaluation.means("dense")
            ndcg[label] = means["ndcg@10"]
            print(
                f"{name:10s} {label:5s} {means['ndcg@10']:8.4f} {means['recall@100']:7.4f} "
                f"{ingest.seconds:8.1f} {ingest.embedded / ingest.seconds:9.1f}"
                f"   (wall {time.perf_counter() - started:.1f} s)"
            )
        print(f"{name:10s} ΔNDCG@10 fast − fp32 = {ndcg['fast'] - ndcg['fp32']:+.4f}")


if __name__ == "__main__":
    main()
