"""The IMDSv2 endpoint over the in-memory backend: botocore's own instance-metadata fetchers as
the client, raw requests (read with h11) for every refusal, another uid through ``setpriv``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from botocore.credentials import InstanceMetadataProvider
from botocore.utils import InstanceMetadataFetcher, InstanceMetadataRegionFetcher

from credd.errors import ConfigError, NeedsMfa
from credd.server.imds import ImdsApi, ImdsServer
from credd.server.imds_endpoints import ImdsWish, wish_of
from credd.testing.clock import FakeClock
from credd.testing.memory import MemoryBackend
from tests.fixtures.transport import SECRET, TOKEN, RawResponse, demo_credentials, read_response

LIVE_UNTIL = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=12)
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
CREDS = "/latest/meta-data/iam/security-credentials/"


class Imds:
    def __init__(self, server: ImdsServer) -> None:
        self.server = server

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return self.server.url

    def request(
        self,
        path: str,
        *,
        method: str = "GET",
        token: str | None = None,
        host: str | None = "",
        extra: tuple[str, ...] = (),
    ) -> RawResponse:
        lines = [f"{method} {path} HTTP/1.1"]
        if host is not None:
            lines.append(f"Host: {host or f'127.0.0.1:{self.port}'}")
        if token is not None:
            lines.append(f"X-aws-ec2-metadata-token: {token}")
        if method == "PUT":
            lines.append("Content-Length: 0")
        lines += [*extra, "Connection: close"]
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            return read_response(sock)

    def token(self, ttl: str = "21600") -> str:
        resp = self.request(
            "/latest/api/token",
            method="PUT",
            extra=(f"X-aws-ec2-metadata-token-ttl-seconds: {ttl}",),
        )
        assert resp.status == 200, resp.body
        assert resp.headers["x-aws-ec2-metadata-token-ttl-seconds"] == ttl
        return resp.body.decode()


@pytest.fixture
def imds(backend: MemoryBackend, clock: FakeClock) -> Iterator[Imds]:
    backend.add_profile("live", replace(demo_credentials(), expiration=LIVE_UNTIL))
    server = ImdsServer(ImdsApi(backend, "live", clock, region=lambda: "eu-west-3"), port=0)
    server.start()
    yield Imds(server)
    if backend.gate is not None:
        backend.gate.set()
    server.stop(2.0)


def config(url: str) -> dict[str, object]:
    return {"ec2_metadata_service_endpoint": url, "ec2_credential_refresh_window": 900}


def test_botocore_instance_metadata_provider_gets_the_profile(imds: Imds) -> None:
    fetcher = InstanceMetadataFetcher(timeout=2, num_attempts=1, config=config(imds.url), env={})
    creds = InstanceMetadataProvider(iam_role_fetcher=fetcher).load()
    assert creds is not None and creds.method == "iam-role"
    frozen = creds.get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == (
        "ASIAFAKE0000000DEMO1",
        SECRET,
        TOKEN,
    )
    assert creds._expiry_time == LIVE_UNTIL  # 12 h left: botocore does not extend it
    region = InstanceMetadataRegionFetcher(
        timeout=2, num_attempts=1, config=config(imds.url), env={}
    )
    assert region.retrieve_region() == "eu-west-3"


def test_the_answers_have_the_ec2_shapes(imds: Imds) -> None:
    token = imds.token()
    listing = imds.request(CREDS, token=token)
    assert (listing.status, listing.body) == (200, b"live")
    assert imds.request(CREDS.rstrip("/"), token=token).body == b"live"
    # a base URL ending in "/" (the AWS CLI 2.9 needs one) makes some SDKs send "//latest/..."
    assert imds.request("/" + CREDS + "live", token=token).status == 200
    body = imds.request(CREDS + "live", token=token).json()
    assert set(body) == {
        "Code", "LastUpdated", "Type", "AccessKeyId", "SecretAccessKey", "Token", "Expiration",
    }  # fmt: skip
    assert (body["Code"], body["Type"]) == ("Success", "AWS-HMAC")
    assert body["Expiration"].endswith("Z") and body["LastUpdated"] == "2026-01-01T12:00:00Z"
    assert imds.request("/latest/meta-data/placement/region", token=token).body == b"eu-west-3"
    zone = imds.request("/latest/meta-data/placement/availability-zone/", token=token)
    assert zone.body == b"eu-west-3a"
    doc = imds.request("/latest/dynamic/instance-identity/document", token=token).json()
    assert doc["region"] == "eu-west-3" and doc["accountId"] == "123456789012"
    assert imds.request("/latest/meta-data/instance-id", token=token).body.startswith(b"i-")
    info = imds.request("/latest/meta-data/iam/info", token=token).json()
    assert info["Code"] == "Success" and info["InstanceProfileArn"].endswith("/live")
    assert imds.request(CREDS + "other", token=token).status == 404
    assert imds.request("/latest/user-data", token=token).status == 404


def test_imdsv1_missing_bad_and_expired_tokens_are_refused(imds: Imds, clock: FakeClock) -> None:
    assert imds.request(CREDS + "live").status == 401  # IMDSv1: no token
    assert imds.request(CREDS + "live", token="nope").status == 401
    forged = imds.token()[:-4] + "AAAA"
    assert imds.request(CREDS + "live", token=forged).status == 401
    short = imds.token("60")
    assert imds.request(CREDS + "live", token=short).status == 200
    clock.advance(61)
    expired = imds.request(CREDS + "live", token=short)
    assert expired.status == 401 and SECRET.encode() not in expired.body
    for ttl in ("0", "21601", "x", ""):
        bad = imds.request(
            "/latest/api/token",
            method="PUT",
            extra=(f"X-aws-ec2-metadata-token-ttl-seconds: {ttl}",) if ttl else (),
        )
        assert bad.status == 400, ttl
    # a token from another endpoint (another key) is worth nothing here
    other = ImdsApi(imds.server.imds.backend, "live", clock)
    assert imds.request(CREDS + "live", token=other.issue_token(600)).status == 401
    assert imds.request("/latest/api/token", token=imds.token()).status == 405  # GET
    assert imds.request(CREDS, method="POST", token=imds.token()).status == 405


def test_imdsv1_answered_only_when_allowed(backend: MemoryBackend, clock: FakeClock) -> None:
    backend.add_profile("live", replace(demo_credentials(), expiration=LIVE_UNTIL))
    server = ImdsServer(ImdsApi(backend, "live", clock, allow_v1=True), port=0)
    server.start()
    try:
        resp = Imds(server).request(CREDS + "live")
        assert resp.status == 200 and resp.json()["Code"] == "Success"
        assert Imds(server).request("/latest/meta-data/placement/region").status == 404  # none
    finally:
        server.stop(2.0)


@pytest.mark.parametrize(
    "header",
    ["X-Forwarded-For: 10.0.0.1", "Forwarded: for=10.0.0.1", "Via: 1.1 proxy", "Origin: http://x"],
)
def test_forwarded_and_browser_requests_are_refused(imds: Imds, header: str) -> None:
    put = imds.request(
        "/latest/api/token",
        method="PUT",
        extra=("X-aws-ec2-metadata-token-ttl-seconds: 60", header),
    )
    assert put.status == 403
    get = imds.request(CREDS + "live", token=imds.token(), extra=(header,))
    assert get.status == 403 and SECRET.encode() not in get.body


@pytest.mark.parametrize("host", [None, "169.254.169.254", "evil.example:80", "127.0.0.1:1"])
def test_a_host_not_naming_the_endpoint_is_refused(imds: Imds, host: str | None) -> None:
    token = imds.token()
    resp = imds.request(CREDS + "live", token=token, host=host)
    # no Host at all is not HTTP/1.1 (400 from the parser); a wrong one is 403
    assert resp.status == (400 if host is None else 403) and SECRET.encode() not in resp.body
    assert imds.request(CREDS + "live", token=token, host=f"localhost:{imds.port}").status == 200


def test_another_uid_is_refused_before_anything_is_read(imds: Imds) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to run a client as another uid")
    code = (
        "import socket,sys\n"
        f"s=socket.create_connection(('127.0.0.1',{imds.port}))\n"
        "s.sendall(b'PUT /latest/api/token HTTP/1.1\\r\\nHost: 127.0.0.1:"
        f"{imds.port}\\r\\nX-aws-ec2-metadata-token-ttl-seconds: 60\\r\\n"
        "Content-Length: 0\\r\\n\\r\\n')\n"
        "data=b''\n"
        "while True:\n"
        "    chunk=s.recv(4096)\n"
        "    if not chunk: break\n"
        "    data+=chunk\n"
        "sys.stdout.write(data.decode('latin-1'))\n"
    )
    out = subprocess.run(
        [*NOBODY, sys.executable, "-c", code], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert " 403 " in out.stdout.splitlines()[0]
    assert "200" not in out.stdout.splitlines()[0]


def test_errors_say_what_to_run_and_hold_no_secret(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    server = ImdsServer(ImdsApi(backend, "demo-mfa", clock), port=0)  # waits for an MFA code
    server.start()
    try:
        imds = Imds(server)
        resp = imds.request(CREDS + "demo-mfa", token=imds.token())
        assert resp.status == NeedsMfa.http_status
        body = json.loads(resp.body)
        assert body["Code"] == "needs_mfa" and "credd mfa demo-mfa" in body["Message"]
        # botocore finds no credentials (and does not show the message: docs/imds.md says so)
        fetcher = InstanceMetadataFetcher(
            timeout=2, num_attempts=1, config=config(imds.url), env={}
        )
        assert fetcher.retrieve_iam_role_credentials() == {}
    finally:
        server.stop(2.0)


def test_config_wishes() -> None:
    assert wish_of("p", {}) is None
    assert wish_of("p", {"credd_imds": "off"}) is None
    assert wish_of("p", {"credd_imds": "9001"}) == ImdsWish(9001, False)
    assert wish_of("p", {"credd_imds": "0", "credd_imds_v1": "true"}) == ImdsWish(0, True)
    for bad in ("80", "65536", "x", "-1"):
        with pytest.raises(ConfigError, match="unprivileged port"):
            wish_of("p", {"credd_imds": bad})
    with pytest.raises(ConfigError, match="credd_imds_v1"):
        wish_of("p", {"credd_imds": "9001", "credd_imds_v1": "maybe"})
