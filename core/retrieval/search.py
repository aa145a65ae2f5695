"""One query through a pipeline: the first stage, then the reranker over its top candidates.

``score_candidates`` is the one place where a pipeline's reranker query is built and scored; the Search
page, the CLI and the evaluation all rerank through it. A reranker that fails (a server down, out of
memory) leaves the first stage's results standing, with the reason in ``SearchResult.reranker_error``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from core.rerank.base import Reranker, RerankError
from core.rerank.estimate import estimate_seconds
from core.retrieval.first_stage import Retriever
from core.retrieval.fusion import min_max
from core.retrieval.pipeline import Pipeline
from core.retrieval.results import RerankedChunk, RetrievedChunk, SearchResult

# progress(pairs scored, pairs in all), told after each slice of a reranking scored in slices.
RerankProgress = Callable[[int, int], None]
# A reranking expected to take longer than this is scored in slices of about this long, each followed by
# a progress report (which is also where the Search page can be interrupted by a newer search).
PROGRESS_EVERY_S = 1.5
# Fewer pairs per call would cost the batching more than the report is worth.
MIN_SLICE = 8


@dataclass
class RerankMemo:
    """What a reranking has scored so far, per reranker prompt (an instruction comparison scores two):
    each text's logit and the seconds spent. Kept by a caller whose run can be cut short (the Search
    page), so that scoring the same candidates again sends only what is still missing."""

    logits: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def progress_slice(n_pairs: int, seconds: float) -> int | None:
    """Pairs per slice for a reranking of ``n_pairs`` expected to take ``seconds``; None: one call."""
    slices = math.ceil(seconds / PROGRESS_EVERY_S)
    size = max(MIN_SLICE, math.ceil(n_pairs / max(slices, 1)))
    return None if slices <= 1 or size >= n_pairs else size


def score_candidates(
    pipeline: Pipeline,
    query: str,
    texts: list[str],
    reranker: Reranker,
    progress: RerankProgress | None = None,
    slice_size: int | None = None,
    memo: RerankMemo | None = None,
) -> np.ndarray:
    """The reranker's logit for each text against the query and the pipeline's instruction.

    Each distinct text is scored once (equal texts, equal logits). With ``slice_size`` they are scored
    that many at a time and ``progress`` is told after each slice: the same logits to float rounding,
    since a pair's score does not depend on the pairs beside it. ``memo`` keeps what is scored, and
    what it already holds is not scored again.
    """
    prompt = pipeline.reranker_query(query)
    memo = memo if memo is not None else RerankMemo()
    known = memo.logits.setdefault(prompt, {})
    missing = [text for text in dict.fromkeys(texts) if text not in known]
    size = slice_size or len(missing) or 1
    for start in range(0, len(missing), size):
        part = missing[start : start + size]
        began = time.perf_counter()
        known.update(zip(part, (float(x) for x in np.asarray(reranker.score(prompt, part)))))
        memo.seconds[prompt] = memo.seconds.get(prompt, 0.0) + time.perf_counter() - began
        if progress:
            progress(sum(text in known for text in texts), len(texts))
    if progress and not missing:
        progress(len(texts), len(texts))
    return np.array([known[text] for text in texts], dtype=np.float64)


def rerank(
    pipeline: Pipeline,
    query: str,
    candidates: list[RetrievedChunk],
    reranker: Reranker,
    progress: RerankProgress | None = None,
    slice_size: int | None = None,
    memo: RerankMemo | None = None,
) -> list[RerankedChunk]:
    """Score each candidate's exact chunk text and sort by score; ties keep the first stage's order."""
    texts = [c.chunk.text for c in candidates]
    logits = score_candidates(pipeline, query, texts, reranker, progress, slice_size, memo)
    probabilities = reranker.probability(logits)
    first_scores = min_max({str(i): c.score for i, c in enumerate(candidates)})
    order = sorted(range(len(candidates)), key=lambda i: -float(logits[i]))  # a stable sort: ties keep order
    return [
        RerankedChunk(
            rank=new_rank,
            chunk=candidates[i].chunk,
            first_stage_rank=candidates[i].rank,
            logit=float(logits[i]),
            probability=float(probabilities[i]),
            first_stage_score=first_scores[str(i)],
            sources=candidates[i].sources,
        )
        for new_rank, i in enumerate(order, start=1)
    ]


def add_reranking(
    result: SearchResult,
    reranker: Reranker,
    compare_without_instruction: bool = False,
    progress: RerankProgress | None = None,
    slice_size: int | None = None,
    memo: RerankMemo | None = None,
) -> SearchResult:
    """Rerank the first ``rerank_depth`` candidates in place; a failure keeps the first stage's results.

    With an instruction and ``compare_without_instruction``, the candidates are scored a second time
    without it, and each row records the rank it would have had: the instruction's effect, measured.
    ``progress`` counts the pairs of both passes (see ``score_candidates``); the reranking time is
    the scoring's, in this call and in earlier ones that filled ``memo``.
    """
    candidates = result.candidates[: result.rerank_depth]
    if not candidates:
        why = "the rerank depth is 0" if result.candidates else "the first stage found no candidates"
        return skip_reranking(result, f"Nothing to rerank: {why}.")
    result.reranker = reranker.model_id
    result.calibration = reranker.calibration
    result.reranker_error = None
    pipeline = result.pipeline
    try:
        prompt = pipeline.reranker_query(result.query)
        result.reranker_truncated = reranker.count_over_window(prompt, [c.chunk.text for c in candidates])
        memo = memo if memo is not None else RerankMemo()
        twice = bool(pipeline.instruction and compare_without_instruction)
        total = len(candidates) * (2 if twice else 1)
        first = (lambda done, _: progress(done, total)) if progress else None
        reranked = rerank(pipeline, result.query, candidates, reranker, first, slice_size, memo)
        elapsed = memo.seconds.get(prompt, 0.0) * 1000
        if twice:
            plain = replace(pipeline, instruction="")
            second = (lambda done, _: progress(len(candidates) + done, total)) if progress else None
            again = rerank(plain, result.query, candidates, reranker, second, slice_size, memo)
            without = {r.chunk.chunk_id: r.rank for r in again}
            reranked = [replace(r, rank_without_instruction=without[r.chunk.chunk_id]) for r in reranked]
    except RerankError as exc:
        advice = f" {exc.advice}" if exc.advice and exc.advice not in str(exc) else ""
        return skip_reranking(result, f"{exc} Showing the first stage's ranking only.{advice}")
    except Exception as exc:  # e.g. out of memory on a long batch: the first stage's results stand
        return skip_reranking(result, f"reranking with {reranker.model_id} failed: {type(exc).__name__}: {exc}")
    result.reranked = reranked
    result.timings_ms["total"] = result.timings_ms.get("total", 0.0) - result.timings_ms.get("rerank", 0.0) + elapsed
    result.timings_ms["rerank"] = elapsed
    return result


def skip_reranking(result: SearchResult, why: str) -> SearchResult:
    result.reranked = []
    result.reranker_error = why
    return result


def search(
    query: str,
    pipeline: Pipeline,
    retriever: Retriever,
    reranker: Reranker | None,
    k: int,
    reranker_error: str | None = None,
) -> SearchResult:
    """Both stages; with ``reranker`` None, ``reranker_error`` says why there is no second stage."""
    result = retriever.first_stage(query, pipeline, k)
    if reranker is None:
        return skip_reranking(result, reranker_error or "no reranker selected")
    return add_reranking(result, reranker)


def estimate_rerank_seconds(result: SearchResult, reranker: Reranker) -> tuple[int, float]:
    """How many pairs the second stage will score, and about how long it will take."""
    n_pairs = max(0, min(result.rerank_depth, len(result.candidates)))
    counted = [reranker.count_tokens(item.chunk.text) for item in result.candidates[:n_pairs]]
    query = result.pipeline.reranker_query(result.query)
    tokens = (sum(counted) / len(counted) if counted else 0) + reranker.count_tokens(query) + 16
    return n_pairs, estimate_seconds(n_pairs, tokens, reranker.params, reranker.measured_pairs_per_second)
