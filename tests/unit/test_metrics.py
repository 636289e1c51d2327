"""``GET /v1/metrics`` through the real unix socket server, parsed by prometheus_client's own
text-format parser (the reference implementation) and by a strict line check here; and
:func:`credd.metrics.instrument` counting real botocore calls against the sandbox."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from credd import metrics
from credd.metrics import FAMILIES, Registry
from credd.server.api import Api
from credd.server.unix import UnixServer
from credd.testing.clock import FakeClock
from credd.testing.memory import MemoryBackend
from tests.fixtures.sandbox import SandboxHandle
from tests.fixtures.transport import SECRET, TOKEN, exchange, http_request

SAMPLE_RE = re.compile(
    r'(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?P<labels>[a-z_]+="(?:[^"\\\n]|\\[\\"n])*"'
    r'(?:,[a-z_]+="(?:[^"\\\n]|\\[\\"n])*")*)\})? (?P<value>-?[0-9.e+-]+|NaN|[+-]Inf)'
)


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
def socket_path(
    tmp_path: Path, backend: MemoryBackend, clock: FakeClock, registry: Registry
) -> Iterator[Path]:
    path = tmp_path / "run" / "credd" / "credd.sock"
    server = UnixServer(path, Api(backend, clock, registry=registry))
    server.start()
    yield path
    server.stop(2.0)


def scrape(path: Path) -> tuple[str, dict[str, Any]]:
    response = exchange(path, http_request("GET", "/v1/metrics"))
    assert response.status == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    text = response.body.decode()
    strict_check(text)
    parsed = {}
    for family in text_string_to_metric_families(text):
        parsed[family.name] = family
    return text, parsed


def strict_check(text: str) -> None:
    """What the 0.0.4 format requires of us: HELP and TYPE once per family before its samples,
    samples only of the announced family, no series twice, a final newline."""
    assert text.endswith("\n")
    current: str | None = None
    seen_families: set[str] = set()
    seen_series: set[str] = set()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert name not in seen_families, f"{name} announced twice"
            assert lines[i + 1].startswith(f"# TYPE {name} "), f"{name}: TYPE must follow HELP"
            seen_families.add(name)
            current = name
        elif line.startswith("# TYPE "):
            assert line.split(" ")[3] in {"counter", "gauge"}
        else:
            match = SAMPLE_RE.fullmatch(line)
            assert match is not None, f"not a sample line: {line!r}"
            assert match["name"] == current, f"{line!r} outside its family"
            series = line.rsplit(" ", 1)[0]
            assert series not in seen_series, f"{series} twice"
            seen_series.add(series)


def value(parsed: dict[str, Any], name: str, **labels: str) -> float | None:
    """The sample ``name{labels}`` (a counter's family is parsed without its ``_total``)."""
    for sample in parsed[name.removesuffix("_total")].samples:
        if sample.name == name and sample.labels == labels:
            return float(sample.value)
    return None


def test_scrape_lists_every_documented_family(socket_path: Path) -> None:
    text, parsed = scrape(socket_path)
    expected = {f.name.removesuffix("_total"): f for f in FAMILIES}
    assert set(parsed) == set(expected)
    for name, family in expected.items():
        assert parsed[name].type == family.kind
        assert parsed[name].documentation == family.help
    docs = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text()
    for family in FAMILIES:
        assert f"`{family.name}`" in docs, f"{family.name} is not documented"
    assert SECRET not in text and TOKEN not in text


def test_profile_gauges_come_from_status_at_scrape_time(
    socket_path: Path, backend: MemoryBackend, clock: FakeClock
) -> None:
    _, parsed = scrape(socket_path)
    assert value(parsed, "credd_credentials_expiry_seconds", profile="demo") == 12 * 3600
    assert value(parsed, "credd_credentials_expiry_seconds", profile="demo-mfa") is None
    assert value(parsed, "credd_profile_state", profile="demo", state="fresh") == 1
    assert value(parsed, "credd_profile_state", profile="demo", state="needs_mfa") == 0
    assert value(parsed, "credd_profile_state", profile="demo-mfa", state="needs_mfa") == 1
    assert value(parsed, "credd_profiles", state="fresh") == 1
    assert value(parsed, "credd_profiles", state="needs_mfa") == 1
    assert value(parsed, "credd_profiles", state="error") == 0
    assert value(parsed, "credd_build_info", version="test") == 1
    assert value(parsed, "credd_start_time_seconds") == backend.started_at.timestamp()

    clock.advance(600)
    backend.push_mfa_code("demo-mfa", "123456")
    _, parsed = scrape(socket_path)
    assert value(parsed, "credd_credentials_expiry_seconds", profile="demo") == 12 * 3600 - 600
    assert value(parsed, "credd_credentials_expiry_seconds", profile="demo-mfa") == 12 * 3600
    assert value(parsed, "credd_last_refresh_timestamp_seconds", profile="demo-mfa") == (
        clock.now().timestamp()
    )
    assert value(parsed, "credd_profiles", state="fresh") == 2


def test_counters_increase(socket_path: Path, registry: Registry) -> None:
    _, before = scrape(socket_path)
    assert before["credd_refreshes"].samples == []
    for _ in range(3):
        assert exchange(socket_path, http_request("GET", "/v1/credentials/demo")).status == 200
    assert exchange(socket_path, http_request("GET", "/v1/credentials/demo-mfa")).status == 503
    assert exchange(socket_path, http_request("GET", "/v1/no/such/thing")).status == 404
    assert exchange(socket_path, http_request("POST", "/v1/metrics", b"{}")).status == 405
    registry.record_refresh("demo", "success")
    registry.record_refresh("demo", "success")
    registry.record_refresh("demo-mfa", "needs_mfa", "needs_mfa")
    registry.record_refresh("demo-mfa", "backoff", "aws_unreachable")
    registry.count_aws_call("sts", "GetSessionToken", "ok")

    _, parsed = scrape(socket_path)
    requests = "credd_socket_requests"
    route = "/v1/credentials/{profile}"
    assert value(parsed, requests + "_total", route=route, status="200") == 3
    assert value(parsed, requests + "_total", route=route, status="503") == 1
    assert value(parsed, requests + "_total", route="unmatched", status="404") == 1
    assert value(parsed, requests + "_total", route="unmatched", status="405") == 1
    assert value(parsed, requests + "_total", route="/v1/metrics", status="200") == 1
    refreshes = "credd_refreshes_total"
    assert value(parsed, refreshes, profile="demo", outcome="success") == 2
    assert value(parsed, refreshes, profile="demo-mfa", outcome="needs_mfa") == 1
    assert value(parsed, "credd_refresh_failures_total", reason="aws_unreachable") == 1
    assert value(parsed, "credd_refresh_failures_total", reason="needs_mfa") == 1
    calls = "credd_aws_calls_total"
    assert value(parsed, calls, service="sts", operation="GetSessionToken", outcome="ok") == 1

    _, again = scrape(socket_path)
    assert value(again, requests + "_total", route="/v1/metrics", status="200") == 2


def test_label_values_never_carry_untrusted_text(
    socket_path: Path, backend: MemoryBackend, registry: Registry
) -> None:
    backend.add_profile('evil"\nname{x}')  # not a name the socket accepts: reported as "other"
    registry.record_refresh("demo", "made-up-outcome", "Not A Code; DROP")
    registry.count_aws_call("sts", 'Get"Token', "weird")
    registry.count_request("/v1/credentials/" + SECRET, 200)
    text, parsed = scrape(socket_path)
    assert "evil" not in text and "DROP" not in text and SECRET not in text
    assert value(parsed, "credd_profile_state", profile="other", state="needs_mfa") == 1
    assert value(parsed, "credd_refreshes_total", profile="demo", outcome="other") == 1
    assert value(parsed, "credd_refresh_failures_total", reason="other") == 1
    assert value(parsed, "credd_aws_calls_total", service="sts", operation="other", outcome="other")
    with pytest.raises(ValueError):
        registry.inc(metrics.REFRESHES, ("only-one-label",))


@pytest.mark.integration
def test_instrumented_botocore_clients_count_real_calls(sandbox_clean: SandboxHandle) -> None:
    reg = Registry()
    user = sandbox_clean.new_user("metrics")
    good = metrics.instrument(sandbox_clean.user_client("sts", user), reg)
    good.get_caller_identity()
    good.get_caller_identity()
    # another client of the same botocore session, counted in its own registry: each client
    # has its own copy of the session's event hooks
    other = Registry()
    bad = metrics.instrument(sandbox_clean.client("sts", "AKIANOTAKEY000000000", "x" * 40), other)
    with pytest.raises(Exception, match=r"InvalidClientTokenId|SignatureDoesNotMatch"):
        bad.get_caller_identity()
    assert reg.value(metrics.AWS_CALLS, "sts", "GetCallerIdentity", "ok") == 2
    assert reg.value(metrics.AWS_CALLS, "sts", "GetCallerIdentity", "client_error") == 0
    assert other.value(metrics.AWS_CALLS, "sts", "GetCallerIdentity", "client_error") == 1
    assert other.value(metrics.AWS_CALLS, "sts", "GetCallerIdentity", "ok") == 0

    import botocore.exceptions
    import botocore.session
    from botocore.config import Config

    nowhere = botocore.session.Session().create_client(
        "sts",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",  # discard: nothing listens
        aws_access_key_id="AKIANOTAKEY000000000",
        aws_secret_access_key="x" * 40,
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=2),
    )
    metrics.instrument(nowhere, reg)
    with pytest.raises(botocore.exceptions.EndpointConnectionError):
        nowhere.get_caller_identity()
    assert reg.value(metrics.AWS_CALLS, "sts", "GetCallerIdentity", "no_response") == 1
