"""How credd scales with the number of profiles (issue 9), with the real daemon and the sandbox.

    .venv/bin/python bench/scale.py [--roles 1,100,1000] [--sso 1000] [--idle 20] [--json FILE]

Scenarios: N role profiles behind one IAM user with an MFA device whose code comes from
``mfa_process`` (one GetSessionToken, N AssumeRole), and N IAM Identity Center account/role
profiles behind one sso-session (a token cached as the AWS CLI leaves it, N GetRoleCredentials).
For each: time from the daemon's start until every profile is fresh, the AWS calls the sandbox
counted, the daemon's RSS, threads and file descriptors once fresh, its CPU over an idle window,
and ``credd status`` latency (the command, the API call with its JSON parse, and the round trip
alone: the daemon's share); then the marginal memory per profile and the ratios to the goals.

Secrets go to a plain-file store in the bench's own temporary HOME (``CREDD_SECRET_STORE``), as
on a headless machine; the bench never touches the real ~/.aws or keyring.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from credd.client import Client  # noqa: E402
from credd.errors import CreddError  # noqa: E402
from credd_sandbox import AdminClient, SandboxProcess  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
GOALS = {
    "rss_mb_100": 80.0,
    "rss_mb_1000": 150.0,
    "marginal_kb": 50.0,
    "fresh_s_1000": 15.0,
    "idle_cpu_pct_1000": 0.5,
    "status_ratio_1000": 2.0,
}


def services(endpoint: str) -> str:
    return "[services sandbox]\n" + "".join(
        f"{svc} =\n  endpoint_url = {endpoint}\n" for svc in ("sts", "iam", "sso", "sso_oidc")
    )


def base_env(home: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CREDD_", "XDG_"))}
    return keep | {
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(home / ".aws" / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / ".aws" / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "CREDD_SOCKET": str(home / "credd.sock"),
        "CREDD_SECRET_STORE": "plaintext-file",
        "CREDD_ENDPOINT_PORT": "off",
        "CREDD_LOG_LEVEL": "WARNING",
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_RUNTIME_DIR": str(home / "run"),
    }


def setup_roles(home: Path, admin: AdminClient, endpoint: str, n: int) -> None:
    user = admin.create_user(f"bench-{n}-{int(time.time() * 1000) % 10**9}")
    device = admin.create_mfa_device(user)
    code = f"{sys.executable} -c \"import pyotp; print(pyotp.TOTP('{device.seed}').now())\""
    text = (
        f"[profile user]\nregion = us-east-1\nservices = sandbox\nmfa_serial = {device.serial}\n"
        f"mfa_process = {code}\ncredd = true\ncredd_file_profile = off\n\n"
    )
    for i in range(n):
        role = admin.create_role(f"{user.name}-r{i}", trusted=[user.arn], mfa_required=True)
        text += (
            f"[profile r{i}]\nrole_arn = {role.arn}\nsource_profile = user\nregion = us-east-1\n"
            "services = sandbox\ncredd = true\n\n"
        )
    aws = home / ".aws"
    aws.mkdir(mode=0o700, parents=True)
    (aws / "config").write_text(text + services(endpoint))
    (aws / "credentials").write_text(
        f"[user]\naws_access_key_id = {user.access_key_id}\n"
        f"aws_secret_access_key = {user.secret_access_key}\n"
    )
    os.chmod(aws / "credentials", 0o600)


def setup_sso(home: Path, admin: AdminClient, endpoint: str, n: int) -> None:
    import botocore.session
    from botocore import UNSIGNED
    from botocore.config import Config
    from botocore.tokens import _sso_json_dumps
    from botocore.utils import JSONFileCache, SSOTokenLoader

    instance = admin.create_sso_instance(region="us-east-1")
    user = admin.create_sso_user(f"bench-sso-{n}-{int(time.time()) % 10**6}", start_url=instance)
    text = ""
    for i in range(n):
        account = f"{100000000000 + i // 10}"
        admin.assign_sso_role(user, f"Role{i % 10}", start_url=instance, account_id=account)
        text += (
            f"[profile s{i}]\nsso_session = corp\nsso_account_id = {account}\n"
            f"sso_role_name = Role{i % 10}\nregion = us-east-1\nservices = sandbox\n"
            "credd = true\n\n"
        )
    text += (
        f"[sso-session corp]\nsso_start_url = {instance.start_url}\nsso_region = us-east-1\n"
        "sso_registration_scopes = sso:account:access\n\n"
    )
    aws = home / ".aws"
    aws.mkdir(mode=0o700, parents=True)
    (aws / "config").write_text(text + services(endpoint))
    # Log in the way the AWS CLI does, and leave the token in the shared cache.
    oidc = botocore.session.Session().create_client(
        "sso-oidc",
        endpoint_url=endpoint,
        config=Config(region_name="us-east-1", signature_version=UNSIGNED),
    )
    reg = oidc.register_client(
        clientName="bench", clientType="public", scopes=["sso:account:access"]
    )
    auth = oidc.start_device_authorization(
        clientId=reg["clientId"], clientSecret=reg["clientSecret"], startUrl=instance.start_url
    )
    admin.approve_device(auth["userCode"], user=user)
    reply = oidc.create_token(
        grantType="urn:ietf:params:oauth:grant-type:device_code",
        clientId=reg["clientId"],
        clientSecret=reg["clientSecret"],
        deviceCode=auth["deviceCode"],
    )
    entry = {
        "startUrl": instance.start_url,
        "region": "us-east-1",
        "accessToken": reply["accessToken"],
        "expiresAt": datetime.now(UTC) + timedelta(minutes=50),
        "clientId": reg["clientId"],
        "clientSecret": reg["clientSecret"],
        "registrationExpiresAt": datetime.fromtimestamp(reg["clientSecretExpiresAt"], UTC),
        "refreshToken": reply["refreshToken"],
    }
    cache = JSONFileCache(str(aws / "sso" / "cache"), dumps_func=_sso_json_dumps)
    SSOTokenLoader(cache=cache).save_token(instance.start_url, entry, session_name="corp")


def proc_figures(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "rss_mb": int(fields["VmRSS"].split()[0]) / 1024,
        "threads": int(fields["Threads"]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / TICKS


def wait_fresh(client: Client, n: int, proc: subprocess.Popen[bytes], timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise SystemExit("the daemon exited; see its log")
        try:
            profiles = client.status()["profiles"]
        except CreddError:
            time.sleep(0.2)
            continue
        if len(profiles) >= n and all(p["state"] == "fresh" for p in profiles):
            return time.monotonic()
        time.sleep(2.0)  # a status of 1,000 profiles is work for the daemon too: ask rarely
    raise SystemExit(f"not all fresh after {timeout:.0f} s")


def median_time(fn: Any, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def status_latency(client: Client, env: dict[str, str], rounds: int = 7) -> dict[str, float]:
    """``credd status`` three ways, medians in ms: the command as a person runs it (a new
    interpreter, the socket, the table printed), the API call with the client's JSON parse
    (what ``status_ms`` always measured), and the daemon's share alone (the round trip, bytes)."""
    cli = [sys.executable, "-m", "credd.cli", "status"]
    return {
        "status_cli_ms": 1000
        * median_time(
            lambda: subprocess.run(cli, env=env, stdout=subprocess.DEVNULL, check=False), 5
        ),
        "status_ms": 1000 * median_time(client.status, rounds),
        "status_raw_ms": 1000 * median_time(lambda: client.call("GET", "/v1/status"), rounds),
    }


