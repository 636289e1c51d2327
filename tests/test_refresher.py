"""ApsScheduler, the production runner of refresh jobs, on the real clock (no timing assertions)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from credd.clock import UTC
from credd.refresher import ApsScheduler


def test_jobs_run_once_are_replaced_by_key_and_can_be_cancelled() -> None:
    sched = ApsScheduler(workers=2)
    sched.start()
    try:
        ran: list[str] = []
        done = threading.Event()
        soon = datetime.now(UTC) + timedelta(milliseconds=50)
        sched.schedule("p", soon, lambda: ran.append("first"))
        sched.schedule("p", soon, lambda: (ran.append("second"), done.set()))  # replaces it
        sched.schedule("q", soon + timedelta(hours=1), lambda: ran.append("never"))
        sched.cancel("q")
        sched.cancel("missing")  # no error
        assert done.wait(10)
        assert ran == ["second"]
        assert sched.alive()
    finally:
        sched.shutdown()


def test_alive_is_false_when_the_loop_thread_died() -> None:
    from apscheduler.schedulers.base import STATE_STOPPED

    sched = ApsScheduler()
    assert sched.alive()  # not started: nothing has died
    sched.start()
    inner = sched._scheduler
    thread = inner._thread
    inner.state = STATE_STOPPED  # the loop ends as if it had crashed, without shutdown()
    inner.wakeup()
    thread.join(10)
    assert not sched.alive()
