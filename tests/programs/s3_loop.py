"""A long-running program: one boto3 session calling S3 (put, get) in a loop until a stop file
appears or --seconds pass. Prints one JSON summary line: calls, failed, distinct session keys."""

from __future__ import annotations

import argparse
import json
import os
import time

import boto3
import botocore.exceptions


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", required=True)
    ap.add_argument("--stop-file", required=True)
    ap.add_argument("--seconds", type=float, default=180)
    args = ap.parse_args()
    session = boto3.Session(profile_name=args.profile)
    s3 = session.client("s3")
    bucket = f"credd-loop-{os.getpid()}-{int(time.time() * 1000)}"
    s3.create_bucket(Bucket=bucket)
    calls = failed = 0
    keys: set[str] = set()
    errors: list[str] = []
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline and not os.path.exists(args.stop_file):
        try:
            s3.put_object(Bucket=bucket, Key=f"k{calls}", Body=b"x")
            assert s3.get_object(Bucket=bucket, Key=f"k{calls}")["Body"].read() == b"x"
            frozen = session.get_credentials().get_frozen_credentials()
            keys.add(frozen.access_key[-4:])
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            failed += 1
            errors.append(type(exc).__name__)
        calls += 1
        time.sleep(0.05)
    summary = {"calls": calls, "failed": failed, "sessions": len(keys), "errors": errors[:5]}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