def scenario(kind: str, n: int, admin: AdminClient, endpoint: str, idle: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"credd-scale-{kind}-") as tmp:
        home = Path(tmp)
        (home / "run").mkdir(mode=0o700)
        (setup_roles if kind == "role" else setup_sso)(home, admin, endpoint, n)
        env = base_env(home)
        before = admin.calls()
        managed = n + 1 if kind == "role" else n
        log = open(home / "daemon.log", "wb")  # noqa: SIM115 - closed below
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "credd.cli", "daemon"], env=env, stdout=log, stderr=log
        )
        try:
            client = Client(Path(env["CREDD_SOCKET"]), timeout=30)
            fresh_at = wait_fresh(client, managed, proc, timeout=900)
            busy = cpu_seconds(proc.pid)
            after = admin.calls()
            time.sleep(2)  # let the last writes settle
            figures = proc_figures(proc.pid)
            latency = status_latency(client, env)
            cpu0, w0 = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(idle)
            idle_cpu = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - w0) * 100
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
        calls = {
            k: after.get(k, 0) - before.get(k, 0)
            for k in after
            if after.get(k, 0) != before.get(k, 0)
        }
        return {
            "kind": kind,
            "profiles": n,
            "fresh_s": round(fresh_at - t0, 2),
            "cpu_to_fresh_s": round(busy, 2),
            "calls": calls,
            **{k: round(v, 1) for k, v in figures.items()},
            **{k: round(v, 2) for k, v in latency.items()},
            "idle_cpu_pct": round(idle_cpu, 2),
        }


