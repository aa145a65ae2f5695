"""OpenVINO's static-shape models for full bulk batches: the same vectors as its dynamic-shape model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

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


def test_bulk_lengths_are_a_few_steps_up_to_the_window():
    assert bulk_lengths(256) == [64, 128, 192, 256]
    assert bulk_lengths(512) == [128, 256, 384, 512]
    assert bulk_lengths(128) == [64, 128]
    assert bulk_lengths(100) == [64, 100]  # never past the model's window


@pytest.mark.parametrize("precision", ["bf16", "f32"])
def test_a_full_batch_gives_the_same_vectors_before_and_after_its_static_shape_compiles(sentence_model, precision):
    encoder = OpenVinoEncoder(sentence_model, precision)
    ids = encoder.token_ids(TEXTS)
    longest = max(len(row) for row in ids)
    before = encoder.encode_ids(ids)  # asks for its shape to compile in the background; runs meanwhile
    encoder.compile_bulk_shapes()
    assert encoder.static_lengths == bulk_lengths(encoder.max_length)
    ran_static = encoder.batches_on_static
    after = encoder.encode_ids(ids)
    assert encoder.batches_on_static == ran_static + 1
    assert np.max(np.abs(before - after)) <= 1e-6 * np.max(np.abs(after))
    # A batch short of the bulk size pads only to its longest text, on the dynamic-shape model.
    partial = encoder.encode_ids(ids[:-1])
    assert encoder.batches_on_static == ran_static + 1
    assert np.allclose(partial, after[:-1], atol=2e-3 * np.max(np.abs(after)))
    # And the padded batch is the one the tokenizer would have made, padded further: same pooled vector.
    reference = sentence_model.encode(TEXTS, convert_to_numpy=True, normalize_embeddings=False)
    cosine = np.sum(reference * after, axis=1) / np.linalg.norm(reference, axis=1) / np.linalg.norm(after, axis=1)
    assert cosine.min() >= (0.9999 if precision == "bf16" else 0.999999), longest


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
