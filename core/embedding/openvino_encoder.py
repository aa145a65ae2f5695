"""The bi-encoder's transformer and pooling compiled by OpenVINO: the fastest CPU path measured.

It takes the same token ids as sentence-transformers and returns the pooled vector; the caller
normalises. Models whose pooling is not mean or CLS, or that fail to convert, stay on torch. A full
bulk batch of a small model is padded to one of a few lengths and runs on a model compiled for that
exact shape (compiled the first time the length is needed): OpenVINO's CPU plugin runs a static shape
faster than its dynamic-shape model. With ``int8_weights`` the linear layers run on int8 weights with
activations quantised on the fly in groups of ``INT8_GROUP_SIZE`` channels: faster, but it moves
rankings a little, so it is a choice, never the default. Figures: docs/performance.md.
"""

from __future__ import annotations

import logging
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

log = logging.getLogger(__name__)

SUPPORTED_POOLING = ("mean", "cls")
# Channels per dynamically quantised activation group: 32 measured no faster than bf16, 128 fell below
# a mean cosine of 0.999.
INT8_GROUP_SIZE = 64
# The bulk batch (BiEncoder.batch_size on OpenVINO) and the padded lengths it gets a static-shape model
# for. Each costs a compile (~0.2 s, the first time it is needed) and its own packed weights and buffers
# (~45 MB for MiniLM in bf16): 32 tokens apart ran 5-6% faster than 64 apart (16 apart no faster than
# 32, at twice the memory), and only models whose seven copies fit ~0.6 GB in bf16 (~1.1 GB in f32) get
# them; a longer batch runs on the dynamic-shape model at its own length.
BULK_BATCH = 16
BULK_LENGTHS = (64, 96, 128, 160, 192, 224, 256)
STATIC_SHAPES_MAX_PARAMS = 40_000_000
MIN_STATIC_LONGEST = 32
# Static shapes compiled at once before a bulk pass (each compile uses one core).
COMPILE_THREADS = 2
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
EXAMPLE_TEXTS = ["an example sentence", "another, somewhat longer example sentence"]
# The additive-mask check pads a short text against one this long (cut at the model's window): longer
# than the local window of sliding-window encoders (ModernBERT: 128), which a bias would silently widen.
MASK_CHECK_TOKENS = 512
MASK_CHECK_TEXT = "the quick brown fox jumps over the lazy dog near the river bank " * 64


def bulk_lengths(max_length: int) -> list[int]:
    """The padded lengths a full bulk batch is cut to, none past the model's window."""
    return sorted({min(length, max_length) for length in BULK_LENGTHS})


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def pooling_mode(model) -> str | None:
    """The pooling of a Transformer + Pooling (+ Normalize) sentence-transformers model, else None."""
    if getattr(model, "default_prompt_name", None):  # a prompt sentence-transformers would prepend: not done here
        return None
    names = [type(module).__name__ for module in model]
    if names[:2] != ["Transformer", "Pooling"] or any(n not in ("Normalize",) for n in names[2:]):
        return None
    mode = model[1].get_config_dict().get("pooling_mode")
    return mode if mode in SUPPORTED_POOLING else None


