"""The OpenBao/Vault source against a real ``bao server -dev`` (auth, tokens, renewals,
revocation, outage) whose AWS engine paths issue credentials from the sandbox (see
tests/fixtures/vault.py for why that part is a front): every credential type across rotations
served to boto3, a chain vault -> AssumeRole, a revoked token, an outage longer than a lease."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from credd.aws import config as awsconfig
from credd.aws.clients import ClientFactory
from credd.clock import UTC
from credd.engine.manager import Manager
from credd.engine.scheduler import RefreshPolicy
from credd.models import Credentials
from credd.plan.planner import Node, plan_for
from credd.sources import build_source
from credd.sources.mfa import CodeLedger
from credd.sources.vault import secret_entry
from credd.testing.scheduler import ManualScheduler
from tests.fixtures.daemon import DaemonFactory, remember, services_section
from tests.fixtures.sandbox import SandboxHandle, unique_name
from tests.fixtures.vault import AwsEngine, EngineRole
from tests.integration.test_roles import SandboxClock

pytestmark = pytest.mark.integration
LEASE = 900
TYPES = ("assumed_role", "federation_token", "session_token", "iam_user")
AWS_V2 = "/usr/bin/aws"


def vault_profile(name: str, engine: AwsEngine, role: str, *extra: str) -> str:
    kind = "creds" if engine.roles[role].credential_type == "iam_user" else "sts"
    lines = [
        f"[profile {name}]",
        "credd = true",
        "region = us-east-1",
        "services = sandbox",
        "credd_file_profile = off",
        f"credd_vault_addr = {engine.addr}",
        f"credd_vault_role = {role}",
        f"credd_vault_type = {kind}",
        *extra,
    ]
    return "\n".join(lines) + "\n"


def add_roles(engine: AwsEngine, sandbox: SandboxHandle) -> Any:
    target = sandbox.admin.create_role(unique_name("vault-target"), trusted=[engine.root_user.arn])
    for t in TYPES:
        engine.roles[t.replace("_", "-")] = EngineRole(t, LEASE, target.arn)
    return target


def manager_for(clock: SandboxClock, store: Any) -> tuple[Manager, ManualScheduler]:
    clients, ledger = ClientFactory(), CodeLedger(clock)

    def factory(node: Node) -> Any:
        return build_source(node, secrets=store, clients=clients, ledger=ledger, clock=clock
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


def write_config(home: Path, sandbox: SandboxHandle, body: str) -> None:
    (home / ".aws").mkdir(exist_ok=True)
    (home / ".aws" / "config").write_text(body + services_section(sandbox.endpoint))


def caller_arn(sandbox: SandboxHandle, creds: Credentials) -> str:
    sts = sandbox.client("sts", creds.access_key_id, creds.secret_access_key, creds.session_token)
    return str(sts.get_caller_identity()["Arn"])


@pytest.mark.timeout(240)
def test_every_credential_type_across_rotations_and_a_chain(
    clean_env: Path, vault_engine: AwsEngine, keyring_env: Any
) -> None:
    sandbox = vault_engine.sandbox
    target = add_roles(vault_engine, sandbox)
    deploy = sandbox.admin.create_role(unique_name("deploy"), trusted=[target.arn])
    store = keyring_env.store()
    body = ""
    for role in vault_engine.roles:
        body += vault_profile(role, vault_engine, role)
        store.set_session(secret_entry(role), {"token": vault_engine.bao.token()})
    body += (
        f"[profile deploy]\nrole_arn = {deploy.arn}\nsource_profile = assumed-role\n"
        "region = us-east-1\nservices = sandbox\ncredd = true\ncredd_file_profile = off\n"
    )
    write_config(clean_env, sandbox, body)
    clock = SandboxClock(sandbox, datetime.now(UTC).replace(microsecond=0))
    manager, sched = manager_for(clock, store)
    names = [*vault_engine.roles, "deploy"]
    failed, keys = 0, {n: set() for n in names}
    # 15 min leases renewed 7.5 min ahead (half the lifetime): 8 rotations in an hour; the role
    # on top (1 h, renewed 20 min ahead) once.
    for _ in range(12):
        sched.run_for(300)
        for name in names:
            creds = manager.credentials(name)
            keys[name].add(creds.access_key_id)
            remember(creds.secret_access_key, creds.session_token)
            assert creds.expiration is not None and creds.expiration > clock.now()
            try:
                caller_arn(sandbox, creds)
            except Exception:  # counted: the figure must be 0
                failed += 1
    assert failed == 0
    counts = {n: len(k) for n, k in keys.items()}
    assert all(counts[t] >= 8 for t in vault_engine.roles) and counts["deploy"] >= 2, counts
    assert ":assumed-role/" + deploy.name in caller_arn(sandbox, manager.credentials("deploy"))
    assert ":federated-user/" in caller_arn(sandbox, manager.credentials("federation-token"))
    plan = manager.profile_status("deploy").plan or ""
    assert "OpenBao/Vault aws/sts/assumed-role" in plan
    manager.stop()


@pytest.mark.timeout(180)
def test_revoked_token_is_a_named_error_and_no_storm(
    clean_env: Path, vault_engine: AwsEngine, keyring_env: Any
) -> None:
    sandbox = vault_engine.sandbox
    add_roles(vault_engine, sandbox)
    store = keyring_env.store()
    token = vault_engine.bao.token()
    store.set_session(secret_entry("team"), {"token": token})
    write_config(clean_env, sandbox, vault_profile("team", vault_engine, "assumed-role"))
    clock = SandboxClock(sandbox, datetime.now(UTC).replace(microsecond=0))
    manager, sched = manager_for(clock, store)
    sched.run_for(60)
    assert manager.profile_status("team").state == "fresh"
    info = vault_engine.bao.api("POST", "auth/token/lookup", {"token": token})["data"]
    assert info["renewable"] and info.get("last_renewal_time")  # renew-self was used
    vault_engine.bao.api("POST", "auth/token/revoke", {"token": token})
    reads = vault_engine.reads
    sched.run_for(4 * 3600)
    status = manager.profile_status("team")
    assert status.state == "error" and status.error is not None
    assert status.error["code"] == "vault_denied"
    assert "credd vault token set team" in (status.waiting_for or "")
    assert token not in json.dumps(status.error)
    assert vault_engine.reads == reads  # parked: one refused lookup, no loop
    manager.stop()


@pytest.mark.timeout(180)
def test_openbao_down_longer_than_a_lease_then_back(
    clean_env: Path, vault_engine: AwsEngine, keyring_env: Any
) -> None:
    sandbox, bao = vault_engine.sandbox, vault_engine.bao
    add_roles(vault_engine, sandbox)
    store = keyring_env.store()
    # A dev server keeps nothing across a restart but its root token id: use that token.
    store.set_session(secret_entry("team"), {"token": bao.root})
    write_config(clean_env, sandbox, vault_profile("team", vault_engine, "assumed-role"))
    clock = SandboxClock(sandbox, datetime.now(UTC).replace(microsecond=0))
    manager, sched = manager_for(clock, store)
    sched.run_for(60)
    held = manager.credentials("team")
    assert held.expiration is not None
    bao.stop()
    try:
        served = 0
        while clock.now() < held.expiration - timedelta(seconds=120):
            sched.run_for(60)
            assert manager.credentials_nowait("team") == held  # served while valid
            served += 1
        status = manager.profile_status("team")
        assert status.state == "backoff" and status.error is not None
        assert status.error["code"] == "vault_unreachable"
        sched.run_for(LEASE)  # down for longer than a lease
        assert manager.credentials_nowait("team") is None
    finally:
        bao.start()
        bao.setup_auth()
    reads = vault_engine.reads
    sched.run_for(manager.policy.backoff_cap.total_seconds())  # one backoff step at most
    assert manager.profile_status("team").state == "fresh"
    assert vault_engine.reads == reads + 1
    assert caller_arn(sandbox, manager.credentials("team"))
    manager.stop()


@pytest.mark.timeout(180)
def test_approle_and_jwt_logins_with_the_real_openbao(
    clean_env: Path, vault_engine: AwsEngine, keyring_env: Any
) -> None:
    from cryptography.hazmat.primitives import serialization

    from tests.integration.test_web_identity import Issuer

    sandbox, bao = vault_engine.sandbox, vault_engine.bao
    add_roles(vault_engine, sandbox)
    name = unique_name("ar")
    bao.api("POST", f"auth/approle/role/{name}", {"token_policies": ["aws"], "token_ttl": "1h"})
    role_id = bao.api("GET", f"auth/approle/role/{name}/role-id")["data"]["role_id"]
    secret_id = bao.api("POST", f"auth/approle/role/{name}/secret-id")["data"]["secret_id"]
    remember(secret_id)
    issuer = Issuer()
    pem = issuer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    bao.api("POST", "auth/jwt/config", {"jwt_validation_pubkeys": [pem.decode()]})
    bao.api(
        "POST",
        f"auth/jwt/role/{name}",
        {"role_type": "jwt", "bound_audiences": ["bao"], "user_claim": "sub",
         "token_policies": ["aws"], "token_ttl": "1h"},
    )  # fmt: skip
    token_file = clean_env / "jwt"
    now = datetime.now(UTC)
    token_file.write_text(
        issuer.token(now + timedelta(hours=6), aud="bao", issued=now - timedelta(minutes=1))
    )
    store = keyring_env.store()
    store.set_session(secret_entry("ar"), {"secret_id": secret_id})
    write_config(
        clean_env,
        sandbox,
        vault_profile("ar", vault_engine, "session-token", "credd_vault_auth = approle",
                      f"credd_vault_approle_role_id = {role_id}")
        + vault_profile("jw", vault_engine, "federation-token", "credd_vault_auth = jwt",
                        f"credd_vault_jwt_role = {name}",
                        f"web_identity_token_file = {token_file}"),
    )  # fmt: skip
    clock = SandboxClock(sandbox, datetime.now(UTC).replace(microsecond=0))
    manager, sched = manager_for(clock, store)
    for _ in range(4):  # 4 rotations; the 1 h login tokens are replaced as they near their end
        sched.run_for(LEASE)
        for profile in ("ar", "jw"):
            assert manager.profile_status(profile).state == "fresh", profile
            assert caller_arn(sandbox, manager.credentials(profile))
    manager.stop()


def test_vault_keys_are_validated(clean_env: Path) -> None:
    (clean_env / ".aws").mkdir()
    base = "credd = true\ncredd_vault_addr = https://bao.example.com:8200\n"
    (clean_env / ".aws" / "config").write_text(
        f"[profile ok]\n{base}credd_vault_role = dev\n"
        f"[profile type]\n{base}credd_vault_role = dev\ncredd_vault_type = keys\n"
        f"[profile norole]\n{base}"
        f"[profile ar]\n{base}credd_vault_role = dev\ncredd_vault_auth = approle\n"
        f"[profile jw]\n{base}credd_vault_role = dev\ncredd_vault_auth = jwt\n"
        "[profile url]\ncredd = true\ncredd_vault_addr = bao:8200\ncredd_vault_role = dev\n"
        "[profile chain]\ncredd = true\nsource_profile = ok\n"
        "role_arn = arn:aws:iam::123456789012:role/x\n"
    )
    cfg = awsconfig.load()
    assert cfg.managed["ok"].kind == "vault"
    errors = {name: b.error.message for name, b in cfg.broken.items()}
    assert "credd_vault_type = 'keys' is not one of creds, sts" in errors["type"]
    assert "credd_vault_role" in errors["norole"]
    assert "credd_vault_approle_role_id" in errors["ar"]
    assert "credd_vault_jwt_role" in errors["jw"]
    assert "not an http(s) URL" in errors["url"]
    keys = [n.key for n in plan_for(cfg, "chain", lambda p: "person").nodes()]
    assert keys == ["vault:ok", "role:chain"]


@pytest.mark.timeout(180)
def test_daemon_serves_vault_credentials_to_the_cli_v2_and_boto3(
    daemons: DaemonFactory, vault_engine: AwsEngine
) -> None:
    import boto3

    add_roles(vault_engine, daemons.sandbox)
    token = vault_engine.bao.token()
    sock = daemons.home / "run" / "credd.sock"
    daemons.write_config(
        vault_profile("team", vault_engine, "assumed-role").replace(
            "credd_file_profile = off\n", ""
        )
        + "[profile app]\nregion = us-east-1\nservices = sandbox\n"
        + f"credential_process = {sys.executable} -m credd.cli get team --socket {sock}\n"
    )
    d = daemons.start()
    stored = d.run("vault", "token", "set", "team", "--stdin", stdin=token + "\n")
    assert stored.returncode == 0, stored.stderr
    assert token not in stored.stdout + stored.stderr
    d.run("refresh", "team")
    assert d.wait_state("team", "fresh")["kind"] == "vault"
    done = subprocess.run(
        [
            AWS_V2,
            "sts",
            "get-caller-identity",
            "--profile",
            "app",
            "--output",
            "json",
            "--endpoint-url",
            daemons.sandbox.endpoint,
        ],
        env=daemons.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert ":assumed-role/" in json.loads(done.stdout)["Arn"]
    arn = boto3.Session(profile_name="app").client("sts").get_caller_identity()["Arn"]
    assert ":assumed-role/" in arn
    assert token not in d.log.read_text()


@pytest.mark.timeout(120)
def test_new_iam_user_keys_are_served_only_once_sts_accepts_them(
    clean_env: Path, vault_engine: AwsEngine, keyring_env: Any
) -> None:
    """IAM is eventually consistent: new iam_user keys are asked about until STS takes them."""
    sandbox = vault_engine.sandbox
    add_roles(vault_engine, sandbox)
    store = keyring_env.store()
    store.set_session(secret_entry("iam"), {"token": vault_engine.bao.token()})
    write_config(clean_env, sandbox, vault_profile("iam", vault_engine, "iam-user"))
    clock = SandboxClock(sandbox, datetime.now(UTC).replace(microsecond=0))
    sandbox.admin.set_fail(
        "InvalidClientTokenId", 403, "The security token included in the request is invalid.",
        count=2, actions=["GetCallerIdentity"],
    )  # fmt: skip
    manager, sched = manager_for(clock, store)
    sched.run_for(1)
    assert manager.profile_status("iam").state == "fresh"
    assert sandbox.admin.calls("GetCallerIdentity") == 3  # two refusals, then accepted
    assert clock.slept == [2.0, 2.0]  # on the injected clock
    manager.stop()


@pytest.mark.timeout(120)
def test_a_renewable_token_shorter_than_the_lease_is_renewed_before_it_ends(
    clean_env: Path, vault_engine: AwsEngine, keyring_env: Any
) -> None:
    sandbox, bao = vault_engine.sandbox, vault_engine.bao
    add_roles(vault_engine, sandbox)
    store = keyring_env.store()
    token = bao.token(ttl="10m")  # shorter than the 15 min lease
    store.set_session(secret_entry("short"), {"token": token})
    write_config(clean_env, sandbox, vault_profile("short", vault_engine, "assumed-role"))
    clock = SandboxClock(sandbox, datetime.now(UTC).replace(microsecond=0))
    manager, sched = manager_for(clock, store)
    sched.run_for(1)
    creds = manager.credentials("short")
    assert creds.expiration is not None
    # announced as ending with the token, so the next fetch (and renewal) comes before it ends
    assert creds.expiration - clock.now() <= timedelta(minutes=10)
    info = bao.api("POST", "auth/token/lookup", {"token": token})["data"]
    assert info.get("last_renewal_time")  # renew-self at the first fetch
    reads = vault_engine.reads
    sched.run_for(300)  # half the announced 10 min: the next fetch, with its renewal, is due
    assert vault_engine.reads == reads + 1
    assert manager.profile_status("short").state == "fresh"
    manager.stop()


@pytest.mark.timeout(300)
def test_daemon_rotations_of_every_type_to_the_cli_v2_and_boto3_with_no_failed_call(
    daemons: DaemonFactory, vault_engine: AwsEngine
) -> None:
    """Real time, 30 s leases: each type rotates at least 3 times under programs that keep
    calling (boto3 sessions that live across rotations, and the AWS CLI v2) through
    ``credential_process = credd get``."""
    import time

    import boto3

    sandbox = daemons.sandbox
    sandbox.admin.set_min_duration(30)
    add_roles(vault_engine, sandbox)
    for role in vault_engine.roles.values():
        role.ttl = 30
    sock = daemons.home / "run" / "credd.sock"
    body = ""
    for role in vault_engine.roles:
        body += vault_profile(role, vault_engine, role)
        body += (
            f"[profile app-{role}]\nregion = us-east-1\nservices = sandbox\n"
            f"credential_process = {sys.executable} -m credd.cli get {role} --socket {sock}\n"
        )
    daemons.write_config(body)
    d = daemons.start()
    for role in vault_engine.roles:
        token = vault_engine.bao.token()
        assert d.run("vault", "token", "set", role, "--stdin", stdin=token).returncode == 0
        d.run("refresh", role)
    sessions = {r: boto3.Session(profile_name=f"app-{r}") for r in vault_engine.roles}
    clients = {r: s.client("sts") for r, s in sessions.items()}
    seen: dict[str, set[str]] = {r: set() for r in vault_engine.roles}
    calls = failed = 0
    deadline = time.monotonic() + 200
    while min(len(k) for k in seen.values()) < 4 and time.monotonic() < deadline:
        for i, (role, sts) in enumerate(clients.items()):
            try:
                sts.get_caller_identity()
                creds = sessions[role].get_credentials().get_frozen_credentials()
                seen[role].add(creds.access_key)
                remember(creds.secret_key, creds.token)
            except Exception:  # counted: the figure must be 0
                failed += 1
            calls += 1
            if i == calls % 4:  # the CLI v2, one type per round
                done = subprocess.run(
                    [AWS_V2, "sts", "get-caller-identity", "--profile", f"app-{role}",
                     "--endpoint-url", sandbox.endpoint],
                    env=daemons.env(), capture_output=True, text=True, timeout=60,
                )  # fmt: skip
                calls += 1
                failed += done.returncode != 0
        time.sleep(1)
    assert failed == 0, f"{failed} of {calls} calls failed"
    assert min(len(k) for k in seen.values()) >= 4, {r: len(k) for r, k in seen.items()}
