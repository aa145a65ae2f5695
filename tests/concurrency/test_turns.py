"""TurnLock with real threads: one holder, arrival order, searches ahead of bulk work, waits announced."""

from __future__ import annotations

import threading
import time

from core.concurrency.turns import BULK, INTERACTIVE, TurnLock, waiting_notice


def _hold(lock: TurnLock, priority: int, log: list, name: str, seconds: float = 0.0, started=None) -> None:
    if started is not None:
        started.set()
    with lock.turn(priority):
        log.append(("in", name))
        time.sleep(seconds)
        log.append(("out", name))


def _holding(lock: TurnLock, log: list, name: str, seconds: float) -> threading.Thread:
    """A thread that holds ``lock`` (bulk work) for ``seconds``, started and already holding it."""
    holder = threading.Thread(target=_hold, args=(lock, BULK, log, name, seconds))
    holder.start()
    while not log:
        time.sleep(0.001)
    return holder


def _wait_for_line(lock: TurnLock, n: int) -> None:
    deadline = time.time() + 10
    while lock.waiting < n:
        assert time.time() < deadline, "the threads never queued"
        time.sleep(0.005)


def test_one_holder_at_a_time_and_arrival_order_within_a_priority():
    lock, log = TurnLock("model"), []
    holder = _holding(lock, log, "first", 0.2)
    others = []
    for i in range(4):  # each queues behind the ones before it
        thread = threading.Thread(target=_hold, args=(lock, BULK, log, f"b{i}"))
        thread.start()
        _wait_for_line(lock, i + 1)
        others.append(thread)
    for thread in [holder, *others]:
        thread.join(10)
    assert log == [(e, n) for n in ["first", "b0", "b1", "b2", "b3"] for e in ("in", "out")]


def test_a_search_goes_ahead_of_waiting_bulk_work():
    lock, log = TurnLock("model"), []
    holder = _holding(lock, log, "batch0", 0.2)
    bulk = threading.Thread(target=_hold, args=(lock, BULK, log, "batch1"))
    bulk.start()
    _wait_for_line(lock, 1)
    search = threading.Thread(target=_hold, args=(lock, INTERACTIVE, log, "search"))
    search.start()
    for thread in (holder, bulk, search):
        thread.join(10)
    assert [name for event, name in log if event == "in"] == ["batch0", "search", "batch1"]


def test_an_upload_looping_on_the_lock_lets_a_search_in_after_one_batch():
    lock, stop, batches = TurnLock("model"), threading.Event(), []

    def upload() -> None:  # takes the lock back as soon as it lets go, as an embedding loop does
        while not stop.is_set():
            with lock.turn(BULK):
                batches.append(time.perf_counter())
                time.sleep(0.05)

    thread = threading.Thread(target=upload)
    thread.start()
    while len(batches) < 3:
        time.sleep(0.01)
    asked = time.perf_counter()
    with lock.turn(INTERACTIVE):
        got = time.perf_counter()
        during = len([b for b in batches if b > asked])
    stop.set()
    thread.join(10)
    assert during <= 1 and got - asked < 0.5


def test_the_waiting_notice_says_what_and_how_many_ahead_and_times_the_wait():
    lock, log = TurnLock("the bi-encoder"), []
    holder = _holding(lock, log, "batch", 0.3)
    notices = []
    with waiting_notice(lambda name, ahead: notices.append((name, ahead))) as waited:
        with lock.turn(INTERACTIVE):
            pass
        with lock.turn(INTERACTIVE):  # free now: no notice, no wait recorded
            pass
    holder.join(10)
    assert notices == [("the bi-encoder", 1)]
    assert len(waited) == 1 and 0.1 < waited[0] < 5


def test_no_notice_outside_a_waiting_notice_block_and_in_other_threads():
    lock, log, notices = TurnLock("model"), [], []
    with waiting_notice(lambda name, ahead: notices.append(name)):
        holder = _holding(lock, log, "h", 0.2)
        other = threading.Thread(target=_hold, args=(lock, BULK, log, "other"))  # its own context: no notice
        other.start()
        other.join(10)
        holder.join(10)
    assert notices == []


def test_a_waiter_interrupted_leaves_the_line_so_the_rest_are_served():
    lock, log = TurnLock("model"), []
    holder = _holding(lock, log, "h", 0.2)

    def interrupted(name: str, ahead: int) -> None:
        raise KeyboardInterrupt  # raised before the wait: the ticket must not stay in the line

    try:
        with waiting_notice(interrupted), lock.turn(INTERACTIVE):
            raise AssertionError("must not get the turn")
    except KeyboardInterrupt:
        pass
    holder.join(10)
    with lock.turn(INTERACTIVE):  # would wait forever on a ticket left behind
        pass
    assert lock.waiting == 0


def test_the_lock_knows_whether_a_search_asked_recently():
    lock = TurnLock("model")
    with lock.turn(BULK):
        pass
    assert not lock.interactive_within(60)  # bulk work alone never shortens its own turns
    with lock.turn(INTERACTIVE):
        pass
    assert lock.interactive_within(60)
    time.sleep(0.05)
    assert not lock.interactive_within(0.01)
