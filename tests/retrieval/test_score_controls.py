"""Score controls (blend weight, probability threshold), first-stage settings, and the reranker's prompt.

The blend and the threshold are checked by hand on made-up rows; the prompt is pinned byte for byte,
both as the query text and as the chat text the tiny zerank fixture's template renders from it; and
reranking with an instruction is checked against ``CrossEncoder.predict`` on the same pairs.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest

from core.chunks import Chunk
from core.demo import DEMO_CORPUS
from core.rerank.prompts import reranker_query
from core.retrieval.first_stage import Retriever
from core.retrieval.fusion import min_max
from core.retrieval.pipeline import FirstStage, Pipeline
from core.retrieval.results import RerankedChunk
from core.retrieval.score_controls import apply_score_controls
from core.retrieval.search import add_reranking

# --- apply_score_controls on hand-made rows -----------------------------------------------------


def _row(rank: int, probability: float, first_stage_score: float, first_stage_rank: int) -> RerankedChunk:
    chunk = Chunk(f"c{rank}", "f.md", "f.md", "F", None, 0, 1, f"text {rank}")
    return RerankedChunk(
        rank, chunk, first_stage_rank, logit=0.0, probability=probability, first_stage_score=first_stage_score
    )


# In the reranker's order; the first stage had them as c2, c3, c4, c1.
ROWS = [_row(1, 0.9, 0.0, 4), _row(2, 0.6, 1.0, 1), _row(3, 0.5, 0.5, 2), _row(4, 0.2, 0.25, 3)]


def _ids(shown) -> list[str]:
    return [row.item.chunk.chunk_id for row in shown]


def test_weight_one_is_the_reranker_alone():
    shown = apply_score_controls(ROWS, weight=1.0)
    assert _ids(shown) == ["c1", "c2", "c3", "c4"]
    assert [row.score for row in shown] == [0.9, 0.6, 0.5, 0.2]  # the probabilities themselves
    assert [row.rank for row in shown] == [1, 2, 3, 4]
    assert apply_score_controls(ROWS) == shown  # the default


def test_weight_zero_is_the_first_stage_alone():
    shown = apply_score_controls(ROWS, weight=0.0)
    assert _ids(shown) == ["c2", "c3", "c4", "c1"]
    assert [row.score for row in shown] == [1.0, 0.5, 0.25, 0.0]
    assert [row.item.first_stage_rank for row in shown] == [1, 2, 3, 4]


def test_intermediate_weight_by_hand():
    shown = apply_score_controls(ROWS, weight=0.75)
    # c1: 0.75*0.9 + 0.25*0.0  = 0.675
    # c2: 0.75*0.6 + 0.25*1.0  = 0.7
    # c3: 0.75*0.5 + 0.25*0.5  = 0.5
    # c4: 0.75*0.2 + 0.25*0.25 = 0.2125
    assert _ids(shown) == ["c2", "c1", "c3", "c4"]
    assert [row.score for row in shown] == pytest.approx([0.7, 0.675, 0.5, 0.2125], abs=1e-12)
    # A tie in the blended score keeps the reranker's order: 0.5*0.8 + 0.5*0.2 = 0.5*0.2 + 0.5*0.8.
    tied = [_row(1, 0.8, 0.2, 2), _row(2, 0.2, 0.8, 1)]
    assert _ids(apply_score_controls(tied, weight=0.5)) == ["c1", "c2"]
    assert _ids(apply_score_controls(list(reversed(tied)), weight=0.5)) == ["c1", "c2"]


@pytest.mark.parametrize("weight", [0.0, 0.3, 0.75, 1.0])
def test_threshold_flags_low_probabilities_whatever_the_blend(weight):
    def flagged(threshold: float) -> set[str]:
        return {row.item.chunk.chunk_id for row in apply_score_controls(ROWS, threshold, weight) if row.below_threshold}

    assert flagged(0.0) == set()
    assert flagged(0.5) == {"c4"}  # 0.5 itself is not below 0.5
    assert flagged(0.55) == {"c3", "c4"}
    assert flagged(0.95) == {"c1", "c2", "c3", "c4"}
    assert flagged(1.0) == {"c1", "c2", "c3", "c4"}
    # c2 has first-stage score 1.0 and blends high at weight 0, but its probability is 0.6.
    assert "c2" in flagged(0.61)
    # Flagging never drops or reorders a row.
    assert _ids(apply_score_controls(ROWS, 0.95, weight)) == _ids(apply_score_controls(ROWS, 0.0, weight))


def test_out_of_range_controls_are_refused():
    for threshold in (-0.01, 1.01):
        with pytest.raises(ValueError, match="probability threshold"):
            apply_score_controls(ROWS, threshold=threshold)
    for weight in (-0.1, 1.5):
        with pytest.raises(ValueError, match="blend weight"):
            apply_score_controls(ROWS, weight=weight)
    assert apply_score_controls([], 0.5, 0.5) == []


# --- FirstStage ---------------------------------------------------------------------------------


def test_first_stage_validation_labels_and_keys():
    assert FirstStage() == FirstStage("dense", "rrf", 0.5)
    stages = {
        "dense": (FirstStage("dense"), "dense (bi-encoder)"),
        "bm25": (FirstStage("bm25"), "BM25"),
        "hybrid_rrf": (FirstStage("hybrid", "rrf"), "hybrid (RRF, k=60)"),
        "hybrid_weighted": (
            FirstStage("hybrid", "weighted", 0.7),
            "hybrid (weighted: 0.70 dense + 0.30 BM25, min-max)",
        ),
    }
    for key, (stage, label) in stages.items():
        assert stage.key == key and stage.label == label
    assert FirstStage("hybrid", "weighted", 0.0).label == "hybrid (weighted: 0.00 dense + 1.00 BM25, min-max)"
    assert FirstStage("hybrid", "weighted", 1.0).key == "hybrid_weighted"
    with pytest.raises(ValueError, match="first stage must be one of dense, bm25, hybrid"):
        FirstStage("sparse")
    with pytest.raises(ValueError, match="fusion must be one of rrf, weighted"):
        FirstStage("hybrid", "max")
    for weight in (-0.01, 1.01):
        with pytest.raises(ValueError, match="dense weight"):
            FirstStage("hybrid", "weighted", weight)


# --- the reranker's prompt ----------------------------------------------------------------------

QUERY = "What is the duration of a bond?"
INSTRUCTION = "Prefer passages that give a formula."


def test_reranker_query_is_pinned():
    assert reranker_query(QUERY) == QUERY
    for bare in ("", "   ", "\n\t "):
        assert reranker_query(QUERY, bare) == QUERY
    # The query goes in byte for byte, spaces and all; only the instruction is stripped.
    odd = "  Ünïcödé query \u2014 with <tags> & spaces  "
    assert reranker_query(odd) == odd
    assert reranker_query(QUERY, f"  {INSTRUCTION}\n") == (
        "<query>\nWhat is the duration of a bond?\n</query>\n"
        "<instruction>\nPrefer passages that give a formula.\n</instruction>"
    )
    assert reranker_query(odd, "x") == f"<query>\n{odd}\n</query>\n<instruction>\nx\n</instruction>"


def test_rendered_chat_puts_the_instruction_in_the_system_turn(tiny_zerank_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_zerank_path))

    def render(query: str) -> str:
        messages = [{"role": "query", "content": query}, {"role": "document", "content": "A bond is a loan."}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    assert render(reranker_query(QUERY, INSTRUCTION)) == (
        "<|im_start|>system\n"
        "<query>\nWhat is the duration of a bond?\n</query>\n"
        "<instruction>\nPrefer passages that give a formula.\n</instruction><|im_end|>\n"
        "<|im_start|>user\nA bond is a loan.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert render(reranker_query(QUERY, "  ")) == (
        "<|im_start|>system\nWhat is the duration of a bond?<|im_end|>\n"
        "<|im_start|>user\nA bond is a loan.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


# --- reranking with an instruction, on the demo corpus -----------------------------------------


@pytest.fixture(scope="module")
def finance(tmp_path_factory, encoder):
    from core.config import Settings
    from core.ingest.workspace import Workspace

    workspace = Workspace(Settings(workspace=tmp_path_factory.mktemp("controls") / "ws"), encoder)
    workspace.ingest_paths([DEMO_CORPUS / "finance"])
    yield workspace
    workspace.close()


@pytest.fixture(scope="module")
def tiny_reranker(tiny_zerank_path):
    from core.rerank.local import load_reranker

    return load_reranker(str(tiny_zerank_path), device="cpu", dtype="float32")


def test_instruction_effect_is_measured_against_a_plain_rerank(finance, tiny_reranker, tiny_zerank_path):
    import torch
    from sentence_transformers import CrossEncoder

    query = "How is a bond's price sensitivity to interest rates measured?"
    retriever = Retriever(finance.encoder, finance.store, finance.lexical)
    base = retriever.first_stage(query, Pipeline(FirstStage("hybrid", "rrf"), "tiny", 8), k=20)
    candidates = base.candidates[:8]
    assert len(candidates) == 8

    def with_instruction(instruction: str):
        result = copy.deepcopy(base)
        result.pipeline = replace(result.pipeline, instruction=instruction)
        return result

    plain = add_reranking(copy.deepcopy(base), tiny_reranker)
    measured = add_reranking(with_instruction(f"  {INSTRUCTION} "), tiny_reranker, compare_without_instruction=True)
    unmeasured = add_reranking(with_instruction(INSTRUCTION), tiny_reranker)
    for result in (plain, measured, unmeasured):
        assert result.reranker_error is None and len(result.reranked) == 8

    assert measured.instruction == INSTRUCTION
    assert measured.to_json()["reranker_query"] == reranker_query(query, INSTRUCTION)
    assert all(r.rank_without_instruction is None for r in plain.reranked + unmeasured.reranked)
    plain_rank = {r.chunk.chunk_id: r.rank for r in plain.reranked}
    assert {r.chunk.chunk_id: r.rank_without_instruction for r in measured.reranked} == plain_rank
    assert [r["rank_without_instruction"] for r in measured.to_json()["reranked"]] == [
        plain_rank[r.chunk.chunk_id] for r in measured.reranked
    ]
    # Measuring the effect changes nothing else.
    assert [(r.chunk.chunk_id, r.logit) for r in measured.reranked] == [
        (r.chunk.chunk_id, r.logit) for r in unmeasured.reranked
    ]

    # The logits are predict's on (tagged query, chunk text) pairs, and plain's on (bare query, text).
    cross_encoder = CrossEncoder(str(tiny_zerank_path), device="cpu")
    texts = [c.chunk.text for c in candidates]
    for result, prompt in ((measured, reranker_query(query, INSTRUCTION)), (plain, query)):
        expected = cross_encoder.predict([(prompt, t) for t in texts], activation_fn=torch.nn.Identity())
        by_id = {c.chunk.chunk_id: float(x) for c, x in zip(candidates, expected)}
        for row in result.reranked:
            assert row.logit == pytest.approx(by_id[row.chunk.chunk_id], abs=1e-4)
            assert row.probability == pytest.approx(1 / (1 + np.exp(-row.logit / 5)), abs=1e-9)
        logits = [r.logit for r in result.reranked]
        assert logits == sorted(logits, reverse=True) and [r.rank for r in result.reranked] == list(range(1, 9))
    # The instruction did reach the model.
    plain_logit = {r.chunk.chunk_id: r.logit for r in plain.reranked}
    assert max(abs(r.logit - plain_logit[r.chunk.chunk_id]) for r in measured.reranked) > 1e-3

    # Provenance and the first-stage score used for blending come from the candidates.
    first = {c.chunk.chunk_id: c for c in candidates}
    scaled = min_max({c.chunk.chunk_id: c.score for c in candidates})
    for row in measured.reranked:
        assert row.sources == first[row.chunk.chunk_id].sources
        assert row.first_stage_rank == first[row.chunk.chunk_id].rank
        assert row.first_stage_score == pytest.approx(scaled[row.chunk.chunk_id])

    # The score controls on real rows: weight 1 is the reranker's order, weight 0 the first stage's score order.
    shown = apply_score_controls(measured.reranked, threshold=0.5, weight=1.0)
    assert [row.item for row in shown] == measured.reranked
    assert [row.score for row in shown] == [r.probability for r in measured.reranked]
    assert [row.below_threshold for row in shown] == [r.probability < 0.5 for r in measured.reranked]
    by_first_stage = [row.item.first_stage_score for row in apply_score_controls(measured.reranked, weight=0.0)]
    assert by_first_stage == sorted(by_first_stage, reverse=True)


def test_weight_zero_keeps_the_first_stages_order_among_its_ties():
    # RRF ties are common: two rows with the same first-stage score show in first-stage order at weight 0,
    # whatever the reranker thought of them.
    tied = [_row(1, 0.9, 0.5, 2), _row(2, 0.6, 0.5, 1)]
    assert _ids(apply_score_controls(tied, weight=0.0)) == ["c2", "c1"]
    assert _ids(apply_score_controls(tied, weight=0.5)) == ["c1", "c2"]


def test_a_bad_weight_is_refused_even_with_nothing_to_show():
    with pytest.raises(ValueError, match="blend weight"):
        apply_score_controls([], weight=5)


def test_the_cli_refuses_a_dense_weight_outside_0_1(capsys):
    from core.cli import main

    with pytest.raises(SystemExit):
        main(["search", "anything", "--first-stage", "hybrid", "--fusion", "weighted", "--dense-weight", "1.5"])
    assert "1.5 is not in [0, 1]" in capsys.readouterr().err
