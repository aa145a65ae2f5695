"""An OpenAI-compatible chat endpoint (vLLM, Ollama, llama.cpp's server, a hosted API) asked for one rating.

The key (or credentials in the URL) go in a header and nowhere else: errors and ``describe`` show the
URL redacted. A JSON schema constrains the answer where the server supports it; a server that rejects the
``response_format`` field is asked again without it and its answer parsed tolerantly. 429 and 5xx answers
and dropped connections are retried with backoff; anything else is an error naming the server and cause.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from core.errors import ExplorerError
from core.judging.prompt import RATING_SCHEMA
from core.rerank.server_urls import redact_url, split_credentials

RETRY_STATUSES = (429, 500, 502, 503, 504)


class JudgeError(ExplorerError):
    """The judge could not be asked; the message names the server (redacted) and says what to do."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class JudgeSettings:
    url: str  # the server's base URL (http://host:8000 or .../v1); may carry credentials
    model: str
    api_key: str | None = None
    timeout: float = 60.0
    max_retries: int = 3
    backoff: float = 0.5
    concurrency: int = 4
    max_tokens: int = 32

    def __repr__(self) -> str:  # never the key or the URL's credentials
        return f"JudgeSettings(url={redact_url(self.url)!r}, model={self.model!r})"


class ChatJudgeClient:
    def __init__(self, settings: JudgeSettings):
        self.settings = settings
        base, self._basic_auth = split_credentials(settings.url)
        base = base.rstrip("/")
        self.endpoint = base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")
        self.shown = redact_url(self.endpoint)
        self.structured = True  # dropped for good once the server refuses response_format
        self.requests_sent = 0

    @property
    def identity(self) -> str:
        return f"{self.settings.model} at {self.shown}"

    def ask(self, prompt: str) -> str:
        """The judge's raw answer text to ``prompt``."""
        body = {
            "model": self.settings.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0,
            "max_tokens": self.settings.max_tokens,
        }
        if self.structured:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "rating", "schema": RATING_SCHEMA},
            }
        try:
            data = self._post(body)
        except JudgeError as exc:
            if not (self.structured and exc.status == 400 and "response_format" in str(exc)):
                raise
            self.structured = False  # a server without structured output: ask plainly, parse tolerantly
            body.pop("response_format")
            data = self._post(body)
        try:
            return data["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise JudgeError(f"The judge at {self.shown} answered without a message: {str(data)[:200]}") from None

    def _post(self, body: dict) -> dict:
        for attempt in range(self.settings.max_retries + 1):
            try:
                return self._attempt(body)
            except _Retryable as failure:
                if attempt == self.settings.max_retries:
                    cause = (
                        f"{failure.cause} (after {attempt + 1} tries). Check that it runs, or lower the concurrency."
                    )
                    raise JudgeError(f"The judge at {self.shown} {cause}", failure.status) from None
                time.sleep(failure.retry_after or self.settings.backoff * 2**attempt)
        raise AssertionError("unreachable")

    def _attempt(self, body: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.settings.api_key:
            headers["Authorization"] = f"Bearer {self.settings.api_key}"
        elif self._basic_auth:
            headers["Authorization"] = self._basic_auth
        request = urllib.request.Request(self.endpoint, json.dumps(body).encode(), headers, method="POST")
        self.requests_sent += 1
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            text = self._clean((exc.read() if exc.fp is not None else b"").decode("utf-8", "replace")[:300])
            if exc.code in RETRY_STATUSES:
                raise _Retryable(
                    f"answered HTTP {exc.code}: {text}", exc.code, _seconds(exc.headers.get("Retry-After"))
                )
            advice = (
                " Check the key."
                if exc.code in (401, 403)
                else " Check the URL and the model name."
                if exc.code == 404
                else ""
            )
            raise JudgeError(f"The judge at {self.shown} answered HTTP {exc.code}: {text}.{advice}", exc.code) from None
        except (urllib.error.URLError, TimeoutError, socket.timeout, ConnectionError, http.client.HTTPException) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise _Retryable(f"is down or unreachable ({type(reason).__name__}: {self._clean(str(reason))})") from None
        try:
            return json.loads(raw)
        except ValueError:
            shown = self._clean(raw[:200].decode("utf-8", "replace"))
            raise JudgeError(f"The judge at {self.shown} answered with something that is not JSON: {shown}") from None

    def _clean(self, text: str) -> str:
        """``text`` with the key and the URL's credentials blanked (a server may echo what it was sent)."""
        for secret in (self.settings.api_key, self._basic_auth, self.settings.url):
            if secret:
                text = text.replace(secret, "***")
        return text


class _Retryable(Exception):
    def __init__(self, cause: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(cause)
        self.cause, self.status, self.retry_after = cause, status, retry_after


def _seconds(value: str | None) -> float | None:
    try:
        return min(30.0, float(value)) if value else None
    except ValueError:
        return None
