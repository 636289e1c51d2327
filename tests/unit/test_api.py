"""The socket API's handlers, called directly (pure logic: no sockets here)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from credd.errors import AwsThrottled, SecretStoreLocked
from credd.server.api import Api, Peer, Request, Response
from credd.server.http import Router, decode_profile
from credd.testing.clock import FakeClock
from credd.testing.memory import MemoryBackend
from tests.fixtures.transport import SECRET, TOKEN


def call(
    api: Api, method: str, target: str, body: Any = None, raw: bytes | None = None
) -> Response:
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    return api.handle(Request(method, target, (("host", "credd"),), data, Peer(1, 0, 0)))


def payload(response: Response) -> Any:
    return json.loads(response.body)


@pytest.fixture
def api(backend: MemoryBackend, clock: FakeClock) -> Api:
    return Api(backend, clock)


def test_status_lists_daemon_and_profiles(api: Api, clock: FakeClock) -> None:
    clock.advance(3600)
    resp = call(api, "GET", "/v1/status")
    assert resp.status == 200
    body = payload(resp)
    assert body["version"] == 1
    assert body["daemon"]["socket"] == "test"
    names = [p["name"] for p in body["profiles"]]
    assert names == ["demo", "demo-mfa"]
    demo = body["profiles"][0]
    assert demo["state"] == "fresh"
    assert demo["expires_in_seconds"] == 11 * 3600
    assert demo["key_id"] == "...EMO1"
    assert body["profiles"][1]["waiting_for"] == "mfa_code"
    assert SECRET not in resp.body.decode() and TOKEN not in resp.body.decode()


def test_credentials_have_the_credential_process_shape(api: Api) -> None:
    resp = call(api, "GET", "/v1/credentials/demo")
    assert resp.status == 200
    assert ("cache-control", "no-store") in resp.headers
    assert payload(resp) == {
        "Version": 1,
        "AccessKeyId": "ASIAFAKE0000000DEMO1",
        "SecretAccessKey": SECRET,
        "SessionToken": TOKEN,
        "Expiration": "2026-01-02T00:00:00Z",
        "AccountId": "123456789012",
    }


def test_profile_names_are_percent_decoded(api: Api, backend: MemoryBackend) -> None:
    backend.add_profile("team:dev@x", None)
    resp = call(api, "GET", "/v1/credentials/team%3Adev%40x")
    assert resp.status == 503  # it reached the backend under its real name
    assert ("credentials", "team:dev@x") in backend.calls


@pytest.mark.parametrize(
    "segment", ["..", "%2E%2E", "a%2Fb", "a%20b", "%FF", "x" * 129, "%00", "-lead"]
)
def test_bad_profile_names_are_400(api: Api, backend: MemoryBackend, segment: str) -> None:
    resp = call(api, "GET", f"/v1/credentials/{segment}")
    assert resp.status == 400
    assert payload(resp)["error"]["code"] == "bad_request"
    assert "hint" in payload(resp)["error"]
    assert not backend.calls


def test_needs_mfa_is_503_with_a_hint(api: Api) -> None:
    resp = call(api, "GET", "/v1/credentials/demo-mfa")
    assert resp.status == 503
    assert payload(resp) == {
        "error": {
            "code": "needs_mfa",
            "message": "demo-mfa needs an MFA code",
            "hint": "run `credd mfa demo-mfa`",
        }
    }


def test_unknown_profile_is_404(api: Api) -> None:
    resp = call(api, "GET", "/v1/credentials/nope")
    assert resp.status == 404
    assert payload(resp)["error"]["code"] == "profile_not_managed"


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (SecretStoreLocked("the keyring is locked", hint="unlock it"), 503, "secret_store_locked"),
        (AwsThrottled("STS throttled us"), 502, "aws_throttled"),
    ],
)
def test_backend_errors_keep_code_and_status(
    api: Api, backend: MemoryBackend, error: Exception, status: int, code: str
) -> None:
    backend.fail("demo", "credentials", error)
    resp = call(api, "GET", "/v1/credentials/demo")
    assert (resp.status, payload(resp)["error"]["code"]) == (status, code)


def test_push_mfa_then_credentials_are_served(api: Api, backend: MemoryBackend) -> None:
    resp = call(api, "POST", "/v1/profiles/demo-mfa/mfa", {"code": " 123456 "})
    assert resp.status == 200
    assert payload(resp)["profile"]["state"] == "fresh"
    assert backend.codes == [("demo-mfa", "123456")]
    assert call(api, "GET", "/v1/credentials/demo-mfa").status == 200


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"[1]",
        b'"123456"',
        b'{"code": 123456}',
        b'{"code": ""}',
        b'{"code": "1", "extra": 1}',
        b'{"code": "' + b"1" * 17 + b'"}',
        b"\xff\xfe",
    ],
)
def test_bad_mfa_bodies_are_400(api: Api, backend: MemoryBackend, raw: bytes) -> None:
    resp = call(api, "POST", "/v1/profiles/demo-mfa/mfa", raw=raw)
    assert resp.status == 400
    assert payload(resp)["error"]["code"] == "bad_request"
    assert backend.codes == []


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 60_000,  # json.loads would raise RecursionError
        b'{"code":' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"a":' * 40 + b"1" + b"}" * 40,  # valid JSON, 40 levels
        b'{"code": "' + b"\\" * 10 + b'"' + b"[" * 5000,  # escapes, then unterminated depth
        b'{"code": ' + b"9" * 5000 + b"}",  # over Python's integer digit limit
        b'\x00{\x00"\x00}',  # UTF-16 guessed by json.loads(bytes); not UTF-8 JSON here
    ],
)
@pytest.mark.parametrize("route", ["/v1/profiles/demo-mfa/mfa", "/v1/profiles/demo/refresh"])
def test_hostile_json_bodies_are_400_not_500(
    api: Api, backend: MemoryBackend, caplog: pytest.LogCaptureFixture, route: str, raw: bytes
) -> None:
    """Issue 8 item 9: deep nesting gave a 500 and an ERROR stack."""
    with caplog.at_level(logging.WARNING):
        resp = call(api, "POST", route, raw=raw)
    assert (resp.status, payload(resp)["error"]["code"]) == (400, "bad_request")
    assert not caplog.records
    assert backend.codes == [] and ("refresh", "demo") not in backend.calls


def test_json_depth_limit_is_exact() -> None:
    from credd.server.jsonbody import MAX_DEPTH, nesting_depth, parse_object

    at_limit = b'{"a":' * (MAX_DEPTH - 1) + b"[]" + b"}" * (MAX_DEPTH - 1)
    assert nesting_depth(at_limit.decode(), MAX_DEPTH) == MAX_DEPTH
    assert parse_object(at_limit)["a"]["a"]
    assert nesting_depth('["[[[", "\\"", {"x": "]]]{"}]', 5) == 2
    assert nesting_depth('"\\\\" [[', 5) == 2  # an escaped backslash does not escape the quote


def test_mfa_code_format_is_the_backends_call(api: Api, backend: MemoryBackend) -> None:
    # other scripts' digits too ("\\d" took them, and they went on to STS)
    for code in ("12ab", "\u0661\u0662\u0663\u0664\u0665\u0666", "\uff11" * 6, "123456\n1"):
        resp = call(api, "POST", "/v1/profiles/demo-mfa/mfa", {"code": code})
        assert (resp.status, payload(resp)["error"]["code"]) == (400, "bad_usage"), code
    assert backend.codes == []


def test_refresh_accepts_empty_or_empty_object(api: Api, backend: MemoryBackend) -> None:
    assert call(api, "POST", "/v1/profiles/demo/refresh").status == 200
    resp = call(api, "POST", "/v1/profiles/demo/refresh", {})
    assert payload(resp)["profile"]["last_refresh_at"] == "2026-01-01T12:00:00Z"
    assert call(api, "POST", "/v1/profiles/demo/refresh", {"force": True}).status == 400
    assert backend.calls.count(("refresh", "demo")) == 2


def test_unknown_path_is_404_and_wrong_method_405(api: Api) -> None:
    for target in ("/", "/v2/status", "/v1/status/extra", "/v1/credentials/", "/v1/credentials"):
        resp = call(api, "GET", target)
        assert (resp.status, payload(resp)["error"]["code"]) == (404, "not_found"), target
    resp = call(api, "DELETE", "/v1/credentials/demo")
    assert (resp.status, payload(resp)["error"]["code"]) == (405, "method_not_allowed")
    assert ("allow", "GET") in resp.headers
    assert call(api, "GET", "/v1/profiles/demo/mfa").status == 405
    assert call(api, "POST", "/v1/status").status == 405


def test_query_strings_are_ignored_by_routing(api: Api) -> None:
    assert call(api, "GET", "/v1/credentials/demo?x=1").status == 200


def test_unexpected_errors_are_500_and_never_leak_their_text(
    api: Api, backend: MemoryBackend, caplog: pytest.LogCaptureFixture
) -> None:
    backend.fail("demo", "credentials", RuntimeError(f"boom with {SECRET}"))
    with caplog.at_level(logging.DEBUG):
        resp = call(api, "GET", "/v1/credentials/demo")
    assert resp.status == 500
    assert payload(resp)["error"]["code"] == "error"
    assert SECRET not in resp.body.decode()
    assert "RuntimeError" in caplog.text and "/v1/credentials/{profile}" in caplog.text
    assert SECRET not in caplog.text
    assert "boom" not in caplog.text


def test_router_serves_other_route_tables() -> None:
    """The container endpoint (issue 3) will be another table over the same Router."""
    router = Router()
    seen: list[str] = []

    def handler(request: Request, params: dict[str, str]) -> Response:
        seen.append(decode_profile(params["name"]))
        return Response.json(200, {"AccessKeyId": "x"})

    router.add("GET", "/container/{name}", handler)
    assert router.dispatch(Request("GET", "/container/dev%2Dx")).status == 200
    assert seen == ["dev-x"]
    assert router.dispatch(Request("GET", "/v1/status")).status == 404


def test_handle_nowait_serves_held_credentials_only(api: Api, backend: MemoryBackend) -> None:
    def nowait(target: str, method: str = "GET") -> Response | None:
        return api.handle_nowait(Request(method, target, (("host", "x"),)))

    fast = nowait("/v1/credentials/demo")
    assert fast is not None
    assert (fast.status, fast.body) == (200, call(api, "GET", "/v1/credentials/demo").body)
    assert ("cache-control", "no-store") in fast.headers
    # everything else takes the full (worker thread) path, where errors are reported
    for target in (
        "/v1/credentials/demo-mfa",
        "/v1/credentials/nope",
        "/v1/credentials/a%20b",
        "/v1/credentials/demo/x",
        "/v1/status",
    ):
        assert nowait(target) is None, target
    assert nowait("/v1/credentials/demo", "POST") is None
    backend.fail("demo", "credentials", AwsThrottled("slow down"))
    assert nowait("/v1/credentials/demo") is None


def test_handle_nowait_needs_the_optional_backend_method(clock: FakeClock) -> None:
    class Plain:  # a backend without credentials_nowait
        def __getattr__(self, name: str) -> Any:
            if name == "credentials_nowait":
                raise AttributeError(name)
            raise AssertionError(f"{name} must not be called")

    api = Api(Plain(), clock)
    assert api.handle_nowait(Request("GET", "/v1/credentials/demo")) is None
