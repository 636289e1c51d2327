"""The container endpoint of the real daemon: sandbox STS, gnome-keyring, the AWS CLI v2 under
``credd exec``, boto3 through ``AWS_CONTAINER_CREDENTIALS_FULL_URI``, a refresh under load."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from credd.client import Client
from credd.server.endpoint import default_port
from tests.fixtures.daemon import Daemon, DaemonFactory, remember
from tests.integration.test_daemon import AWS_V2, FOREIGN, mfa_user, profile_block

pytestmark = pytest.mark.integration

BOTO_WHOAMI = (
    "import boto3, sys\n"
    "sts = boto3.client('sts', endpoint_url=sys.argv[1], region_name='us-east-1')\n"
    "print(sts.get_caller_identity()['Arn'])\n"
)

#: a long-running program: one client for its whole life, a call every 0.3 s, until it has
#: seen two sessions (and a few calls with the second) or 80 s have passed
LONG_RUNNING = """
import boto3, json, sys, time
session = boto3.Session()
sts = session.client("sts", endpoint_url=sys.argv[1], region_name="us-east-1")
calls = failures = after = 0
keys = []
deadline = time.monotonic() + 80
while time.monotonic() < deadline and after < 3:
    try:
        sts.get_caller_identity()
        calls += 1
    except Exception as exc:
        failures += 1
        print("failed:", type(exc).__name__, file=sys.stderr)
    key = session.get_credentials().get_frozen_credentials().access_key
    if key not in keys:
        keys.append(key)
    if len(keys) > 1:
        after += 1
    time.sleep(0.3)
