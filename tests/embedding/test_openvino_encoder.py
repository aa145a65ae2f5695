"""OpenVINO's static-shape models for full bulk batches: the vectors of the fp32 model, whatever the batch."""

from __future__ import annotations

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
    assert bulk_lengths(256) == [64, 128, 192, 256]
    assert bulk_lengths(8192) == [64, 128, 192, 256]  # a long window: longer batches stay dynamic
    assert bulk_lengths(128) == [64, 128]
    assert bulk_lengths(100) == [64, 100]


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


def test_short_batches_and_large_models_keep_the_dynamic_shape(sentence_model, monkeypatch):
    encoder = OpenVinoEncoder(sentence_model, "bf16")
    queries = [f'what is a "swap" number {i}?' for i in range(BULK_BATCH)]  # ~10 tokens each
    encoder.encode(queries)
    assert encoder.batches_on_static == 0 and encoder.static_lengths == []
    monkeypatch.setattr(openvino_encoder, "STATIC_SHAPES_MAX_PARAMS", 1000)
    large = OpenVinoEncoder(sentence_model, "bf16")
    large.encode(TEXTS)
    large.compile_bulk_shapes()
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
