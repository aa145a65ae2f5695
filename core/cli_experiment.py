"""``python -m core experiment QUERIES --pipeline NAME=SPEC ... --baseline NAME``: N pipelines over a query set."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from core.errors import ExplorerError
from core.ingest.names import quoted
from core.retrieval.pipeline import Pipeline
from core.retrieval.pipeline_spec import PipelineSpecError, PipelineStore, parse_spec, resolve_pipeline


def add_experiment_command(commands, common) -> None:
    parser = commands.add_parser(
        "experiment", help="compare pipelines on a query set (a dataset folder, a query list, a Quepid CSV or 'labels')"
    )
    parser.add_argument(
        "queries", help="a BEIR dataset folder, .txt/.csv/.jsonl queries, Quepid ratings .csv, or 'labels'"
    )
    parser.add_argument(
        "--pipeline",
        action="append",
        required=True,
        metavar="NAME=SPEC",
        help="repeatable: NAME=SPEC (short form, README), a saved pipeline's NAME, or a bare SPEC named by itself",
    )
    parser.add_argument("--baseline", help="the pipeline the others are compared with (default: the first)")
    parser.add_argument("-k", type=int, default=100, help="documents per query (default 100)")
    parser.add_argument("--qrels", type=Path, help="judgments for a query list: TREC/BEIR qrels or Quepid ratings .csv")
    parser.add_argument(
        "--judge-qrels", type=Path, help="an LLM judge's grades (python -m core judge): merged, a human label wins"
    )
    parser.add_argument("--run-out", type=Path, help="write NAME.run per pipeline (and the judgments) here")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    common(parser)


def named_pipelines(options: list[str], store: PipelineStore) -> dict[str, Pipeline]:
    """``NAME=SPEC``, a saved name, or a bare short form; a name given twice is an error, not an overwrite."""
    pipelines: dict[str, Pipeline] = {}
    for option in options:
        name, eq, spec = option.partition("=")
        if eq and name.strip() and not _looks_like_spec_head(name):
            pipeline = parse_spec(spec)
        else:
            name, pipeline = option, resolve_pipeline(option, store)
        name = name.strip()
        if name in pipelines:
            raise PipelineSpecError(f"two pipelines are named {name!r}")
        pipelines[name] = pipeline
    return pipelines


def _looks_like_spec_head(text: str) -> bool:
    """``dense|a=b``: the "=" is inside an instruction, not after a name."""
    return "|" in text


def experiment_command(args, settings) -> int:
    from core.embedding.bi_encoder import BiEncoder
    from core.experiment_runner import cached_rerankers, open_query_source, run_experiment_in, score_cache
    from core.rerank.base import RerankerLoadError

    try:
        pipelines = named_pipelines(args.pipeline, PipelineStore(settings.workspace))
        baseline = args.baseline or next(iter(pipelines))
        source = open_query_source(settings, args.queries, args.qrels)
        if args.judge_qrels:
            add_judge_labels(source.query_set, args.judge_qrels)
        encoder = BiEncoder(settings.bi_encoder, settings.device, settings.dtype, settings.embed_backend)
        rerankers = cached_rerankers(settings, pipelines, score_cache(settings))
    except RerankerLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ExplorerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for problem in source.query_set.problems[:20]:
        print(f"warning: {problem}", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        print(f"\rqueries {done}/{total}", end="", file=sys.stderr, flush=True)

    try:
        experiment, saved = run_experiment_in(
            settings, encoder, source, pipelines, rerankers, baseline=baseline, k=args.k, progress=progress
        )
    except ExplorerError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 2
    print(file=sys.stderr)
    if args.run_out:
        write_runs(experiment, args.run_out)
    summary = experiment.summary()
    summary["saved_path"] = str(saved)
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        print_summary(summary)
    return 0


def add_judge_labels(query_set, path: Path) -> None:
    """The judge's grades under the human's: metrics then use both, and say so (``labels``: merged)."""
    from core.evaluation.datasets import parse_qrels
    from core.experiments.query_sets import QuerySetError
    from core.judging.agreement import merged

    try:
        judged, problems, _ = parse_qrels(path.read_text(encoding="utf-8"), path.name)
    except OSError as exc:
        raise QuerySetError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    judged = {q: grades for q, grades in judged.items() if q in query_set.queries}
    if judged:
        query_set.labels = "merged" if query_set.qrels else "judge"
        query_set.qrels = merged(query_set.qrels or {}, judged)
    query_set.problems += problems


def write_runs(experiment, folder: Path) -> None:
    from core.eval_runner import dataset_slug
    from core.evaluation.datasets import write_qrels
    from core.experiments.interop import trec_run, write_quepid_ratings

    folder.mkdir(parents=True, exist_ok=True)
    for name in experiment.pipelines:
        tag = dataset_slug(name)  # a user's name is no file name nor a TREC tag (no "/", "..", spaces)
        (folder / f"{tag}.run").write_text(trec_run(experiment.runs[name], tag), encoding="utf-8")
    if experiment.qrels:
        (folder / "judgments.qrels").write_text(write_qrels(experiment.qrels), encoding="utf-8")
        (folder / "judgments.quepid.csv").write_text(
            write_quepid_ratings(experiment.queries, experiment.qrels), encoding="utf-8"
        )


def print_summary(summary: dict) -> None:
    print(f"{summary['query_set']['name']}: {summary['queries']} queries ({summary['judged_queries']} judged), "
          f"k={summary['k']}, baseline {quoted(summary['baseline'])}")  # fmt: skip
    for name, pipeline in summary["pipelines"].items():
        metrics = pipeline["metrics"]
        figures = "  ".join(f"{m} {v:.4f}" for m, v in metrics.items()) if metrics else "(no judgments)"
        print(f"  {quoted(name)} = {quoted(pipeline['spec'])}\n      {figures}")
        lift = summary["comparisons"].get(name, {}).get("ndcg@10")
        if lift:
            low, high = lift["ci95"]
            print(f"      ndcg@10 {lift['mean']:+.4f} (95% CI {low:+.4f} to {high:+.4f}), "
                  f"p={lift['p_value']:.4f}, Holm p={lift['p_holm']:.4f}")  # fmt: skip
        agreement = summary["agreement"].get(name)
        if agreement:
            print("      agreement: " + "  ".join(f"{m} {v:.3f}" for m, v in agreement.items()))
    for model_id, counts in summary["reranking"].items():
        print(f"  {model_id}: {counts['pairs_scored']} pairs scored, {counts['pairs_from_cache']} from the cache")
    print(f"  saved snapshot {summary['saved']}")
