"""``credd presign`` throughput: 1,000 S3 URLs from one botocore client (credd's way) against
one client per URL (what a naive loop around ``aws s3 presign`` amounts to, minus its process).

    .venv/bin/python bench/presign.py [--count 1000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from credd.actions.presign import presign_all


def client() -> Any:
    import botocore.session
    from botocore.config import Config

    return botocore.session.Session().create_client(
        "s3", region_name="us-east-1", aws_access_key_id="AKIABENCH00000000000",
        aws_secret_access_key="b" * 40, config=Config(signature_version="s3v4"),
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1000)
    args = ap.parse_args()
    targets = [("bench-bucket", f"cohort/sample-{i}.bedpe") for i in range(args.count)]
    start = time.perf_counter()
    presign_all(client(), targets, "GET", 604_800)
    one = time.perf_counter() - start
    few = targets[: max(args.count // 50, 1)]
    start = time.perf_counter()
    for target in few:
        presign_all(client(), [target], "GET", 604_800)
    per_url = (time.perf_counter() - start) / len(few)
    print(f"{args.count} URLs, one client:   {one:.2f} s ({one / args.count * 1000:.2f} ms/URL)")
    print(f"one client per URL (sampled):    {per_url * 1000:.1f} ms/URL")


if __name__ == "__main__":
    main()
