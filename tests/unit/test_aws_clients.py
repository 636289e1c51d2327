"""The one client factory (credd.aws.clients) against botocore itself.

For every profile of a matrix of endpoint settings (``region``, ``[services]``, ``endpoint_url``,
``AWS_ENDPOINT_URL_*`` / ``AWS_ENDPOINT_URL``, ``ignore_configured_endpoint_urls``,
``sts_regional_endpoints``, ``use_fips_endpoint``, ``use_dualstack_endpoint``), the endpoint URL and
region of credd's client must be those of a client botocore makes from a plain
``Session(profile=...)`` for the same profile. All profiles live in one config and go through one
factory, so clients wrongly shared between profiles show up here.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore import UNSIGNED
from botocore.config import Config

from credd.aws import config as awsconfig
from credd.aws.clients import ClientFactory, Limiter, max_inflight
from credd.models import Credentials

CREDS = Credentials("AKIAEXAMPLEEXAMPLE01", "s" * 40, "t" * 120)
OTHER = Credentials("AKIAEXAMPLEEXAMPLE02", "u" * 40, "v" * 120)

#: profile name -> body. Role/SSO keys are there to prove they do not change the choice.
PROFILES: dict[str, str] = {
    "plain": "region = eu-west-1",
    "noregion": "",
    "east": "region = us-east-1",
    "legacy-east": "region = us-east-1\nsts_regional_endpoints = legacy",
    "legacy-west": "region = eu-west-1\nsts_regional_endpoints = legacy",
    "regional-east": "region = us-east-1\nsts_regional_endpoints = regional",
    "fips": "region = us-west-2\nuse_fips_endpoint = true",
    "dualstack": "region = eu-central-1\nuse_dualstack_endpoint = true",
    "fips-dual": "region = us-east-2\nuse_fips_endpoint = true\nuse_dualstack_endpoint = true",
    "svc": "region = eu-west-1\nservices = local",
    "svc-ignored": "region = eu-west-1\nservices = local\nignore_configured_endpoint_urls = true",
    "svc-other": "region = eu-west-1\nservices = other",
    "global-url": "region = ap-south-1\nendpoint_url = http://127.0.0.1:4010",
    "global-and-svc": "region = ap-south-1\nendpoint_url = http://127.0.0.1:4010\nservices = local",
    "role-a": "region = eu-west-1\nrole_arn = arn:aws:iam::123456789012:role/a\n"
    "source_profile = plain",
    "role-b": "region = eu-west-1\nrole_arn = arn:aws:iam::123456789012:role/b\n"
    "source_profile = plain\nservices = local",
    "sso-a": "region = eu-west-1\nsso_session = corp\nsso_account_id = 111111111111\n"
    "sso_role_name = Dev",
    "sso-b": "region = eu-west-1\nsso_session = corp\nsso_account_id = 222222222222\n"
    "sso_role_name = Ops\nservices = local",
}
SERVICES = """
[services local]
sts =
  endpoint_url = http://127.0.0.1:4001
iam =
  endpoint_url = http://127.0.0.1:4002
sso =
  endpoint_url = http://127.0.0.1:4003
sso-oidc =
  endpoint_url = http://127.0.0.1:4004

[services other]
sts =
  endpoint_url = http://localhost:5001/other