def ratios(rows: list[dict[str, Any]]) -> list[str]:
    by = {(r["kind"], r["profiles"]): r for r in rows}
    out = []

    def line(name: str, value: float, goal: float, unit: str) -> None:
        out.append(f"  {name:<44} {value:9.2f} {unit:<5} goal {goal:g} -> {value / goal:.2f}x")

    for kind in ("role", "sso"):
        if (kind, 100) in by:
            line(f"{kind}: RSS at 100 profiles", by[(kind, 100)]["rss_mb"], 80.0, "MB")
        big = by.get((kind, 1000))
        if big is None:
            continue
        line(f"{kind}: RSS at 1000 profiles", big["rss_mb"], 150.0, "MB")
        line(f"{kind}: all fresh at 1000 profiles", big["fresh_s"], 15.0, "s")
        line(f"{kind}: idle CPU at 1000 profiles", big["idle_cpu_pct"], 0.5, "%")
        small = by.get((kind, 100)) or by.get((kind, 1))
        if small is not None:
            marginal = (big["rss_mb"] - small["rss_mb"]) * 1024 / (1000 - small["profiles"])
            line(f"{kind}: marginal memory per profile", marginal, 50.0, "KB")
        one = by.get((kind, 1))
        if one is not None:
            for key, what in (
                ("status_cli_ms", "the command"),
                ("status_ms", "API call + JSON parse"),
                ("status_raw_ms", "round trip, bytes"),
            ):
                if key in big and key in one:
                    line(
                        f"{kind}: credd status at 1000 vs 1 ({what})", big[key] / one[key], 2.0, "x"
                    )
    return out


def run(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the scenarios ``argv`` asks for, print the table and the ratios; return the rows."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--roles", default="1,100,1000", help="role profile counts")
    parser.add_argument("--sso", default="1,1000", help="SSO profile counts ('' for none)")
    parser.add_argument("--idle", type=float, default=20.0, help="idle window, seconds")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="credd-scale-sandbox-") as tmp:
        sandbox = SandboxProcess(log_path=str(Path(tmp) / "sandbox.log"))
        sandbox.start()
        try:
            admin = AdminClient(sandbox.endpoint)
            plan = [("role", int(n)) for n in args.roles.split(",") if n]
            plan += [("sso", int(n)) for n in args.sso.split(",") if n]
            print(f"{'scenario':<12} {'fresh s':>8} {'RSS MB':>7} {'thr':>4} {'fds':>4} "
                  f"{'status ms (cli/api/raw)':>23} {'idle CPU %':>10}  AWS calls")  # fmt: skip
            for kind, n in plan:
                row = scenario(kind, n, admin, sandbox.endpoint, args.idle)
                rows.append(row)
                print(
                    f"{kind + ' ' + str(n):<12} {row['fresh_s']:>8} {row['rss_mb']:>7} "
                    f"{row['threads']:>4.0f} {row['fds']:>4.0f} "
                    f"{row['status_cli_ms']:>7} {row['status_ms']:>7} {row['status_raw_ms']:>7} "
                    f"{row['idle_cpu_pct']:>10}  {row['calls']}",
                    flush=True,
                )
        finally:
            sandbox.stop()
    print("ratios to the goals (<= 1.00x meets the goal):")
    for text in ratios(rows):
        print(text)
    if args.json:
        args.json.write_text(json.dumps({"scale": rows}, indent=2))
    return rows


def main(argv: list[str] | None = None) -> int:
    run(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
