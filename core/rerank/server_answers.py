"""Reading a rerank server's answers: a Retry-After header, an error body worth quoting, a reason phrase."""

from __future__ import annotations

import json
import time
from email.utils import parsedate_to_datetime


def retry_after(value: str | None) -> float | None:
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


def reason_text(reason) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    text = str(reason).strip()
    return text or type(reason).__name__


def body_snippet(body, limit: int = 300) -> str:
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