class OpenVinoEncoder:
    """Pooled (not normalised) embeddings from an OpenVINO-compiled copy of a sentence-transformers model."""

    def __init__(self, model, precision: str = "bf16", int8_weights: bool = False):
        """``precision``: the CPU plugin's inference precision (bf16 or f32) for what is not int8."""
        import openvino as ov

        mode = pooling_mode(model)
        if mode is None:
            raise ValueError("only Transformer + mean or CLS pooling models convert to OpenVINO here")
        self.tokenizer = model.tokenizer
        self.max_length = int(model.max_seq_length)
        self.dim = int(model.get_embedding_dimension())
        example = self.tokenizer(EXAMPLE_TEXTS, padding=True, return_tensors="pt")
        if "token_type_ids" in example and bool(example["token_type_ids"].any()):
            # Batches are built here with all-zero token types, which is what BERT-style tokenizers give one text.
            raise ValueError("this tokenizer gives a single text non-zero token type ids")
        # int8 weight compression works on the fp32 graph; bf16 runs a graph traced in bf16. Its vectors
        # differ from the fp32 graph's at bf16 precision: the embedding cache keys on ``graph_dtype``.
        bf16_graph = precision == "bf16" and not int8_weights
        self.graph_dtype = "bfloat16" if bf16_graph else "float32"
        mask_example = self.tokenizer(
            [EXAMPLE_TEXTS[0], MASK_CHECK_TEXT],
            padding=True,
            truncation=True,
            max_length=min(self.max_length, MASK_CHECK_TOKENS),
            return_tensors="pt",
        )
        converted = _convert(model[0].auto_model, mode, example, bf16_graph, mask_example)
        # A port can carry the tracer's name beside the argument's: ``_feed`` keys by the argument's.
        self.inputs = [next(n for n in MODEL_INPUTS if n in port.get_names()) for port in converted.inputs]
        # LATENCY: one request uses every core, which is how the app embeds (one batch at a time).
        config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
        if int8_weights:
            converted = _compress_weights_to_int8(converted)
            config["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = str(INT8_GROUP_SIZE)
        self._core, self._converted, self._config = ov.Core(), converted, config
        self._compiled = self._core.compile_model(converted, "CPU", config)
        small = sum(p.numel() for p in model.parameters()) <= STATIC_SHAPES_MAX_PARAMS
        self.bulk_lengths = bulk_lengths(self.max_length) if small else []
        self._pad_id = self.tokenizer.pad_token_id or 0
        self._pad_left = self.tokenizer.padding_side == "left"
        # Padded length -> the model compiled for (BULK_BATCH, length), or None where that compile failed;
        # a lock per length, so that two lengths compile at once but no length twice.
        self._static: dict[int, object] = {}
        self._static_lock = threading.Lock()
        self._length_locks: dict[int, threading.Lock] = {}
        # Batches run on a static-shape model so far: the tests read it.
        self.batches_on_static = 0

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Each text's token ids, cut at the model's window: what ``encode_ids`` takes."""
        encoded = self.tokenizer(
            texts, truncation=True, max_length=self.max_length, return_attention_mask=False, return_token_type_ids=False
        )
        return encoded["input_ids"]

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.encode_ids(self.token_ids(texts))

    def encode_ids(self, ids: list[list[int]]) -> np.ndarray:
        if not ids:
            return np.zeros((0, self.dim), dtype=np.float32)
        longest = max(len(row) for row in ids)
        length, compiled = longest, self._compiled
        bucket = self._bucket(ids)
        if bucket is not None:
            # Waited for (once per length) rather than run meanwhile on the dynamic model: a batch's
            # vectors must not depend on how far a compile had got.
            static = self._static_model(bucket)
            if static is not None:
                length, compiled = bucket, static
                self.batches_on_static += 1
        outputs = compiled(self._feed(ids, length))
        return np.asarray(outputs[0], dtype=np.float32)

    def _feed(self, ids: list[list[int]], length: int) -> dict[str, np.ndarray]:
        input_ids = np.full((len(ids), length), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), length), dtype=np.int64)
        for row, seq in enumerate(ids):
            columns = slice(length - len(seq), length) if self._pad_left else slice(0, len(seq))
            input_ids[row, columns] = seq
            mask[row, columns] = 1
        arrays = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
        return {name: arrays[name] for name in self.inputs}

    def _bucket(self, ids: list[list[int]]) -> int | None:
        """The static length a batch runs at, or None where it runs on the dynamic-shape model."""
        longest = max((len(row) for row in ids), default=0)
        # Short batches (queries, titles) keep their own length: padded to the first step they would do
        # several times the work that a static shape saves.
        if len(ids) != BULK_BATCH or longest <= MIN_STATIC_LONGEST:
            return None
        return next((n for n in self.bulk_lengths if n >= longest), None)

    def prepare(self, batches: list[list[list[int]]]) -> None:
        """Compile the static shapes these batches will run on, ``COMPILE_THREADS`` at a time.

        Each compile is single-threaded (~0.2 s for MiniLM): a first upload that needs several lengths
        waits for them side by side rather than one after another at the batch that first needs each.
        """
        needed = {self._bucket(batch) for batch in batches} - {None}
        with self._static_lock:
            missing = sorted(needed - set(self._static))
        if len(missing) == 1:
            self._static_model(missing[0])
        elif missing:
            with ThreadPoolExecutor(COMPILE_THREADS, thread_name_prefix="openvino-compile") as pool:
                list(pool.map(self._static_model, missing))

    @property
    def static_lengths(self) -> list[int]:
        """The padded lengths whose static-shape model is compiled."""
        with self._static_lock:
            return sorted(n for n, compiled in self._static.items() if compiled is not None)

    def _static_model(self, length: int):
        with self._static_lock:
            length_lock = self._length_locks.setdefault(length, threading.Lock())
        with length_lock:
            with self._static_lock:
                if length in self._static:
                    return self._static[length]
            compiled = self._compile_static(length)
            with self._static_lock:
                self._static[length] = compiled
            return compiled

    def _compile_static(self, length: int):
        try:
            model = self._converted.clone()
            model.reshape({name: [BULK_BATCH, length] for name in self.inputs})
            return self._core.compile_model(model, "CPU", self._config)
        except Exception as exc:  # a graph that will not take a fixed shape: its batches stay dynamic
            log.warning("OpenVINO could not compile the bulk shape %s x %s: %s", BULK_BATCH, length, exc)
            return None


def _pooled_module(transformer, mode: str, additive_mask: bool):
    """The torch module that is traced: the transformer, then mean or CLS pooling in fp32."""
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            mask_in = attention_mask
            if additive_mask:
                # One bias row per text, broadcast over the queries: OpenVINO's fused attention adds it
                # where the (L, L) boolean mask the model would build costs a select per score (~10% of
                # the attention). Filled, not multiplied, with bf16's finite minimum: exact in bf16 and
                # f32 alike, so no 0 * -inf can turn a score into NaN at any inference precision.
                dtype = next(self.transformer.parameters()).dtype
                padding = attention_mask[:, None, None, :] == 0
                mask_in = torch.zeros_like(padding, dtype=dtype).masked_fill(padding, torch.finfo(torch.bfloat16).min)
            hidden = self.transformer(
                input_ids=input_ids, attention_mask=mask_in, token_type_ids=token_type_ids
            ).last_hidden_state.float()
            if mode == "cls":
                return hidden[:, 0]
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    return Pooled().eval()


def _takes_additive_mask(transformer, mode: str, example) -> bool:
    """Whether the model reads a (batch, 1, 1, length) additive mask as it reads its 2-D padding mask.

    ``example``: a short text padded against a long one. Models that would read the bias otherwise
    (causal ones, sliding windows built into the mask) or reject it keep the 2-D mask.
    """
    import torch

    with torch.inference_mode():
        plain = _pooled_module(transformer, mode, additive_mask=False)(**example)
        try:
            additive = _pooled_module(transformer, mode, additive_mask=True)(**example)
        except Exception:  # a model that rejects a 4-D mask
            return False
    return bool(torch.allclose(plain, additive, rtol=1e-4, atol=1e-5))


def _convert(transformer, mode: str, example, bf16_graph: bool, mask_example):
    """The transformer and its pooling as one OpenVINO model, traced on ``example`` (dynamic shapes).

    ``bf16_graph`` traces a bf16 copy, so the whole graph (residual adds and layer norms
    too, which the CPU plugin otherwise keeps in fp32 behind a reorder each way) runs in bf16.
    """
    import copy

    import openvino as ov
    import torch

    transformer = transformer.float().eval()
    additive = _takes_additive_mask(transformer, mode, mask_example)
    if bf16_graph:
        transformer = copy.deepcopy(transformer).to(torch.bfloat16)
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracing warns about Python branches on shapes; the graph is dynamic
        # The fp32 graph shares the model's weights (the sentence-transformers model outlives it); the bf16
        # copy is freed on return, so its graph must own its weights or it reads freed memory.
        return ov.convert_model(
            _pooled_module(transformer, mode, additive),
            example_input=dict(example),
            share_weights=not bf16_graph,
        )


def _compress_weights_to_int8(converted):
    import contextlib
    import io
    import logging

    import nncf

    nncf.set_log_level(logging.ERROR)  # it logs a table of the layers it compressed
    # Its progress bar writes to stdout, where the CLI's --json output goes.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        # Weight compression needs no calibration data, so the result does not depend on what was uploaded.
        return nncf.compress_weights(converted, mode=nncf.CompressWeightsMode.INT8_ASYM)
