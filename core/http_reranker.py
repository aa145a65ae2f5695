"""A reranker served over HTTP: vLLM, Infinity, or any Cohere/Jina-compatible rerank server.

``HttpReranker`` has the interface ``core.search`` uses on the in-process ``core.reranker.Reranker``:
``score`` returns raw logits on the local backend's scale, ``probability`` turns them into the same
calibrated probability (``sigmoid(logit / 5)`` for zerank), and ``model_id``, ``probability_label``,
``count_over_window``, ``count_tokens``, ``params``, ``device`` and ``measured_pairs_per_second`` are
there for the search page and ``core.search.estimate_rerank_seconds``. Only the standard library is used.

Three request shapes, chosen by ``api``:

- ``"rerank"``: ``POST {url}/v1/rerank`` with ``{"model", "query", "documents", "top_n"}``, answered
  with ``{"results": [{"index", "relevance_score"}, ...]}``. vLLM, Jina and Cohere (v1) speak it.
- ``"score"``: vLLM's ``POST {url}/score`` with ``{"model", "text_1", "text_2"}``, answered with
  ``{"data": [{"index", "score"}, ...]}``.
- ``"infinity"``: Infinity's ``POST {url}/rerank``, the rerank shape (older Infinity releases put the
  results under ``"data"``; both are read).

Results are mapped back to input order by their ``index``: servers usually sort them by score.

How a server's number becomes the local logit (``score_kind`` and ``score_scale``):

zerank-2's local score is the logit of the "Yes" token. Served by vLLM as a sequence classifier whose
one-label head is the "Yes" row of the LM head divided by 5 (``docs/serving.md``), the server's own
logit is ``logit / 5``; vLLM then applies its default activation for one label, a sigmoid, and answers
``sigmoid(logit / 5)``, which is already zerank's calibrated probability. So:

- ``score_kind="probability"`` (the default; vLLM's and Infinity's default output): the server's value
  ``p`` is inverted, ``server_logit = log(p) - log(1 - p)``, then ``logit = score_scale * server_logit``.
  The probability shown is then ``sigmoid(logit / temperature) == p`` (with ``score_scale ==
  temperature``), the same number the local backend shows. The inversion loses precision only where the
  server's float32 sigmoid saturates: about 1e-5 in the logit at p = 0.99, 3e-3 at p = 0.9999, and a
  value of exactly 0 or 1 is clipped to a finite logit (about +-37 x score_scale).
- ``score_kind="logit"``: the server's value is its raw logit (vLLM with ``"use_activation": false`` in
  the request or ``--pooler-config '{"use_activation": false}'``; Infinity with ``"raw_scores": true``,
  which this client sends itself for ``api="infinity"``); ``logit = score_scale * value``. Exact.

``score_scale`` defaults to ``temperature``, matching the divide-by-5 conversion; a head that keeps the
raw "Yes" row needs ``score_scale=1``. A server value outside [0, 1] in probability mode is reported as
an error rather than silently mis-scaled.

Truncation: the server decides. ``count_over_window`` counts only when both a local ``tokenizer`` and
``max_length`` are given; otherwise it returns 0. vLLM rejects a pair longer than ``--max-model-len``
with HTTP 400 (which this client reports with the server's message); this app's chunks (256 bi-encoder
tokens) are far below zerank-2's 32k window.

Errors are ``RerankServerError`` with a message naming the URL and the cause ("is down or unreachable",
"answered HTTP 400: <body>", "did not answer within 60 s"), which ``core.search.add_reranking`` shows
in place of the reranked column. 429 and 5xx answers and connection failures are retried with
exponential backoff (a ``Retry-After`` header is honoured); other 4xx answers and timeouts are not.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import unquote, urlparse

import numpy as np

from core.reranker import KNOWN_MODELS, sigmoid, temperature_for

API_PATHS = {"rerank": "/v1/rerank", "score": "/score", "infinity": "/rerank"}
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

# Answers worth another try: rate limiting and server-side trouble (not 501/505, which will not change).
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

# Environment variables for ``HttpReranker.from_env`` (the lead may move them into core/config.py).
ENV = {
    "url": "RERANK_SERVER_URL",
    "api": "RERANK_SERVER_API",
    "api_key": "RERANK_SERVER_KEY",
    "model": "RERANK_SERVER_MODEL",
    "score_kind": "RERANK_SERVER_SCORE_KIND",
    "score_scale": "RERANK_SERVER_SCORE_SCALE",
    "preformat": "RERANK_SERVER_PREFORMAT",
    "timeout": "RERANK_SERVER_TIMEOUT",
    "max_retries": "RERANK_SERVER_RETRIES",
    "max_documents_per_request": "RERANK_SERVER_MAX_DOCS",
    "max_request_bytes": "RERANK_SERVER_MAX_BYTES",
    "concurrency": "RERANK_SERVER_CONCURRENCY",
    "extra_body": "RERANK_SERVER_EXTRA",
}


class RerankServerError(Exception):
    """The rerank server could not score a request. ``str(exc)`` is a complete sentence for the UI."""

    def __init__(self, url: str, cause: str, status: int | None = None, attempts: int = 1):
        message = f"Rerank server {url} {cause}"
        if attempts > 1:
            message += f" (after {attempts} attempts)"
        super().__init__(message)
        self.url = url
        self.cause = cause
        self.status = status
        self.attempts = attempts


@dataclass
class _Retryable(Exception):
    """One failed attempt that may succeed on another try."""

    cause: str
    status: int | None = None
    retry_after: float | None = None


def _split_userinfo(url: str) -> tuple[str, str | None]:
    """(``url`` without its user info, the user info or None), read from the raw text.

    A password may hold "#" or "?" unencoded, which end the authority for a URL parser and would leave
    the rest of the password in the fragment or query; the user info is whatever precedes the last "@"
    before the first "/" after the scheme.
    """
    url = url.strip()
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url, None
    slash = rest.find("/")
    at = rest.rfind("@", 0, slash if slash >= 0 else len(rest))
    if at < 0:
        return url, None
    return f"{scheme}://{rest[at + 1 :]}", rest[:at]


def redact_url(url: str) -> str:
    """``url`` fit to show: no user name or password, no query values (a key may ride there), no fragment."""
    bare, userinfo = _split_userinfo(url)
    try:
        parsed = urlparse(bare)
        parsed.port  # noqa: B018 (raises on a port that is not a number, e.g. the tail of a mangled password)
    except ValueError:
        return f"{bare.partition('://')[0] or 'a URL'}://(an address that could not be read)"
    netloc = ("***@" if userinfo is not None else "") + parsed.netloc
    query = "&".join(f"{part.split('=', 1)[0]}=***" if "=" in part else part for part in parsed.query.split("&"))
    return parsed._replace(netloc=netloc, query=query if parsed.query else "", fragment="").geturl()


def split_credentials(url: str) -> tuple[str, str | None]:
    """(``url`` without user and password, a Basic Authorization header value or None)."""
    bare, userinfo = _split_userinfo(url)
    if userinfo is None:
        return bare, None
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
    return bare, f"Basic {token}"


def endpoint_url(url: str, api: str) -> str:
    """The endpoint for ``api`` under the server's base ``url``.

    ``http://host:8000`` and ``http://host:8000/v1`` give ``http://host:8000/v1/rerank`` for the rerank
    API; a URL that already ends with ``/rerank`` or ``/score`` is used as it is.
    """
    if api not in API_PATHS:
        raise ValueError(f"unknown rerank server API {api!r}; use one of {', '.join(API_PATHS)}")
    try:
        parsed = urlparse(url.strip())
        parsed.port  # noqa: B018 (a port that is not a number raises here, not in the first request)
    except ValueError:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(
            f"rerank server URL must start with http:// or https:// and name a host and port, got {redact_url(url)!r}"
            " (a password with '/', '#' or '?' must be percent-encoded)"
        )
    base = parsed.path.rstrip("/")
    if re.search(r"/(rerank|score)$", base):
        return parsed._replace(path=base).geturl()
    path = API_PATHS[api]
    if base.endswith("/v1") and path.startswith("/v1/"):
        path = path[3:]
    return parsed._replace(path=base + path).geturl()  # a query string stays after the path


def probability_temperature(model_id: str) -> float:
    """zerank's calibration, decided as the local backend decides it (a served zerank is single-token)."""
    return temperature_for(model_id)


