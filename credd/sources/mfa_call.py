"""Sending an MFA code to STS, and when that code counts as spent.

AWS accepts each code of a device once, so the :class:`~credd.sources.mfa.CodeLedger` remembers the
step of the last code used and the next call waits for a new step (up to 30 s). A code is
recorded as spent only when AWS could have consumed it, judged per attempt (botocore retries
inside one call; its ``needs-retry`` event reports every attempt's outcome):

- **spent**: the call succeeded (AWS accepted the code); AWS answered with a decision (any 4xx
  but throttling: the code was rejected, or the request was processed far enough to be
  refused); or the request may have reached STS without an answer coming back (a read timeout,
  a connection closed after sending, anything unknown): AWS may have used the code, and sending
  it again would be refused as a reuse;
- **not spent**: a throttle (``Throttling``/429: rate limiting happens at the front door, before
  the request is processed), a 5xx (the request failed as a whole: no session was issued), or
  a connection that could not be made (nothing was sent), on every attempt; also a call that
  failed before sending (parameter validation).

If AWS ever did consume a code in a call it answered 5xx, the retry in the same step is refused
as a reuse and handled as any rejected unattended code (retried at the next step): the cost this
module saves in the common case (a 30 s wait after every throttled or failed call) is then paid
once, in the rare one.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any, TypeVar

from credd.aws.errors import THROTTLE_CODES as THROTTLED
from credd.sources.mfa import CodeLedger

T = TypeVar("T")


def may_have_consumed(response: Any = None, caught_exception: BaseException | None = None) -> bool:
    """Whether one attempt (botocore's ``needs-retry`` arguments) could have used the code."""
    import botocore.exceptions as bx

    if caught_exception is not None:
        never_sent = (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ProxyConnectionError)
        return not isinstance(caught_exception, never_sent)
    if not isinstance(response, tuple) or len(response) != 2:
        return True  # unknown: the safe side
    http, parsed = response
    status = int(getattr(http, "status_code", 0) or 0)
    if 200 <= status < 300:
        return True
    error = parsed.get("Error", {}) if isinstance(parsed, dict) else {}
    code = str(error.get("Code", "")) if isinstance(error, dict) else ""
    return not (status == 429 or code in THROTTLED or status >= 500)


#: The attempts of the coded call running in this thread (botocore makes a call, retries
#: included, in the calling thread): the one ``needs-retry`` handler on a client reports each
#: attempt to the call it belongs to, never to another thread's call on the same shared client.
_ATTEMPTS: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar(
    "credd_mfa_attempts", default=None
)
_HANDLER_ID = "credd-mfa-judge"


def _judge(response: Any = None, caught_exception: BaseException | None = None, **_: Any) -> None:
    attempts = _ATTEMPTS.get()
    if attempts is not None:
        attempts.append(may_have_consumed(response, caught_exception))


def send_code(ledger: CodeLedger, device: str, code: str, client: Any, call: Callable[[], T]) -> T:
    """Run ``call`` (which sends ``code`` for ``device`` with ``client``) and record the code
    as spent in ``ledger`` when AWS could have consumed it (see the module's doc). The caller
    holds ``ledger.device_lock(device)``.

    The client may be shared by many threads: one handler is registered on it once and for
    all (registering and removing handlers while other threads emit events could make them
    miss theirs), and it reports each attempt to this thread's call only."""
    step = ledger.step()
    client.meta.events.register("needs-retry", _judge, unique_id=_HANDLER_ID)  # once per client
    consumed: list[bool] = []
    token = _ATTEMPTS.set(consumed)
    try:
        result = call()
    except BaseException:
        if any(consumed):
            ledger.record(device, code, step)
        raise
    finally:
        _ATTEMPTS.reset(token)
    ledger.record(device, code, step)
    return result
