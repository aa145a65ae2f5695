"""A reranker served over HTTP: vLLM, Infinity, or any Cohere/Jina-compatible rerank server.

Three request shapes (``api``): "rerank" (``/v1/rerank``: vLLM, Jina, Cohere v1), "score" (vLLM's
``/score``) and "infinity". A server's number is turned back into the local backend's logit
(``score_kind``, ``score_scale``), so probabilities and rankings match the in-process model;
docs/serving.md ("What the client does") says how, and how batching, retries and errors behave.
Only the standard library is used, so the HTTP backend stays optional.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np

from core.config import ServerSettings
from core.rerank.base import Reranker, RerankError
from core.rerank.calibration import calibration_of_served
from core.rerank.known_models import KNOWN_MODELS
from core.rerank.server_answers import body_snippet, reason_text, retry_after
from core.rerank.server_options import OPTION_SETTINGS, PREFORMATS, ServerOptions
from core.rerank.server_urls import endpoint_url, redact_url, split_credentials

# Answers worth another try: rate limiting and server-side trouble (not 501/505, which will not change).
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class RerankServerError(RerankError):
    """The rerank server could not score a request. ``str(exc)`` is a complete sentence for the UI."""

    ADVICE = "Check the server (docs/serving.md), or unset RERANK_SERVER_URL to rerank in this process."

    def __init__(self, url: str, cause: str, status: int | None = None, attempts: int = 1):
        message = f"Rerank server {url} {cause}"
        if attempts > 1:
            message += f" (after {attempts} attempts)"
        super().__init__(message, cause, self.ADVICE)
        self.url = url
        self.status = status
        self.attempts = attempts


@dataclass
class _Retryable(Exception):
    """One failed attempt that may succeed on another try."""

    cause: str
    status: int | None = None
    retry_after: float | None = None


class HttpReranker(Reranker):
    """Scores (query, document) pairs on a rerank server, on the local backend's logit scale."""

    def __init__(
        self,
        url: str,
        model: str | None,
        api: str = "rerank",
        api_key: str | None = None,
        options: ServerOptions | None = None,
        temperature: float | None = None,
        tokenizer: str | None = None,
        max_length: int | None = None,
        params: float | None = None,
        assumed_pairs_per_second: float | None = 50.0,
        **option_values,
    ):
        """
        url: the server's base URL (``http://gpu-box:8000``) or the full endpoint; credentials in it
            become a Basic Authorization header and are never shown.
        model: the served model name sent in each request (None omits it) and the id shown in the UI.
        api: "rerank" (vLLM/Jina/Cohere ``/v1/rerank``), "score" (vLLM ``/score``) or "infinity".
        api_key: sent as ``Authorization: Bearer <key>``.
        options (or the same fields as keywords): see ``ServerOptions``.
        temperature: overrides the calibration read from the served name.
        tokenizer, max_length: a local tokenizer and the server's window, for ``count_tokens`` and
            ``count_over_window``; without them those are rough or 0.
        params: the model's parameter count, for display; known models default to theirs.
        assumed_pairs_per_second: the throughput reported before the first timed request (None: no guess).
        """
        super().__init__()
        if options is not None and option_values:
            raise ValueError(f"pass the request options either as options= or as keywords, not both ({option_values})")
        self.options = options or ServerOptions(**option_values)
        self.api = api
        url, self._basic_auth = split_credentials(url)
        self.endpoint = endpoint_url(url, api)
        self.shown_endpoint = redact_url(self.endpoint)
        self.served_model = model
        self.model_id = model or self.shown_endpoint
        self.api_key = api_key or None
        self.calibration = calibration_of_served(self.model_id, temperature)
        scale = self.options.score_scale
        self.score_scale = float(scale) if scale is not None else self.calibration.temperature
        self.tokenizer_id = tokenizer
        self._tokenizer = None
        self.window = max_length
        known = KNOWN_MODELS.get(model or "")
        self.params = float(params) if params is not None else (known.params if known else 0.0)
        self.license = known.license if known else None
        self.assumed_pairs_per_second = assumed_pairs_per_second
        self.requests_sent = 0

    @classmethod
    def from_settings(cls, server: ServerSettings, model_id: str | None = None, temperature: float | None = None):
        """The server ``server`` names (``RERANK_SERVER_*``), or None when its URL is unset.

        The served model name defaults to ``model_id`` (the app's reranker setting).
        """
        if not server.url:
            return None
        fields = {
            name: value for name, value in asdict(server).items() if name in OPTION_SETTINGS and value is not None
        }
        if server.extra_body:
            fields["extra_body"] = server.extra
        return cls(
            server.url,
            server.model or model_id,
            api=server.api or "rerank",
            api_key=server.api_key,
            options=ServerOptions(**fields),
            temperature=temperature,
        )

    @property
    def runs_on_local_cpu(self) -> bool:
        return False

    def describe(self) -> str:
        return f"{self.model_id} served at {self.shown_endpoint} ({self.api} API)"

    def count_tokens(self, text: str) -> int:
        """Tokens in the given local tokenizer, else a rough count (words)."""
        tokenizer = self._load_tokenizer()
        if tokenizer is None:
            return len(text.split())
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def can_count_window(self) -> bool:
        # The server, not this client, truncates or rejects a long pair (vLLM answers HTTP 400).
        return self.window is not None and self._load_tokenizer() is not None

    def score(self, query: str, texts: list[str], batch_size: int = 8) -> np.ndarray:
        """``batch_size`` is ignored: the server batches; requests are split by the options' limits."""
        if not texts:
            return np.zeros(0, dtype=np.float32)
        query_sent, documents = self._formatted(query, texts)
        batches = self._batches(query_sent, documents)
        started = time.perf_counter()
        if len(batches) == 1 or self.options.concurrency == 1:
            values = [self._score_batch(query_sent, documents[a:b]) for a, b in batches]
        else:
            with ThreadPoolExecutor(max_workers=min(self.options.concurrency, len(batches))) as pool:
                values = list(
                    pool.map(lambda span: self._score_batch(query_sent, documents[span[0] : span[1]]), batches)
                )
        self._timed(len(texts), time.perf_counter() - started)
        return self._to_logits(np.concatenate(values)).astype(np.float32)

    # Internals.

    def _load_tokenizer(self):
        if self._tokenizer is None and self.tokenizer_id:
            from transformers import AutoTokenizer

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_id, local_files_only=True)
            except OSError:
                self.tokenizer_id = None  # not available here: fall back to rough counts, once
        return self._tokenizer

    def _formatted(self, query: str, texts: list[str]) -> tuple[str, list[str]]:
        if self.options.preformat is None:
            return query, list(texts)
        query_format, document_format = PREFORMATS[self.options.preformat]
        # str.replace, not str.format: a query or document may contain braces.
        return query_format.replace("{query}", query), [document_format.replace("{document}", t) for t in texts]

    def _payload(self, query: str, documents: list[str]) -> dict:
        if self.api == "score":
            body = {"text_1": query, "text_2": documents}
        else:
            body = {"query": query, "documents": documents, "top_n": len(documents)}
            if self.api == "infinity":
                body["return_documents"] = False
                if self.options.score_kind == "logit":
                    body["raw_scores"] = True
        if self.served_model:
            body["model"] = self.served_model
        body.update(self.options.extra_body)
        return body

    def _batches(self, query: str, documents: list[str]) -> list[tuple[int, int]]:
        """Spans of ``documents``, each within the document and byte limits of one request."""
        limit_docs = self.options.max_documents_per_request
        if self.options.max_request_bytes is None:
            return [(a, min(a + limit_docs, len(documents))) for a in range(0, len(documents), limit_docs)]
        overhead = len(self._encode(self._payload(query, []))) + 16  # top_n digits and separators
        spans: list[tuple[int, int]] = []
        start, size = 0, overhead
        for i, document in enumerate(documents):
            cost = len(json.dumps(document, ensure_ascii=False).encode("utf-8")) + 2  # the text and ", "
            if overhead + cost > self.options.max_request_bytes:
                raise self._error(
                    f"cannot take document {i + 1}: its request would be {overhead + cost} bytes, over the "
                    f"limit of {self.options.max_request_bytes} bytes (max_request_bytes)",
                )
            if i > start and (i - start >= limit_docs or size + cost > self.options.max_request_bytes):
                spans.append((start, i))
                start, size = i, overhead
            size += cost
        spans.append((start, len(documents)))
        return spans

    @staticmethod
    def _encode(body: dict) -> bytes:
        return json.dumps(body, ensure_ascii=False).encode("utf-8")

    def _score_batch(self, query: str, documents: list[str]) -> np.ndarray:
        data = self._post(self._encode(self._payload(query, documents)))
        return self._parse(data, len(documents))

    def _post(self, body: bytes) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        elif self._basic_auth:
            headers["Authorization"] = self._basic_auth
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._attempt(body, headers)
            except _Retryable as failure:
                if attempt > self.options.max_retries:
                    raise self._error(failure.cause, failure.status, attempt) from None
                wait = (
                    failure.retry_after
                    if failure.retry_after is not None
                    else self.options.backoff * 2 ** (attempt - 1)
                )
                if wait > self.options.max_backoff:
                    raise self._error(
                        f"{failure.cause}, and asked to wait {wait:g} s, longer than the {self.options.max_backoff:g} s "
                        "this client waits",
                        failure.status,
                        attempt,
                    ) from None
                time.sleep(wait)

    def _attempt(self, body: bytes, headers: dict) -> dict:
        request = urllib.request.Request(self.endpoint, data=body, headers=headers, method="POST")
        with self._stats_lock:
            self.requests_sent += 1
        try:
            with urllib.request.urlopen(request, timeout=self.options.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
            snippet = body_snippet(exc.read() if exc.fp is not None else b"")
            cause = f"answered HTTP {status}" + (f": {snippet}" if snippet else f" ({exc.reason})")
            if status in RETRY_STATUSES:
                raise _Retryable(cause, status, retry_after(exc.headers.get("Retry-After"))) from None
            if status in (401, 403):
                cause += "; check the API key (RERANK_SERVER_KEY)"
            elif status == 404:
                cause += "; check the URL and the API shape (rerank, score or infinity)"
            elif status == 400 and "context length" in snippet.lower():
                cause += (
                    ". A (query, chunk) pair is longer than the server's window: index with smaller chunks, or "
                    "serve with a larger --max-model-len"
                )
            raise self._error(cause, status) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise self._error(f"did not answer within {self.options.timeout:g} s") from None
            if isinstance(reason, socket.gaierror):
                raise self._error(f"is unreachable: unknown host ({reason})") from None
            raise _Retryable(f"is down or unreachable ({reason_text(reason)})") from None
        except TimeoutError:
            raise self._error(f"did not answer within {self.options.timeout:g} s") from None
        except (ConnectionError, http.client.HTTPException) as exc:
            raise _Retryable(f"dropped the connection ({reason_text(exc)})") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise self._error(f"answered with something that is not JSON: {body_snippet(raw)}")

    def _error(self, cause: str, status: int | None = None, attempts: int = 1) -> RerankServerError:
        """An error naming the server, with any secret this client holds blanked out of the cause (a
        server's answer may quote the key it refused)."""
        for secret in (self.api_key, self._basic_auth and self._basic_auth.split(" ", 1)[1]):
            if secret:
                cause = cause.replace(secret, "***")
        return RerankServerError(self.shown_endpoint, cause, status, attempts)

    def _parse(self, data: dict, n: int) -> np.ndarray:
        if self.api == "score":
            items, key = data.get("data") if isinstance(data, dict) else None, "score"
        else:
            items = data.get("results", data.get("data")) if isinstance(data, dict) else None
            key = "relevance_score"
        if not isinstance(items, list):
            expected = '"data"' if self.api == "score" else '"results"'
            raise self._error(f"answered without a {expected} list: {body_snippet(data)}")
        values = np.full(n, np.nan, dtype=np.float64)
        for item in items:
            index, value = (item.get("index"), item.get(key)) if isinstance(item, dict) else (None, None)
            if not isinstance(index, int) or not 0 <= index < n or not isinstance(value, (int, float)):
                raise self._error(f"answered with a malformed result: {body_snippet(item)}")
            if not np.isnan(values[index]):
                raise self._error(f"answered twice for document index {index}")
            values[index] = float(value)
        if len(items) != n:
            raise self._error(f"answered {len(items)} results for {n} documents (does it cap top_n?)")
        if not np.all(np.isfinite(values)):
            raise self._error("answered a score that is not a finite number")
        return values

    def _to_logits(self, values: np.ndarray) -> np.ndarray:
        if self.options.score_kind == "logit":
            return values * self.score_scale
        if np.any((values < 0) | (values > 1)):
            worst = values[(values < 0) | (values > 1)][0]
            raise self._error(
                f"answered a score of {worst:g}, which is not a probability; if the server returns raw logits "
                "set score_kind='logit' (RERANK_SERVER_SCORE_KIND=logit)",
            )
        clipped = np.clip(values, np.finfo(np.float64).tiny, 1 - np.finfo(np.float64).eps)
        return (np.log(clipped) - np.log1p(-clipped)) * self.score_scale
