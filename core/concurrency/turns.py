"""Turns at a shared model: one holder at a time, handed over in order of arrival, searches before bulk work.

A plain ``threading.Lock`` is not fair: the thread that releases it can take it straight back, so an
upload embedding batch after batch keeps a search waiting for the whole upload. Here a releasing holder
goes to the back of the line, and a search (``INTERACTIVE``) is served before any waiting batch of an
upload or an experiment (``BULK``), so it waits for one batch at most.

Whoever is about to wait is told so through ``waiting_notice``: the page says "waiting for another
search" instead of hanging silently.
"""

from __future__ import annotations

import contextvars
import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

INTERACTIVE = 0
BULK = 1

# Called with (what the lock guards, how many are ahead) just before this thread starts to wait.
_notice: contextvars.ContextVar[Callable[[str, int], None] | None] = contextvars.ContextVar(
    "waiting_notice", default=None
)
_waited: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar("waited_seconds", default=None)


@contextmanager
def waiting_notice(callback: Callable[[str, int], None]) -> Iterator[list[float]]:
    """Within the block, ``callback(name, ahead)`` runs before this thread waits for a turn; the list
    yielded collects the seconds each such wait took."""
    waited: list[float] = []
    notice_token, waited_token = _notice.set(callback), _waited.set(waited)
    try:
        yield waited
    finally:
        _notice.reset(notice_token)
        _waited.reset(waited_token)


class TurnLock:
    """A lock handed over by priority, then by order of arrival. Not reentrant."""

    def __init__(self, name: str):
        self.name = name
        self._condition = threading.Condition()
        self._line: list[tuple[int, int]] = []  # (priority, arrival) of each waiting thread: a heap
        self._arrivals = itertools.count()
        self._held = False
        self._last_interactive = float("-inf")  # time.monotonic() of the last search to ask for a turn

    @contextmanager
    def turn(self, priority: int = INTERACTIVE) -> Iterator[None]:
        ticket = (priority, next(self._arrivals))
        with self._condition:
            if priority == INTERACTIVE:
                self._last_interactive = time.monotonic()
            must_wait = self._held or bool(self._line)
            ahead = int(self._held) + sum(other < ticket for other in self._line)
            heapq.heappush(self._line, ticket)
        started = time.perf_counter()
        try:
            if must_wait and (notice := _notice.get()) is not None:
                notice(self.name, ahead)
            with self._condition:
                while self._held or self._line[0] != ticket:
                    self._condition.wait()
                heapq.heappop(self._line)
                self._held = True
        except BaseException:  # interrupted before the turn: leave the line, or everyone behind waits forever
            with self._condition:
                if ticket in self._line:
                    self._line.remove(ticket)
                    heapq.heapify(self._line)
                self._condition.notify_all()
            raise
        if must_wait and (waited := _waited.get()) is not None:
            waited.append(time.perf_counter() - started)
        try:
            yield
        finally:
            with self._condition:
                self._held = False
                self._condition.notify_all()

    def interactive_within(self, seconds: float) -> bool:
        """Whether a search asked for a turn in the last ``seconds``: bulk work then takes shorter turns."""
        with self._condition:
            return time.monotonic() - self._last_interactive < seconds

    @property
    def waiting(self) -> int:
        with self._condition:
            return len(self._line)
