"""ApsScheduler, the production runner of refresh jobs, on the real clock (no timing assertions)."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

from credd.clock import UTC
from credd.engine.scheduler import ApsScheduler


def test_jobs_run_once_are_replaced_by_key_and_can_be_cancelled() -> None:
    sched = ApsScheduler(workers=2)
    sched.start()
    try:
        ran: list[str] = []
        done = threading.Event()
        # "first" is due in an hour, so however busy the machine, it cannot run before it is
        # replaced; that it was replaced (not kept beside "second") shows as no job left for "p".
        now = datetime.now(UTC)
        sched.schedule("p", now + timedelta(hours=1), lambda: ran.append("first"))
        sched.schedule("p", now, lambda: (ran.append("second"), done.set()))  # replaces it
        sched.schedule("q", now + timedelta(hours=1), lambda: ran.append("never"))
        sched.cancel("q")
        sched.cancel("missing")  # no error
        assert done.wait(10)
        assert ran == ["second"]
        # APScheduler drops a run date job right after handing it to its pool: wait for that.
        deadline = time.monotonic() + 10
        while sched._scheduler.get_jobs() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sched._scheduler.get_jobs() == []  # neither "first" nor "q" is still pending
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
