"""``role_arn`` + ``web_identity_token_file``: AssumeRoleWithWebIdentity against the sandbox's STS,
which checks the RS256 signature against a key the test owns, ``exp``, ``aud`` and the role's
trust. The token file is rotated between refreshes and the rotated token is the one used."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import botocore.exceptions
import botocore.session
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from credd.aws import config as awsconfig
from credd.aws.clients import ClientFactory
from credd.clock import UTC
from credd.engine.manager import Manager
from credd.engine.scheduler import RefreshPolicy
from credd.plan.planner import Node, plan_for
from credd.sources import build_source
from credd.sources.mfa import CodeLedger
from credd.testing.scheduler import ManualScheduler
from tests.fixtures.daemon import remember, services_section
from tests.fixtures.sandbox import SandboxHandle, unique_name
from tests.integration.test_roles import SandboxClock

pytestmark = pytest.mark.integration
AUD = "sts.amazonaws.com"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Issuer:
    """An OIDC issuer the test owns: an RSA key, and RS256 JWTs signed with it."""

    def __init__(self, sandbox: SandboxHandle | None = None, audience: str = AUD) -> None:
        self.url = f"https://oidc.example.test/{uuid.uuid4().hex[:8]}"
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if sandbox is not None:
            pem = self.key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            sandbox.admin.request(
                "POST",
                "oidc-providers",
                {"issuer": self.url, "audience": audience, "public_key_pem": pem.decode()},
            )

    def token(
        self,
        expires: datetime,
        *,
        sub: str = "ci-job",
        aud: str = AUD,
        issued: datetime | None = None,
    ) -> str:
        header = _b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "k1"}).encode())
        claims = {"iss": self.url, "sub": sub, "aud": aud, "exp": int(expires.timestamp())}
        if issued is not None:
            claims["iat"] = claims["nbf"] = int(issued.timestamp())
        payload = _b64(json.dumps(claims).encode())
        signed = f"{header}.{payload}".encode()
        signature = self.key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
        token = f"{header}.{payload}.{_b64(signature)}"
        remember(token)
        return token


def web_role(sandbox: SandboxHandle, issuer: Issuer, prefix: str = "ci") -> Any:
    role = sandbox.admin.create_role(unique_name(prefix), trusted=[])
    sandbox.admin.request("POST", f"roles/{role.name}/web-identity", {"issuer": issuer.url})
    return role


def unsigned_sts(sandbox: SandboxHandle) -> Any:
    return botocore.session.Session().create_client(
        "sts",
        region_name="us-east-1",
        endpoint_url=sandbox.endpoint,
        config=Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1}),
    )


def call(sandbox: SandboxHandle, role: Any, token: str) -> dict[str, Any]:
    reply: dict[str, Any] = unsigned_sts(sandbox).assume_role_with_web_identity(
        RoleArn=role.arn, RoleSessionName="t1", WebIdentityToken=token
    )
    return reply


def fault(sandbox: SandboxHandle, role: Any, token: str) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call(sandbox, role, token)
    return str(info.value.response["Error"]["Code"])


def test_sandbox_checks_signature_audience_expiry_and_trust(sandbox_clean: SandboxHandle) -> None:
    issuer = Issuer(sandbox_clean)
    role = web_role(sandbox_clean, issuer)
    later = datetime.now(UTC) + timedelta(hours=1)
    reply = call(sandbox_clean, role, issuer.token(later))
    assert f":assumed-role/{role.name}/t1" in reply["AssumedRoleUser"]["Arn"]
    remember(reply["Credentials"]["SecretAccessKey"])
    forged = Issuer()  # same issuer URL pattern, a key the sandbox never saw
    forged.url = issuer.url
    assert fault(sandbox_clean, role, forged.token(later)) == "InvalidIdentityToken"
    assert fault(sandbox_clean, role, issuer.token(later, aud="other")) == "InvalidIdentityToken"
    past = datetime.now(UTC) - timedelta(minutes=5)
    assert fault(sandbox_clean, role, issuer.token(past)) == "ExpiredTokenException"
    other = sandbox_clean.admin.create_role(unique_name("notrust"), trusted=[])
    assert fault(sandbox_clean, other, issuer.token(later)) == "AccessDenied"
    assert fault(sandbox_clean, role, "not.a.jwt") == "InvalidIdentityToken"


def setup(home: Path, sandbox: SandboxHandle, issuer: Issuer) -> tuple[Any, Any, Path]:
    base = web_role(sandbox, issuer)
    deploy = sandbox.admin.create_role(unique_name("deploy"), trusted=[base.arn])
    token_file = home / "token"
    (home / ".aws").mkdir(exist_ok=True)
    (home / ".aws" / "config").write_text(
        f"[profile ci]\nrole_arn = {base.arn}\nweb_identity_token_file = {token_file}\n"
        "role_session_name = ci-runner\nregion = us-east-1\nservices = sandbox\ncredd = true\n"
        "credd_file_profile = off\n"
        f"[profile deploy]\nrole_arn = {deploy.arn}\nsource_profile = ci\nregion = us-east-1\n"
        "services = sandbox\ncredd = true\ncredd_file_profile = off\n"
        + services_section(sandbox.endpoint)
    )
    return base, deploy, token_file


def manager_for(clock: SandboxClock) -> tuple[Manager, ManualScheduler]:
    clients, ledger = ClientFactory(), CodeLedger(clock)

    def factory(node: Node) -> Any:
        return build_source(
            node,
            secrets=None,  # type: ignore[arg-type]
            clients=clients,
            ledger=ledger,
            clock=clock,
        )

    scheduler = ManualScheduler(clock)
    manager = Manager(
        source_factory=factory,
        scheduler=scheduler,
        clock=clock,
        policy=RefreshPolicy(jitter=0.0),
        code_source_of=lambda p: "person",
        wait_timeout=30,
    )
    manager.load(awsconfig.load())
    manager.start()
    return manager, scheduler


@pytest.mark.timeout(120)
def test_rotated_token_file_is_read_at_every_refresh_and_feeds_a_chain(
    clean_env: Path, sandbox_clean: SandboxHandle
) -> None:
    issuer = Issuer(sandbox_clean)
    base, deploy, token_file = setup(clean_env, sandbox_clean, issuer)
    start = datetime.now(UTC).replace(microsecond=0)
    clock = SandboxClock(sandbox_clean, start)
    # Each token lives 45 min and is replaced every 30 min (as Kubernetes does it): a refresh
    # that reused an old token would be refused as expired.
    subjects = []
    token_file.write_text(issuer.token(start + timedelta(minutes=45), sub="job-0"))
    manager, sched = manager_for(clock)
    for step in range(1, 9):  # 4 h: 1 h sessions renewed every 40 min
        sched.run_for(1800)
        subjects.append(f"job-{step}")
        token_file.write_text(issuer.token(clock.now() + timedelta(minutes=45), sub=subjects[-1]))
        for name, role in (("ci", base), ("deploy", deploy)):
            creds = manager.credentials(name)
            assert creds.expiration is not None
            assert creds.expiration - clock.now() > timedelta(minutes=15)
            assert creds.account_id == role.arn.split(":")[4]
    # 10 min more: the sandbox's clock also runs in real time between steps, so a refresh due
    # exactly at 240 min is a coin toss at the end (as in test_roles).
    sched.run_for(600)
    assert {s.name: s.state for s in manager.status()} == {"ci": "fresh", "deploy": "fresh"}
    # 1 h sessions renewed 20 min ahead: t = 0, 40, ..., 240 min -> 7 calls; none refused.
    assert sandbox_clean.admin.calls("AssumeRoleWithWebIdentity") == 7
    assert sandbox_clean.admin.calls("AssumeRole") == 7
    plan = manager.profile_status("deploy").plan or ""
    assert "AssumeRoleWithWebIdentity" in plan and "re-read at every refresh" in plan
    manager.stop()


@pytest.mark.timeout(120)
def test_expired_token_backs_off_and_recovers_when_the_file_is_rotated(
    clean_env: Path, sandbox_clean: SandboxHandle
) -> None:
    issuer = Issuer(sandbox_clean)
    _base, _deploy, token_file = setup(clean_env, sandbox_clean, issuer)
    start = datetime.now(UTC).replace(microsecond=0)
    clock = SandboxClock(sandbox_clean, start)
    token_file.write_text(issuer.token(start - timedelta(minutes=1)))
    manager, sched = manager_for(clock)
    sched.run_for(1)
    status = manager.profile_status("ci")
    assert status.state == "backoff"
    assert status.error is not None and status.error["code"] == "web_identity_token_expired"
    assert str(token_file) in status.error["message"]
    sched.run_for(600)
    refused = sandbox_clean.admin.calls("AssumeRoleWithWebIdentity")
    assert 5 <= refused <= 10  # backed off from 5 s doubling (half jittered), not a loop
    token_file.write_text(issuer.token(clock.now() + timedelta(hours=1)))
    sched.run_for(600)  # the next backoff step (at most 5 min) picks the new token up
    assert manager.profile_status("ci").state == "fresh"
    assert manager.profile_status("deploy").state == "fresh"
    manager.stop()


@pytest.mark.timeout(60)
def test_a_token_signed_by_a_foreign_key_is_parked_with_a_named_error(
    clean_env: Path, sandbox_clean: SandboxHandle
) -> None:
    issuer = Issuer(sandbox_clean)
    _base, _deploy, token_file = setup(clean_env, sandbox_clean, issuer)
    forged = Issuer()
    forged.url = issuer.url
    clock = SandboxClock(sandbox_clean, datetime.now(UTC).replace(microsecond=0))
    token_file.write_text(forged.token(clock.now() + timedelta(hours=1)))
    manager, sched = manager_for(clock)
    sched.run_for(3600)
    status = manager.profile_status("ci")
    assert status.state == "error" and status.error is not None
    assert "InvalidIdentityToken" in status.error["message"]
    assert sandbox_clean.admin.calls("AssumeRoleWithWebIdentity") == 1  # parked, no loop
    manager.stop()


def test_config_keys_as_botocore_reads_them(clean_env: Path) -> None:
    (clean_env / ".aws").mkdir()
    (clean_env / ".aws" / "config").write_text(
        "[profile ci]\ncredd = true\nrole_arn = arn:aws:iam::123456789012:role/ci\n"
        "web_identity_token_file = /var/run/token\n"
        "[profile rel]\ncredd = true\nrole_arn = arn:aws:iam::123456789012:role/ci\n"
        "web_identity_token_file = token\n"
        "[profile both]\ncredd = true\nrole_arn = arn:aws:iam::123456789012:role/b\n"
        "web_identity_token_file = /var/run/token\nsource_profile = ci\n"
    )
    cfg = awsconfig.load()
    assert cfg.managed["ci"].kind == "web-identity"
    assert "not an absolute path" in cfg.broken["rel"].error.message
    # source_profile wins over web_identity_token_file, as in botocore
    assert cfg.managed["both"].kind == "assume-role"
    keys = [n.key for n in plan_for(cfg, "both", lambda p: "person").nodes()]
    assert keys == ["web-identity:ci", "role:both"]
