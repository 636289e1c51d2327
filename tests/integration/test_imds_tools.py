"""Issue 11's proof: boto3, the AWS CLI v2, GDAL and Polars/object_store read moto S3 through
credd's IMDS endpoint across at least three role rotations, with 0 failed calls and no expired
credential served, started by ``credd exec --imds`` with no config change."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import boto3
import polars as pl
import pytest

from tests.fixtures.daemon import DaemonFactory, remember

pytestmark = pytest.mark.integration
PROGRAMS = Path(__file__).resolve().parents[1] / "programs"


def make_cog(tmp_path: Path) -> Path:
    plain, cog = tmp_path / "plain.tif", tmp_path / "cog.tif"
    subprocess.run(
        ["gdal_create", "-q", "-of", "GTiff", "-outsize", "256", "256", "-bands", "1",
         "-burn", "7", "-ot", "Byte", str(plain)],
        check=True, timeout=60,
    )  # fmt: skip
    subprocess.run(
        ["gdal_translate", "-q", "-of", "COG", str(plain), str(cog)], check=True, timeout=60
    )
    return cog


@pytest.mark.timeout(300)
@pytest.mark.skipif(shutil.which("gdal_create") is None, reason="Debian gdal-bin is needed")
def test_every_tool_family_reads_s3_through_imds_across_rotations(
    daemons: DaemonFactory, tmp_path: Path
) -> None:
    sandbox = daemons.sandbox
    sandbox.admin.set_min_duration(20)  # sandbox-only: 20 s role sessions
    user, dev = sandbox.new_user_with_mfa("imds")
    remember(user.secret_access_key, dev.seed)
    daemons.store.set_long_term_keys("user", user.access_key_id, user.secret_access_key)
    daemons.store.set_totp_seed("user", dev.seed)
    role = sandbox.admin.create_role(f"geo-{user.name}", trusted=[user.arn], mfa_required=True)
    daemons.write_config(
        "[profile user]\nregion = us-east-1\nservices = sandbox\ncredd = true\n"
        f"[profile geo]\nrole_arn = {role.arn}\nsource_profile = user\nduration_seconds = 20\n"
        "credd = true\nregion = us-east-1\nservices = sandbox\n"
    )
    d = daemons.start(CREDD_MIN_SESSION_SECONDS="20")
    d.wait_state("geo", "fresh")
    # the data: a COG and a Parquet file, put there with credd's session credentials
    creds = d.get("geo")
    s3 = boto3.client(
        "s3",
        endpoint_url=sandbox.endpoint,
        region_name="us-east-1",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    bucket = f"geo-{int(time.time() * 1000)}"
    s3.create_bucket(Bucket=bucket)
    s3.upload_file(str(make_cog(tmp_path)), bucket, "cog.tif")
    table = tmp_path / "table.parquet"
    pl.DataFrame({"i": range(1000), "v": [i * 0.5 for i in range(1000)]}).write_parquet(table)
    s3.upload_file(str(table), bucket, "table.parquet")
    assumed_before = sandbox.admin.calls("AssumeRole")

    done = subprocess.run(
        [sys.executable, "-m", "credd.cli", "exec", "--imds", "geo", "--",
         sys.executable, str(PROGRAMS / "imds_tools.py"), "--endpoint", sandbox.endpoint,
         "--bucket", bucket, "--sessions", "4", "--cli-every", "3"],
        env=daemons.env(), capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    print("imds tools:", json.dumps(summary))
    assert summary["failed"] == [], summary
    assert summary["sessions"] >= 4, summary  # >= 3 rotations
    assert sandbox.admin.calls("AssumeRole") - assumed_before >= 3
    assert summary["boto3"] == summary["polars"] == summary["duckdb"] == summary["rounds"]
    assert summary["cli"] >= 3 and summary["gdal"] >= 10, summary
    assert summary["min_left"] > 0, summary  # never an expired credential served
    # the endpoint lived as long as the command: gone once it ended
    deadline = time.monotonic() + 10
    while d.status()["daemon"]["imds"]["endpoints"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert d.status()["daemon"]["imds"]["endpoints"] == []


def test_credd_imds_in_the_config_serves_follows_reloads_and_reports_bad_values(
    daemons: DaemonFactory,
) -> None:
    from botocore.utils import InstanceMetadataFetcher

    user, dev = daemons.sandbox.new_user_with_mfa("imdscfg")
    remember(user.secret_access_key, dev.seed)
    daemons.store.set_long_term_keys("u", user.access_key_id, user.secret_access_key)
    daemons.store.set_totp_seed("u", dev.seed)
    base = "[profile u]\nregion = eu-north-1\nservices = sandbox\ncredd = true\n"
    daemons.write_config(base + "credd_imds = auto\n[profile v]\ncredd = true\ncredd_imds = 80\n")
    d = daemons.start()
    d.wait_state("u", "fresh")
    imds = d.status()["daemon"]["imds"]
    (endpoint,) = imds["endpoints"]
    assert endpoint["profile"] == "u" and endpoint["configured"] and not endpoint["allow_v1"]
    assert "unprivileged port" in imds["errors"]["v"]["message"]  # v's error; u still serves
    fetcher = InstanceMetadataFetcher(
        timeout=2, num_attempts=1, config={"ec2_metadata_service_endpoint": endpoint["url"]}, env={}
    )
    got = fetcher.retrieve_iam_role_credentials()
    assert got["role_name"] == "u" and got["access_key"] == d.get("u")["AccessKeyId"]
    remember(got["secret_key"], got["token"])
    # credd env --imds reuses it (no note about restarts: it is configured)
    env = d.run("env", "--imds", "u", "--format", "json")
    assert env.returncode == 0 and "credd_imds = PORT" not in env.stderr
    assert json.loads(env.stdout)["set"]["AWS_METADATA_ENDPOINT"] == endpoint["url"]
    # the key removed: the endpoint stops on reload
    daemons.write_config(base)
    assert d.proc is not None
    d.proc.send_signal(__import__("signal").SIGHUP)
    deadline = time.monotonic() + 15
    while d.status()["daemon"]["imds"]["endpoints"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert d.status()["daemon"]["imds"]["endpoints"] == []
