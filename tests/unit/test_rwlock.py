"""The manager's commit lock: outcomes together, a reload alone, nesting, no starvation."""

from __future__ import annotations

import threading

import pytest

from credd.engine.rwlock import SharedExclusiveLock


def test_shared_holders_hold_it_together() -> None:
    lock = SharedExclusiveLock()
    inside = threading.Barrier(3, timeout=5)

    def outcome() -> None:
        with lock.shared():
            inside.wait()  # all three are inside at once, or the barrier breaks

    threads = [threading.Thread(target=outcome) for _ in range(2)]
    for t in threads:
        t.start()
    with lock.shared():
        inside.wait()
    for t in threads:
        t.join(5)
    assert not inside.broken


def test_exclusive_waits_for_shared_and_new_shared_wait_for_a_waiting_exclusive() -> None:
    lock = SharedExclusiveLock()
    order: list[str] = []
    held, release = threading.Event(), threading.Event()

    def outcome() -> None:
        with lock.shared():
            held.set()
            release.wait(5)
            order.append("outcome done")

    def reload() -> None:
        with lock.exclusive():
            order.append("reload")

    def late_outcome() -> None:
        with lock.shared():
            order.append("late outcome")

    first = threading.Thread(target=outcome)
    first.start()
    held.wait(5)
    r = threading.Thread(target=reload)
    r.start()
    while lock._waiting == 0:  # the reload is waiting
        threading.Event().wait(0.001)
    late = threading.Thread(target=late_outcome)
    late.start()
    release.set()
    for t in (first, r, late):
        t.join(5)
    assert order == ["outcome done", "reload", "late outcome"]


def test_nesting_either_way_under_exclusive_and_shared_under_shared() -> None:
    lock = SharedExclusiveLock()
    with lock.exclusive(), lock.shared(), lock.exclusive(), lock.shared():
        pass
    with lock.shared(), lock.shared():
        pass
    with lock.exclusive():  # everything was released
        pass


def test_upgrading_shared_to_exclusive_is_refused_not_a_deadlock() -> None:
    lock = SharedExclusiveLock()
    with lock.shared(), pytest.raises(RuntimeError), lock.exclusive():
        pass
    with lock.exclusive():
        pass