print(json.dumps({"calls": calls, "failures": failures, "keys": [k[-4:] for k in keys]}))
"""


def endpoint_info(d: Daemon) -> dict[str, Any]:
    info: dict[str, Any] = Client(d.socket).status()["daemon"]["endpoint"]
    return info


def container_env(d: Daemon, profile: str) -> dict[str, str]:
    info = endpoint_info(d)
    env = dict(d.env)
    env.pop("AWS_PROFILE", None)
    env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = info["url"] + profile
    env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = info["token_file"]
    return env


def fetch(info: dict[str, Any], profile: str, token: str) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", info["port"], timeout=20)
    try:
        conn.request(
            "GET", f"/v1/container-credentials/{profile}", headers={"Authorization": token}
        )
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


@contextmanager
def holding_port(port: int = 0) -> Iterator[int]:
    """Listen on 127.0.0.1:``port`` (another program holding it) and yield the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen(1)
    except OSError:  # somebody else holds it already: just as good
        sock.close()
        yield port
        return
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def test_64_clients_share_one_fetch_then_the_cli_v2_and_boto3_use_the_endpoint(
    daemons: DaemonFactory,
) -> None:
    user, _device = mfa_user(daemons, "work")
    daemons.write_config(profile_block("work"))
    daemons.sandbox.admin.set_slow(4.0, count=1, actions=["GetSessionToken"])
    d = daemons.start()
    info = endpoint_info(d)
    assert info["state"] == "serving" and info["url"].startswith("http://127.0.0.1:")
    token_file = Path(info["token_file"])
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    token = token_file.read_text()
    remember(token)  # never in a log: the run-wide scan (tests/fixtures/daemon.py) checks
    assert Client(d.socket).status()["profiles"][0]["state"] != "fresh"  # still fetching

    results: list[tuple[int, dict[str, Any]]] = []
    lock = threading.Lock()

    def client() -> None:
        got = fetch(info, "work", token)
        with lock:
            results.append(got)

    threads = [threading.Thread(target=client) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 64 and {status for status, _ in results} == {200}
    keys = {body["AccessKeyId"] for _, body in results}
    assert len(keys) == 1
    remember(*(body["SecretAccessKey"] for _, body in results), results[0][1]["Token"])
    assert daemons.sandbox.admin.calls("GetSessionToken") == 1

    # boto3 in another process, with nothing but the two variables
    env = container_env(d, "work")
    done = subprocess.run(
        [sys.executable, "-c", BOTO_WHOAMI, daemons.sandbox.endpoint],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == user.arn

    # the AWS CLI v2 under credd exec, with static [default] keys in the credentials file that
    # the sandbox does not know: credd hides them, or the CLI would fail as [default]
    (daemons.aws / "credentials").write_text(FOREIGN)
    env = dict(d.env) | {"AWS_ACCESS_KEY_ID": "AKIASTATICSTATIC0001"}
    cli = subprocess.run(
        [sys.executable, "-m", "credd.cli", "exec", "work", "--", AWS_V2, "sts",
         "get-caller-identity", "--endpoint-url", daemons.sandbox.endpoint, "--output", "json"],
        env=env, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["Arn"] == user.arn
    assert "[default]" in cli.stderr  # told why its credentials file was swapped
    assert daemons.sandbox.admin.calls("GetSessionToken") == 1  # all of it from one session


@pytest.mark.timeout(150)
def test_a_long_running_boto3_program_keeps_working_across_a_refresh(
    daemons: DaemonFactory,
) -> None:
    daemons.sandbox.admin.set_min_duration(60)
    mfa_user(daemons, "short")
    daemons.write_config(profile_block("short", "credd_session_duration = 60"))
    d = daemons.start(CREDD_MIN_SESSION_SECONDS="60")
    d.wait_state("short", "fresh")
    env = container_env(d, "short")
    done = subprocess.run(
        [sys.executable, "-c", LONG_RUNNING, daemons.sandbox.endpoint],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["failures"] == 0, done.stderr
    assert len(result["keys"]) >= 2 and result["calls"] >= 10, result
    # the endpoint never called STS itself: one GetSessionToken per session the program saw
    assert daemons.sandbox.admin.calls("GetSessionToken") == len(result["keys"])


def test_token_reused_a_taken_port_leaves_the_socket_serving_and_no_endpoint(
    daemons: DaemonFactory,
) -> None:
    mfa_user(daemons, "desk", seed_in_keyring=False)
    daemons.write_config(profile_block("desk", "credd_mfa_source = person"))
    first = daemons.start()
    first.wait_state("desk", "needs_mfa")
    info = endpoint_info(first)
    token = Path(info["token_file"]).read_text()
    remember(token)
    # a profile that needs a person: a 503 botocore shows, saying what to run
    done = subprocess.run(
        [sys.executable, "-c", BOTO_WHOAMI, daemons.sandbox.endpoint],
        env=container_env(first, "desk"), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0 and "credd mfa desk" in done.stderr
    assert "503" in done.stderr
    status, body = fetch(info, "nobody", token)
    assert status == 404 and "credd enable nobody" in body["message"]
    assert first.stop() == 0

    with holding_port() as port:
        taken = daemons.start(CREDD_ENDPOINT_PORT=str(port))
        info = endpoint_info(taken)
        assert info["state"] == "error" and info["error"]["code"] == "port_in_use"
        assert str(port) in info["error"]["message"]
        assert f"container endpoint: not serving: port {port}" in taken.run("status").stdout
        got = taken.run("get", "desk")  # the unix socket still answers
        assert got.returncode == 4 and "credd mfa desk" in got.stderr
        env_out = taken.run("env", "desk")
        assert env_out.returncode == 5 and "already in use" in env_out.stderr
        assert taken.stop() == 0

    with holding_port(default_port()) as port:
        fallback = daemons.start(CREDD_ENDPOINT_PORT="")  # the per-user default
        info = endpoint_info(fallback)
        assert info["state"] == "serving" and info["port"] != port
        assert f"default port {port} was taken" in info["note"]
        assert Path(info["token_file"]).read_text() == token  # reused across restarts
        assert oct(Path(info["token_file"]).stat().st_mode & 0o777) == "0o600"
        assert fetch(info, "desk", token)[0] == 503
        assert fallback.stop() == 0

    off = daemons.start("--no-endpoint")
    assert endpoint_info(off)["state"] == "off"
    assert "container endpoint: off" in off.run("status").stdout
    env_out = off.run("env", "desk")
    assert env_out.returncode == 5 and "turned off" in env_out.stderr
    assert off.stop() == 0

    with holding_port() as free:
        pass  # a port that was free a moment ago
    pinned = daemons.start("--endpoint-port", str(free))
    assert endpoint_info(pinned)["port"] == free
    assert endpoint_info(pinned)["url"] == f"http://127.0.0.1:{free}/v1/container-credentials/"
    out = json.loads(pinned.run("env", "desk", "--format", "json").stdout)
    assert out["set"]["AWS_CONTAINER_AUTHORIZATION_TOKEN"] == token
    assert pinned.stop() == 0  # they all share one socket path: the fixture checks it is gone