class HttpReranker:
    """Scores (query, document) pairs on a rerank server; a drop-in for ``core.reranker.Reranker``."""

    def __init__(
        self,
        url: str,
        model: str | None,
        api: str = "rerank",
        api_key: str | None = None,
        score_kind: str = "probability",
        score_scale: float | None = None,
        temperature: float | None = None,
        preformat: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_documents_per_request: int = 32,
        max_request_bytes: int | None = None,
        concurrency: int = 4,
        extra_body: dict | None = None,
        tokenizer: str | None = None,
        max_length: int | None = None,
        params: float | None = None,
        assumed_pairs_per_second: float | None = 50.0,
    ):
        """
        url: the server's base URL (``http://gpu-box:8000``) or the full endpoint.
        model: the served model name sent in each request (vLLM's ``--served-model-name``; None omits it)
            and the id shown in the UI; a name with "zerank" in it gets zerank's temperature of 5.
        api: "rerank" (vLLM/Jina/Cohere ``/v1/rerank``), "score" (vLLM ``/score``) or "infinity".
        api_key: sent as ``Authorization: Bearer <key>`` (vLLM ``--api-key``, Infinity ``--api-key``).
        score_kind, score_scale: how a server value becomes the local logit (see the module docstring).
        temperature: the probability is ``sigmoid(logit / temperature)``; default as the local backend.
        preformat: "zerank" wraps query and document in zerank's chat template on this side, for a
            server that scores a bare pair (no ``--chat-template``); None sends the texts as they are.
        timeout: seconds for connecting and for each read of one request; a timeout is not retried.
        max_retries: further attempts after a 429/5xx answer or a connection failure.
        backoff, max_backoff: the wait before retry n is ``backoff * 2**n`` (or the server's
            Retry-After); a wait longer than ``max_backoff`` is not made and the error is raised.
        max_documents_per_request, max_request_bytes: each request stays within both (a single document
            over the byte limit is an error, as no request could carry it).
        concurrency: requests in flight at once when a call needs several.
        extra_body: more JSON fields for every request, e.g. ``{"use_activation": false}`` for vLLM.
        tokenizer, max_length: a local tokenizer (path or cached hub id) and the server's window, only
            for ``count_tokens`` and ``count_over_window``; without them those are rough or 0.
        params: the model's parameter count, for display; known models default to theirs.
        assumed_pairs_per_second: the throughput ``measured_pairs_per_second`` reports before the first
            request has been timed, so the time estimate is not a local-CPU FLOP count (None: no guess).
        """
        if score_kind not in SCORE_KINDS:
            raise ValueError(f"score_kind must be one of {SCORE_KINDS}, got {score_kind!r}")
        if preformat is not None and preformat not in PREFORMATS:
            raise ValueError(f"unknown preformat {preformat!r}; use one of {', '.join(PREFORMATS)} or none")
        if max_documents_per_request < 1:
            raise ValueError("max_documents_per_request must be at least 1")
        if max_retries < 0 or timeout <= 0 or concurrency < 1:
            raise ValueError("max_retries must be >= 0, timeout > 0 and concurrency >= 1")
        self.api = api
        # Credentials in the URL (http://user:secret@host) become a Basic Authorization header; the URL
        # that is requested, shown and put in errors never carries them.
        url, self._basic_auth = split_credentials(url)
        self.endpoint = endpoint_url(url, api)
        self.shown_endpoint = redact_url(self.endpoint)
        self.served_model = model
        self.model_id = model or self.shown_endpoint
        self.api_key = api_key or None
        self.score_kind = score_kind
        self.temperature = float(temperature) if temperature is not None else probability_temperature(self.model_id)
        self.score_scale = float(score_scale) if score_scale is not None else self.temperature
        self.preformat = preformat
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.max_documents_per_request = int(max_documents_per_request)
        self.max_request_bytes = int(max_request_bytes) if max_request_bytes else None
        self.concurrency = int(concurrency)
        self.extra_body = dict(extra_body or {})
        self.tokenizer_id = tokenizer
        self._tokenizer = None
        self.max_length = max_length
        known = KNOWN_MODELS.get(model or "")
        self.params = float(params) if params is not None else (known.params if known else 0.0)
        self.license = known.license if known else None
        self.assumed_pairs_per_second = assumed_pairs_per_second
        # What the search page shows as "on {device} ({dtype})"; "cpu" would trigger the CPU confirmation.
        self.device = "server"
        self.dtype = f"{api} API at {self.shown_endpoint}"
        self.pairs_scored = 0
        self.seconds_scoring = 0.0
        self.requests_sent = 0
        self._stats_lock = threading.Lock()

    @classmethod
    def from_env(cls, model_id: str | None = None, environ=None) -> HttpReranker | None:
        """The server named by RERANK_SERVER_URL and friends (see ``ENV``), or None when it is unset.

        The model name defaults to ``model_id`` (the app's reranker setting). Raises ``ValueError`` for
        a malformed value, naming the variable.
        """
        env = os.environ if environ is None else environ
        url = env.get(ENV["url"], "").strip()
        if not url:
            return None
        kwargs: dict = {}
        converters = {
            "api": str,
            "api_key": str,
            "score_kind": str,
            "score_scale": float,
            "preformat": str,
            "timeout": float,
            "max_retries": int,
            "max_documents_per_request": int,
            "max_request_bytes": int,
            "concurrency": int,
            "extra_body": json.loads,
        }
        for name, convert in converters.items():
            raw = env.get(ENV[name], "").strip()
            if not raw:
                continue
            try:
                kwargs[name] = convert(raw)
            except ValueError as exc:
                # The extra body and the key may hold secrets: say where the value is wrong, not what it is.
                shown = "(value not shown)" if name in ("extra_body", "api_key") else repr(raw)
                raise ValueError(f"{ENV[name]}={shown} is not valid: {exc}") from None
        for name in ("api", "score_kind", "preformat"):
            if name in kwargs:
                kwargs[name] = kwargs[name].lower()
        if kwargs.get("preformat") in ("none", "off"):
            kwargs.pop("preformat")
        if "extra_body" in kwargs and not isinstance(kwargs["extra_body"], dict):
            raise ValueError(f"{ENV['extra_body']} must be a JSON object")
        model = env.get(ENV["model"], "").strip() or model_id
        return cls(url, model, **kwargs)

    # The interface core.search uses.

    @property
    def probability_label(self) -> str:
        scale = f"logit / {self.temperature:g}" if self.temperature != 1 else "logit"
        return f"sigmoid({scale})"

    def probability(self, logits: np.ndarray) -> np.ndarray:
        return sigmoid(logits, self.temperature)

    @property
    def measured_pairs_per_second(self) -> float | None:
        """Pairs per second over this process's calls (wall time, server and network included)."""
        if self.seconds_scoring > 0:
            return self.pairs_scored / self.seconds_scoring
        return self.assumed_pairs_per_second

    def describe(self) -> str:
        return f"{self.model_id} served at {self.shown_endpoint} ({self.api} API)"

    def count_tokens(self, text: str) -> int:
        """Tokens in the given local tokenizer, else a rough count (words)."""
        tokenizer = self._load_tokenizer()
        if tokenizer is None:
            return len(text.split())
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_over_window(self, query: str, texts: list[str], template_tokens: int = 32) -> int:
        """Pairs longer than the server's window, when ``tokenizer`` and ``max_length`` are known; else 0.

        The server, not this client, truncates or rejects a long pair (vLLM answers HTTP 400).
        """
        if not self.max_length or not texts or self._load_tokenizer() is None:
            return 0
        query_tokens = self.count_tokens(query)
        return sum(query_tokens + self.count_tokens(text) + template_tokens > self.max_length for text in texts)

    def score(self, query: str, texts: list[str], batch_size: int = 8) -> np.ndarray:
        """The raw relevance score (logit, on the local backend's scale) of each (query, text) pair.

        ``batch_size`` is the local backend's GPU batch and is ignored: the server batches on its own;
        requests are split by ``max_documents_per_request`` and ``max_request_bytes``.
        """
        if not texts:
            return np.zeros(0, dtype=np.float32)
        query_sent, documents = self._formatted(query, texts)
        batches = self._batches(query_sent, documents)
        started = time.perf_counter()
        if len(batches) == 1 or self.concurrency == 1:
            values = [self._score_batch(query_sent, documents[a:b]) for a, b in batches]
        else:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(batches))) as pool:
                values = list(
                    pool.map(lambda span: self._score_batch(query_sent, documents[span[0] : span[1]]), batches)
                )
        elapsed = time.perf_counter() - started
        with self._stats_lock:
            self.seconds_scoring += elapsed
            self.pairs_scored += len(texts)
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
        if self.preformat is None:
            return query, list(texts)
        query_format, document_format = PREFORMATS[self.preformat]
        # str.replace, not str.format: a query or document may contain braces.
        return query_format.replace("{query}", query), [document_format.replace("{document}", t) for t in texts]

    def _payload(self, query: str, documents: list[str]) -> dict:
        if self.api == "score":
            body = {"text_1": query, "text_2": documents}
        else:
            body = {"query": query, "documents": documents, "top_n": len(documents)}
            if self.api == "infinity":
                body["return_documents"] = False
                if self.score_kind == "logit":
                    body["raw_scores"] = True
        if self.served_model:
            body["model"] = self.served_model
        body.update(self.extra_body)
        return body

    def _batches(self, query: str, documents: list[str]) -> list[tuple[int, int]]:
        """Spans of ``documents``, each within the document and byte limits of one request."""
        limit_docs = self.max_documents_per_request
        if self.max_request_bytes is None:
            return [(a, min(a + limit_docs, len(documents))) for a in range(0, len(documents), limit_docs)]
        overhead = len(self._encode(self._payload(query, []))) + 16  # top_n digits and separators
        spans: list[tuple[int, int]] = []
        start, size = 0, overhead
        for i, document in enumerate(documents):
            cost = len(json.dumps(document, ensure_ascii=False).encode("utf-8")) + 2  # the text and ", "
            if overhead + cost > self.max_request_bytes:
                raise self._error(
                    f"cannot take document {i + 1}: its request would be {overhead + cost} bytes, over the "
                    f"limit of {self.max_request_bytes} bytes (max_request_bytes)",
                )
            if i > start and (i - start >= limit_docs or size + cost > self.max_request_bytes):
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
                if attempt > self.max_retries:
                    raise self._error(failure.cause, failure.status, attempt) from None
                wait = failure.retry_after if failure.retry_after is not None else self.backoff * 2 ** (attempt - 1)
                if wait > self.max_backoff:
                    raise self._error(
                        f"{failure.cause}, and asked to wait {wait:g} s, longer than the {self.max_backoff:g} s "
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
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
            snippet = _body_snippet(exc.read() if exc.fp is not None else b"")
            cause = f"answered HTTP {status}" + (f": {snippet}" if snippet else f" ({exc.reason})")
            if status in RETRY_STATUSES:
                raise _Retryable(cause, status, _retry_after(exc.headers.get("Retry-After"))) from None
            if status in (401, 403):
                cause += "; check the API key (RERANK_SERVER_KEY)"
            elif status == 404:
                cause += "; check the URL and the API shape (rerank, score or infinity)"
            raise self._error(cause, status) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise self._error(f"did not answer within {self.timeout:g} s") from None
            if isinstance(reason, socket.gaierror):
                raise self._error(f"is unreachable: unknown host ({reason})") from None
            raise _Retryable(f"is down or unreachable ({_reason_text(reason)})") from None
        except TimeoutError:
            raise self._error(f"did not answer within {self.timeout:g} s") from None
        except (ConnectionError, http.client.HTTPException) as exc:
            raise _Retryable(f"dropped the connection ({_reason_text(exc)})") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise self._error(f"answered with something that is not JSON: {_body_snippet(raw)}")

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
            raise self._error(f"answered without a {expected} list: {_body_snippet(data)}")
        values = np.full(n, np.nan, dtype=np.float64)
        for item in items:
            index, value = (item.get("index"), item.get(key)) if isinstance(item, dict) else (None, None)
            if not isinstance(index, int) or not 0 <= index < n or not isinstance(value, (int, float)):
                raise self._error(f"answered with a malformed result: {_body_snippet(item)}")
            if not np.isnan(values[index]):
                raise self._error(f"answered twice for document index {index}")
            values[index] = float(value)
        if len(items) != n:
            raise self._error(f"answered {len(items)} results for {n} documents (does it cap top_n?)")
        if not np.all(np.isfinite(values)):
            raise self._error("answered a score that is not a finite number")
        return values

    def _to_logits(self, values: np.ndarray) -> np.ndarray:
        if self.score_kind == "logit":
            return values * self.score_scale
        if np.any((values < 0) | (values > 1)):
            worst = values[(values < 0) | (values > 1)][0]
            raise self._error(
                f"answered a score of {worst:g}, which is not a probability; if the server returns raw logits "
                "set score_kind='logit' (RERANK_SERVER_SCORE_KIND=logit)",
            )
        clipped = np.clip(values, np.finfo(np.float64).tiny, 1 - np.finfo(np.float64).eps)
        return (np.log(clipped) - np.log1p(-clipped)) * self.score_scale


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _reason_text(reason) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    text = str(reason).strip()
    return text or type(reason).__name__


def _body_snippet(body, limit: int = 300) -> str:
    """A short, single-line form of an error body; a JSON error's message where there is one."""
    if isinstance(body, bytes):
        text = body.decode("utf-8", errors="replace")
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
    else:
        parsed, text = body, json.dumps(body, ensure_ascii=False, default=str)
    if isinstance(parsed, dict):
        # vLLM/OpenAI: {"error": {"message": ...}} or {"message": ...}; FastAPI: {"detail": ...}.
        error = parsed.get("error")
        for message in (
            error.get("message") if isinstance(error, dict) else error,
            parsed.get("message"),
            parsed.get("detail"),
        ):
            if message:
                text = message if isinstance(message, str) else json.dumps(message, ensure_ascii=False)
                break
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_against_local(server: HttpReranker, local, query: str, texts: list[str]) -> dict:
    """Score the same pairs on ``server`` and on a local ``core.reranker.Reranker``; the differences.

    Used by ``docs/serving.md`` to verify a deployment. Returns the largest logit and probability
    differences and whether the two rankings agree.
    """
    remote_logits = server.score(query, texts)
    local_logits = local.score(query, texts)
    remote_p = server.probability(remote_logits)
    local_p = local.probability(local_logits)
    return {
        "max_logit_diff": float(np.max(np.abs(remote_logits - local_logits))),
        "max_probability_diff": float(np.max(np.abs(remote_p - local_p))),
        "same_order": bool(
            np.array_equal(np.argsort(-remote_logits, kind="stable"), np.argsort(-local_logits, kind="stable"))
        ),
        "server_logits": remote_logits.tolist(),
        "local_logits": local_logits.tolist(),
    }


__all__ = ["ENV", "PREFORMATS", "HttpReranker", "RerankServerError", "check_against_local", "endpoint_url"]
