"""A small long-running program, as users write them: one boto3 session, calls forever.

It never restarts and never re-reads a file: its profile uses ``credential_process = credd get
...``, so botocore re-runs credd whenever the credentials it holds near expiry. Each line shows
which session key served the call (masked) and how long it had left; a failed call is counted.

    python -m credd_sandbox.demo_app --profile demo-app [--interval 2] [--count N] [--bucket NAME]
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from datetime import datetime, timezone
from types import FrameType


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--profile",
        help="profile with credential_process (default: botocore's own chain, e.g. "
        "the container endpoint under credd exec)",
    )
    parser.add_argument("--label", default="app", help="prefix of every line printed")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between calls")
    parser.add_argument("--count", type=int, default=0, help="stop after N rounds (0: forever)")
    parser.add_argument("--bucket", default="credd-demo", help="S3 bucket to write into")
    args = parser.parse_args(argv)

    stop = False

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    import boto3
    import botocore.exceptions

    session = boto3.Session(profile_name=args.profile)
    sts = session.client("sts")
    s3 = session.client("s3")
    ok = failed = 0
    keys: set[str] = set()
    try:
        s3.create_bucket(Bucket=args.bucket)
    except botocore.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
            raise
    n = 0
    while not stop and (args.count == 0 or n < args.count):
        n += 1
        try:
            who = sts.get_caller_identity()
            s3.put_object(Bucket=args.bucket, Key=f"tick/{n:06d}", Body=b"tick")
            creds = session.get_credentials()
            frozen = creds.get_frozen_credentials()
            expiry = getattr(creds, "_expiry_time", None)
            left = int((expiry - datetime.now(timezone.utc)).total_seconds()) if expiry else None
            keys.add(frozen.access_key)
            ok += 1
            print(
                f"{args.label}: call {n:4d} ok as {who['Arn'].rsplit('/', 1)[-1]}, "
                f"session key ...{frozen.access_key[-4:]}, {left} s left, "
                f"{len(keys)} sessions seen",
                flush=True,
            )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            failed += 1
            print(f"{args.label}: call {n:4d} FAILED: {type(exc).__name__}: {exc}", flush=True)
        deadline = time.monotonic() + args.interval
        while not stop and time.monotonic() < deadline:
            time.sleep(min(0.2, args.interval))
    print(
        f"{args.label}: done: {ok} calls ok, {failed} failed, {len(keys)} sessions seen", flush=True
    )
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
