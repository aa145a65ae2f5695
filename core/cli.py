"""Command line on the same core as the app: index files, search, list and delete indexed files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.cli_experiment import add_experiment_command, add_judge_labels, experiment_command
from core.cli_judge import add_judge_command, judge_command
from core.cli_pipelines import apply_pipeline, pipelines_command
from core.config import EMBED_BACKENDS, Settings
from core.demo import SHARED_DATASETS
from core.errors import ExplorerError, SettingsError
from core.ingest.names import quoted
from core.retrieval.pipeline import DEFAULT_K, DEFAULT_RERANK_DEPTH, FUSIONS, MODES, FirstStage, Pipeline


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workspace", help="workspace folder (default: RERANK_WORKSPACE or ./workspace)")
    parser.add_argument("--bi-encoder", help="sentence-transformers model id or path")
    parser.add_argument("--device", help="auto, cpu, cuda, mps")
    parser.add_argument("--dtype", help="auto, float32, bfloat16, float16")
    parser.add_argument(
        "--embed-backend", choices=EMBED_BACKENDS, help="embedding runtime (default: RERANK_EMBED_BACKEND or auto)"
    )


def _first_stage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--first-stage", choices=MODES, default="dense", help="what the reranker rescores (default dense)"
    )
    parser.add_argument("--fusion", choices=FUSIONS, default="rrf", help="hybrid fusion: rrf (default) or weighted")
    parser.add_argument(
        "--dense-weight",
        type=_unit_interval,
        default=0.5,
        help="weighted fusion: the dense share, BM25 gets the rest (0.5)",
    )
    parser.add_argument("--instruction", default="", help="a task instruction given to the reranker with the query")
    parser.add_argument(
        "--pipeline",
        help="a saved pipeline's name or a short form (dense, hybrid:weighted:0.3+MODEL@20|INSTRUCTION; README): "
        "replaces the first-stage, reranker, depth and instruction options",
    )


def _unit_interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not in [0, 1]")
    return value


def _pipeline(args, reranker, depth: int) -> Pipeline:
    """The pipeline the options describe, naming the reranker that loaded (None when none did)."""
    stage = FirstStage(args.first_stage, args.fusion, args.dense_weight)
    return Pipeline(stage, reranker.model_id if reranker else None, max(0, depth), args.instruction)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    index = commands.add_parser("index", help="ingest files and folders into the workspace index")
    index.add_argument("paths", nargs="+", type=Path)
    index.add_argument("--csv-column", help="text column of CSV files (default: text/content/body, else the first)")
    index.add_argument("--chunk-tokens", type=int, help="chunk size in bi-encoder tokens (default 256)")
    index.add_argument("--chunk-overlap", type=int, help="overlap between chunks in tokens (default 32)")
    index.add_argument("--json", action="store_true", help="print one JSON object")
    _common(index)

    search = commands.add_parser("search", help="retrieve (dense, BM25 or hybrid), then rerank")
    search.add_argument("query")
    search.add_argument("-k", type=int, default=DEFAULT_K, help=f"first-stage candidates (default {DEFAULT_K})")
    search.add_argument(
        "--rerank-depth",
        type=int,
        default=DEFAULT_RERANK_DEPTH,
        help=f"candidates sent to the reranker (default {DEFAULT_RERANK_DEPTH})",
    )
    search.add_argument("--reranker", help="CrossEncoder id or path, or 'none' (default: zerank-2)")
    search.add_argument("--json", action="store_true", help="print one JSON object")
    _first_stage_options(search)
    _common(search)

    evaluate = commands.add_parser(
        "eval", help="evaluate every first stage and the reranker on a judged dataset (BEIR layout)"
    )
    evaluate.add_argument("dataset", type=Path, help="folder with corpus.jsonl, queries.jsonl and qrels/test.tsv")
    evaluate.add_argument("-k", type=int, default=100, help="documents retrieved per query (default 100)")
    evaluate.add_argument("--rerank-depth", type=int, help="documents reranked per query (default: k)")
    evaluate.add_argument("--reranker", help="CrossEncoder id or path, or 'none' (default: zerank-2)")
    evaluate.add_argument("--qrels", type=Path, help="qrels file (default: DATASET/qrels/test.tsv); BEIR TSV or TREC")
    evaluate.add_argument("--judge-qrels", type=Path, help="an LLM judge's grades, merged under the human's")
    evaluate.add_argument("--run-out", type=Path, help="write TREC run files and per-query metrics here")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    _first_stage_options(evaluate)
    _common(evaluate)

    add_experiment_command(commands, _common)
    add_judge_command(commands, _common)
    _bench_commands(commands)
    pipelines = commands.add_parser("pipelines", help="list, save or delete named pipelines of the workspace")
    pipelines.add_argument("action", choices=("list", "save", "delete"))
    pipelines.add_argument("name", nargs="?")
    pipelines.add_argument("spec", nargs="?", help="for save: the pipeline's short form")
    pipelines.add_argument("--workspace", help="workspace folder (default: RERANK_WORKSPACE or ./workspace)")
    listing = commands.add_parser("list", help="list indexed files")
    _common(listing)
    delete = commands.add_parser("delete", help="remove an indexed file")
    delete.add_argument("source")
    _common(delete)
    return parser


def _bench_commands(commands) -> None:
    bench = commands.add_parser("bench-embed", help="our embedding path against sentence-transformers fp32")
    bench.add_argument(
        "--dataset",
        type=Path,
        default=SHARED_DATASETS / "medline",
    )
    bench.add_argument("--docs", type=int, default=400)
    bench.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="timed passes each side takes in turn (≥ 1; the speedup: their ratios' median)",
    )
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    _common(bench)

    # Its options are the benchmark's own (python -m core bench-rerank --help): the module loads only when run.
    commands.add_parser(
        "bench-rerank",
        help="our reranker engine against CrossEncoder.predict on a zerank-2-shaped model",
        add_help=False,
    )


def _settings(args: argparse.Namespace) -> Settings:
    given = vars(args)  # each command has its own options
    names = ("workspace", "bi_encoder", "device", "dtype", "embed_backend", "reranker")
    return Settings.from_env(**{name: given.get(name) for name in names})


def _open(settings: Settings):
    from core.embedding.bi_encoder import BiEncoder
    from core.ingest.workspace import Workspace

    return Workspace(settings, BiEncoder(settings.bi_encoder, settings.device, settings.dtype, settings.embed_backend))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench-rerank"]:  # its own --device/--dtype; no workspace or models from the settings
        from core.bench.rerank import main as bench_rerank

        return bench_rerank(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "pipelines":
        return pipelines_command(args, settings)
    if args.command == "experiment":
        return experiment_command(args, settings)
    if args.command == "judge":
        return judge_command(args, settings)
    try:
        settings = apply_pipeline(args, settings)
    except ExplorerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "eval":
        return _eval(args, settings)
    if args.command == "bench-embed":
        return _bench_embed(args, settings)
    try:
        workspace = _open(settings)
    except (ExplorerError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return {"index": _index, "search": _search, "list": _list, "delete": _delete}[args.command](args, workspace)
    finally:
        workspace.close()


def _index(args, workspace) -> int:
    def progress(done: int, total: int, rate: float) -> None:
        if not args.json:
            print(f"\rembedding {done}/{total} chunks ({rate:.0f} chunks/s)", end="", file=sys.stderr, flush=True)

    summary = workspace.ingest_paths(
        args.paths,
        progress,
        csv_text_column=args.csv_column,
        chunk_tokens=args.chunk_tokens,
        chunk_overlap=args.chunk_overlap,
    )
    if not args.json:
        print(file=sys.stderr)
    failed = sum(r.status == "error" for r in summary.reports)
    if args.json:
        print(
            json.dumps(
                {
                    "files": [r.__dict__ for r in summary.reports],
                    "embedded": summary.embedded,
                    "seconds": summary.seconds,
                    "embed_seconds": summary.embed_seconds,
                    "embedded_per_s": summary.embedded_per_second,
                },
                indent=2,
            )
        )
    else:
        for report in summary.reports:
            tag = {"indexed": "OK    ", "unchanged": "SAME  ", "error": "ERROR "}[report.status]
            print(f"{tag} {report.message}")
            for warning in report.warnings:
                print(f"       warning: {warning}")
        print(
            f"{len(summary.reports) - failed} ok, {failed} failed; "
            f"{summary.embedded} chunks embedded in {summary.seconds:.1f} s"
        )
    return 1 if failed else 0


def _load_reranker(args, settings):
    """(reranker, None) or (None, why not): a reranker that cannot load never stops the first stage."""
    from core.rerank.base import RerankerLoadError
    from core.rerank.factory import open_reranker

    if settings.reranker.lower() == "none":
        return None, "reranking disabled (--reranker none)"
    try:
        return open_reranker(settings), None
    except RerankerLoadError as exc:
        return None, str(exc)


def _eval(args, settings) -> int:
    from core.embedding.bi_encoder import BiEncoder
    from core.eval_runner import evaluations, run_dataset_evaluation
    from core.evaluation.datasets import load_dataset

    try:
        dataset = load_dataset(args.dataset, qrels_path=args.qrels)
        if args.judge_qrels:
            add_judge_labels(dataset, args.judge_qrels)
        encoder = BiEncoder(settings.bi_encoder, settings.device, settings.dtype, settings.embed_backend)
    except ExplorerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for problem in dataset.problems[:20]:
        print(f"warning: {problem}", file=sys.stderr)
    reranker, error = _load_reranker(args, settings)
    if error and settings.reranker.lower() != "none":
        print(f"warning: {error}", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        print(f"\rqueries {done}/{total}", end="", file=sys.stderr, flush=True)

    try:
        pipeline = _pipeline(args, reranker, args.k if args.rerank_depth is None else args.rerank_depth)
        evaluation, ingest = run_dataset_evaluation(
            settings, encoder, dataset, pipeline, reranker, k=args.k, reranker_error=error, progress=progress
        )
    except ExplorerError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 2
    print(file=sys.stderr)
    evaluation.settings["labels"] = "merged" if args.judge_qrels else "human"  # whose judgments the metrics use
    saved = evaluations(settings).save(evaluation)
    if args.run_out:
        _write_runs(evaluation, args.run_out)
    summary = evaluation.summary()
    summary["corpus_indexing"] = {"embedded": ingest.embedded, "seconds": ingest.seconds}
    summary["saved"] = str(saved)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{summary['dataset']}: {summary['queries']} judged queries, k={args.k}")
    for stage in evaluation.stages:
        values = summary["metrics"][stage]
        print(f"  {stage:15s} " + "  ".join(f"{m} {v:.4f}" for m, v in values.items()))
    if summary["lift"]:
        ndcg = summary["lift"]["ndcg@10"]
        low, high = ndcg["ci95"]
        print(
            f"  lift ndcg@10 over {evaluation.baseline} {ndcg['mean']:+.4f}"
            f" (95% CI {low:+.4f} to {high:+.4f}, p={ndcg['p_value']:.4f})"
        )
    elif error:
        print(f"  no reranking: {error}")
    if summary["skipped"]:
        print("  skipped: " + ", ".join(f"{n} {what}" for what, n in summary["skipped"].items()))
    print(f"  wall time {evaluation.timings_s['total']:.1f} s (+{ingest.seconds:.1f} s indexing); saved {saved}")
    return 0


def _write_runs(evaluation, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stage in evaluation.stages:
        (folder / f"{stage}.run").write_text(evaluation.trec_run(stage), encoding="utf-8")
    (folder / "per_query.csv").write_text(evaluation.per_query_csv(), encoding="utf-8")


def _bench_embed(args, settings) -> int:
    from core.bench.embed import bench_embed

    if not (args.dataset / "corpus.jsonl").is_file():
        print(f"error: {args.dataset} has no corpus.jsonl", file=sys.stderr)
        return 2
    if args.rounds < 1:
        print(f"error: --rounds must be at least 1, got {args.rounds}", file=sys.stderr)
        return 2
    report = bench_embed(
        args.dataset, args.docs, settings.bi_encoder, settings.dtype, settings.embed_backend, args.rounds
    )
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{report['docs']} documents of {args.dataset.name}, {report['model']}")
        for side in ("baseline", "engine"):
            print(f"  {side:8s} {report[side]['docs_per_s']:7.1f} docs/s  ({report[side]['path']})")
        rounds = ", ".join(f"{ratio:.2f}" for ratio in report["speedup_per_round"])
        print(f"  first pass (shapes compiled, first runs): {report['engine']['first_pass_seconds']:.2f} s")
        print(
            f"  speedup {report['speedup']:.2f}x (median of {report['rounds']} rounds: {rounds}),"
            f" cosine to fp32 mean {report['mean_cosine_to_fp32']:.5f} min {report['min_cosine_to_fp32']:.5f}"
        )
        compute = report["compute"]
        peaks = ", ".join(f"{name} {value:.0f}" for name, value in compute["matmul_peak_gflop_per_s"].items())
        print(
            f"  useful GFLOP/s: baseline {compute['baseline_gflop_per_s']:.0f},"
            f" ours {compute['engine_gflop_per_s']:.0f} (this CPU's torch matmul peak: {peaks})"
        )
    return 0


def _search(args, workspace) -> int:
    from core.retrieval.first_stage import Retriever
    from core.retrieval.search import search

    settings = workspace.settings
    reranker, error = _load_reranker(args, settings)
    retriever = Retriever(workspace.encoder, workspace.store, workspace.lexical)
    result = search(args.query, _pipeline(args, reranker, args.rerank_depth), retriever, reranker, args.k, error)
    if args.json:
        print(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
        return 0
    lists = [("dense (cosine)", result.dense)]
    if result.first_stage.mode != "dense":
        lists.append((f"BM25 ({result.lexical_engine})", result.bm25))
    if result.first_stage.mode == "hybrid":
        lists.append((result.first_stage.label, result.fused))
    for name, items in lists:
        print(f"{name}: top {min(10, len(items))} of {len(items)}")
        for r in items[:10]:
            print(f"  {r.rank:3d}  {r.score:.4g}  {r.chunk.location(quoted)}")
    if result.reranked:
        print(f"reranked by {result.reranker}, from {result.first_stage.label}:")
        print(f"  probability {result.calibration.formula}: {result.calibration.reason}")
        for r in result.reranked[:10]:
            label = r.movement_label()
            print(
                f"  {r.rank:3d}  p={r.probability:.3f}  logit={r.logit:+.2f}  {label:>18}  {r.chunk.location(quoted)}"
            )
    if result.reranker_error:
        print(f"reranker: {result.reranker_error}")
    print("timings (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in result.timings_ms.items()))
    return 0


def _list(args, workspace) -> int:
    for entry in workspace.files():
        print(
            f"{quoted(entry.source)}\t{entry.documents} docs\t{entry.chunks} chunks\t{entry.size_bytes} bytes\t"
            f"{entry.indexed_at}"
        )
    return 0


def _delete(args, workspace) -> int:
    if workspace.catalog.get(args.source) is None:
        print(f"error: {quoted(args.source)} is not indexed", file=sys.stderr)
        return 1
    print(f"deleted {quoted(args.source)}: {workspace.delete(args.source)} chunks")
    return 0
