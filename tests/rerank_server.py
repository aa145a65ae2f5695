"""A real HTTP rerank server for the tests, scoring with the tiny zerank fixture model.

It stands in for vLLM serving zerank-2 as a sequence classifier whose head is the "Yes" row divided by
5 (see docs/serving.md): the server's own logit is ``logit / 5`` and its default answer is
``sigmoid(logit / 5)``; ``"use_activation": false`` (vLLM) or ``"raw_scores": true`` (Infinity) in a
request, or ``activation=False`` for the whole server, gives the raw ``logit / 5``. It serves:

- ``POST /v1/rerank`` and ``POST /rerank``: ``{"query", "documents", "top_n"?}`` ->
  ``{"results": [{"index", "relevance_score", "document"}]}``, sorted by score as vLLM sorts them;
- ``POST /score`` and ``POST /v1/score``: ``{"text_1", "text_2"}`` -> ``{"data": [{"index", "score"}]}``.

By default pairs are scored by sentence-transformers' CrossEncoder on the zerank layout (chat template
included, as the local backend does) and divided by 5. ``pair_mode="concatenate"`` scores ``query +
document`` as one prompt with no template, as vLLM does for a seq-cls model served without a score
template (the client then sends pre-formatted text). ``seq_cls_path`` serves a converted
``Qwen3ForSequenceClassification`` checkpoint instead (docs/serving.md), one unpadded sequence per pair,
with the prompt rendered from ``chat_template`` (vLLM's ``--chat-template``, query/document roles) or,
without one, ``query + document``.

Switches: ``fail_first`` answers the first N requests with ``fail_status`` (and ``Retry-After`` when
``retry_after`` is set); ``max_documents`` answers 400 above that many documents; ``api_key`` demands a
bearer token; ``delay`` sleeps before answering; ``answer_probabilities_as_logits`` is a misconfigured
server. Every request is recorded in ``requests``.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self

SCALE = 5.0  # the converted head is the "Yes" row / 5

# Loaded models, shared by every server on the same fixture (loading is the slow part of a test).
_MODELS: dict[tuple[str, str], object] = {}
_MODELS_LOCK = threading.Lock()


@dataclass
class Recorded:
    path: str
    documents: int
    body_bytes: int
    status: int
    authorization: str | None
    body: dict = field(repr=False, default_factory=dict)


class RerankTestServer:
    def __init__(
        self,
        model_path: Path,
        *,
        activation: bool = True,
        pair_mode: str = "template",
        seq_cls_path: Path | None = None,
        chat_template: str | None = None,
        fail_first: int = 0,
        fail_status: int = 503,
        retry_after: str | None = None,
        max_documents: int | None = None,
        api_key: str | None = None,
        delay: float = 0.0,
        answer_probabilities_as_logits: bool = False,
    ):
        self.model_path = Path(model_path)
        self.activation = activation
        self.pair_mode = pair_mode
        self.seq_cls_path = Path(seq_cls_path) if seq_cls_path is not None else None
        self.chat_template = chat_template
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.retry_after = retry_after
        self.max_documents = max_documents
        self.api_key = api_key
        self.delay = delay
        self.answer_probabilities_as_logits = answer_probabilities_as_logits
        self.requests: list[Recorded] = []
        self.last_response: dict | None = None
        self.failures_sent = 0
        self.received = 0  # requests that arrived, answered or not (a timed-out one is never recorded)
        self._lock = threading.Lock()
        self._model_lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Scoring.

    def served_logits(self, query: str, documents: list[str]) -> list[float]:
        """The served model's own logit for each pair: zerank's "Yes" logit / 5."""
        with self._model_lock:
            if self.seq_cls_path is not None:
                return [self._seq_cls_logit(self._prompt(query, document)) for document in documents]
            if self.pair_mode == "concatenate":
                return [self._causal_logit(query + document) / SCALE for document in documents]
            return [logit / SCALE for logit in self._cross_encoder_logits(query, documents)]

    def _prompt(self, query: str, document: str) -> str:
        """vLLM's prompt for a pair: the score template rendered with query/document roles, else q + d."""
        if self.chat_template is None:
            return query + document
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        template = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(self.chat_template)
        messages = [{"role": "query", "content": query}, {"role": "document", "content": document}]
        return template.render(messages=messages)

    def _cross_encoder_logits(self, query: str, documents: list[str]) -> list[float]:
        import torch

        scores = self._model("cross-encoder", self.model_path).predict(
            [(query, d) for d in documents],
            batch_size=4,
            activation_fn=torch.nn.Identity(),
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return [float(s) for s in scores.reshape(-1)]

    def _causal_logit(self, prompt: str) -> float:
        import torch

        tokenizer, model, yes = self._model("causal", self.model_path)
        ids = tokenizer(prompt, add_special_tokens=True, return_tensors="pt")
        with torch.no_grad():
            return float(model(**ids).logits[0, -1, yes])

    def _seq_cls_logit(self, prompt: str) -> float:
        """One unpadded sequence, as vLLM runs it; the head pools the last token."""
        import torch

        tokenizer, model = self._model("seq-cls", self.seq_cls_path)
        ids = tokenizer(prompt, add_special_tokens=True, return_tensors="pt")
        with torch.no_grad():
            return float(model(**ids).logits[0, 0])

    @staticmethod
    def _model(kind: str, path: Path):
        import torch

        key = (str(path), kind)
        with _MODELS_LOCK:
            if key not in _MODELS:
                if kind == "cross-encoder":
                    from sentence_transformers import CrossEncoder

                    _MODELS[key] = CrossEncoder(str(path), device="cpu", activation_fn=torch.nn.Identity())
                elif kind == "causal":
                    from transformers import AutoModelForCausalLM, AutoTokenizer

                    tokenizer = AutoTokenizer.from_pretrained(path)
                    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
                    _MODELS[key] = (tokenizer, model, tokenizer.convert_tokens_to_ids("Yes"))
                else:
                    from transformers import AutoModelForSequenceClassification, AutoTokenizer

                    model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32).eval()
                    _MODELS[key] = (AutoTokenizer.from_pretrained(path), model)
            return _MODELS[key]

    def served_values(self, query: str, documents: list[str], activation: bool) -> list[float]:
        if self.answer_probabilities_as_logits:  # a misconfigured server: raw logits whatever is asked
            return [value * SCALE for value in self.served_logits(query, documents)]
        values = self.served_logits(query, documents)
        if activation:
            values = [1.0 / (1.0 + math.exp(-v)) for v in values]
        return values

    # The HTTP side.

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the server first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> RerankTestServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):
                server._handle(self)

            def do_GET(self):
                self._send(404, {"error": {"message": f"no route {self.path}"}})

            def _send(self, status: int, body: dict, headers: dict | None = None):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _handle(self, handler) -> None:
        with self._lock:
            self.received += 1
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length)
        authorization = handler.headers.get("Authorization")
        path = handler.path.rstrip("/")
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        documents = body.get("text_2") if path.endswith("/score") else body.get("documents")
        n = len(documents) if isinstance(documents, list) else 0

        def record(status: int) -> None:
            with self._lock:
                self.requests.append(Recorded(path, n, len(raw), status, authorization, body))

        with self._lock:
            failing = self.failures_sent < self.fail_first
            self.failures_sent += failing
        if failing:
            record(self.fail_status)
            headers = {"Retry-After": self.retry_after} if self.retry_after is not None else None
            handler._send(self.fail_status, {"error": {"message": "Service temporarily overloaded"}}, headers)
            return
        if self.api_key is not None and authorization != f"Bearer {self.api_key}":
            record(401)
            handler._send(401, {"error": "Unauthorized"})
            return
        if path not in ("/v1/rerank", "/rerank", "/score", "/v1/score"):
            record(404)
            handler._send(404, {"detail": "Not Found"})
            return
        if not isinstance(documents, list) or not documents:
            record(400)
            handler._send(400, {"error": {"message": "documents must be a non-empty list"}})
            return
        if self.max_documents is not None and n > self.max_documents:
            record(400)
            handler._send(
                400,
                {"object": "error", "message": f"at most {self.max_documents} documents per request, got {n}"},
            )
            return
        if self.delay:
            time.sleep(self.delay)
        query = body.get("text_1") if path.endswith("/score") else body.get("query")
        activation = self.activation
        if body.get("use_activation") is False or body.get("raw_scores") is True:
            activation = False
        values = self.served_values(query, documents, activation)
        if path.endswith("/score"):
            response = {
                "object": "list",
                "data": [{"index": i, "object": "score", "score": v} for i, v in enumerate(values)],
            }
        else:
            order = sorted(range(n), key=lambda i: -values[i])
            top_n = body.get("top_n") or n
            response = {
                "id": "rerank-test",
                "model": body.get("model"),
                "results": [
                    {"index": i, "relevance_score": values[i], "document": {"text": documents[i]}}
                    for i in order[:top_n]
                ],
            }
        self.last_response = response
        record(200)
        handler._send(200, response)


def closed_port() -> int:
    """A local port with nothing listening on it."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
