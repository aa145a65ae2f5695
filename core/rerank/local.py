"""The in-process cross-encoder, loaded through sentence-transformers' ``CrossEncoder``.

zerank-2 loads natively (a text-generation Transformer module and ``LogitScore`` on "Yes"); any other
CrossEncoder id or folder works too. ``score`` returns the raw logit (identity activation). It goes
through ``core.rerank.engine`` where the model allows it (a causal LM read at one token): the same token
ids and logit as ``predict``, with length-sorted token-budget batches and one LM-head row.
``engine="predict"`` scores with plain ``CrossEncoder.predict``.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import numpy as np

from core.concurrency.model_loads import MODEL_LOADS
from core.concurrency.turns import TurnLock
from core.config import SCORING_ENGINES
from core.devices import dtype_name, resolve_device, resolve_dtype
from core.rerank.base import Reranker, RerankerLoadError
from core.rerank.calibration import Calibration, calibration_of_model
from core.rerank.known_models import KNOWN_MODELS, format_params


class CrossEncoderReranker(Reranker):
    """A sentence-transformers CrossEncoder in this process, on ``device`` in ``dtype``."""

    def __init__(
        self,
        model,
        model_id: str,
        device: str,
        dtype: str,
        calibration: Calibration,
        license: str | None,
        engine: str = "auto",
    ):
        super().__init__()
        self.model = model
        self.model_id = model_id
        self.device = device
        self.dtype = dtype
        self.calibration = calibration
        self.license = license
        self.params = sum(p.numel() for p in model.parameters())
        self.window = model.max_seq_length
        self._tokenizer = model[0].tokenizer
        # One model serves every browser session; scoring is serialised (it saturates the device anyway),
        # in order of arrival, and a session that must wait is told so (core.concurrency.turns).
        self._turns = TurnLock("the reranker")
        self._engine = _make_engine(model, engine)

    @property
    def scoring(self) -> str:
        """Which path scores: "engine" (core.rerank.engine) or "predict" (CrossEncoder.predict)."""
        return "engine" if self._engine is not None else "predict"

    @property
    def runs_on_local_cpu(self) -> bool:
        return self.device == "cpu"

    def describe(self) -> str:
        return f"{self.model_id}: {format_params(self.params)} parameters on {self.device} ({self.dtype})"

    def score(self, query: str, texts: list[str], batch_size: int = 8) -> np.ndarray:
        """``batch_size`` is predict's; the engine batches by a token budget, and neither changes a score."""
        import torch

        if not texts:
            return np.zeros(0, dtype=np.float32)
        with self._turns.turn():
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
            self._timed(len(texts), time.perf_counter() - started)
        return np.asarray(scores, dtype=np.float32).reshape(-1)

    def count_tokens(self, text: str) -> int:
        if self._tokenizer is None:
            return len(text.split())
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])


def _make_engine(model, engine: str):
    """The rerank engine for ``model``, or None where plain predict scores (asked for, or the only way)."""
    from core.rerank.engine import RerankEngine, unsupported_reason

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


def load_reranker(
    model_id: str,
    device: str = "auto",
    dtype: str = "auto",
    engine: str = "auto",
    temperature: float | None = None,
    revision: str | None = None,
) -> CrossEncoderReranker:
    """Load a CrossEncoder from a hub id or a local folder, or raise ``RerankerLoadError``.

    ``engine`` picks how it scores (``SCORING_ENGINES``); ``temperature`` overrides the calibration
    detected from the model's files; ``revision`` pins a hub id to a commit, branch or tag (a folder
    is what it is). Whatever activation the model's config declares, the raw logit is scored and the
    calibration applied once.
    """
    if engine not in SCORING_ENGINES:
        raise RerankerLoadError(
            model_id, f"unknown scoring engine {engine!r}", f"Use one of {', '.join(SCORING_ENGINES)}"
        )

    try:
        resolved_device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, resolved_device)
    except ValueError as exc:
        raise RerankerLoadError(
            model_id, str(exc), "Pick another device or dtype setting (RERANK_DEVICE, RERANK_DTYPE)"
        ) from exc
    local = Path(model_id).expanduser()
    model = _cross_encoder(model_id, local, resolved_device, torch_dtype, revision or None)
    if model.num_labels != 1:
        raise RerankerLoadError(
            model_id,
            f"it outputs {model.num_labels} scores per pair (a classifier), not one relevance score",
            "Pick a reranker with a single relevance output",
        )
    _ensure_generation_prompt(model)
    card = _model_card(model_id, local, revision or None)
    calibration = calibration_of_model(model, card, temperature)
    try:
        return CrossEncoderReranker(
            model, model_id, resolved_device, dtype_name(torch_dtype), calibration, _license(model_id, card), engine
        )
    except ValueError as exc:  # engine="engine" on a model the engine cannot score
        raise RerankerLoadError(model_id, str(exc), 'Use engine "auto" or "predict"') from exc


