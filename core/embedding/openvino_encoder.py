"""The bi-encoder's transformer and pooling compiled by OpenVINO: the fastest CPU path measured.

It takes the same token ids as sentence-transformers and returns the pooled vector; the caller
normalises. Models whose pooling is not mean or CLS, or that fail to convert, stay on torch. A full
bulk batch is padded to one of a few lengths and, once a model compiled for that exact shape is ready
(compiled in the background the first time the shape is seen), runs on it: OpenVINO's CPU plugin runs
a static shape faster than its dynamic-shape model, with the same vectors. With
``int8_weights`` the linear layers run on int8 weights with activations quantised on the fly in groups
of ``INT8_GROUP_SIZE`` channels: faster, but it moves rankings a little, so it is a choice, never the
default. Figures: docs/performance.md.
"""

from __future__ import annotations

import threading
import warnings
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

SUPPORTED_POOLING = ("mean", "cls")
# Channels per dynamically quantised activation group: 32 measured no faster than bf16, 128 fell below
# a mean cosine of 0.999.
INT8_GROUP_SIZE = 64
# The bulk batch (BiEncoder.batch_size on OpenVINO) and how many padded lengths it gets a static-shape
# model for: each costs a compile (~0.2 s) and its own packed weights (~50 MB for MiniLM), so a few,
# at least 64 tokens apart (finer steps measured no faster).
BULK_BATCH = 16
BULK_LENGTHS = 4
MIN_LENGTH_STEP = 64


def bulk_lengths(max_length: int) -> list[int]:
    """The padded lengths a full bulk batch is cut to: ``BULK_LENGTHS`` steps up to the model's window."""
    step = max(MIN_LENGTH_STEP, -(-max_length // BULK_LENGTHS))
    return sorted({min(step * k, max_length) for k in range(1, -(-max_length // step) + 1)})


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
        import torch

        mode = pooling_mode(model)
        if mode is None:
            raise ValueError("only Transformer + mean or CLS pooling models convert to OpenVINO here")
        self.tokenizer = model.tokenizer
        self.max_length = int(model.max_seq_length)
        transformer = model[0].auto_model.float().eval()

        class Pooled(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.transformer = transformer

            def forward(self, input_ids, attention_mask, token_type_ids=None):
                hidden = self.transformer(
                    input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
                ).last_hidden_state
                if mode == "cls":
                    return hidden[:, 0]
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

        example = self._tokenize(["an example sentence", "another, somewhat longer example sentence"], "pt")
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracing warns about Python branches on shapes; the graph is dynamic
            converted = ov.convert_model(Pooled(), example_input=dict(example))
        self.inputs = [port.get_any_name() for port in converted.inputs]
        # LATENCY: one request uses every core, which is how the app embeds (one batch at a time).
        config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
        if int8_weights:
            converted = _compress_weights_to_int8(converted)
            config["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = str(INT8_GROUP_SIZE)
        self._core, self._converted, self._config = ov.Core(), converted, config
        self._compiled = self._core.compile_model(converted, "CPU", config)
        self.bulk_lengths = bulk_lengths(self.max_length)
        self._pad_id = self.tokenizer.pad_token_id or 0
        self._pad_left = self.tokenizer.padding_side == "left"
        # Padded length -> a model compiled for (BULK_BATCH, length); one worker compiles them in turn.
        self._static: dict[int, Future] = {}
        self._static_lock = threading.Lock()
        self._compiler = ThreadPoolExecutor(max_workers=1, thread_name_prefix="openvino-static-shapes")
        # Batches run on a static-shape model so far: the tests read it.
        self.batches_on_static = 0

    def _tokenize(self, texts: list[str], tensors: str):
        return self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors=tensors)

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Each text's token ids, cut at the model's window: what ``encode_ids`` takes."""
        encoded = self.tokenizer(
            texts, truncation=True, max_length=self.max_length, return_attention_mask=False, return_token_type_ids=False
        )
        return encoded["input_ids"]

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.encode_ids(self.token_ids(texts))

    def encode_ids(self, ids: list[list[int]]) -> np.ndarray:
        longest = max(len(row) for row in ids)
        length, compiled = longest, self._compiled
        if len(ids) == BULK_BATCH:
            # Padded the same whichever model runs it, so a batch's vectors do not depend on the timing.
            length = next(n for n in self.bulk_lengths if n >= longest)
            static = self._static_model(length)
            if static.done() and static.exception() is None:
                compiled = static.result()
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
        # One text per sequence: the tokenizer's token type ids are all 0.
        arrays = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
        return {name: arrays[name] for name in self.inputs}

    def compile_bulk_shapes(self) -> None:
        """Compile every bulk shape now (a benchmark's warm-up); the app lets them compile as first seen."""
        for length in self.bulk_lengths:
            self._static_model(length).exception()  # waits; a shape that failed stays on the dynamic model

    @property
    def static_lengths(self) -> list[int]:
        """The padded lengths whose static-shape model is ready."""
        return sorted(n for n, f in self._static.items() if f.done() and f.exception() is None)

    def _static_model(self, length: int) -> Future:
        with self._static_lock:
            if length not in self._static:
                self._static[length] = self._compiler.submit(self._compile_static, length)
            return self._static[length]

    def _compile_static(self, length: int):
        model = self._converted.clone()
        model.reshape({name: [BULK_BATCH, length] for name in self.inputs})
        return self._core.compile_model(model, "CPU", self._config)


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
