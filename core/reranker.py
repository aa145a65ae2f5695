"""The cross-encoder reranker, loaded through sentence-transformers' ``CrossEncoder``.

zerank-2 loads natively: its hub layout declares a text-generation Transformer module (Qwen3) and a
``LogitScore`` module that reads the "Yes" logit at the last prompt token. We ask ``predict`` for
the raw score (identity activation) and report both it and the calibrated probability, which for
zerank's single-token logit is ``sigmoid(logit / 5)``. Any other CrossEncoder id or local path works
too; a sequence-classification reranker's probability is the usual ``sigmoid(logit)``.

Scoring goes through ``core.rerank_engine`` where the model allows it (a causal LM read at one token,
as zerank-2 is): the same token ids and the same logit as ``predict``, computed with length-sorted,
token-budget batches and one LM-head row instead of the whole vocabulary. ``engine="predict"`` (or
``RERANK_ENGINE=predict``) scores with plain ``CrossEncoder.predict`` instead.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.devices import dtype_name, resolve_device, resolve_dtype

# The temperature zerank models are calibrated with: probability = sigmoid(logit / 5).
ZERANK_TEMPERATURE = 5.0


@dataclass(frozen=True)
class KnownModel:
    params: float
    license: str
    note: str


# Facts shown in the sidebar before a model is loaded (loading a 4B model on a CPU takes a while).
KNOWN_MODELS = {
    "zeroentropy/zerank-2-reranker": KnownModel(
        params=4.02e9,
        license="released under cc-by-nc-4.0 (non-commercial); check the model card for the current terms",
        note="Qwen3 4B, bf16 weights of about 8 GB, 32k-token context",
    ),
}
KNOWN_MODELS["zeroentropy/zerank-2"] = KNOWN_MODELS["zeroentropy/zerank-2-reranker"]


class RerankerLoadError(Exception):
    """The reranker could not be loaded; ``reason`` says why and ``advice`` what to do."""

    def __init__(self, model_id: str, reason: str, advice: str):
        super().__init__(f"Reranker {model_id} could not be loaded: {reason}. {advice}")
        self.model_id = model_id
        self.reason = reason
        self.advice = advice


def sigmoid(x: np.ndarray | float, temperature: float = 1.0):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64) / temperature))


# How ``Reranker.score`` scores: "auto" uses the rerank engine where the model allows it, else predict;
# "engine" insists on the engine (an error for a model it cannot score); "predict" is plain predict.
SCORING_ENGINES = ("auto", "engine", "predict")


class Reranker:
    def __init__(
        self,
        model,
        model_id: str,
        device: str,
        dtype: str,
        temperature: float,
        license: str | None,
        engine: str = "auto",
    ):
        self.model = model
        self.model_id = model_id
        self.device = device
        self.dtype = dtype
        self.temperature = temperature
        self.license = license
        self.params = sum(p.numel() for p in model.parameters())
        self.max_length = getattr(model, "max_seq_length", None)
        # Measured throughput of this process, for estimates before the next call.
        self.pairs_scored = 0
        self.seconds_scoring = 0.0
        # One model serves every browser session; scoring is serialised (it saturates the device anyway).
        self._lock = threading.Lock()
        self._engine = _make_engine(model, engine)

    @property
    def scoring(self) -> str:
        """Which path scores: "engine" (core.rerank_engine) or "predict" (CrossEncoder.predict)."""
        return "engine" if self._engine is not None else "predict"

    @property
    def probability_label(self) -> str:
        scale = f"logit / {self.temperature:g}" if self.temperature != 1 else "logit"
        return f"sigmoid({scale})"

    def score(self, query: str, texts: list[str], batch_size: int = 8) -> np.ndarray:
        """The raw relevance score (logit) of each (query, text) pair.

        ``batch_size`` is predict's; the engine batches by a token budget instead, and its scores do not
        depend on the batching either way.
        """
        import torch

        if not texts:
            return np.zeros(0, dtype=np.float32)
        with self._lock:
            started = time.perf_counter()
            if self._engine is not None:
                scores = self._engine.score(query, texts)
            else:
                scores = self.model.predict(
                    [(query, text) for text in texts],
                    batch_size=batch_size,
                    activation_fn=torch.nn.Identity(),
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
            self.seconds_scoring += time.perf_counter() - started
            self.pairs_scored += len(texts)
        return np.asarray(scores, dtype=np.float32).reshape(-1)

    def count_over_window(self, query: str, texts: list[str], template_tokens: int = 32) -> int:
        """How many (query, text) pairs exceed the model's window and so get truncated when scored.

        Counted with the reranker's own tokenizer; ``template_tokens`` covers the chat template or the
        special tokens around the pair, so a pair near the limit is counted as over it.
        """
        if not self.max_length or not texts:
            return 0
        query_tokens = self.count_tokens(query)
        return sum(query_tokens + self.count_tokens(text) + template_tokens > self.max_length for text in texts)

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in the reranker's own tokenizer (a rough count if it has none)."""
        tokenizer = getattr(self.model[0], "tokenizer", None)
        if tokenizer is None:
            return len(text.split())
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def probability(self, logits: np.ndarray) -> np.ndarray:
        return sigmoid(logits, self.temperature)

    @property
    def measured_pairs_per_second(self) -> float | None:
        return self.pairs_scored / self.seconds_scoring if self.seconds_scoring > 0 else None


