"""``credd sso populate`` against the sandbox's IAM Identity Center: several accounts (two with
the same name) and roles, pages of one item, throttled calls; the generated profiles used by
unmodified peers (boto3, the AWS CLI v1 and the real AWS CLI v2 ``/usr/bin/aws``), a second run
that changes no byte, prune after an assignment is removed at runtime, dry runs, legacy logins,
and the daemon serving a ``--manage``d one.

One Identity Center instance and user per module (the sandbox itself is shared by the run); each
test has its own HOME with the user's config and a token cached as the AWS CLI caches it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from credd.aws.clients import ClientFactory, Limiter
from credd.cli.app import build_parser
from credd.cli.io import Io
from credd.clock import UTC, isoformat_z
from credd.errors import AwsThrottled
from credd.sso.cache import TokenCache
from credd.sso.naming import Assignment
from credd.sso.portal import Backoff, Lister
from credd.sso.settings import resolve_session
from credd.testing.clock import FakeClock
from credd_sandbox.sso_client import SsoInstance, SsoUser
from tests.fixtures.daemon import DaemonFactory, assert_no_secret, remember
from tests.fixtures.sandbox import SandboxHandle, unique_name
from tests.sandbox.test_sso_oidc import DEVICE_GRANT, SCOPE, sso_clients

pytestmark = pytest.mark.integration

AWS_V2 = "/usr/bin/aws"
CLI_V1 = str(Path(sys.executable).parent / "aws")
A, B, C, D = "111111111111", "222222222222", "333333333333", "444444444444"
ASSIGNMENTS = [
    (A, "Production", "Admin"),
    (A, "Production", "ReadOnly"),
    (B, "Data Science (Prod)", "DataScientist"),
    (B, "Data Science (Prod)", "ReadOnly"),
    (C, "Sandbox Café", "Admin"),
    (D, "Production", "Admin"),  # a second account called Production
]
EXPECTED = {
    f"Production.Admin-{A}": (A, "Admin"),
    f"Production.ReadOnly-{A}": (A, "ReadOnly"),  # the bare name is the user's own profile
    "Data-Science-Prod.DataScientist": (B, "DataScientist"),
    "Data-Science-Prod.ReadOnly": (B, "ReadOnly"),
    "Sandbox-Cafe.Admin": (C, "Admin"),
    f"Production.Admin-{D}": (D, "Admin"),
}
USER_CONFIG = """\
# my AWS config: credd must keep every byte of this
[default]
region = eu-west-1   ; my region

# written by hand, with the very name populate would give
[profile Production.ReadOnly]
sso_session = corp
sso_account_id = 111111111111
sso_role_name = ReadOnly
region = us-east-1
services = sandbox

[sso-session corp]
sso_start_url = {url}
sso_region = us-east-1
sso_registration_scopes = sso:account:access

[services sandbox]
sso =
  endpoint_url = {endpoint}
sso_oidc =
  endpoint_url = {endpoint}
sts =
  endpoint_url = {endpoint}
s3 =
  endpoint_url = {endpoint}
