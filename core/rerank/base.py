"""The one reranker interface, its errors, and the sigmoid that turns a logit into a probability.

Every backend (the in-process CrossEncoder, a rerank server) returns raw logits on the same scale and
gets the same calibrated probability, so callers never need to know which one they hold.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod

import numpy as np

from core.errors import ExplorerError
from core.rerank.calibration import Calibration


class RerankError(ExplorerError):
    """Reranking could not be done; the first stage's results stand."""


class RerankerLoadError(RerankError):
    """The reranker could not be loaded; ``reason`` says why and ``advice`` what to do."""

    def __init__(self, model_id: str, reason: str, advice: str):
        super().__init__(f"Reranker {model_id} could not be loaded: {reason}. {advice}", reason, advice)
        self.model_id = model_id
        self.reason = reason


def sigmoid(x: np.ndarray | float, temperature: float = 1.0):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64) / temperature))


class Reranker(ABC):
    """Scores (query, text) pairs. Subclasses set ``model_id``, ``params``, ``license``, ``calibration``
    and ``window`` (the longest pair in tokens, or None when unknown) and call ``_timed`` per call."""

    model_id: str
    params: float
    license: str | None
    calibration: Calibration
    window: int | None = None
    # What ``measured_pairs_per_second`` says before anything was scored (None: no guess).
    assumed_pairs_per_second: float | None = None

    def __init__(self) -> None:
        self.pairs_scored = 0
        self.seconds_scoring = 0.0
        self._stats_lock = threading.Lock()

    @abstractmethod
    def score(self, query: str, texts: list[str], batch_size: int = 8) -> np.ndarray:
        """The raw relevance score (logit) of each (query, text) pair, in input order."""

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in the reranker's own tokenizer (a rough count where it has none here)."""

    @abstractmethod
    def describe(self) -> str:
        """One line for the UI: what scores, where, and how."""

    @property
    @abstractmethod
    def runs_on_local_cpu(self) -> bool:
        """Whether scoring uses this machine's CPU, where a long rerank waits for the user's go-ahead."""

    @property
    def identity(self) -> str:
        """What decides this reranker's scores (model, where and how it runs): the score cache's key."""
        return self.describe()

    def pair_counts(self) -> tuple[int, int]:
        """(pairs the model scored, pairs answered from a score cache) in this process so far."""
        return self.pairs_scored, 0

    def probability(self, logits: np.ndarray) -> np.ndarray:
        return sigmoid(logits, self.calibration.temperature)

    @property
    def probability_label(self) -> str:
        return self.calibration.formula

    def can_count_window(self) -> bool:
        return self.window is not None

    def count_over_window(self, query: str, texts: list[str], template_tokens: int = 32) -> int:
        """How many pairs exceed the window and so get truncated (or refused) when scored.

        ``template_tokens`` covers the chat template or special tokens around the pair, so a pair near
        the limit counts as over it. 0 where the window or the tokenizer is unknown here.
        """
        if not texts or not self.can_count_window():
            return 0
        query_tokens = self.count_tokens(query)
        return sum(query_tokens + self.count_tokens(text) + template_tokens > self.window for text in texts)

    @property
    def measured_pairs_per_second(self) -> float | None:
        """Pairs per second over this process's calls, for estimates before the next one."""
        if self.seconds_scoring > 0:
            return self.pairs_scored / self.seconds_scoring
        return self.assumed_pairs_per_second

    def _timed(self, pairs: int, seconds: float) -> None:
        with self._stats_lock:
            self.pairs_scored += pairs
            self.seconds_scoring += seconds
