"""Asking the judge about (query, document) pairs: once each (a cache on disk), several at a time, with
progress and cancel. An answer that does not parse into 0–3 is "unrateable", kept with its raw text."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from core.judging.answers import parse_grade
from core.judging.client import ChatJudgeClient, JudgeError
from core.judging.prompt import DEFAULT_TEMPLATE, check_template, render


@dataclass(frozen=True)
class Pair:
    qid: str
    query: str
    doc_id: str
    text: str
    instruction: str = ""


@dataclass
class Judgment:
    pair: Pair
    grade: int | None  # None: unrateable
    raw: str  # the judge's answer as it came
    cached: bool = False


class JudgmentCache:
    """Answers by (judge, prompt template, query, instruction, text hash), in SQLite."""

    def __init__(self, path: Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, raw TEXT NOT NULL)")
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT raw FROM answers WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, raw: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?)", (key, raw))
            self._db.commit()


class Judge:
    def __init__(self, client: ChatJudgeClient, cache: JudgmentCache | None = None, template: str = DEFAULT_TEMPLATE):
        check_template(template)
        self.client, self.cache, self.template = client, cache, template

    def prompt(self, pair: Pair) -> str:
        return render(self.template, pair.query, pair.text, pair.instruction)

    def key(self, pair: Pair) -> str:
        text_hash = hashlib.sha256(pair.text.encode("utf-8", "surrogatepass")).hexdigest()
        parts = [self.client.identity, self.template, pair.query, pair.instruction, text_hash]
        return hashlib.sha256(json.dumps(parts).encode("utf-8", "surrogatepass")).hexdigest()

    def rate(self, pair: Pair) -> Judgment:
        """One pair: from the cache, else asked (a JudgeError when the judge cannot be reached)."""
        key = self.key(pair)
        raw = self.cache.get(key) if self.cache else None
        if raw is not None:
            return Judgment(pair, parse_grade(raw), raw, cached=True)
        raw = self.client.ask(self.prompt(pair))
        if self.cache:
            self.cache.put(key, raw)
        return Judgment(pair, parse_grade(raw), raw)

    def rate_all(
        self,
        pairs: list[Pair],
        progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> list[Judgment]:
        """Every pair, ``concurrency`` at a time; stops at the first JudgeError (what was answered is cached)."""
        done: list[Judgment] = []
        with ThreadPoolExecutor(max_workers=max(1, self.client.settings.concurrency)) as pool:
            futures = [pool.submit(self._rate_unless, pair, should_stop) for pair in pairs]
            try:
                for future in futures:
                    judgment = future.result()
                    if judgment is not None:
                        done.append(judgment)
                        if progress:
                            progress(len(done), len(pairs))
            except JudgeError:
                for future in futures:
                    future.cancel()
                raise
        return done

    def _rate_unless(self, pair: Pair, should_stop) -> Judgment | None:
        return None if should_stop() else self.rate(pair)
