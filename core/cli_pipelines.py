"""The command line's named pipelines: ``--pipeline NAME|FORM`` and ``python -m core pipelines``."""

from __future__ import annotations

import sys

from core.config import Settings
from core.errors import ExplorerError
from core.ingest.names import quoted
from core.retrieval.pipeline_spec import PipelineStore, parse_spec, resolve_pipeline, spec_of


def apply_pipeline(args, settings: Settings) -> Settings:
    """``--pipeline`` sets the first-stage, reranker, depth and instruction options it names."""
    if not vars(args).get("pipeline"):
        return settings
    pipeline = resolve_pipeline(args.pipeline, PipelineStore(settings.workspace))
    stage = pipeline.first_stage
    args.first_stage, args.fusion, args.dense_weight = stage.mode, stage.fusion, stage.dense_weight
    args.instruction, args.rerank_depth = pipeline.instruction, pipeline.rerank_depth
    return settings.with_(reranker=pipeline.reranker or "none")


def pipelines_command(args, settings: Settings) -> int:
    store = PipelineStore(settings.workspace)
    try:
        if args.action == "list":
            for name, pipeline in store.all().items():
                print(f"{quoted(name)}\t{quoted(spec_of(pipeline))}")
            return 0
        if not args.name or (args.action == "save" and not args.spec):
            print("error: give a name (and, to save, a short form)", file=sys.stderr)
            return 2
        if args.action == "save":
            store.save(args.name, parse_spec(args.spec))
            print(f"saved {quoted(args.name)}: {quoted(spec_of(store.get(args.name)))}")
            return 0
        if store.delete(args.name):
            print(f"deleted {quoted(args.name)}")
            return 0
        print(f"error: no pipeline named {quoted(args.name)}", file=sys.stderr)
        return 1
    except ExplorerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
