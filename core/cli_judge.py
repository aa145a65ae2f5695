"""``python -m core judge QUERIES --pipeline ... --out judge.qrels``: an LLM judge grades the pooled top
documents no human has labelled (``--agreement``: the human-labelled ones too, to measure the judge)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from core.config import judge_env
from core.errors import ExplorerError
from core.retrieval.pipeline_spec import PipelineStore


def add_judge_command(commands, common) -> None:
    parser = commands.add_parser("judge", help="an LLM judge (any OpenAI-compatible server) grades unjudged results")
    parser.add_argument(
        "queries", help="a BEIR dataset folder, .txt/.csv/.jsonl queries, Quepid ratings .csv, or 'labels'"
    )
    parser.add_argument("--pipeline", action="append", required=True, metavar="NAME=SPEC", help="as for experiment")
    parser.add_argument(
        "--depth", type=int, default=10, help="top documents of each pipeline pooled per query (max 10)"
    )
    parser.add_argument(
        "--judge-url", help="the chat server's base URL (default RERANK_JUDGE_URL); key: RERANK_JUDGE_KEY"
    )
    parser.add_argument("--judge-model", help="the served model's name (default RERANK_JUDGE_MODEL)")
    parser.add_argument("--prompt", type=Path, help="a prompt template with {query}, {document} and {instruction}")
    parser.add_argument("--concurrency", type=int, default=4, help="requests at once (default 4)")
    parser.add_argument("--retries", type=int, default=3, help="retries after a 429, a 5xx or a dropped connection")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default 60)")
    parser.add_argument("--agreement", action="store_true", help="judge human-labelled pairs too and compare")
    parser.add_argument("--out", type=Path, required=True, help="write the judge's grades here (TREC qrels)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    common(parser)


def judge_command(args, settings) -> int:
    from core.cli_experiment import named_pipelines
    from core.embedding.bi_encoder import BiEncoder
    from core.experiment_runner import cached_rerankers, open_query_source, run_experiment_in, score_cache
    from core.judge_runner import judge_pool, trust
    from core.judging.client import ChatJudgeClient, JudgeSettings
    from core.judging.judge import Judge, JudgmentCache
    from core.judging.prompt import DEFAULT_TEMPLATE

    env = judge_env()
    url, model = args.judge_url or env.get("url"), args.judge_model or env.get("model")
    if not url or not model:
        print("error: give --judge-url and --judge-model (or RERANK_JUDGE_URL, RERANK_JUDGE_MODEL)", file=sys.stderr)
        return 2
    try:
        template = args.prompt.read_text(encoding="utf-8") if args.prompt else DEFAULT_TEMPLATE
        client = ChatJudgeClient(JudgeSettings(url, model, env.get("api_key"), args.timeout, args.retries,
                                               concurrency=args.concurrency))  # fmt: skip
        judge = Judge(client, JudgmentCache(settings.workspace / "judge-answers.sqlite"), template)
        pipelines = named_pipelines(args.pipeline, PipelineStore(settings.workspace))
        source = open_query_source(settings, args.queries)
        encoder = BiEncoder(settings.bi_encoder, settings.device, settings.dtype, settings.embed_backend)
        rerankers = cached_rerankers(settings, pipelines, score_cache(settings))
        experiment, _ = run_experiment_in(settings, encoder, source, pipelines, rerankers,
                                          baseline=next(iter(pipelines)), k=max(10, args.depth))  # fmt: skip
        human = source.query_set.qrels or {}
        run = judge_pool(experiment, judge, args.depth, None if args.agreement else human, _progress)
    except (ExplorerError, ValueError, OSError) as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 2
    print(file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(run.trec_qrels(), encoding="utf-8")
    summary = {"judge": client.identity, "snapshot": experiment.id, "out": str(args.out), **run.summary()}
    summary["requests_sent"] = client.requests_sent
    if args.agreement:
        summary["agreement"] = trust(experiment, human, run.qrels)
    print(json.dumps(summary, indent=2, ensure_ascii=False) if args.json else _text(summary))
    return 0


def _progress(done: int, total: int) -> None:
    print(f"\rjudged {done}/{total}", end="", file=sys.stderr, flush=True)


def _text(summary: dict) -> str:
    lines = [f"{summary['judge']}: {summary['graded']} graded, {len(summary['unrateable'])} unrateable, "
             f"{summary['from_cache']} from the cache; wrote {summary['out']}"]  # fmt: skip
    lines += [
        f"  unrateable {u['qid']} {json.dumps(u['doc_id'])}: {json.dumps(u['answer'])}" for u in summary["unrateable"]
    ]
    if "agreement" in summary:
        lines.append(
            f"  weighted kappa {summary['agreement']['weighted_kappa']} on {summary['agreement']['pairs']} pairs"
        )
    return "\n".join(lines)