"""
BOTO3 = """
import boto3, json, sys
print(json.dumps(boto3.Session(profile_name=sys.argv[1]).client("sts").get_caller_identity()))
"""


@dataclass
class Corp:
    sb: SandboxHandle
    instance: SsoInstance
    user: SsoUser
    token: dict[str, Any]

    @property
    def url(self) -> str:
        return self.instance.start_url

    def config(self) -> str:
        return USER_CONFIG.format(url=self.url, endpoint=self.sb.endpoint)


def login(sb: SandboxHandle, instance: SsoInstance, user: SsoUser) -> dict[str, Any]:
    """A device-code login of ``user``, as ``aws sso login`` makes one."""
    oidc, _ = sso_clients(sb)
    reg = oidc.register_client(clientName=unique_name("cli"), clientType="public", scopes=[SCOPE])
    sb.admin.sso_auto_approve(user, start_url=instance, count=1)
    device = oidc.start_device_authorization(
        clientId=reg["clientId"], clientSecret=reg["clientSecret"], startUrl=instance.start_url
    )
    token: dict[str, Any] = oidc.create_token(
        clientId=reg["clientId"],
        clientSecret=reg["clientSecret"],
        grantType=DEVICE_GRANT,
        deviceCode=device["deviceCode"],
    )
    remember(token["accessToken"], token.get("refreshToken"), reg["clientSecret"])
    return {**token, **reg}


@pytest.fixture(scope="module")
def corp(sandbox: SandboxHandle) -> Corp:
    admin = sandbox.admin
    instance = admin.create_sso_instance(region="us-east-1")
    user = admin.create_sso_user(unique_name("populate"), start_url=instance)
    for account, name, role in ASSIGNMENTS:
        admin.assign_sso_role(user, role, start_url=instance, account_id=account, account_name=name)
    return Corp(sandbox, instance, user, login(sandbox, instance, user))


def cache_token(home: Path, key: str, token: dict[str, Any], url: str, expires: timedelta) -> Path:
    """The token cached as the AWS CLI caches it (``key``: the session name or start URL)."""
    entry = {
        "startUrl": url,
        "region": "us-east-1",
        "accessToken": token["accessToken"],
        "expiresAt": isoformat_z(datetime.now(UTC) + expires),
        "clientId": token["clientId"],
        "clientSecret": token["clientSecret"],
        "registrationExpiresAt": isoformat_z(datetime.now(UTC) + timedelta(days=80)),
        "refreshToken": token["refreshToken"],
    }
    path = home / ".aws" / "sso" / "cache" / (hashlib.sha1(key.encode()).hexdigest() + ".json")  # noqa: S324
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entry))
    return path


@pytest.fixture
def home(corp: Corp, sandbox_clean: SandboxHandle, clean_env: Path) -> Iterator[Path]:
    """A HOME with the user's config and a cached login of sso-session corp."""
    aws = clean_env / ".aws"
    aws.mkdir(mode=0o700)
    (aws / "config").write_text(corp.config())
    cache_token(clean_env, "corp", corp.token, corp.url, timedelta(hours=1))
    yield clean_env


def credd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "credd.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env or dict(os.environ),
        stdin=subprocess.DEVNULL,
    )
    assert_no_secret(done.stdout + done.stderr, f"credd {' '.join(args)}")
    return done


def run_here(argv: list[str], out: io.StringIO, err: io.StringIO) -> int:
    """``credd ARGV`` in this process, as ``credd.cli`` runs it."""
    args = build_parser().parse_args(argv)
    return int(args.func(args, Io(stdout=out, stderr=err)))


def populate(*args: str, here: bool = True) -> dict[str, Any]:
    """``credd sso populate --json ARGS``: in this process (the command function, as the CLI
    calls it) unless ``here`` is false (a real ``credd`` process)."""
    argv = ["sso", "populate", "--set", "services=sandbox", "--json", *args]
    if here:
        out, err = io.StringIO(), io.StringIO()
        code = run_here(argv, out, err)
        done = subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())
        assert_no_secret(done.stdout + done.stderr, "credd sso populate")
    else:
        done = credd(*argv)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def names(result: dict[str, Any], action: str) -> set[str]:
    return {c["profile"] for c in result[action]}


def v2_endpoint_data(tmp: Path, endpoint: str) -> Path:
    """An ``AWS_DATA_PATH`` that sends the CLI v2's SSO portal calls to the sandbox: 2.9 reads
    neither ``[services]`` nor ``AWS_ENDPOINT_URL_SSO``, but botocore loads its endpoint
    rule set from the data path like any of its data files."""
    official = Path("/usr/lib/python3/dist-packages/awscli/botocore/data/sso/2019-06-10")
    rules = json.loads((official / "endpoint-rule-set-1.json").read_text())
    rules["rules"] = [
        {
            "conditions": [],
            "type": "endpoint",
            "endpoint": {"url": endpoint, "properties": {}, "headers": {}},
        }
    ]
    target = tmp / "aws-data" / "sso" / "2019-06-10"
    target.mkdir(parents=True)
    (target / "endpoint-rule-set-1.json").write_text(json.dumps(rules))
    return tmp / "aws-data"


