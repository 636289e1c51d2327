"""The loopback container endpoint over the in-memory backend: botocore's own ContainerProvider
as the client, and raw requests (read with h11) for every refusal."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from botocore.credentials import ContainerProvider
from botocore.exceptions import CredentialRetrievalError

from credd.errors import ConfigError, UsageError
from credd.server.container import ContainerApi, LoopbackServer, PortInUse, tcp_owner
from credd.server.endpoint import PATH_PREFIX, EndpointSettings, default_port, ensure_token
from credd.server.peeruid import TcpOwner
from credd.testing.memory import MemoryBackend
from tests.fixtures.transport import SECRET, TOKEN, RawResponse, demo_credentials, read_response

LIVE_UNTIL = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=12)

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


class Endpoint:
    def __init__(self, server: LoopbackServer, token: str, token_file: Path) -> None:
        self.server = server
        self.token = token
        self.token_file = token_file

    @property
    def port(self) -> int:
        return self.server.port

    def url(self, profile: str) -> str:
        return f"http://127.0.0.1:{self.port}{PATH_PREFIX}{profile}"

    def env(self, profile: str) -> dict[str, str]:
        return {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": self.url(profile),
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(self.token_file),
        }

    def raw(self, request: bytes) -> RawResponse:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(request)
            return read_response(sock)

    def get(
        self,
        path: str,
        *,
        token: str | None = "",
        host: str | None = "",
        extra: tuple[str, ...] = (),
        method: str = "GET",
    ) -> RawResponse:
        lines = [f"{method} {path} HTTP/1.1"]
        if host is not None:
            lines.append(f"Host: {host or f'127.0.0.1:{self.port}'}")
        if token is not None:
            lines.append(f"Authorization: {token or self.token}")
        lines += [*extra, "Connection: close"]
        return self.raw(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))


@pytest.fixture
def endpoint(backend: MemoryBackend, tmp_path: Path) -> Iterator[Endpoint]:
    token_file = tmp_path / "run" / "credd" / "endpoint-token"
    token = ensure_token(token_file)
    # credentials botocore accepts (the fixture's ``demo`` expires on the fake clock's day)
    backend.add_profile("live", replace(demo_credentials(), expiration=LIVE_UNTIL))
    server = LoopbackServer(ContainerApi(backend, token), port=0)
    server.start()
    yield Endpoint(server, token, token_file)
    if backend.gate is not None:
        backend.gate.set()
    server.stop(2.0)


def assert_no_secret(resp: RawResponse) -> None:
    assert SECRET.encode() not in resp.body and TOKEN.encode() not in resp.body


def test_botocore_container_provider_gets_refreshing_credentials(endpoint: Endpoint) -> None:
    creds = ContainerProvider(environ=endpoint.env("live")).load()
    assert creds.method == "container-role"
    frozen = creds.get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == (
        "ASIAFAKE0000000DEMO1",
        SECRET,
        TOKEN,
    )
    assert creds._expiry_time == LIVE_UNTIL
    # the old SDK way: the token itself (what the AWS CLI 2.9 reads)
    env = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": endpoint.url("live").replace(
            "127.0.0.1", "localhost"
        ),
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": endpoint.token,
    }
    assert ContainerProvider(environ=env).load().access_key == "ASIAFAKE0000000DEMO1"


def test_the_answer_has_exactly_the_container_shape(endpoint: Endpoint) -> None:
    resp = endpoint.get(PATH_PREFIX + "demo")
    assert resp.status == 200
    assert resp.headers["cache-control"] == "no-store"
    body = resp.json()
    assert set(body) == {"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "AccountId"}
    assert body["Expiration"] == "2026-01-02T00:00:00Z" and body["AccountId"] == "123456789012"


def test_the_token_file_is_private_and_reused(endpoint: Endpoint) -> None:
    st = endpoint.token_file.stat()
    assert oct(st.st_mode & 0o777) == "0o600"
    assert oct(endpoint.token_file.parent.stat().st_mode & 0o777) == "0o700"
    assert endpoint.token_file.read_text() == endpoint.token  # no newline: sent as it is
    assert len(endpoint.token) >= 43
    assert ensure_token(endpoint.token_file) == endpoint.token
    os.chmod(endpoint.token_file, 0o644)  # others may have read it: a new token
    fresh = ensure_token(endpoint.token_file)
    assert fresh != endpoint.token and oct(endpoint.token_file.stat().st_mode & 0o777) == "0o600"


def test_missing_and_wrong_tokens_are_refused_alike(endpoint: Endpoint) -> None:
    missing = endpoint.get(PATH_PREFIX + "demo", token=None)
    assert missing.status == 401 and missing.json()["code"] == "unauthorized"
    assert "credd exec" in missing.json()["message"]
    t = endpoint.token
    answers = [
        endpoint.get(PATH_PREFIX + "demo", token=wrong)
        for wrong in (
            t[:-1] + ("A" if t[-1] != "A" else "B"),
            ("A" if t[0] != "A" else "B") + t[1:],  # never the token itself
            t + "x",
            t[:10],
            "x",
        )
    ]
    assert {(r.status, r.body) for r in answers} == {(answers[0].status, answers[0].body)}
    assert answers[0].status == 403 and answers[0].json()["code"] == "forbidden"
    for resp in [missing, *answers]:
        assert_no_secret(resp)
    # two Authorization headers, one of them right: refused
    two = endpoint.get(PATH_PREFIX + "demo", extra=("Authorization: nope",))
    assert two.status == 403


def test_tokens_with_cr_or_lf_never_get_credentials(endpoint: Endpoint) -> None:
    head = f"GET {PATH_PREFIX}demo HTTP/1.1\r\nHost: 127.0.0.1:{endpoint.port}\r\n"
    for auth in (
        f"Authorization: {endpoint.token}\r\n x\r\n",  # obsolete line folding
        f"Authorization: {endpoint.token}\rx\r\n",
        f"Authorization: x\r\n{endpoint.token}\r\n",
    ):
        resp = endpoint.raw((head + auth + "Connection: close\r\n\r\n").encode())
        assert resp.status in (400, 403), auth
        assert_no_secret(resp)
    # botocore itself refuses to send such a token
    endpoint.token_file.write_text(endpoint.token + "\n")
    with pytest.raises(ValueError, match="not a legal header value"):
        ContainerProvider(environ=endpoint.env("demo")).load()


def test_host_must_name_this_endpoint(endpoint: Endpoint) -> None:
    ok = endpoint.get(PATH_PREFIX + "demo", host=f"LOCALHOST:{endpoint.port}")
    assert ok.status == 200
    for host in (
        f"evil.example:{endpoint.port}",  # DNS rebinding: a page on evil.example -> 127.0.0.1
        f"127.0.0.1:{endpoint.port + 1}",
        "127.0.0.1",
        f"127.0.0.2:{endpoint.port}",
    ):
        resp = endpoint.get(PATH_PREFIX + "demo", host=host)
        assert resp.status == 403 and "Host" in resp.json()["message"], host
        assert_no_secret(resp)
    # HTTP/1.0 without any Host
    req = f"GET {PATH_PREFIX}demo HTTP/1.0\r\nAuthorization: {endpoint.token}\r\n\r\n"
    assert endpoint.raw(req.encode()).status == 403
    # two Host headers
    assert endpoint.get(PATH_PREFIX + "demo", extra=("Host: evil.example",)).status in (400, 403)


@pytest.mark.parametrize(
    "header",
    [
        "Forwarded: for=192.0.2.60",
        "Via: 1.1 proxy",
        "X-Forwarded-For: 192.0.2.60",
        "X-Forwarded-Host: evil.example",
        "X-Real-IP: 192.0.2.60",
        "Origin: http://evil.example",
        "Sec-Fetch-Site: cross-site",
    ],
)
def test_proxied_and_browser_requests_are_refused(endpoint: Endpoint, header: str) -> None:
    resp = endpoint.get(PATH_PREFIX + "demo", extra=(header,))
    assert resp.status == 403 and resp.json()["code"] == "forbidden"
    assert_no_secret(resp)


def test_errors_say_what_to_run(endpoint: Endpoint, backend: MemoryBackend) -> None:
    unknown = endpoint.get(PATH_PREFIX + "nobody")
    assert unknown.status == 404
    assert unknown.json()["code"] == "profile_not_managed"
    assert "credd enable nobody" in unknown.json()["message"]
    mfa = endpoint.get(PATH_PREFIX + "demo-mfa")
    assert mfa.status == 503 and mfa.json()["code"] == "needs_mfa"
    assert "credd mfa demo-mfa" in mfa.json()["message"]
    assert set(mfa.json()) == {"code", "message", "hint"}
    # botocore shows that message to the program
    with pytest.raises(CredentialRetrievalError, match="credd mfa demo-mfa"):
        provider = ContainerProvider(environ=endpoint.env("demo-mfa"))
        provider._fetcher._sleep = lambda _seconds: None
        provider.load()
    assert endpoint.get("/v1/status").status == 404
    assert endpoint.get(PATH_PREFIX + "demo/x").status == 404
    assert endpoint.get(PATH_PREFIX + "bad%00name").status == 400
    post = endpoint.get(PATH_PREFIX + "demo", method="POST", extra=("Content-Length: 0",))
    assert post.status == 405 and post.headers["allow"] == "GET"
    # an unexpected failure: a generic 500, never the exception's text
    backend.fail("demo", "credentials", RuntimeError(SECRET))
    boom = endpoint.get(PATH_PREFIX + "demo")
    assert boom.status == 500 and boom.json()["code"] == "error"
    assert_no_secret(boom)


def test_garbage_gets_a_flat_json_400(endpoint: Endpoint) -> None:
    resp = endpoint.raw(b"NOT HTTP AT ALL\r\n\r\n")
    assert resp.status == 400 and set(resp.json()) >= {"code", "message"}
    big = endpoint.get(PATH_PREFIX + "demo", extra=("X-Pad: " + "a" * 20000,))
    assert big.status == 413


def test_another_user_with_the_right_token_is_refused(endpoint: Endpoint) -> None:
    code = (
        "import http.client, sys\n"
        f"c = http.client.HTTPConnection('127.0.0.1', {endpoint.port}, timeout=10)\n"
        f"c.request('GET', '{PATH_PREFIX}demo', headers={{'Authorization': sys.argv[1]}})\n"
        "r = c.getresponse(); print(r.status); print(r.read().decode())\n"
    )
    done = subprocess.run(
        [*NOBODY, sys.executable, "-c", code, endpoint.token],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    status, body = done.stdout.split("\n", 1)
    assert status == "403" and SECRET not in body
    assert "user running the daemon" in json.loads(body)["message"]


def test_tcp_owner_reads_proc_net_tcp() -> None:
    table = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
        "   0: 0100007F:9C40 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000\n"
        "   1: 0100007F:D431 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1001\n"
    )
    if sys.byteorder != "little":  # /proc prints the address in host byte order
        table = table.replace("0100007F", "7F000001")
    assert tcp_owner(("127.0.0.1", 0x9C40), ("127.0.0.1", 0xD431), table) == 1001
    assert tcp_owner(("127.0.0.1", 0x9C40), ("127.0.0.1", 1), table) is None


def test_the_kernel_and_proc_agree_on_who_owns_a_connection() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server_side, _ = listener.accept()
        with client, server_side:
            local, remote = server_side.getsockname(), server_side.getpeername()
            kernel, proc = TcpOwner(), TcpOwner(netlink=False)
            assert kernel.owner(local, remote) == proc.owner(local, remote) == os.getuid()
            assert kernel.use_netlink  # the fast path really ran
            assert kernel.owner(local, ("127.0.0.1", 1)) is None
            kernel.close()


@pytest.mark.parametrize("host", ["0.0.0.0", "::1", "192.0.2.1", "localhost", "::"])
def test_binds_ipv4_loopback_only(backend: MemoryBackend, host: str) -> None:
    server = LoopbackServer(ContainerApi(backend, "t" * 43), port=0, host=host)
    with pytest.raises(ConfigError, match="loopback"):
        server.start()


def test_a_taken_port_is_a_clear_error(backend: MemoryBackend, endpoint: Endpoint) -> None:
    second = LoopbackServer(ContainerApi(backend, "t" * 43), port=endpoint.port)
    with pytest.raises(PortInUse, match=f"port {endpoint.port} .* in use") as info:
        second.start()
    assert "--endpoint-port" in str(info.value)


def test_settings_and_the_default_port() -> None:
    assert default_port(0) == 20000 and default_port(1000) == 21000 and default_port(65534) == 25534
    assert EndpointSettings.resolve(environ={}) == EndpointSettings(True, None)
    assert EndpointSettings.resolve(environ={"CREDD_ENDPOINT_PORT": "0"}).port == 0
    assert not EndpointSettings.resolve(environ={"CREDD_ENDPOINT_PORT": "off"}).enabled
    assert EndpointSettings.resolve(port="4242", environ={"CREDD_ENDPOINT_PORT": "1"}).port == 4242
    assert not EndpointSettings.resolve(port=1, disabled=True).enabled
    for bad in ("-1", "65536", "http", "1.5"):
        with pytest.raises(UsageError, match="0-65535"):
            EndpointSettings.resolve(environ={"CREDD_ENDPOINT_PORT": bad})
