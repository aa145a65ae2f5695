"""How requests to a rerank server are made and its answers read: the options, with their checks."""

from __future__ import annotations

from dataclasses import dataclass, field

SCORE_KINDS = ("probability", "logit")


# zerank-2's chat template, for servers that score a plain (query, document) pair without one: the query
# as the system turn, the document as the user turn, then the assistant prefix at which "Yes" is read.
# vLLM's seq-cls scoring without a score template concatenates text_1 and text_2 into one prompt.
PREFORMATS = {
    "zerank": (
        "<|im_start|>system\n{query}<|im_end|>\n<|im_start|>user\n",
        "{document}<|im_end|>\n<|im_start|>assistant\n",
    ),
}


# The server settings that are request options (the rest name the server, the model and the key).
OPTION_SETTINGS = (
    "score_kind",
    "score_scale",
    "preformat",
    "timeout",
    "max_retries",
    "max_documents_per_request",
    "max_request_bytes",
    "concurrency",
)


@dataclass(frozen=True)
class ServerOptions:
    """How requests are made and answers read; the defaults suit vLLM serving zerank-2 (docs/serving.md).

    score_kind, score_scale: how a server's value becomes the local logit (docs/serving.md, "Scores");
        ``score_scale`` None is the calibration's temperature.
    preformat: "zerank" wraps query and document in zerank's chat template here, for a server that
        scores a bare pair; None sends the texts as they are.
    timeout: seconds for connecting and for each read; a timeout is not retried.
    max_retries, backoff, max_backoff: retry n after a 429/5xx or a failed connection waits
        ``backoff * 2**n`` (or Retry-After); a wait over ``max_backoff`` is not made.
    max_documents_per_request, max_request_bytes, concurrency: how a call is split and sent.
    extra_body: more JSON fields for every request, e.g. ``{"use_activation": false}`` for vLLM.
    """

    score_kind: str = "probability"
    score_scale: float | None = None
    preformat: str | None = None
    timeout: float = 60.0
    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_documents_per_request: int = 32
    max_request_bytes: int | None = None
    concurrency: int = 4
    extra_body: dict = field(default_factory=dict)

    def __post_init__(self):
        # As the values come (a JSON null, "8", 0 for "no byte limit"): normalised once, here.
        numbers = {"timeout": float, "max_retries": int, "backoff": float, "max_backoff": float,
                   "max_documents_per_request": int, "concurrency": int}  # fmt: skip
        for name, kind in numbers.items():
            object.__setattr__(self, name, kind(getattr(self, name)))
        if self.score_scale is not None:
            object.__setattr__(self, "score_scale", float(self.score_scale))
        object.__setattr__(self, "max_request_bytes", int(self.max_request_bytes) if self.max_request_bytes else None)
        object.__setattr__(self, "extra_body", dict(self.extra_body or {}))
        if self.score_kind not in SCORE_KINDS:
            raise ValueError(f"score_kind must be one of {SCORE_KINDS}, got {self.score_kind!r}")
        if self.preformat is not None and self.preformat not in PREFORMATS:
            raise ValueError(f"unknown preformat {self.preformat!r}; use one of {', '.join(PREFORMATS)} or none")
        if self.max_documents_per_request < 1:
            raise ValueError("max_documents_per_request must be at least 1")
        if self.max_retries < 0 or self.timeout <= 0 or self.concurrency < 1:
            raise ValueError("max_retries must be >= 0, timeout > 0 and concurrency >= 1")
