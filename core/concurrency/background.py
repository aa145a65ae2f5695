"""Slow work (imports, model loads, opening an index) started in a thread, so a page can render meanwhile."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")
Step = Callable[[str], None]


class BackgroundLoad(Generic[T]):
    """``work(step)`` run at once in a daemon thread; ``step(text)`` says what it is doing now."""

    def __init__(self, work: Callable[[Step], T], first_step: str = "Starting"):
        self.step = first_step
        self.started = time.monotonic()
        self.finished: float | None = None
        self._done = threading.Event()
        self._result: T | None = None
        self._error: BaseException | None = None
        threading.Thread(target=self._run, args=(work,), daemon=True, name=f"load: {first_step}").start()

    def _run(self, work: Callable[[Step], T]) -> None:
        try:
            self._result = work(self._set_step)
        except BaseException as exc:  # handed to whoever asks for the result, in their thread
            self._error = exc
        finally:
            self.finished = time.monotonic()
            self._done.set()

    def _set_step(self, text: str) -> None:
        self.step = text

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def failed(self) -> bool:
        return self.done and self._error is not None

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def result(self) -> T:
        """The loaded object; raises what the work raised. Blocks until the work is over."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]


class Loads:
    """One load per key for the process; a load that failed is started again when next asked for."""

    def __init__(self):
        self._lock = threading.Lock()
        self._loads: dict[Hashable, BackgroundLoad] = {}

    def get(self, key: Hashable, work: Callable[[Step], T], first_step: str = "Starting") -> BackgroundLoad[T]:
        with self._lock:
            load = self._loads.get(key)
            if load is None:
                load = self._loads[key] = BackgroundLoad(work, first_step)
            return load

    def forget_failure(self, key: Hashable) -> None:
        """Drop ``key``'s load if it failed, so the next ``get`` tries again (a fixed setting, a server back up)."""
        with self._lock:
            load = self._loads.get(key)
            if load is not None and load.failed:
                del self._loads[key]