"""
ENVS: dict[str, dict[str, str]] = {
    "none": {},
    "service-env": {
        "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:6001",
        "AWS_ENDPOINT_URL_SSO_OIDC": "http://127.0.0.1:6004",
    },
    "global-env": {"AWS_ENDPOINT_URL": "http://127.0.0.1:6000"},
    "region-legacy-env": {
        "AWS_DEFAULT_REGION": "sa-east-1",
        "AWS_STS_REGIONAL_ENDPOINTS": "legacy",
    },
    "ignore-env": {"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"},
}


def write_config(home: Path) -> None:
    text = "[default]\nregion = eu-north-1\nservices = other\n\n[sso-session corp]\n"
    text += "sso_start_url = https://corp.awsapps.com/start\nsso_region = eu-west-1\n\n"
    for name, body in PROFILES.items():
        text += f"[profile {name}]\n{body}\n\n"
    (home / ".aws").mkdir(exist_ok=True)
    (home / ".aws" / "config").write_text(text + SERVICES)


#: Profiles checked under each environment (the environment acts on all profiles alike).
UNDER_ENV = (
    "plain",
    "noregion",
    "legacy-east",
    "fips",
    "svc",
    "svc-ignored",
    "global-url",
    "sso-b",
)
_LOADER: list[Any] = []


def botocore_session(profile: str | None) -> Any:
    """A plain botocore session for ``profile``; only the data files (the loader, which holds no
    setting) are shared between them, to keep the test fast."""
    session = botocore.session.Session(profile=profile)
    if not _LOADER:
        _LOADER.append(session.get_component("data_loader"))
    session.register_component("data_loader", _LOADER[0])
    return session


def botocore_signed(session: Any, service: str, creds: Credentials) -> Any:
    return session.create_client(
        service,
        region_name=session.get_config_variable("region") or "us-east-1",
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        aws_session_token=creds.session_token,
    )


def botocore_unsigned(session: Any, service: str, region: str) -> Any:
    config = Config(signature_version=UNSIGNED)
    return session.create_client(service, region_name=region, config=config)


def chosen(client: Any) -> tuple[str, str]:
    return client.meta.endpoint_url, client.meta.region_name


@pytest.mark.parametrize("env", sorted(ENVS))
def test_endpoint_and_region_are_botocores_for_every_profile(
    env: str, clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in ENVS[env].items():
        monkeypatch.setenv(key, value)
    write_config(clean_env)
    factory = ClientFactory()
    factory.load(awsconfig.load().full)
    mismatches = []
    for profile in PROFILES if env == "none" else UNDER_ENV:
        session = botocore_session(profile)
        for service, creds in (("sts", CREDS), ("sts", OTHER), ("iam", CREDS)):
            mine = chosen(factory.client(service, profile, creds))
            theirs = chosen(botocore_signed(session, service, creds))
            if mine != theirs:
                mismatches.append((profile, service, mine, theirs))
        for service in ("sso", "sso-oidc"):
            mine = chosen(factory.unsigned_client(service, profile, "eu-west-1"))
            theirs = chosen(botocore_unsigned(session, service, "eu-west-1"))
            if mine != theirs:
                mismatches.append((profile, service, mine, theirs))
    mine = chosen(factory.unsigned_client("sso-oidc", None, "us-west-2"))
    theirs = chosen(botocore_unsigned(botocore_session(None), "sso-oidc", "us-west-2"))
    if mine != theirs:
        mismatches.append((None, "sso-oidc", mine, theirs))
    assert mismatches == []


def test_the_matrix_really_differs(clean_env: Path) -> None:
    """The settings above lead botocore to different endpoints, so the comparison means
    something (a factory ignoring them would fail it)."""
    write_config(clean_env)
    urls = {chosen(botocore_signed(botocore_session(p), "sts", CREDS)) for p in PROFILES}
    assert len(urls) >= 10
    assert ("https://sts.amazonaws.com", "us-east-1") in urls  # legacy global STS
    assert any("fips" in u for u, _ in urls) and any(u.endswith("api.aws") for u, _ in urls)


def test_profiles_differing_only_in_credential_keys_share_one_client(clean_env: Path) -> None:
    text = "".join(
        f"[profile r{i}]\nregion = eu-west-1\nrole_arn = arn:aws:iam::123456789012:role/r{i}\n"
        "source_profile = user\n\n"
        for i in range(50)
    )
    (clean_env / ".aws").mkdir()
    (clean_env / ".aws" / "config").write_text("[profile user]\nregion = eu-west-1\n\n" + text)
    factory = ClientFactory()
    factory.load(awsconfig.load().full)
    clients = {id(factory.client("sts", f"r{i}", CREDS).unbounded) for i in range(50)}
    assert len(clients) == 1 and factory.made == 1
    factory.client("sts", "r0", OTHER)  # other credentials: another client
    assert factory.made == 2


def test_load_drops_every_cached_client(clean_env: Path) -> None:
    (clean_env / ".aws").mkdir()
    config = clean_env / ".aws" / "config"
    config.write_text("[profile p]\nregion = eu-west-1\nendpoint_url = http://127.0.0.1:1111\n")
    factory = ClientFactory()
    factory.load(awsconfig.load().full)
    assert factory.client("sts", "p", CREDS).meta.endpoint_url == "http://127.0.0.1:1111"
    assert factory.unsigned_client("sso-oidc", "p", "eu-west-1").meta.endpoint_url.endswith(":1111")
    config.write_text("[profile p]\nregion = eu-west-1\nendpoint_url = http://127.0.0.1:2222\n")
    factory.load(awsconfig.load().full)
    assert factory.client("sts", "p", CREDS).meta.endpoint_url == "http://127.0.0.1:2222"
    assert factory.unsigned_client("sso-oidc", "p", "eu-west-1").meta.endpoint_url.endswith(":2222")


def test_clients_are_made_concurrently_without_a_global_lock(clean_env: Path) -> None:
    """Threads making different clients at once all finish, and each gets its own settings."""
    (clean_env / ".aws").mkdir()
    (clean_env / ".aws" / "config").write_text(
        "".join(
            f"[profile p{i}]\nregion = eu-west-1\nendpoint_url = http://h{i}\n\n" for i in range(8)
        )
    )
    factory = ClientFactory()
    factory.load(awsconfig.load().full)
    results: dict[int, str] = {}
    start = threading.Barrier(8)

    def make(i: int) -> None:
        start.wait()
        results[i] = factory.client("sts", f"p{i}", CREDS).meta.endpoint_url

    threads = [threading.Thread(target=make, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {i: f"http://h{i}" for i in range(8)}


def test_limiter_bounds_calls_in_flight() -> None:
    limiter = Limiter(3)
    inside = threading.Barrier(4, timeout=30)  # three workers and this thread
    release = threading.Event()
    done: list[int] = []

    def work(i: int) -> None:
        with limiter.slot():
            if i < 3:
                inside.wait()
            release.wait(30)
            done.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    inside.wait()  # three are in; the other seven wait for a slot
    assert limiter.inflight == 3
    release.set()
    for t in threads:
        t.join(30)
    assert sorted(done) == list(range(10)) and limiter.peak == 3 and limiter.inflight == 0


def test_max_inflight_setting() -> None:
    assert max_inflight({}) == 16
    assert max_inflight({"CREDD_MAX_INFLIGHT": "40"}) == 40
    assert max_inflight({"CREDD_MAX_INFLIGHT": "0"}) == 16
    assert max_inflight({"CREDD_MAX_INFLIGHT": "lots"}) == 16