def run_peer(args: list[str], **env: str) -> dict[str, Any]:
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=120, env={**os.environ, **env}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_every_account_and_role_through_pages_and_throttling_used_by_boto3_and_both_clis(
    corp: Corp, home: Path, tmp_path: Path
) -> None:
    admin = corp.sb.admin
    admin.set_sso_settings(portal_page_size=1)  # every page holds one item: nextToken followed
    admin.set_throttle(count=3, services=["sso"], actions=["ListAccountRoles"])
    config = home / ".aws" / "config"
    os.chmod(config, 0o640)
    result = populate(here=False)
    assert result["accounts"] == 4 and result["roles"] == 6 and result["written"]
    assert {c["profile"]: (c["account_id"], c["role_name"]) for c in result["added"]} == EXPECTED
    assert result["updated"] == result["pruned"] == result["stale"] == []
    stats = admin.call_stats()["actions"]
    assert stats["ListAccounts"] == {"total": 4, "ok": 4, "error": 0}
    assert stats["ListAccountRoles"] == {"total": 9, "ok": 6, "error": 3}

    text = config.read_text()
    assert text.startswith(corp.config())  # every byte of the user's, the profiles after
    assert oct(config.stat().st_mode & 0o777) == "0o640"
    assert (
        "[profile Sandbox-Cafe.Admin]\nsso_session = corp\nsso_account_id = 333333333333\n" in text
    )

    ident = run_peer([sys.executable, "-c", BOTO3, "Data-Science-Prod.DataScientist"])
    assert ident["Account"] == B and "AWSReservedSSO_DataScientist_" in ident["Arn"]
    ident = run_peer([CLI_V1, "sts", "get-caller-identity", "--profile", "Sandbox-Cafe.Admin"])
    assert ident["Account"] == C and "AWSReservedSSO_Admin_" in ident["Arn"]
    data = v2_endpoint_data(tmp_path, corp.sb.endpoint)
    profile = f"Production.Admin-{D}"
    args = [AWS_V2, "sts", "get-caller-identity", "--profile", profile, "--output", "json"]
    ident = run_peer([*args, "--endpoint-url", corp.sb.endpoint], AWS_DATA_PATH=str(data))
    assert ident["Account"] == D and ident["Arn"].endswith(f"/{corp.user.name}")


def test_a_second_run_changes_no_byte_and_says_so(home: Path) -> None:
    populate()
    config = home / ".aws" / "config"
    before = (config.read_bytes(), config.stat().st_mtime_ns, config.stat().st_ino)
    done = credd("sso", "populate", "--set", "services=sandbox")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "sso-session corp: 4 accounts, 6 roles",
        f"Nothing to change: {config} is up to date (6 profiles).",
    ]
    assert (config.read_bytes(), config.stat().st_mtime_ns, config.stat().st_ino) == before


def test_a_profile_written_by_hand_while_populate_lists_is_kept_and_not_collided_with(
    corp: Corp, home: Path
) -> None:
    """The plan is made under the lock from the file as it is then, not as it was read."""
    admin = corp.sb.admin
    admin.set_slow(1.0, count=1, services=["sso"], actions=["ListAccounts"])
    config = home / ".aws" / "config"
    mine = "\n[profile Sandbox-Cafe.Admin]\nregion = eu-north-1\n"

    def editor() -> None:  # someone saves the file while the portal is being asked
        deadline = time.monotonic() + 30
        while admin.call_stats()["in_flight"] < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        with config.open("a") as f:
            f.write(mine)

    thread = threading.Thread(target=editor)
    thread.start()
    result = populate()
    thread.join()
    assert "Sandbox-Cafe.Admin-333333333333" in names(result, "added")
    text = config.read_text()
    assert text.startswith(corp.config() + mine)


