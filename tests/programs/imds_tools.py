"""Every tool family reading S3 through credd's IMDS endpoint, across session rotations.

Run under ``credd exec --imds PROFILE``: no keys, no profile, only the IMDS variables. In one
loop until --sessions distinct session keys were served (or --seconds passed):

* boto3: a new Session each round (each one asks IMDS: token, role, credentials), GetObject;
* Polars (Rust ``object_store``'s own IMDS provider, not boto3): read a Parquet file;
* the AWS CLI v2 every few rounds (``aws s3api head-object``), its own botocore and IMDS;
* GDAL (Debian's Python bindings, run as a child by /usr/bin/python3): ``gdal_reader.py``
  re-reads a COG through ``/vsis3/`` in one long-lived process, while the loop runs.

Also asks IMDS directly each round for the served expiry (``min_left`` must stay > 0).
Prints one JSON summary line.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import duckdb
import polars as pl

HERE = Path(__file__).parent


def duckdb_connection(endpoint: str) -> duckdb.DuckDBPyConnection:
    """DuckDB with httpfs and aws loaded from their PyPI packages (no download), and one S3
    secret from the AWS C++ SDK's instance provider (IMDS), refreshed on expiry."""
    import duckdb_extension_aws
    import duckdb_extension_httpfs

    con = duckdb.connect()
    for module, name in ((duckdb_extension_httpfs, "httpfs"), (duckdb_extension_aws, "aws")):
        path = Path(module.__file__).parent / "extensions" / f"v{duckdb.__version__}"
        con.sql(f"LOAD '{path / (name + '.duckdb_extension')}'")
    url = urlsplit(endpoint)
    con.sql(
        "CREATE SECRET imds (TYPE s3, PROVIDER credential_chain, CHAIN 'instance', "
        f"REFRESH auto, ENDPOINT '{url.netloc}', URL_STYLE 'path', USE_SSL false)"
    )
    return con


def imds_left() -> tuple[str, float]:
    """Ask the endpoint as an SDK does (http.client: plain HTTP to the loopback endpoint)."""
    url = urlsplit(os.environ["AWS_EC2_METADATA_SERVICE_ENDPOINT"])
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=5)

    def ask(method: str, path: str, headers: dict[str, str]) -> str:
        conn.request(method, path, headers=headers)
        resp = conn.getresponse()
        body = resp.read().decode()
        assert resp.status == 200, (path, resp.status, body)
        return body

    token = ask("PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    path = "/latest/meta-data/iam/security-credentials/"
    hdr = {"X-aws-ec2-metadata-token": token}
    creds = json.loads(ask("GET", path + ask("GET", path, hdr), hdr))
    conn.close()
    expires = datetime.strptime(creds["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=timezone.utc
    )
    return creds["AccessKeyId"], (expires - datetime.now(timezone.utc)).total_seconds()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--bucket", required=True)
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=150)
    ap.add_argument("--cli-every", type=int, default=5)
    args = ap.parse_args()
    assert not any(k in os.environ for k in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE"))
    gdal = subprocess.Popen(
        ["/usr/bin/python3", str(HERE / "gdal_reader.py"), args.endpoint, args.bucket],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    storage = {"aws_endpoint_url": args.endpoint, "aws_allow_http": "true"}
    counts = {"boto3": 0, "polars": 0, "cli": 0, "duckdb": 0}
    duck = duckdb_connection(args.endpoint)
    failed: list[str] = []
    keys: set[str] = set()
    min_left = float("inf")
    rounds = 0
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline and len(keys) < args.sessions:
        rounds += 1
        key, left = imds_left()
        keys.add(key)
        min_left = min(min_left, left)
        try:
            s3 = boto3.Session().client("s3", endpoint_url=args.endpoint)
            assert s3.get_object(Bucket=args.bucket, Key="table.parquet")["ContentLength"] > 0
            counts["boto3"] += 1
        except Exception as exc:
            failed.append(f"boto3: {type(exc).__name__}: {exc}"[:300])
        try:
            frame = pl.read_parquet(
                f"s3://{args.bucket}/table.parquet",
                storage_options=storage,
                credential_provider=None,  # object_store's own chain: its IMDS client
            )
            assert frame.height == 1000
            counts["polars"] += 1
        except Exception as exc:
            failed.append(f"polars: {type(exc).__name__}: {exc}"[:300])
        try:
            (n,) = duck.sql(
                f"SELECT count(*) FROM read_parquet('s3://{args.bucket}/table.parquet')"  # noqa: S608
            ).fetchone()  # type: ignore[misc]
            assert n == 1000
            counts["duckdb"] += 1
        except Exception as exc:
            failed.append(f"duckdb: {type(exc).__name__}: {exc}"[:300])
        if rounds % args.cli_every == 1:
            done = subprocess.run(
                ["/usr/bin/aws", "s3api", "head-object", "--bucket", args.bucket, "--key",
                 "cog.tif", "--endpoint-url", args.endpoint],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            if done.returncode == 0:
                counts["cli"] += 1
            else:
                failed.append(f"cli: {done.stderr.strip()}"[:300])
        time.sleep(0.5)
    gdal.terminate()
    out, err = gdal.communicate(timeout=30)
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    gdal_reads = sum(1 for x in lines if x.get("ok"))
    failed += [f"gdal: {x['error']}"[:300] for x in lines if not x.get("ok")]
    summary = {
        "sessions": len(keys),
        "rounds": rounds,
        **counts,
        "gdal": gdal_reads,
        "failed": failed,
        "min_left": min_left,
        "gdal_stderr": err[-500:] if not gdal_reads else "",
    }
    print(json.dumps(summary))
    sys.exit(0)


if __name__ == "__main__":
    main()
