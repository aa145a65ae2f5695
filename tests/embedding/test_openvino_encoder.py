"""OpenVINO's static-shape models for full bulk batches: the vectors of the fp32 model, whatever the batch."""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest
import torch

import core.embedding.openvino_encoder as openvino_encoder
from core.config import DEFAULT_BI_ENCODER
from core.embedding.bi_encoder import BiEncoder, _sentence_transformer
from core.embedding.openvino_encoder import BULK_BATCH, OpenVinoEncoder, bulk_lengths

TEXTS = [
    "Interest rate swaps exchange fixed for floating payments. " * (1 + i % 5) + f'Case {i}: "quoted" \\ <b>x</b>'
    for i in range(BULK_BATCH)
]


@pytest.fixture(scope="module")
def sentence_model():
    return _sentence_transformer(DEFAULT_BI_ENCODER, "cpu", torch.float32)


def test_bulk_lengths_are_a_few_steps_none_past_the_window():
    assert bulk_lengths(256) == [64, 96, 128, 160, 192, 224, 256]
    assert bulk_lengths(8192) == [64, 96, 128, 160, 192, 224, 256]  # a long window: longer batches stay dynamic
    assert bulk_lengths(128) == [64, 96, 128]
    assert bulk_lengths(100) == [64, 96, 100]


@pytest.mark.parametrize(
    "precision,int8,floor,batch_tolerance",
    [("bf16", False, 0.9999, 2e-3), ("f32", False, 0.999999, 1e-5), ("bf16", True, 0.998, 2e-2)],
)
def test_a_full_batch_runs_on_its_static_shape_with_the_vectors_of_the_fp32_model(
    sentence_model, precision, int8, floor, batch_tolerance
):
    encoder = OpenVinoEncoder(sentence_model, precision, int8_weights=int8)
    ids = encoder.token_ids(TEXTS)
    full = encoder.encode_ids(ids)
    assert encoder.batches_on_static == 1
    longest = max(len(row) for row in ids)
    assert encoder.static_lengths == [next(n for n in bulk_lengths(encoder.max_length) if n >= longest)]
    reference = sentence_model.encode(TEXTS, convert_to_numpy=True, normalize_embeddings=False)
    cosine = np.sum(reference * full, axis=1) / np.linalg.norm(reference, axis=1) / np.linalg.norm(full, axis=1)
    assert cosine.min() >= floor
    # A batch short of the bulk size pads only to its longest text, on the dynamic-shape model (int8
    # quantises activations on the fly, so padding moves its vectors more).
    partial = encoder.encode_ids(ids[:-1])
    assert encoder.batches_on_static == 1
    assert np.allclose(partial, full[:-1], atol=batch_tolerance * np.max(np.abs(full)))
    assert encoder.encode_ids([]).shape == (0, encoder.dim)


def _batch_of(tokens: int) -> list[list[int]]:
    return [[101] + [2000 + row] * (tokens - 2) + [102] for row in range(BULK_BATCH)]


