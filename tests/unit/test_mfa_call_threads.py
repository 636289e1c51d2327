"""Two coded calls at once on one shared botocore client (credd.aws.clients shares a client per
settings and credentials): each call judges only its own attempts when it decides whether its
MFA code was spent (credd.sources.mfa_call). A local STS stand-in answers one call "denied"
(the code was judged: spent) and holds the other until the first is over, then throttles it
(never reached a decision: not spent)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import botocore.session
import pytest
from botocore.config import Config

from credd.sources.mfa import CodeLedger
from credd.sources.mfa_call import send_code
from credd.testing.clock import FakeClock

DENIED, THROTTLED = "111111", "222222"


class StsStandIn(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.throttled_arrived = threading.Event()
        self.release_throttled = threading.Event()


class _Handler(BaseHTTPRequestHandler):
    server: StsStandIn

    def log_message(self, *_: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        code = parse_qs(body).get("TokenCode", [""])[0]
        if code == THROTTLED:
            self.server.throttled_arrived.set()
            self.server.release_throttled.wait(30)
            self._error("Throttling", "Rate exceeded")
        else:
            self._error(
                "AccessDenied",
                "MultiFactorAuthentication failed with invalid MFA one time pass code.",
            )

    def _error(self, code: str, message: str) -> None:
        data = (
            '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
            f"<Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            "<RequestId>r</RequestId></ErrorResponse>"
        ).encode()
        self.send_response(400)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def sts_stand_in() -> Iterator[StsStandIn]:
    server = StsStandIn()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release_throttled.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_two_concurrent_coded_calls_on_one_client_judge_only_their_own_attempts(
    sts_stand_in: StsStandIn,
) -> None:
    host, port = sts_stand_in.server_address[:2]
    client = botocore.session.get_session().create_client(
        "sts",
        region_name="us-east-1",
        endpoint_url=f"http://{host}:{port}",
        aws_access_key_id="AKIAEXAMPLEEXAMPLE00",
        aws_secret_access_key="x" * 40,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )
    ledger = CodeLedger(FakeClock())
    errors: dict[str, str] = {}

    def coded_call(device: str, code: str) -> None:
        try:
            send_code(ledger, device, code, client, lambda: client.get_session_token(
                SerialNumber=device, TokenCode=code, DurationSeconds=900))  # fmt: skip
        except Exception as exc:  # the stand-in refuses both calls
            errors[device] = getattr(exc, "response", {}).get("Error", {}).get("Code", repr(exc))

    throttled = threading.Thread(target=coded_call, args=("arn:aws:iam::1:mfa/b", THROTTLED))
    throttled.start()
    assert sts_stand_in.throttled_arrived.wait(30)  # its call is in flight, its judge listening
    coded_call("arn:aws:iam::1:mfa/a", DENIED)  # judged while the other call waits
    sts_stand_in.release_throttled.set()
    throttled.join(30)
    assert errors == {"arn:aws:iam::1:mfa/a": "AccessDenied", "arn:aws:iam::1:mfa/b": "Throttling"}
    assert ledger.was_used("arn:aws:iam::1:mfa/a", DENIED)  # AWS decided on it: spent
    assert not ledger.was_used("arn:aws:iam::1:mfa/b", THROTTLED)  # never judged: usable again
