"""The reranker on a tiny model with zerank-2's architecture and layout, loaded as the real one is.

Scores are checked against an independent computation with plain transformers: the chat template
with the query as the system turn and the document as the user turn plus the assistant prefix, one
unpadded sequence at a time, the "Yes" logit at the last token, and sigmoid(logit / 5).
"""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch

from core.chunks import Chunk
from core.rerank.base import RerankerLoadError
from core.rerank.calibration import ZERANK_TEMPERATURE
from core.rerank.local import load_reranker
from core.retrieval.pipeline import Pipeline
from core.retrieval.results import RetrievedChunk
from core.retrieval.search import rerank
from tests.tiny_zerank import reference_scorer

QUERY = "What is the duration of a bond and how does it relate to interest rate risk?"
DOCUMENTS = [
    "Duration measures how much a bond's price changes when interest rates move by one percentage point.",
    "The court held that the contract was void.",
    "Yes",
    "A mutex is a lock that lets one thread at a time into a critical section; the code waits on it.\n\n" * 6,
    "Bonds with longer maturities and lower coupons have higher duration and so more interest rate risk.",
    "Ünïcödé text — with accents, 中文字符 and emoji 🙂 — must be scored like any other document.",
]


@pytest.fixture(scope="module")
def reranker(tiny_zerank_path):
    return load_reranker(str(tiny_zerank_path), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def reference(tiny_zerank_path):
    return reference_scorer(tiny_zerank_path)


def test_fixture_has_zerank_layout(tiny_zerank_path):
    modules = json.loads((tiny_zerank_path / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "LogitScore"]
    st_config = json.loads((tiny_zerank_path / "sentence_bert_config.json").read_text())
    assert st_config["transformer_task"] == "text-generation"
    assert st_config["processing_kwargs"]["chat_template"]["add_generation_prompt"] is True
    config = json.loads((tiny_zerank_path / "config.json").read_text())
    assert config["architectures"] == ["Qwen3ForCausalLM"]
    assert config["num_attention_heads"] > config["num_key_value_heads"]  # grouped-query attention, as in 32/8


def test_loads_as_zerank_with_calibrated_probability(reranker):
    assert reranker.calibration.temperature == ZERANK_TEMPERATURE
    assert reranker.probability_label == "sigmoid(logit / 5)"
    transformer = reranker.model[0]
    assert transformer.tokenizer.padding_side == "left"
    assert reranker.model[1].true_token_id == transformer.tokenizer.convert_tokens_to_ids("Yes")


def test_scores_equal_independent_reference(reranker, reference):
    logits = reranker.score(QUERY, DOCUMENTS, batch_size=4)
    expected = np.array([reference(QUERY, d) for d in DOCUMENTS])
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)
    probabilities = reranker.probability(logits)
    np.testing.assert_allclose(probabilities, [1 / (1 + math.exp(-x / 5)) for x in expected], atol=1e-4, rtol=0)
    # The fixture's scores must spread, or the equalities above would prove little.
    assert np.ptp(expected) > 0.5


def test_score_does_not_depend_on_batch_size_or_neighbours(reranker):
    alone = np.array([reranker.score(QUERY, [d], batch_size=1)[0] for d in DOCUMENTS])
    for batch_size in (2, 3, 6, 16):
        np.testing.assert_allclose(reranker.score(QUERY, DOCUMENTS, batch_size=batch_size), alone, atol=1e-4, rtol=0)
    # The same short document next to a very long one (much left padding) and next to a short one.
    short = DOCUMENTS[1]
    with_long = reranker.score(QUERY, [short, "long neighbour " * 300], batch_size=2)[0]
    with_short = reranker.score(QUERY, [short, "x"], batch_size=2)[0]
    assert abs(with_long - alone[1]) < 1e-4
    assert abs(with_short - alone[1]) < 1e-4


def _candidates(texts: list[str]) -> list[RetrievedChunk]:
    return [
        RetrievedChunk(rank, Chunk(f"doc{rank}:0", f"doc{rank}.txt", f"doc{rank}.txt", "", None, 0, len(t), t), 0.5)
        for rank, t in enumerate(texts, start=1)
    ]


def test_rerank_orders_by_score_and_scores_the_exact_chunk_text(reranker, reference):
    candidates = _candidates(DOCUMENTS)
    reranked = rerank(Pipeline(), QUERY, candidates, reranker)
    logits = [r.logit for r in reranked]
    assert logits == sorted(logits, reverse=True)
    assert [r.rank for r in reranked] == list(range(1, len(DOCUMENTS) + 1))
    assert sorted(r.first_stage_rank for r in reranked) == list(range(1, len(DOCUMENTS) + 1))
    for item in reranked:
        # The text reported is the string that was scored: re-scoring it independently gives the same logit.
        assert abs(reference(QUERY, item.chunk.text) - item.logit) < 1e-4
        assert item.movement == item.first_stage_rank - item.rank


def test_ties_keep_the_first_stage_order(reranker):
    reranked = rerank(Pipeline(), QUERY, _candidates(["same text"] * 4), reranker)
    assert [r.first_stage_rank for r in reranked] == [1, 2, 3, 4]


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(RerankerLoadError) as missing_folder:
        load_reranker(str(tmp_path / "nowhere" / "model"), device="cpu")
    assert "no such folder" in missing_folder.value.reason

    # A hub id that is not cached, with the hub unreachable (tests run with HF_HUB_OFFLINE=1).
    with pytest.raises(RerankerLoadError) as not_cached:
        load_reranker("zeroentropy/zerank-2-reranker", device="cpu")
    assert "not in the local Hugging Face cache" in not_cached.value.reason
    assert "zeroentropy/zerank-2-reranker" in str(not_cached.value)

    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text("{not json")
    with pytest.raises(RerankerLoadError) as junk:
        load_reranker(str(tmp_path / "junk"), device="cpu")
    assert "junk" in str(junk.value)


def test_pairs_over_the_window_are_counted(reranker):
    window = reranker.window
    assert reranker.count_over_window(QUERY, ["short text"]) == 0
    assert reranker.count_over_window(QUERY, ["short text", "word " * (window + 10)]) == 1


def test_unavailable_device_is_a_clear_error(tiny_zerank_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(RerankerLoadError, match="no CUDA GPU"):
        load_reranker(str(tiny_zerank_path), device="cuda")


def test_calibration_follows_the_model_files_not_the_folder_name(reranker, tiny_zerank_path):
    # The fixture's folder is ".../models0/reranker": nothing in the path says zerank.
    assert "zerank" not in str(tiny_zerank_path).lower()
    assert reranker.calibration.temperature == ZERANK_TEMPERATURE
    assert reranker.calibration.reason.startswith("zerank-2 calibration, detected from its scoring head")
    assert "qwen3" in reranker.calibration.reason


def test_a_model_card_naming_zerank_is_cited(tiny_zerank_path, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_zerank_path, copy)
    (copy / "README.md").write_text("---\nlicense: cc-by-nc-4.0\n---\n# zerank-2 by ZeroEntropy\n")
    loaded = load_reranker(str(copy), device="cpu", dtype="float32")
    assert loaded.calibration.temperature == ZERANK_TEMPERATURE
    assert loaded.calibration.reason.endswith("and its model card") and loaded.license == "cc-by-nc-4.0"


def test_the_temperature_setting_overrides_and_says_so(tiny_zerank_path):
    loaded = load_reranker(str(tiny_zerank_path), device="cpu", dtype="float32", temperature=2.0)
    assert loaded.calibration.temperature == 2.0 and loaded.probability_label == "sigmoid(logit / 2)"
    assert loaded.calibration.reason == "set by RERANK_PROB_TEMPERATURE"


def test_a_two_token_head_is_not_zerank(tiny_zerank_path, tmp_path):
    """A yes/no head (as Qwen3-Reranker's) reads logit(yes) - logit(no): not zerank's calibration."""
    copy = tmp_path / "yes-no"
    shutil.copytree(tiny_zerank_path, copy)
    head_config = next(copy.glob("*LogitScore*/config.json"))
    config = json.loads(head_config.read_text())
    config["false_token_id"] = config["true_token_id"] + 1
    head_config.write_text(json.dumps(config))
    loaded = load_reranker(str(copy), device="cpu", dtype="float32")
    assert loaded.model[1].false_token_id is not None
    assert loaded.calibration.temperature == 1.0 and loaded.probability_label == "sigmoid(logit)"


@pytest.mark.parametrize("engine", ["auto", "predict"])
def test_a_declared_sigmoid_activation_is_not_applied_twice(tiny_zerank_path, tmp_path, reranker, engine):
    """Revisions of zerank-2 differ in the activation their config declares; the scores must not."""
    copy = tmp_path / "sigmoid"
    shutil.copytree(tiny_zerank_path, copy)
    config_path = copy / "config_sentence_transformers.json"
    config = json.loads(config_path.read_text())
    config["activation_fn"] = "torch.nn.modules.activation.Sigmoid"
    config_path.write_text(json.dumps(config))
    declared = load_reranker(str(copy), device="cpu", dtype="float32", engine=engine)
    logits = declared.score(QUERY, DOCUMENTS)
    np.testing.assert_allclose(logits, reranker.score(QUERY, DOCUMENTS), atol=1e-5, rtol=0)
    assert float(np.max(np.abs(logits))) > 1.0  # logits, not probabilities in [0, 1]
    np.testing.assert_allclose(declared.probability(logits), reranker.probability(logits), atol=1e-12)


def test_a_pinned_revision_that_is_not_cached_says_which(tmp_path):
    with pytest.raises(RerankerLoadError) as error:
        load_reranker("zeroentropy/zerank-2-reranker", device="cpu", revision="0123abc")
    assert "at revision 0123abc" in error.value.reason
    assert "hf download zeroentropy/zerank-2-reranker --revision 0123abc" in error.value.advice


def test_the_revision_setting_reaches_the_loader(monkeypatch):
    from core.config import Settings
    from core.rerank.factory import open_reranker

    monkeypatch.setenv("RERANK_RERANKER_REVISION", "0123abc")
    monkeypatch.delenv("RERANK_SERVER_URL", raising=False)
    with pytest.raises(RerankerLoadError, match="at revision 0123abc"):
        open_reranker(Settings.from_env(reranker="zeroentropy/zerank-2-reranker", device="cpu"))
