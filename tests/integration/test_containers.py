"""A container's network gets refreshing credentials through ``credd relay``: a real network
namespace (``ip netns``; Docker's daemon and Podman are not available on this machine, and a
container's network is exactly such a namespace), boto3 inside it reaching the daemon's container
endpoint and IMDS endpoint on its own 127.0.0.1, no key copied in."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.daemon import DaemonFactory, remember

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.getuid() != 0 or shutil.which("ip") is None, reason="needs root and ip(8) for netns"
    ),
]

INSIDE = """
import json, os, sys, boto3
s3 = boto3.Session().client("s3", endpoint_url=sys.argv[1])
s3.create_bucket(Bucket=sys.argv[2])
c = boto3.Session().get_credentials()
print(json.dumps({"method": c.method, "key": c.get_frozen_credentials().access_key,
                  "buckets": [b["Name"] for b in s3.list_buckets()["Buckets"]]}))
"""


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"credd-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=30)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=30)


def inside(
    netns: str, code: str, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, "-c", code, *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.timeout(240)
def test_a_network_namespace_gets_refreshing_credentials_through_the_relay(
    daemons: DaemonFactory, netns: str, tmp_path: Path
) -> None:
    user, dev = daemons.sandbox.new_user_with_mfa("box")
    remember(user.secret_access_key, dev.seed)
    daemons.store.set_long_term_keys("box", user.access_key_id, user.secret_access_key)
    daemons.store.set_totp_seed("box", dev.seed)
    daemons.write_config("[profile box]\nregion = us-east-1\nservices = sandbox\ncredd = true\n")
    d = daemons.start()
    d.wait_state("box", "fresh")
    endpoint = d.status()["daemon"]["endpoint"]
    token = Path(endpoint["token_file"]).read_text()
    imds = json.loads(d.run("env", "--imds", "box", "--format", "json").stdout)["set"]
    imds_url = imds["AWS_METADATA_ENDPOINT"]
    sandbox_port = int(daemons.sandbox.endpoint.rsplit(":", 1)[1])
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CREDD_"))}
    clean |= {"HOME": str(tmp_path), "AWS_REGION": "us-east-1"}  # no keys, no AWS files
    container = clean | {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{endpoint['url']}box",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": token,
    }
    bucket = f"box-{uuid.uuid4().hex[:8]}"

    # before the relay: the namespace's loopback has nothing behind it
    before = inside(netns, INSIDE, container, daemons.sandbox.endpoint, bucket)
    assert before.returncode != 0

    relay = subprocess.Popen(
        [sys.executable, "-m", "credd.cli", "relay", "--netns", netns,
         "--port", str(endpoint["port"]), "--port", imds_url.rsplit(":", 1)[1],
         "--port", str(sandbox_port)],
        env=daemons.env(), stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert relay.stderr is not None and "relaying" in relay.stderr.readline()
        got = inside(netns, INSIDE, container, daemons.sandbox.endpoint, bucket)
        assert got.returncode == 0, got.stderr[-2000:]
        out = json.loads(got.stdout)
        assert out["method"] == "container-role" and bucket in out["buckets"]
        assert out["key"] == d.get("box")["AccessKeyId"]
        # the IMDS route through the same relay (IMDSv2: the PUT goes through too)
        via_imds = clean | {
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds["AWS_EC2_METADATA_SERVICE_ENDPOINT"],
            "AWS_EC2_METADATA_DISABLED": "false",
        }
        got = inside(netns, INSIDE, via_imds, daemons.sandbox.endpoint, bucket + "-i")
        assert got.returncode == 0, got.stderr[-2000:]
        assert json.loads(got.stdout)["method"] == "iam-role"
        # without the token the container endpoint still refuses, relay or not
        no_token = clean | {"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{endpoint['url']}box"}
        refused = inside(netns, INSIDE, no_token, daemons.sandbox.endpoint, bucket + "-x")
        assert refused.returncode != 0 and "needs its token" in refused.stderr
    finally:
        relay.terminate()
        relay.wait(10)
