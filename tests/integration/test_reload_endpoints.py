"""SIGHUP with a changed ``[services]`` endpoint moves every kind of AWS call credd makes (STS,
IAM, SSO-OIDC, SSO portal) to the new endpoint (issue 9). Before, ``Daemon.reload()`` forgot
only the STS/IAM client factory: SSO-OIDC kept the old endpoint.

Two relays (plain HTTP, in this test) stand in front of the one sandbox on two ports and record
which operations reached them; the config points at relay A, then at relay B.
"""

from __future__ import annotations

import http.client
import json
import signal
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.fixtures.daemon import DaemonFactory, remember
from tests.fixtures.sandbox import unique_name
from tests.integration.test_sso_daemon import cli_login

pytestmark = pytest.mark.integration


class Relay:
    """Forwards every request to the sandbox unchanged (Host header included, so SigV4 holds)
    and records the operation: ``Action`` of query-protocol calls, else the path."""

    def __init__(self, target: str) -> None:
        self.seen: list[str] = []
        parts = urlsplit(target)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                action = parse_qs(body.decode("latin-1")).get("Action", [""])[0]
                relay.seen.append(action or urlsplit(self.path).path)
                conn = http.client.HTTPConnection(host, port, timeout=60)
                try:
                    conn.putrequest(
                        self.command, self.path, skip_host=True, skip_accept_encoding=True
                    )
                    for key, value in self.headers.items():
                        conn.putheader(key, value)
                    conn.endheaders(body)
                    reply = conn.getresponse()
                    data = reply.read()
                finally:
                    conn.close()
                self.send_response(reply.status)
                for key, value in reply.getheaders():
                    if key.lower() not in {"transfer-encoding", "connection", "content-length"}:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_any

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def services(url: str) -> str:
    return "[services relayed]\n" + "".join(
        f"{svc} =\n  endpoint_url = {url}\n" for svc in ("sts", "iam", "sso", "sso_oidc")
    )


def user_block(name: str, extra: str = "") -> str:
    return f"[profile {name}]\nregion = us-east-1\nservices = relayed\ncredd = true\n{extra}\n"


def wait_fresh(d: Any, names: set[str], timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        states = {p["name"]: p for p in d.status()["profiles"]}
        if names <= set(states) and all(states[n]["state"] == "fresh" for n in names):
            return states
        assert time.monotonic() < deadline, {n: states.get(n, {}).get("state") for n in names}
        time.sleep(0.2)


@pytest.mark.timeout(240)
def test_sighup_moves_sts_iam_sso_oidc_and_portal_calls_to_the_new_endpoint(
    daemons: DaemonFactory,
) -> None:
    sandbox = daemons.sandbox
    a, b = Relay(sandbox.endpoint), Relay(sandbox.endpoint)
    try:
        admin = sandbox.admin
        user, device = sandbox.new_user_with_mfa("hup")
        user2, device2 = sandbox.new_user_with_mfa("hup2")
        remember(user.secret_access_key, device.seed, user2.secret_access_key, device2.seed)
        for name, u, dev in (("user", user, device), ("user2", user2, device2)):
            daemons.store.set_long_term_keys(name, u.access_key_id, u.secret_access_key)
            daemons.store.set_totp_seed(name, dev.seed)
        role = admin.create_role(unique_name("hup"), trusted=[user.arn], mfa_required=True)
        # SSO: access tokens of 20 min, so a token node always refreshes what it finds (< 25 min)
        admin.set_sso_settings(access_token_seconds=1200)
        instance = admin.create_sso_instance(region="us-east-1")
        sso_user = admin.create_sso_user(unique_name("hup"), start_url=instance)
        admin.assign_sso_role(sso_user, "Reader", start_url=instance)
        sso = (
            f"[sso-session dev]\nsso_start_url = {instance.start_url}\nsso_region = us-east-1\n"
            "sso_registration_scopes = sso:account:access\n\n"
        )

        def config(url: str, dev_extra: str = "", more: str = "") -> None:
            (daemons.aws / "config").write_text(
                user_block("user")  # no mfa_serial: discovered with iam:ListMFADevices
                + user_block("r", f"role_arn = {role.arn}\nsource_profile = user\n")
                + user_block(
                    "dev",
                    "sso_session = dev\nsso_account_id = 123456789012\nsso_role_name = Reader\n"
                    + dev_extra,
                )
                + more
                + sso
                + services(url)
            )

        config(a.url)
        cli_login(
            sandbox,
            instance.start_url,
            sso_user,
            daemons.aws / "sso" / "cache",
            timedelta(minutes=10),
        )
        d = daemons.start()
        wait_fresh(d, {"user", "r", "dev"})
        kinds = {
            "ListMFADevices",
            "GetSessionToken",
            "AssumeRole",
            "/token",
            "/federation/credentials",
        }
        assert kinds <= set(a.seen), a.seen  # every kind went to A
        assert b.seen == []

        # New endpoint; a new IAM user (IAM discovery + GetSessionToken), dev's nodes renewed.
        config(b.url, "credd_file_profile = dev-renewed\n", user_block("user2"))
        seen_a = len(a.seen)
        assert d.proc is not None
        d.proc.send_signal(signal.SIGHUP)
        wait_fresh(d, {"user", "user2", "r", "dev"})
        done = d.run("refresh", "r")
        assert done.returncode == 0, done.stderr
        assert json.loads(d.run("status", "--json").stdout)["profiles"]
        assert a.seen[seen_a:] == [], a.seen[seen_a:]  # nothing reached the old endpoint
        assert kinds <= set(b.seen), b.seen  # every kind reached the new one
    finally:
        a.close()
        b.close()