def _make_engine(model, engine: str):
    """The rerank engine for ``model``, or None where plain predict scores (asked for, or the only way)."""
    from core.rerank_engine import RerankEngine, unsupported_reason

    if engine not in SCORING_ENGINES:
        raise ValueError(f"unknown scoring engine {engine!r}; use one of {', '.join(SCORING_ENGINES)}")
    if engine == "predict":
        return None
    reason = unsupported_reason(model)
    if reason is None:
        return RerankEngine(model)
    if engine == "engine":
        raise ValueError(f"the rerank engine cannot score this model: {reason}")
    return None


def load_reranker(model_id: str, device: str = "auto", dtype: str = "auto", engine: str | None = None) -> Reranker:
    """Load a CrossEncoder from a hub id or a local folder, or raise ``RerankerLoadError``.

    ``engine`` picks how it scores (see ``SCORING_ENGINES``); by default ``RERANK_ENGINE``, else "auto".
    """
    import torch
    from sentence_transformers import CrossEncoder

    engine = engine or os.environ.get("RERANK_ENGINE") or "auto"
    if engine not in SCORING_ENGINES:
        raise RerankerLoadError(
            model_id, f"unknown scoring engine {engine!r}", f"Use one of {', '.join(SCORING_ENGINES)}"
        )

    try:
        resolved_device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, resolved_device)
    except ValueError as exc:
        raise RerankerLoadError(
            model_id, str(exc), "Pick another device or dtype in the sidebar (or RERANK_DEVICE)"
        ) from exc
    local = Path(model_id).expanduser()
    is_local = local.exists()
    if not is_local and (model_id.startswith((".", "/", "~")) or os.sep in model_id.strip("/").replace("/", "", 1)):
        raise RerankerLoadError(model_id, "no such folder", "Check the path, or give a Hugging Face model id")
    kwargs = dict(device=resolved_device, model_kwargs={"dtype": torch_dtype}, activation_fn=torch.nn.Identity())
    try:
        try:
            # The local cache first: no network round trip when the weights are already here.
            model = CrossEncoder(str(local) if is_local else model_id, local_files_only=True, **kwargs)
        except OSError:
            if is_local or _offline() or not _hub_reachable():
                raise
            model = CrossEncoder(model_id, **kwargs)
    except (torch.OutOfMemoryError, MemoryError) as exc:
        raise RerankerLoadError(
            model_id,
            f"out of memory on {resolved_device} ({type(exc).__name__})",
            "Use a GPU with more free memory, a lower-precision dtype (bfloat16), or a smaller reranker",
        ) from exc
    except Exception as exc:  # the hub, transformers and torch raise many unrelated types here
        raise _explain(model_id, exc, is_local, resolved_device) from exc

    if getattr(model, "num_labels", 1) != 1:
        raise RerankerLoadError(
            model_id,
            f"it outputs {model.num_labels} scores per pair (a classifier), not one relevance score",
            "Pick a reranker with a single relevance output",
        )
    _ensure_generation_prompt(model)
    temperature = probability_temperature(model_id, model)
    try:
        return Reranker(
            model, model_id, resolved_device, dtype_name(torch_dtype), temperature, _license(model_id, local), engine
        )
    except ValueError as exc:  # engine="engine" on a model the engine cannot score
        raise RerankerLoadError(model_id, str(exc), 'Use engine "auto" or "predict"') from exc


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP check, so a machine with no network fails in seconds, not after minutes of retries."""
    import socket
    from urllib.parse import urlparse

    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def _explain(model_id: str, exc: Exception, is_local: bool, device: str) -> RerankerLoadError:
    text = f"{type(exc).__name__}: {exc}"
    lowered = text.lower()
    if "out of memory" in lowered or "cannot allocate" in lowered:
        return RerankerLoadError(
            model_id,
            f"out of memory on {device}",
            "Use a GPU with more free memory, dtype bfloat16, or a smaller reranker",
        )
    if "repositorynotfound" in lowered or "404" in lowered or "is not a valid model identifier" in lowered:
        return RerankerLoadError(
            model_id, "no such model on the Hugging Face hub", "Check the model id or give a local path"
        )
    if not is_local and isinstance(exc, OSError):
        return RerankerLoadError(
            model_id,
            "its weights are not in the local Hugging Face cache and the hub cannot be reached",
            "Download it once on a connected machine (`hf download " + model_id + "`), copy the cache "
            "(HF_HOME) here, or pass a local folder with --reranker / the sidebar",
        )
    first_line = text.splitlines()[0][:300]
    return RerankerLoadError(model_id, f"it is not a loadable cross-encoder ({first_line})", "Pick another reranker")


def _transformer_module(model):
    from sentence_transformers.base.modules import Transformer

    return next((module for module in model if isinstance(module, Transformer)), None)


def _ensure_generation_prompt(model) -> None:
    """A causal reranker scores at the assistant prefix; without it every score silently shifts."""
    transformer = _transformer_module(model)
    if transformer is None or getattr(transformer, "transformer_task", None) != "text-generation":
        return
    chat = transformer.processing_kwargs.setdefault("chat_template", {})
    chat.setdefault("add_generation_prompt", True)


def probability_temperature(model_id: str, model) -> float:
    """5 for zerank models (their "Yes" logit is calibrated as sigmoid(logit / 5)), else 1.

    RERANK_PROB_TEMPERATURE overrides it, for another model whose card documents its own scale.
    """
    from sentence_transformers.cross_encoder.modules import LogitScore

    single_token = any(isinstance(m, LogitScore) and m.false_token_id is None for m in model)
    return temperature_for(model_id, single_token)


def temperature_for(model_id: str, single_token: bool = True) -> float:
    """The calibration scale by name: RERANK_PROB_TEMPERATURE, else 5 for a zerank scored by one token."""
    if os.environ.get("RERANK_PROB_TEMPERATURE"):
        return float(os.environ["RERANK_PROB_TEMPERATURE"])
    return ZERANK_TEMPERATURE if single_token and "zerank" in model_id.lower() else 1.0


def _license(model_id: str, local: Path) -> str | None:
    """The ``license:`` line of the model card's front matter, where the card is on disk."""
    card = local / "README.md" if local.exists() else None
    if card is None:
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(model_id, "README.md")
            card = Path(cached) if isinstance(cached, str) else None
        except Exception:
            card = None
    if card is not None and card.is_file():
        match = re.search(r"^license:\s*(\S+)", card.read_text(errors="ignore")[:4000], re.MULTILINE)
        if match:
            return match.group(1)
    known = KNOWN_MODELS.get(model_id)
    return known.license if known else None


