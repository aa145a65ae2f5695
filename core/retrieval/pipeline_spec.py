"""A pipeline written as one line, and named pipelines kept in the workspace.

The short form, lossless (``parse_spec(spec_of(p)) == p``), as the CLI, saved pipelines and README use it::

    STAGE [ "+" RERANKER [ "@" DEPTH ] ] [ "|" INSTRUCTION ]

    STAGE        dense | bm25 | hybrid:rrf | hybrid:weighted:W     (W: the dense share, 0 to 1; RRF
                 reads ranks only, so it has no weight)
    RERANKER     a model id or folder, up to the last "@" (default depth 20 without one)
    INSTRUCTION  everything after the first "|", as typed

``dense``, ``hybrid:weighted:0.3``, ``bm25+zeroentropy/zerank-2-reranker@50`` and
``dense+zeroentropy/zerank-2-reranker@20|Prefer statutes over commentary.`` are pipelines.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from core.errors import ExplorerError
from core.locking import FolderLock
from core.retrieval.pipeline import DEFAULT_RERANK_DEPTH, FUSIONS, MAX_DEPTH, FirstStage, Pipeline


class PipelineSpecError(ExplorerError, ValueError):
    """A pipeline's short form that does not parse; the message quotes it and says what is wrong."""


def spec_of(pipeline: Pipeline) -> str:
    stage = pipeline.first_stage
    spec = stage.mode
    if stage.mode == "hybrid":
        spec += f":{stage.fusion}" + (f":{stage.dense_weight:g}" if stage.fusion == "weighted" else "")
    if pipeline.reranker is not None:
        spec += f"+{pipeline.reranker}@{pipeline.rerank_depth}"
    if pipeline.instruction:
        spec += f"|{pipeline.instruction}"
    return spec


def parse_spec(spec: str) -> Pipeline:
    head, bar, instruction = spec.partition("|")
    head = head.strip()
    stage_text, plus, reranked = head.partition("+")
    stage = _stage(stage_text.strip(), spec)
    if not plus:
        return Pipeline(stage, None, DEFAULT_RERANK_DEPTH, instruction if bar else "")
    reranker, at, depth_text = reranked.rpartition("@")
    if not at:
        reranker, depth_text = reranked, str(DEFAULT_RERANK_DEPTH)
    if not reranker.strip():
        raise PipelineSpecError(f"pipeline {spec!r}: no reranker after '+'")
    try:
        depth = int(depth_text)
    except ValueError:
        raise PipelineSpecError(f"pipeline {spec!r}: the depth after '@' must be a whole number") from None
    if not 0 <= depth <= MAX_DEPTH:
        raise PipelineSpecError(f"pipeline {spec!r}: the depth must be 0 to {MAX_DEPTH}")
    return Pipeline(stage, reranker.strip(), depth, instruction)


def _stage(text: str, spec: str) -> FirstStage:
    parts = text.split(":")
    if parts[0] in ("dense", "bm25") and len(parts) == 1:
        return FirstStage(parts[0])
    if parts[0] == "hybrid" and len(parts) in (2, 3) and parts[1] in FUSIONS:
        if parts[1] == "rrf" and len(parts) == 2:
            return FirstStage("hybrid", "rrf")
        if parts[1] == "weighted":
            try:
                weight = float(parts[2]) if len(parts) == 3 else 0.5
            except ValueError:
                raise PipelineSpecError(f"pipeline {spec!r}: the dense weight must be a number") from None
            if not 0.0 <= weight <= 1.0:
                raise PipelineSpecError(f"pipeline {spec!r}: the dense weight must be in [0, 1]")
            return FirstStage("hybrid", "weighted", weight)
    raise PipelineSpecError(
        f"pipeline {spec!r}: the first stage must be dense, bm25, hybrid:rrf or hybrid:weighted:W, got {text!r}"
    )


class PipelineStore:
    """Named pipelines saved in the workspace (``pipelines.json``: name → short form), for every page and
    the CLI. Names are the user's text: stored as JSON keys, never spliced anywhere."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / "pipelines.json"

    def all(self) -> dict[str, Pipeline]:
        return {name: parse_spec(spec) for name, spec in self._read().items()}

    def get(self, name: str) -> Pipeline | None:
        spec = self._read().get(name)
        return parse_spec(spec) if spec is not None else None

    def save(self, name: str, pipeline: Pipeline) -> None:
        if not name.strip():
            raise PipelineSpecError("a saved pipeline needs a name")
        self.folder.mkdir(parents=True, exist_ok=True)
        with FolderLock.for_folder(self.folder):  # the workspace's write lock: one writer across processes
            specs = self._read()
            specs[name] = spec_of(pipeline)
            self._write(specs)

    def delete(self, name: str) -> bool:
        self.folder.mkdir(parents=True, exist_ok=True)
        with FolderLock.for_folder(self.folder):
            specs = self._read()
            found = specs.pop(name, None) is not None
            self._write(specs)
        return found

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise PipelineSpecError(f"{self.path.name} is not readable ({type(exc).__name__}: {exc})") from exc
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _write(self, specs: dict[str, str]) -> None:
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(specs, ensure_ascii=False, indent=2), encoding="utf-8")
        os.replace(partial, self.path)  # a crash mid-write never leaves half a file


def resolve_pipeline(text: str, store: PipelineStore | None = None) -> Pipeline:
    """A saved pipeline's name, else a short form."""
    saved = store.get(text) if store is not None else None
    return saved if saved is not None else parse_spec(text)