def _cross_encoder(model_id: str, local: Path, device: str, torch_dtype, revision: str | None):
    """The CrossEncoder from the folder, the local cache, or (when reachable) the hub."""
    import torch
    from sentence_transformers import CrossEncoder

    is_local = local.exists()
    if not is_local and (model_id.startswith((".", "/", "~")) or os.sep in model_id.strip("/").replace("/", "", 1)):
        raise RerankerLoadError(model_id, "no such folder", "Check the path, or give a Hugging Face model id")
    # Identity whatever the config declares: a revision that applied a sigmoid would otherwise be
    # calibrated twice.
    kwargs = dict(device=device, model_kwargs={"dtype": torch_dtype}, activation_fn=torch.nn.Identity())
    if not is_local and revision:
        kwargs["revision"] = revision
    try:
        with MODEL_LOADS:
            try:
                # The local cache first: no network round trip when the weights are already here.
                return CrossEncoder(str(local) if is_local else model_id, local_files_only=True, **kwargs)
            except OSError:
                if is_local or _offline() or not _hub_reachable():
                    raise
                return CrossEncoder(model_id, **kwargs)
    except (torch.OutOfMemoryError, MemoryError) as exc:
        raise RerankerLoadError(
            model_id,
            f"out of memory on {device} ({type(exc).__name__})",
            "Use a GPU with more free memory, a lower-precision dtype (bfloat16), or a smaller reranker",
        ) from exc
    except Exception as exc:  # the hub, transformers and torch raise many unrelated types here
        raise _explain(model_id, exc, is_local, device, revision) from exc


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


def _explain(model_id: str, exc: Exception, is_local: bool, device: str, revision: str | None) -> RerankerLoadError:
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
        at = f" at revision {revision}" if revision else ""
        download = f"hf download {model_id}" + (f" --revision {revision}" if revision else "")
        return RerankerLoadError(
            model_id,
            f"its weights{at} are not in the local Hugging Face cache and the hub cannot be reached",
            f"Download it once on a connected machine (`{download}`), copy the cache (HF_HOME) here, or set "
            "the reranker to a local folder",
        )
    first_line = text.splitlines()[0][:300]
    return RerankerLoadError(model_id, f"it is not a loadable cross-encoder ({first_line})", "Pick another reranker")


def _transformer_module(model):
    from sentence_transformers.base.modules import Transformer

    return next((module for module in model if isinstance(module, Transformer)), None)


def _ensure_generation_prompt(model) -> None:
    """A causal reranker scores at the assistant prefix; without it every score silently shifts."""
    transformer = _transformer_module(model)
    if transformer is None or transformer.transformer_task != "text-generation":
        return
    chat = transformer.processing_kwargs.setdefault("chat_template", {})
    chat.setdefault("add_generation_prompt", True)


def _model_card(model_id: str, local: Path, revision: str | None) -> Path | None:
    """The model card (README.md) on disk: in the folder, or in the local Hugging Face cache."""
    if local.exists():
        return local / "README.md"
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model_id, "README.md", revision=revision)
    except Exception:  # a malformed id, an unreadable cache: no card
        return None
    return Path(cached) if isinstance(cached, str) else None


def _license(model_id: str, card: Path | None) -> str | None:
    """The ``license:`` of the model card's front matter where the card is on disk, else the built-in note.

    Read, never assumed: a model's licence can change between revisions (zerank-2's card may have).
    """
    if card is not None and card.is_file():
        text = card.read_text(errors="ignore")
        front = re.match(r"---\r?\n(.*?)\r?\n---", text, re.DOTALL)
        match = re.search(r"^license:\s*(\S+)", front.group(1), re.MULTILINE) if front else None
        if match:
            return match.group(1).strip("'\"")
    known = KNOWN_MODELS.get(model_id)
    return known.license if known else None
