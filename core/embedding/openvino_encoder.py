"""The bi-encoder's transformer and pooling compiled by OpenVINO: the fastest CPU path measured.

It takes the same token ids as sentence-transformers and returns the pooled vector; the caller
normalises. Models whose pooling is not mean or CLS, or that fail to convert, stay on torch. With
``int8_weights`` the linear layers run on int8 weights with activations quantised on the fly in groups
of ``INT8_GROUP_SIZE`` channels: faster, but it moves rankings a little, so it is a choice, never the
default. Figures: docs/performance.md.
"""

from __future__ import annotations

import warnings

import numpy as np

SUPPORTED_POOLING = ("mean", "cls")
# Channels per dynamically quantised activation group: 32 measured no faster than bf16, 128 fell below
# a mean cosine of 0.999.
INT8_GROUP_SIZE = 64


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
        self._compiled = ov.Core().compile_model(converted, "CPU", config)

    def _tokenize(self, texts: list[str], tensors: str):
        return self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors=tensors)

    def encode(self, texts: list[str]) -> np.ndarray:
        encoded = self._tokenize(texts, "np")
        outputs = self._compiled({name: encoded[name] for name in self.inputs})
        return np.asarray(outputs[0], dtype=np.float32)


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
