"""The embedding path: bf16 where the CPU does it natively, same vectors as fp32 to a cosine of 0.999."""

from __future__ import annotations

import numpy as np
import pytest

from core.demo import DEMO_CORPUS
from core.devices import cpu_has_native_bf16, resolve_embedding_dtype
from core.embedding.bi_encoder import BATCH_WHILE_SEARCHING, BiEncoder, auto_backend
from core.embedding.cache import EmbeddingCache, embed_with_cache


def _texts() -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted(DEMO_CORPUS.rglob("*.md"))]


@pytest.fixture(scope="module")
def fp32_encoder():
    return BiEncoder(device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def bf16_encoder():
    return BiEncoder(device="cpu", dtype="bfloat16", backend="torch")


@pytest.fixture(scope="module")
def openvino_encoder():
    return BiEncoder(device="cpu", dtype="bfloat16", backend="openvino")


def test_auto_picks_bf16_only_where_the_cpu_has_it():
    import torch

    expected = torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    assert resolve_embedding_dtype("auto", "cpu") == expected
    assert resolve_embedding_dtype("float32", "cpu") == torch.float32


def test_bf16_vectors_match_fp32(fp32_encoder, bf16_encoder):
    texts = _texts()
    reference = fp32_encoder.encode(texts)
    fast = bf16_encoder.encode(texts)
    cosine = np.sum(reference * fast, axis=1)
    assert cosine.mean() >= 0.999 and cosine.min() >= 0.995
    # And the ranking they give is the same for a query: top 5 by cosine agree.
    query = fp32_encoder.encode_query("When does an IPO lock-up period expire?")
    assert list(np.argsort(-(reference @ query))[:5]) == list(np.argsort(-(fast @ query))[:5])


def test_each_precision_has_its_own_cache_entries(fp32_encoder, bf16_encoder):
    assert fp32_encoder.cache_key != bf16_encoder.cache_key
    assert "bfloat16" in bf16_encoder.path


def test_stopped_embedding_keeps_what_it_finished(tmp_path, fp32_encoder):
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    texts = [f"document number {i} about interest rate swaps" for i in range(150)]

    first: list[int] = []

    def stop_after_first_batch(done, total, rate):
        first.append(done)  # 32, or fewer where a search ran lately (bulk work then takes short turns)
        raise KeyboardInterrupt  # what a click on Stop does to a running Streamlit script

    with pytest.raises(KeyboardInterrupt):
        embed_with_cache(fp32_encoder, cache, texts, progress=stop_after_first_batch)
    assert first[0] in (32, BATCH_WHILE_SEARCHING) and len(cache) == first[0]  # saved before the stop
    before = fp32_encoder.texts_encoded
    _, fresh = embed_with_cache(fp32_encoder, cache, texts)
    assert fp32_encoder.texts_encoded - before == 150 - first[0] and fresh.sum() == 150 - first[0]


@pytest.mark.parametrize(
    "backend,precision",
    [("openvino", "bfloat16"), ("openvino", "float32"), ("openvino-int8", "bfloat16"), ("openvino-int8", "float32")],
)
def test_openvino_vectors_match_torch_fp32(fp32_encoder, backend, precision):
    encoder = BiEncoder(device="cpu", dtype=precision, backend=backend)
    assert encoder.backend == backend and "OpenVINO" in encoder.path
    texts = _texts() + ["short", "x " * 400]  # one text past the 256-token window: truncated alike
    reference = fp32_encoder.encode(texts)
    fast = encoder.encode(texts)
    cosine = np.sum(reference * fast, axis=1)
    assert cosine.mean() >= 0.999 and cosine.min() >= 0.995
    if backend == "openvino-int8":
        assert cosine.mean() < 0.9998  # int8 really ran (~0.9995): bf16 and f32 sit above 0.9999
    else:
        # The whole graph in bf16 (residuals and layer norms too): ~0.99994 on these texts.
        assert cosine.mean() >= (0.9999 if precision == "bfloat16" else 0.99995)
    # The bf16 graph owns its weights: torch's are released; the f32 graph shares them, so they stay.
    released = all(p.is_meta for p in encoder.model[0].auto_model.parameters())
    assert released == (encoder.cache_key.endswith("@openvino-bf16-graph"))
    assert released == (backend == "openvino" and precision == "bfloat16" and cpu_has_native_bf16())
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    query = fp32_encoder.encode_query("When does an IPO lock-up period expire?")
    fast_query = encoder.encode_query("When does an IPO lock-up period expire?")
    assert list(np.argsort(-(reference @ query))[:5]) == list(np.argsort(-(fast @ fast_query))[:5])


def test_openvino_vectors_do_not_depend_on_the_batch(openvino_encoder):
    texts = _texts()[:9]
    together = openvino_encoder.encode(texts)
    alone = np.stack([openvino_encoder.encode([t])[0] for t in texts])
    assert np.max(np.abs(together - alone)) < 2e-3  # bf16 sums padded and unpadded rows in another order


def test_an_upload_takes_short_turns_while_people_search(openvino_encoder):
    """Bulk batches shrink after a search, so the next search waits for a short batch; same vectors."""
    texts = _texts()[:12]
    quiet = openvino_encoder.encode(texts, batch_size=16)
    openvino_encoder.encode_query("lock-up period")
    sizes: list[int] = []
    busy = openvino_encoder.encode(texts, on_batch=lambda positions, _: sizes.append(len(positions)))
    assert sizes == [BATCH_WHILE_SEARCHING] * (len(texts) // BATCH_WHILE_SEARCHING)
    assert np.max(np.abs(quiet - busy)) < 2e-3


def test_auto_backend_and_cache_keys(fp32_encoder, bf16_encoder, openvino_encoder):
    auto = BiEncoder(device="cpu", dtype="auto")
    assert auto.backend == "openvino"  # OpenVINO in bf16 or f32, never int8
    assert auto.dtype == ("bfloat16" if cpu_has_native_bf16() else "float32")
    int8 = BiEncoder(device="cpu", dtype="bfloat16", backend="openvino-int8")
    keys = {fp32_encoder.cache_key, bf16_encoder.cache_key, openvino_encoder.cache_key, int8.cache_key}
    assert len(keys) == 4  # each runtime and precision keeps its own cached vectors
    assert "int8" in int8.path and "int8" in int8.cache_key
    assert BiEncoder(device="cpu", dtype="float32").backend == "torch"  # fp32 asked for: torch, as before


def test_auto_backend_is_openvino_on_a_cpu_unless_fp32_or_fp16_is_named():
    assert auto_backend("cpu", "auto") == auto_backend("cpu", "bfloat16") == "openvino"
    assert auto_backend("cpu", "float32") == auto_backend("cpu", "float16") == "torch"
    assert auto_backend("cuda", "auto") == "torch"


def test_a_bad_backend_is_a_load_error():
    from core.embedding.bi_encoder import BiEncoderLoadError

    with pytest.raises(BiEncoderLoadError, match="embedding backend"):
        BiEncoder(device="cpu", backend="onnx")


def test_the_backend_setting_comes_from_the_environment(monkeypatch):
    from core.config import Settings

    monkeypatch.setenv("RERANK_EMBED_BACKEND", "openvino-int8")
    assert Settings.from_env().embed_backend == "openvino-int8"
