"""Seed 000's long transfer, as `aws s3 sync` does it: one process, multipart uploads in a loop.

Uploads an 11 MiB file again and again (multipart: 5 MiB parts) under new keys until
--sessions distinct session keys were used or --seconds passed. Prints one JSON summary line.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import boto3
import botocore.exceptions
from boto3.s3.transfer import TransferConfig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", required=True)
    ap.add_argument("--sessions", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=150)
    args = ap.parse_args()
    session = boto3.Session(profile_name=args.profile)
    s3 = session.client("s3")
    bucket = f"credd-sync-{int(time.time() * 1000)}"
    s3.create_bucket(Bucket=bucket)
    config = TransferConfig(
        multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20, max_concurrency=2
    )
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(os.urandom(11 * 2**20))
    uploads = failed = 0
    keys: set[str] = set()
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline and len(keys) < args.sessions:
        try:
            s3.upload_file(f.name, bucket, f"data/part-{uploads:05d}.bin", Config=config)
            session.client("sts").get_caller_identity()
            uploads += 1
            keys.add(session.get_credentials().get_frozen_credentials().access_key)
        except (
            botocore.exceptions.BotoCoreError,
            botocore.exceptions.ClientError,
            boto3.exceptions.S3UploadFailedError,
        ) as exc:
            failed += 1
            print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="data/").get("KeyCount", 0)
    os.unlink(f.name)
    print(
        json.dumps({"uploads": uploads, "listed": listed, "failed": failed, "sessions": len(keys)}),
        flush=True,
    )


if __name__ == "__main__":
    main()
