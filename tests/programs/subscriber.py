"""Seed 002's subscriber, as users write it: one boto3 session, poll an SQS queue forever.

A publisher thread in the same process sends a message a second; the subscriber receives and
deletes them. Stops after --sessions distinct session keys (rotations + 1) or --seconds.
Prints one JSON summary line.
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import boto3
import botocore.exceptions


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", required=True)
    ap.add_argument("--sessions", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=150)
    args = ap.parse_args()
    session = boto3.Session(profile_name=args.profile)
    sqs = session.client("sqs")
    url = sqs.create_queue(QueueName=f"credd-{int(time.time() * 1000)}")["QueueUrl"]
    stop = threading.Event()
    sent = received = failed = 0
    keys: set[str] = set()
    min_left = 10**9

    def publish() -> None:
        nonlocal sent, failed
        while not stop.is_set():
            try:
                sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": sent}))
                sent += 1
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
                failed += 1
            stop.wait(1.0)

    publisher = threading.Thread(target=publish)
    publisher.start()
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline and len(keys) < args.sessions:
        try:
            got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1, MaxNumberOfMessages=10)
            for msg in got.get("Messages", []):
                sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])
                received += 1
            session.client("sts").get_caller_identity()  # the strict STS rejects expired creds
            creds = session.get_credentials()
            keys.add(creds.get_frozen_credentials().access_key)
            expiry = getattr(creds, "_expiry_time", None)
            if expiry is not None:
                left = (expiry - creds._time_fetcher()).total_seconds()
                min_left = min(min_left, int(left))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            failed += 1
            print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
    stop.set()
    publisher.join()
    print(
        json.dumps(
            {
                "sent": sent,
                "received": received,
                "failed": failed,
                "sessions": len(keys),
                "min_left": min_left,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