def estimate_seconds(
    n_pairs: int, tokens_per_pair: float, params: float, pairs_per_second: float | None = None
) -> float:
    """Rough time to score ``n_pairs``: measured throughput if we have it, else a FLOP count.

    A forward pass costs about 2 x params FLOPs per token; the machine's FLOP rate is measured once
    with a matmul the size of a transformer layer's, so the estimate tracks the hardware it runs on.
    """
    if pairs_per_second:
        return n_pairs / pairs_per_second
    return 2.0 * params * tokens_per_pair * n_pairs / _measured_flops()


_FLOPS: float | None = None


def _measured_flops() -> float:
    global _FLOPS
    if _FLOPS is None:
        import torch

        a = torch.randn(512, 2048)
        b = torch.randn(2048, 2048)
        torch.mm(a, b)  # warm-up
        started = time.perf_counter()
        repeats = 5
        for _ in range(repeats):
            torch.mm(a, b)
        seconds = max(time.perf_counter() - started, 1e-6)
        _FLOPS = 2 * 512 * 2048 * 2048 * repeats / seconds
    return _FLOPS


def format_params(params: float) -> str:
    if params >= 1e9:
        return f"{params / 1e9:.2f}B"
    if params >= 1e6:
        return f"{params / 1e6:.1f}M"
    return f"{params / 1e3:.0f}k" if params >= 1e3 else str(int(params))


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms"
    return f"{math.floor(seconds / 60)} min {seconds % 60:.0f} s"