def test_dry_run_prints_the_diff_and_writes_nothing(corp: Corp, home: Path) -> None:
    config = home / ".aws" / "config"
    before = (config.read_bytes(), config.stat().st_mtime_ns)
    done = credd("sso", "populate", "--dry-run", "--prefix", "corp-", "--region", "eu-central-1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"--- {config}\n+++ {config} (after credd sso populate)\n")
    assert "+[profile corp-Sandbox-Cafe.Admin]\n+sso_session = corp\n" in done.stdout
    assert "+region = eu-central-1\n" in done.stdout
    assert done.stdout.rstrip().endswith(
        f"6 added, 0 updated, 0 renamed, 0 pruned in {config}; nothing written."
    )
    body = json.loads(credd("sso", "populate", "--dry-run", "--json").stdout)
    assert body["dry_run"] and body["changed"] and not body["written"] and len(body["added"]) == 6
    assert "+[profile Sandbox-Cafe.Admin]" in body["diff"]
    assert (config.read_bytes(), config.stat().st_mtime_ns) == before
    assert not list(config.parent.glob("config.*tmp*"))


def test_prune_after_an_assignment_is_removed_deletes_only_that_profile(
    corp: Corp, home: Path
) -> None:
    admin = corp.sb.admin
    user = admin.create_sso_user(unique_name("pruned"), start_url=corp.instance)
    for account, name, role in ASSIGNMENTS[:3]:
        admin.assign_sso_role(
            user, role, start_url=corp.instance, account_id=account, account_name=name
        )
    cache_token(home, "corp", login(corp.sb, corp.instance, user), corp.url, timedelta(hours=1))
    config = home / ".aws" / "config"
    with config.open("a") as f:  # a profile of the user's chained on a generated one
        f.write("\n# mine\n[profile chained]\nsource_profile = Data-Science-Prod.DataScientist\n")
        f.write(f"role_arn = arn:aws:iam::{B}:role/x\n")
    first = populate()
    assert names(first, "added") == {
        "Production.Admin",  # no second account called Production for this user
        f"Production.ReadOnly-{A}",
        "Data-Science-Prod.DataScientist",
    }
    full = config.read_text()

    admin.unassign_sso_role(user, "Admin", start_url=corp.instance, account_id=A)
    stale = populate()
    assert names(stale, "stale") == {"Production.Admin"} and not stale["written"]
    assert config.read_text() == full
    pruned = populate("--prune")
    assert names(pruned, "pruned") == {"Production.Admin"} and pruned["written"]
    section = "\n[profile Production.Admin]\n" + "".join(
        f"{k} = {v}\n"
        for k, v in (
            ("sso_session", "corp"),
            ("sso_account_id", A),
            ("sso_role_name", "Admin"),
            ("region", "us-east-1"),
            ("services", "sandbox"),
            ("credd_generated", "corp"),
        )
    )
    assert section in full and config.read_text() == full.replace(section, "")

    # the chained profile keeps the generated one it stands on
    admin.unassign_sso_role(user, "DataScientist", start_url=corp.instance, account_id=B)
    kept = populate("--prune")
    assert names(kept, "stale") == {"Data-Science-Prod.DataScientist"}
    assert "source_profile" in kept["stale"][0]["note"]


def test_no_login_or_an_ended_one_says_to_run_credd_login(corp: Corp, home: Path) -> None:
    cache = next((home / ".aws" / "sso" / "cache").glob("*.json"))
    cache.unlink()
    done = credd("sso", "populate")
    assert done.returncode == 4 and done.stdout == ""
    assert "(run: credd login --sso-session corp)" in done.stderr
    assert done.stderr.count("\n") == 1
    ended = dict(corp.token)
    ended.pop("refreshToken")
    entry = {"startUrl": corp.url, "region": "us-east-1", "accessToken": ended["accessToken"]}
    entry["expiresAt"] = isoformat_z(datetime.now(UTC) - timedelta(minutes=1))
    cache.write_text(json.dumps(entry))
    done = credd("sso", "populate")
    assert done.returncode == 4 and "expired" in done.stderr
    assert "credd login --sso-session corp" in done.stderr
    # a session an administrator ended: the portal refuses the token it still has time on
    admin = corp.sb.admin
    user = admin.create_sso_user(unique_name("revoked"), start_url=corp.instance)
    admin.assign_sso_role(user, "Admin", start_url=corp.instance, account_id=A)
    cache_token(home, "corp", login(corp.sb, corp.instance, user), corp.url, timedelta(hours=1))
    admin.revoke_sso_sessions(user=user)
    out, err = io.StringIO(), io.StringIO()
    assert run_here(["sso", "populate"], out, err) == 4
    assert err.getvalue() == (
        "credd: SSO login for corp has ended (ListAccounts: UnauthorizedException) "
        "(run: credd login --sso-session corp)\n"
    )
    assert not (home / ".aws" / "config").read_text().count("credd_generated")


def test_a_legacy_login_generates_legacy_profiles_that_boto3_uses(corp: Corp, home: Path) -> None:
    config = home / ".aws" / "config"
    legacy = (
        "[profile old-style]\n"
        f"sso_start_url = {corp.url}\nsso_region = us-east-1\nsso_account_id = {A}\n"
        "sso_role_name = Admin\nservices = sandbox\n\n[services sandbox]"
        + corp.config().split("[services sandbox]")[1]
    )
    config.write_text(legacy)
    cache_token(home, corp.url, corp.token, corp.url, timedelta(hours=1))
    result = populate("--name-template", "{sso_session}-{account_id}-{role_name}")
    assert result["sso_session"] is None and result["login"] == corp.url
    assert len(result["added"]) == 6
    text = config.read_text()
    host = corp.url.split("//")[1].split(".")[0]
    assert (
        f"[profile {host}-{C}-Admin]\nsso_start_url = {corp.url}\nsso_region = us-east-1\n" in text
    )
    ident = run_peer([sys.executable, "-c", BOTO3, f"{host}-{B}-ReadOnly"])
    assert ident["Account"] == B and "AWSReservedSSO_ReadOnly_" in ident["Arn"]


def test_listing_holds_the_inflight_bound_and_backs_off_on_the_injected_clock(
    corp: Corp, home: Path
) -> None:
    admin = corp.sb.admin
    admin.set_sso_settings(portal_page_size=2)
    admin.set_throttle(count=4, services=["sso"], actions=["ListAccountRoles"])
    target = resolve_session(
        "corp", {"sso_sessions": {"corp": {"sso_start_url": corp.url, "sso_region": "us-east-1"}}}
    )
    token = TokenCache().read(target)
    assert token is not None
    clock = FakeClock()
    start = clock.monotonic()
    factory = ClientFactory(limiter=Limiter(2))
    lister = Lister(target, token, factory, profile="Production.ReadOnly", clock=clock)
    assert lister.assignments() == sorted(Assignment(a, r, n) for a, n, r in ASSIGNMENTS)
    assert factory.limiter.peak <= 2 and lister.retries >= 1
    assert clock.monotonic() > start  # waited on the clock it was given
    admin.set_throttle(services=["sso"], actions=["ListAccounts"])  # until cleared
    with pytest.raises(AwsThrottled, match=r"ListAccounts for corp was throttled"):
        Lister(
            target, token, factory, profile="Production.ReadOnly", clock=clock, backoff=Backoff(2)
        ).accounts()


def test_a_managed_profile_is_served_by_the_daemon_to_the_cli_v2(
    corp: Corp, daemons: DaemonFactory
) -> None:
    admin = corp.sb.admin
    user = admin.create_sso_user(unique_name("managed"), start_url=corp.instance)
    admin.assign_sso_role(
        user, "Analyst", start_url=corp.instance, account_id=C, account_name="Lab"
    )
    (daemons.aws / "config").write_text(corp.config())
    cache_token(
        daemons.home, "corp", login(corp.sb, corp.instance, user), corp.url, timedelta(hours=1)
    )
    result = populate("--manage")
    assert names(result, "added") == {"Lab.Analyst"}
    assert "credd = true" in (daemons.aws / "config").read_text()
    d = daemons.start()
    p = d.wait_state("Lab.Analyst", "fresh")
    assert p["kind"] == "sso" and p["file_profile"] == "Lab.Analyst-credd"
    assert d.get("Lab.Analyst")["AccountId"] == C
    done = subprocess.run(
        [
            AWS_V2,
            "sts",
            "get-caller-identity",
            "--profile",
            "Lab.Analyst-credd",
            "--output",
            "json",
            "--endpoint-url",
            corp.sb.endpoint,
        ],
        env=daemons.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["Account"] == C