def test_prepare_compiles_each_length_a_batch_needs_once_even_from_two_threads(sentence_model):
    encoder = OpenVinoEncoder(sentence_model, "bf16")
    compiled: list[int] = []
    compile_static = encoder._compile_static
    # The two lengths must compile at the same time: one after the other, the first would wait here alone.
    side_by_side = threading.Barrier(2, timeout=60)

    def counted(length):
        compiled.append(length)
        side_by_side.wait()
        return compile_static(length)

    encoder._compile_static = counted
    short, long = _batch_of(50), _batch_of(120)  # padded to 64 and 128; a partial batch stays dynamic
    batches = [short, long, long, long[:3], [row[:10] for row in short]]
    threads = [threading.Thread(target=encoder.prepare, args=(batches,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(compiled) == [64, 128] and encoder.static_lengths == [64, 128]
    prepared = encoder.encode_ids(long)
    encoder.prepare([short, long])
    assert encoder.batches_on_static == 1 and len(compiled) == 2
    # Compiled side by side or when first needed: the same model, the same vectors.
    lazy = OpenVinoEncoder(sentence_model, "bf16")
    assert np.array_equal(lazy.encode_ids(long), prepared) and lazy.static_lengths == [128]


def test_a_length_that_fails_to_compile_is_not_retried_and_its_batches_run_dynamic(sentence_model):
    encoder = OpenVinoEncoder(sentence_model, "bf16")
    attempts: list[int] = []

    def fails(length):  # what _compile_static returns when OpenVINO rejects a shape
        attempts.append(length)
        return None

    encoder._compile_static = fails
    batch = _batch_of(120)
    encoder.prepare([batch])
    encoder.prepare([batch])
    vectors = encoder.encode_ids(batch)
    assert attempts == [128] and encoder.static_lengths == [] and encoder.batches_on_static == 0
    # The dynamic-shape model's vectors: those of the static shape a working compile gives, to bf16 precision.
    static = OpenVinoEncoder(sentence_model, "bf16").encode_ids(batch)
    cosine = np.sum(vectors * static, axis=1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(static, axis=1)
    assert cosine.min() >= 0.9999


def test_a_bulk_pass_has_every_length_it_needs_compiled_before_its_first_batch():
    encoder = BiEncoder(device="cpu", dtype="bfloat16", backend="openvino")
    texts = [" ".join(["word"] * n) for n in (40, 100, 180) for _ in range(BULK_BATCH)]
    seen: list[list[int]] = []
    encoder.encode(texts, on_batch=lambda positions, _: seen.append(encoder._openvino.static_lengths))
    assert seen[0] == [64, 128, 192] and encoder._openvino.batches_on_static == 3


def test_short_batches_and_large_models_keep_the_dynamic_shape(sentence_model, monkeypatch):
    encoder = OpenVinoEncoder(sentence_model, "bf16")
    queries = [f'what is a "swap" number {i}?' for i in range(BULK_BATCH)]  # ~10 tokens each
    encoder.encode(queries)
    assert encoder.batches_on_static == 0 and encoder.static_lengths == []
    monkeypatch.setattr(openvino_encoder, "STATIC_SHAPES_MAX_PARAMS", 1000)
    large = OpenVinoEncoder(sentence_model, "bf16")
    large.encode(TEXTS)
    assert large.bulk_lengths == [] and large.batches_on_static == 0 and large.static_lengths == []


def test_bulk_batches_are_cut_from_texts_sorted_by_tokens():
    """Characters and tokens disagree (a long number is many tokens): batches pad to token lengths."""
    encoder = BiEncoder(device="cpu", dtype="bfloat16", backend="openvino")
    texts = [("word " * n) if n % 2 else ("7" * (4 * n)) for n in range(1, 3 * BULK_BATCH + 1)]
    batches: list[list[int]] = []
    encoder.encode(texts, batch_size=BULK_BATCH, on_batch=lambda positions, _: batches.append(list(positions)))
    tokens = [len(row) for row in encoder.model.tokenizer(texts, truncation=True, max_length=256)["input_ids"]]
    seen = [tokens[i] for batch in batches for i in batch]
    assert seen == sorted(seen) and sorted(i for batch in batches for i in batch) == list(range(len(texts)))
    by_chars = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    assert [tokens[i] for i in by_chars] != sorted(tokens)  # the two orders really differ here


def test_the_bf16_graph_owns_its_weights_once_the_copy_it_was_traced_from_is_freed(sentence_model):
    encoder = OpenVinoEncoder(sentence_model, "bf16")
    gc.collect()
    # Memory the freed bf16 copy held is handed out again and overwritten: a graph still pointing at it
    # would read these values (or crash) instead of the model's weights.
    junk = [torch.full((512, 1024), 7.0, dtype=torch.bfloat16) for _ in range(96)]
    vectors = encoder.encode(TEXTS)
    reference = sentence_model.encode(TEXTS, convert_to_numpy=True, normalize_embeddings=False)
    cosine = np.sum(reference * vectors, axis=1) / np.linalg.norm(reference, axis=1) / np.linalg.norm(vectors, axis=1)
    assert len(junk) == 96 and cosine.min() >= 0.9999


def _tiny(kind):
    import transformers

    torch.manual_seed(0)
    sizes = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 48}
    if kind == "bert":
        return transformers.BertModel(transformers.BertConfig(vocab_size=64, **sizes)).eval()
    if kind == "modernbert":  # every other layer attends within 8 tokens, set by the mask it builds
        config = transformers.ModernBertConfig(
            vocab_size=64, local_attention=8, global_attn_every_n_layers=2,
            pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2, **sizes,
        )  # fmt: skip
        return transformers.ModernBertModel(config).eval()
    config = transformers.Qwen3Config(vocab_size=64, num_key_value_heads=1, head_dim=16, **sizes)
    return transformers.Qwen3Model(config).eval()


PADDED = {
    "input_ids": torch.tensor([[5, 6, 7, 8, 9], [5, 6, 7, 0, 0]]),
    "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]),
}


LONG_PADDED = {
    "input_ids": torch.tensor([[5 + i % 50 for i in range(40)], [5, 6, 7] + [0] * 37]),
    "attention_mask": torch.tensor([[1] * 40, [1, 1, 1] + [0] * 37]),
}


@pytest.mark.parametrize("kind,additive", [("bert", True), ("qwen3", False), ("modernbert", False)])
def test_the_padding_mask_goes_in_as_a_bias_only_where_the_model_reads_it_as_its_own(kind, additive):
    # A causal model given a (batch, 1, 1, L) bias would attend to later tokens, a sliding-window one
    # past its window: both keep their 2-D mask.
    assert openvino_encoder._takes_additive_mask(_tiny(kind), "mean", LONG_PADDED) is additive


def test_the_mask_check_needs_texts_longer_than_a_sliding_window():
    # Within its 8-token window the bias reads the same: why the encoder checks on a long text.
    assert openvino_encoder._takes_additive_mask(_tiny("modernbert"), "mean", PADDED)
    assert openvino_encoder.MASK_CHECK_TOKENS > 128  # ModernBERT's own local window


def test_a_graph_traced_with_the_bias_pools_the_padded_batch_as_the_model_does():
    import openvino as ov

    model = _tiny("bert")
    assert openvino_encoder._takes_additive_mask(model, "mean", LONG_PADDED)  # so the graph takes the bias
    converted = openvino_encoder._convert(model, "mean", PADDED, bf16_graph=False, mask_example=LONG_PADDED)
    compiled = ov.Core().compile_model(converted, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    with torch.inference_mode():
        hidden = model(**PADDED).last_hidden_state
    mask = PADDED["attention_mask"].unsqueeze(-1).float()
    reference = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
    vectors = compiled({name: PADDED[name].numpy() for name in ("input_ids", "attention_mask")})[0]
    assert np.allclose(vectors, reference, atol=1e-4)
