"""BackgroundLoad and Loads with real threads: the page keeps going while the work runs, failures retry."""

from __future__ import annotations

import threading

import pytest

from core.concurrency.background import BackgroundLoad, Loads


def test_the_work_runs_in_another_thread_and_reports_its_step():
    release, seen = threading.Event(), []

    def work(step):
        seen.append(threading.current_thread() is not threading.main_thread())
        step("Opening the index")
        release.wait(10)
        return 42

    load = BackgroundLoad(work, "Loading the bi-encoder")
    assert not load.wait(0.05) and not load.done  # the caller is not blocked
    deadline = threading.Event()
    while load.step != "Opening the index" and not deadline.wait(0.01):
        pass
    release.set()
    assert load.result() == 42 and load.done and not load.failed and seen == [True]
    assert load.seconds >= 0


def test_a_failure_is_raised_to_whoever_asks_and_is_retried_after_forget():
    calls = []

    def work(step):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("the index is locked by another process")
        return "open"

    loads = Loads()
    first = loads.get("ws", work)
    first.wait(10)
    assert first.failed
    with pytest.raises(OSError, match="locked"):
        first.result()
    assert loads.get("ws", work) is first  # not retried behind the page's back
    loads.forget_failure("ws")
    second = loads.get("ws", work)
    assert second is not first and second.result() == "open" and len(calls) == 2
    loads.forget_failure("ws")  # a success is kept
    assert loads.get("ws", work) is second


def test_one_load_per_key_however_many_sessions_ask_at_once():
    started, release = [], threading.Event()

    def work(step):
        started.append(1)
        release.wait(10)
        return object()

    loads = Loads()
    got = []
    threads = [threading.Thread(target=lambda: got.append(loads.get("ws", work))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    release.set()
    assert len({id(load) for load in got}) == 1 and len(started) == 1
